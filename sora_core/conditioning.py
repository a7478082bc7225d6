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

from collections.abc import Callable, Sequence
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


# Loops: the DiT sees one more latent frame before the period (the period's last frame again), so the
# window is a stretch of the endless loop as long as the mid-clip windows it was trained on (5 latent
# frames for a 16-frame period), and the first frame has its predecessor, the loop's last, in view. Without
# it, still objects in 16-frame loops often broke up into several; the loop bench's motion went from 66%
# to 80% with it (docs/quality.md). The period is not rotated between steps: a bounce's phase is tied to
# the clip's start, and rotations asked each step for another phase, which averaged bounces into still
# objects (bounce motion 9/19 with rotations, 17/19 without; seams within 1.5x on 50/50 with, 48/50 without).
CIRCULAR_LEAD = 1


@dataclass(frozen=True)
class PromptSpan:
    """A prompt that governs some latent frames (a storyboard shot). context: [B, L, D] text states;
    frames: [T] bool, True for the latent frames this prompt's velocity is used for (None: all)."""

    context: Tensor
    frames: Tensor | None = None


def conditioned_velocity(dit: WanDiT, context: Tensor | None, negative: Tensor | None, cfg: float,
                         cond: TemporalCondition | None, *, spans: Sequence[PromptSpan] | None = None,
                         circular: bool = False) -> Callable[[Tensor, Tensor], Tensor]:
    """The sampler's denoiser: DiT velocity with classifier-free guidance and temporal conditioning.

    Without a condition it is the plain text-to-video denoiser. Positive and negative prompts run as
    one batch (the shorter context is zero-padded, which is how the DiT pads it anyway).

    ``spans`` (storyboards): one pass over the whole clip in which the tokens of each latent frame read
    their own shot's prompt in cross-attention, while self-attention spans every frame (this is what
    keeps the subject the same across shots). Running each prompt over the whole clip and keeping its
    frames instead lets the first shot's motion run on into the next (docs/quality.md's storyboard line).

    ``circular`` (loops): the clip is shown after a lead of its own last ``CIRCULAR_LEAD`` frames (the
    loop's past), whose velocity is dropped, so the first frame is denoised as the last one's successor:
    the wrap-around seam is denoised like any other transition.
    """
    if spans is None:
        if context is None:
            raise InputError("conditioned_velocity: give a context or prompt spans")
        spans = [PromptSpan(context)]
    contexts = [sp.context for sp in spans] + ([negative] if negative is not None else [])
    length = max(c.shape[1] for c in contexts)
    contexts = [F.pad(c, (0, 0, 0, length - c.shape[1])) for c in contexts]
    positive, negative = contexts[0], (contexts[-1] if negative is not None else None)
    if len(spans) > 1:  # [B, S, L, D], and the negative read by every frame alike
        positive = torch.stack(contexts[: len(spans)], dim=1)
        negative = negative[:, None].expand_as(positive) if negative is not None else None

    def guided(x_in: Tensor, t: Tensor, frame_prompt: Tensor | None) -> Tensor:
        extra = {} if frame_prompt is None else {"frame_prompt": frame_prompt}
        if negative is None or cfg == 1.0:
            return dit(x_in, t, positive, **extra).float()
        both = dit(torch.cat([x_in, x_in]), torch.cat([t, t]), torch.cat([positive, negative]), **extra).float()
        pos, neg = both.chunk(2)
        return neg + cfg * (pos - neg)

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
        lead = min(CIRCULAR_LEAD, frames) if circular else 0
        owner = None if len(spans) == 1 else frame_owners(spans, frames)
        if lead:
            xd, t = torch.cat([xd[:, :, -lead:], xd], dim=2), torch.cat([t[:, -lead:], t], dim=1)
            owner = None if owner is None else torch.cat([owner[-lead:], owner])
        v = guided(xd, t, owner)[:, :, lead:]
        if cond is not None:
            # denoised = known for the given frames: keeps them on their noising path to the exact value.
            s5 = s.view(-1, 1, 1, 1, 1).clamp_min(1e-6)
            v = torch.where(cond.frame_mask(x), (x.float() - cond.known.to(x.device).float()) / s5, v)
        return v

    return model


def frame_owners(spans: Sequence[PromptSpan], frames: int) -> Tensor:
    """[frames] index of the span that governs each latent frame (a later span wins where they overlap)."""
    owner = torch.full((frames,), -1, dtype=torch.long)
    for i, sp in enumerate(spans):
        if sp.frames is None:
            owner[:] = i
        else:
            if sp.frames.shape != (frames,):
                raise InputError(f"prompt span {i} marks {tuple(sp.frames.shape)} frames; the latent has {frames}")
            owner[sp.frames.cpu()] = i
    if bool((owner < 0).any()):
        missing = (owner < 0).nonzero().flatten().tolist()
        raise InputError(f"latent frames {missing} belong to no prompt span; give every frame a shot")
    return owner


def pixel_to_latent_frame(frame: int, temporal_factor: int = 4) -> int:
    """The latent frame that holds pixel frame ``frame``: 0 -> 0, 1..4 -> 1, 5..8 -> 2, ..."""
    return (frame + temporal_factor - 1) // temporal_factor


def latent_frames(pixel_frames: int, temporal_factor: int = 4) -> int:
    return (pixel_frames - 1) // temporal_factor + 1
