"""Temporal conditioning: latent frames that are known (images, the end of a clip, a kept span) and the
denoiser that generates the rest around them.

Mechanism. A :class:`TemporalCondition` marks latent frames as known. Inside the sampler the denoiser
reports ``denoised = known`` for those frames, i.e. velocity ``(x - known) / sigma``. With a flow
sampler that keeps the known frames exactly on their own noising path, ``x_sigma = (1 - sigma) * known
+ sigma * noise``, and lands on ``known`` bit-for-bit at sigma = 0, whatever the solver (Euler or
UniPC: both are exact for a constant clean estimate). What the DiT sees for those frames depends on
the model:

- ``native`` (models trained with clean conditioning frames, like the project's default model): the
  known frames enter clean with timestep 0, beside the noisy ones at timestep sigma (per-frame
  timesteps, ``t`` of shape [B, T]). The model attends to exact content.
- ``replace`` (any flow model, e.g. Wan 2.1 T2V, which was never shown clean frames): the known
  frames enter re-noised to the current sigma (the path above) with the same timestep as the rest,
  as in inpainting by replacement (RePaint, ComfyUI's latent masks). Works without training, but the
  model only sees the known content through the noise, so transitions are weaker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .dit import WanDiT
from .errors import InputError

MODES = ("native", "replace")


@dataclass(frozen=True)
class TemporalCondition:
    """Known latent frames. known: [B, C, T, h, w] normalised latents (only masked frames are read);
    mask: [B, T] bool, True where the frame is given; mode: "native" or "replace" (see module doc)."""

    known: Tensor
    mask: Tensor
    mode: str = "native"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InputError(f"conditioning mode {self.mode!r}; use one of {MODES}")
        if self.known.ndim != 5 or self.mask.shape != (self.known.shape[0], self.known.shape[2]):
            raise InputError(
                f"conditioning mask {tuple(self.mask.shape)} does not match the known latent "
                f"{tuple(self.known.shape)}; the mask needs one entry per (batch, latent frame)"
            )
        if bool(self.mask.all()):
            raise InputError("every latent frame is given: there is nothing left to generate")

    def frame_mask(self, like: Tensor) -> Tensor:
        """The mask broadcast to [B, 1, T, 1, 1] on ``like``'s device."""
        return self.mask.to(like.device).view(self.mask.shape[0], 1, self.mask.shape[1], 1, 1)


def conditioned_velocity(dit: WanDiT, context: Tensor, negative: Tensor | None, cfg: float,
                         cond: TemporalCondition | None) -> Callable[[Tensor, Tensor], Tensor]:
    """The sampler's denoiser: DiT velocity with classifier-free guidance and temporal conditioning.

    Without a condition it is the plain text-to-video denoiser. Positive and negative prompts run as
    one batch of 2B (the shorter context is zero-padded, which is how the DiT pads it anyway).
    """
    if negative is not None and negative.shape[1] != context.shape[1]:
        length = max(context.shape[1], negative.shape[1])
        context, negative = (F.pad(c, (0, 0, 0, length - c.shape[1])) for c in (context, negative))

    def model(x: Tensor, sigma: Tensor) -> Tensor:
        b, frames = x.shape[0], x.shape[2]
        s = sigma.reshape(-1).to(x.device, torch.float32).expand(b)
        t = (s * 1000)[:, None].expand(b, frames)
        x_in = x
        if cond is not None:
            m = cond.frame_mask(x)
            known = cond.known.to(x.device, x.dtype)
            if cond.mode == "native":
                x_in = torch.where(m, known, x)
                t = torch.where(cond.mask.to(x.device), torch.zeros_like(t), t)
        xd = x_in.to(dit.dtype)
        if negative is None or cfg == 1.0:
            v = dit(xd, t, context).float()
        else:
            both = dit(torch.cat([xd, xd]), torch.cat([t, t]), torch.cat([context, negative])).float()
            pos, neg = both.chunk(2)
            v = neg + cfg * (pos - neg)
        if cond is not None:
            # denoised = known for the given frames: keeps them on their noising path to the exact value.
            s5 = s.view(-1, 1, 1, 1, 1).clamp_min(1e-6)
            v = torch.where(cond.frame_mask(x), (x.float() - cond.known.to(x.device).float()) / s5, v)
        return v

    return model


def pixel_to_latent_frame(frame: int, temporal_factor: int = 4) -> int:
    """The latent frame that holds pixel frame ``frame``: 0 -> 0, 1..4 -> 1, 5..8 -> 2, ..."""
    return (frame + temporal_factor - 1) // temporal_factor


def latent_frames(pixel_frames: int, temporal_factor: int = 4) -> int:
    return (pixel_frames - 1) // temporal_factor + 1
