"""Write the trained default model as one project-format checkpoint (DiT + VAE + text-encoder config)."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

from ..config import VAEConfig
from ..dit import WanDiT
from ..loading import save_project_file
from ..pipeline import SamplingDefaults
from ..text_minilm import MiniLMTextEncoder
from ..vae import WanVAE

DEFAULT_SAMPLING = SamplingDefaults(steps=10, cfg=3.0, shift=3.0, sampler="unipc", frames=17, width=64, height=64,
                                    fps=16.0, negative_prompt="")


def with_latent_stats(vae: WanVAE, mean: tuple[float, ...], std: tuple[float, ...]) -> WanVAE:
    """The same VAE weights under a config that carries the measured latent statistics."""
    cfg: VAEConfig = replace(vae.config, latents_mean=tuple(mean), latents_std=tuple(std))
    out = WanVAE(cfg)
    out.load_state_dict(vae.state_dict())
    return out.eval()


def export_default(path: Path, dit: WanDiT, vae: WanVAE, text_encoder: MiniLMTextEncoder,
                   training: dict[str, object]) -> Path:
    meta = {
        "sampling_defaults": json.dumps(asdict(DEFAULT_SAMPLING)),
        "model_name": "sora-default",
        "training": json.dumps(training),
        "prompt_style": "expand_prompt",  # trained on detailed captions: short prompts are expanded first
    }
    return save_project_file(path, {"dit": dit, "vae": vae, "text_encoder": text_encoder}, extra_metadata=meta)
