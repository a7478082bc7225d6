"""LATENT dicts of this pack: the latent and the VAE grid it was sized for."""

from __future__ import annotations

import torch

from sora_core.config import VAEConfig

# Wan 2.1's VAE (VAEConfig's defaults): what a latent is sized for when no other VAE is known.
WAN21_VAE = VAEConfig()

# A LATENT made by this pack also says how many pixels one latent cell spans (ComfyUI's LATENT dicts carry
# extra keys such as "noise_mask" the same way). Wan 2.1's VAE compresses 8x, but a project checkpoint's VAE
# may compress 4x: a latent sized for one VAE would silently decode to another picture size with the other.
SPATIAL_FACTOR_KEY = "sora_spatial_factor"


def video_latent(samples: torch.Tensor, spatial_factor: int) -> dict:
    """A LATENT dict for ``samples`` that records the VAE compression it was sized for."""
    return {"samples": samples, SPATIAL_FACTOR_KEY: spatial_factor}


def check_latent_grid(latent: dict, spatial_factor: int | None, name: str, owner: str) -> None:
    """Refuse a latent sized for another VAE's spatial compression than ``owner``'s (``spatial_factor``).
    Latents from other nodes (no record) and owners that do not know their VAE (None) pass."""
    made_for = latent.get(SPATIAL_FACTOR_KEY)
    if made_for is None or spatial_factor is None or int(made_for) == spatial_factor:
        return
    raise ValueError(
        f"{name}: this latent was sized for a VAE that compresses {made_for}x in space, but {owner} works with "
        f"{spatial_factor}x; use the model's own VAE throughout: connect it to SoraEmptyLatentVideo's vae input "
        "and encode and decode with it"
    )
