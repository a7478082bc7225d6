"""Sora's temporal operations on one clip: image-to-video and keyframes, extend forward and backward,
seamless loops, blends between two clips, storyboards, remix (video-to-video) and re-cut.

All of them are one mechanism, a sampling window whose known latent frames are given
(:class:`~sora_core.conditioning.TemporalCondition`) and whose other frames are generated around them;
loops add wrap-around denoising and storyboards give each frame range its own prompt.

Facts of the causal video VAE that shape the code:

- Latent frame 0 codes pixel frame 0 alone; latent frame k >= 1 codes pixel frames 4k-3 .. 4k. A span of
  pixel frames is therefore regenerated in whole 4-frame groups.
- Decoding is causal: the frames of ``latent[:, :, :k]`` are the first frames of the decoded
  ``latent``. Appending latent frames (extend forward) never changes the frames before them, so
  forward extension works on latents alone.
- A clip's own latents describe it *from its first frame*: put after other frames, its frame 0 would
  have to be part of a 4-frame group. Where a clip must be continued *into* (extend backward, the end of
  a blend), its first frames are coded as groups after a still lead-in (:meth:`Engine.group_latents`)
  and the original frames are spliced back in pixels, so they come back unchanged.

Operations return a :class:`Clip` whose frames outside what was generated are the input frames,
bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from . import sampling
from .conditioning import MODES, PromptSpan, TemporalCondition, latent_frames, pixel_to_latent_frame
from .dit import WanDiT
from .errors import InputError
from .pipeline import check_video_size, sample_latent
from .vae import WanVAE
from .videoio import video_tensor_to_frames

TEMPORAL = 4  # pixel frames per latent frame after the first (Wan's causal VAE)


@dataclass
class Sampling:
    """Sampler settings shared by every sampling pass of an operation (pass i uses seed + i)."""

    seed: int = 0
    steps: int = 20
    cfg: float = 5.0
    shift: float = 3.0
    sampler: str = "unipc"
    mode: str = "native"  # how known frames enter the DiT: see sora_core.conditioning
    callback: Callable[[sampling.StepInfo], None] | None = None
    cancel: Callable[[], bool] | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InputError(f"mode={self.mode!r}; use one of {MODES}")


@dataclass
class Clip:
    """One video: frames [T, H, W, 3] float in [0, 1] (ComfyUI's IMAGE layout) and/or its normalised
    latent [1, C, T', h, w]. Either may be missing; :class:`Engine` computes the other on demand."""

    frames: Tensor | None = None
    latent: Tensor | None = None

    def __post_init__(self) -> None:
        if self.frames is None and self.latent is None:
            raise InputError("a clip needs frames or a latent")
        if self.frames is not None and (self.frames.ndim != 4 or self.frames.shape[-1] != 3):
            raise InputError(f"clip frames must be [frames, height, width, 3]; got {tuple(self.frames.shape)}")
        if self.latent is not None and (self.latent.ndim != 5 or self.latent.shape[0] != 1):
            raise InputError(f"clip latent must be one video [1, C, T, h, w]; got {tuple(self.latent.shape)}")


@dataclass
class Engine:
    """The DiT and VAE an operation runs with, and its sampler settings."""

    dit: WanDiT
    vae: WanVAE
    settings: Sampling = field(default_factory=Sampling)
    passes: int = 0  # sampling passes run so far (seeds advance by one per pass)

    @classmethod
    def for_models(cls, models: Any, **settings: Any) -> Engine:
        """An engine for loaded :class:`~sora_core.pipeline.SoraModels` with the model's default sampler
        settings; keyword arguments (seed, steps, cfg, shift, sampler, mode, callback, cancel) override them."""
        d = models.defaults
        defaults = dict(steps=d.steps, cfg=d.cfg, shift=d.shift, sampler=d.sampler)
        return cls(models.dit, models.vae, Sampling(**{**defaults, **settings}))

    # --- pixels <-> latents ----------------------------------------------------------------------

    @torch.inference_mode()
    def encode(self, frames: Tensor) -> Tensor:
        video = frames.float().movedim(-1, 0)[None] * 2 - 1  # [1, 3, T, H, W] in [-1, 1]
        return self.vae.encode(video.to(self.vae.dtype)).float().cpu()  # operations assemble windows on the CPU

    @torch.inference_mode()
    def decode(self, latent: Tensor) -> Tensor:
        return video_tensor_to_frames(self.vae.decode(latent.to(self.vae.dtype)))

    @torch.inference_mode()
    def decode_loop(self, groups: Tensor) -> Tensor:
        """Frames of one loop period (latent frames that are all 4-frame groups), decoded with time
        wrapped around: the last frame leads into the first as if the period had played many times."""
        return video_tensor_to_frames(self.vae.decode_periodic(groups.to(self.vae.dtype)))

    def latent_of(self, clip: Clip) -> Tensor:
        if clip.latent is None:
            check_frames(clip.frames.shape[0], "video")
            clip.latent = self.encode(clip.frames)
        return clip.latent

    def frames_of(self, clip: Clip) -> Tensor:
        if clip.frames is None:
            clip.frames = self.decode(clip.latent)
        return clip.frames

    def group_latents(self, frames: Tensor, groups: int) -> Tensor:
        """Latents of ``frames[1 : 4 * groups + 1]`` coded as 4-frame groups, the way they would be
        coded in the middle of a longer clip: encoded after a still lead-in of frame 0 (the causal
        VAE codes a clip's first frame alone, which cannot sit in the middle of another clip)."""
        part = frames[: TEMPORAL * groups + 1]
        lead = torch.cat([part[:1].expand(TEMPORAL, -1, -1, -1), part])
        return self.encode(lead)[:, :, 2:]

    def still_latent(self, image: Tensor, group: bool) -> Tensor:
        """One latent frame showing ``image`` [H, W, 3]: as a clip's first frame, or as a 4-frame group."""
        if not group:
            return self.encode(image[None])
        return self.encode(image[None].expand(TEMPORAL + 1, -1, -1, -1))[:, :, 1:2]

    # --- sampling ---------------------------------------------------------------------------------

    def sample(self, shape: tuple[int, ...], context: Tensor | None, negative: Tensor | None, *,
               known: Tensor | None = None, mask: Tensor | None = None, spans: Sequence[PromptSpan] | None = None,
               circular: bool = False, init: Tensor | None = None, strength: float = 1.0) -> Tensor:
        s = self.settings
        condition = None
        if mask is not None and bool(mask.any()):
            condition = TemporalCondition(known, mask[None], s.mode)
        with torch.inference_mode():
            out = sample_latent(
                self.dit, context, negative, shape, seed=s.seed + self.passes, steps=s.steps, cfg=s.cfg,
                shift=s.shift, sampler=s.sampler, callback=s.callback, cancel=s.cancel, condition=condition,
                spans=spans, circular=circular, init=init, strength=strength,
            )
        self.passes += 1
        return out.cpu()


# ----------------------------------------------------------------------------------------------
# Checks with messages that name the input and the fix


def check_frames(frames: int, name: str) -> None:
    if frames < 1 or (frames - 1) % TEMPORAL:
        raise InputError(f"{name}: {frames} frames; the video VAE needs 4k+1 frames (5, 9, 13, 17, ...)")


def _groups(frames: int, name: str, minimum: int = 1) -> int:
    if frames % TEMPORAL or frames < TEMPORAL * minimum:
        raise InputError(f"{name}={frames}; use a multiple of 4 of at least {TEMPORAL * minimum} "
                         "(the VAE codes 4 frames per latent frame)")
    return frames // TEMPORAL


def _group_pixels(latent_frame: int) -> tuple[int, int]:
    """First and last pixel frame (inclusive) of a latent frame."""
    return (0, 0) if latent_frame == 0 else (TEMPORAL * latent_frame - 3, TEMPORAL * latent_frame)


def _shape(engine: Engine, frames: int, width: int, height: int) -> tuple[int, ...]:
    sf = engine.vae.config.spatial_factor
    check_video_size(frames, width, height, temporal=TEMPORAL, spatial=sf * engine.dit.config.patch_size[1])
    return (1, engine.vae.config.z_dim, latent_frames(frames, TEMPORAL), height // sf, width // sf)


def _like(engine: Engine, latent: Tensor, frames: int) -> tuple[int, ...]:
    return (1, latent.shape[1], frames, latent.shape[3], latent.shape[4])


# ----------------------------------------------------------------------------------------------
# Operations


def keyframes_to_video(engine: Engine, context: Tensor, negative: Tensor | None,
                       keyframes: Sequence[tuple[int, Tensor]], *, frames: int, width: int, height: int) -> Clip:
    """Image-to-video and keyframes: images [H, W, 3] pinned at frame indices (negative counts from
    the end: -1 is the last frame), the rest generated.

    Frame 0 is coded alone, so an image there comes back as exactly as the VAE can draw it; an image
    at another frame pins the 4-frame group that holds it (the VAE has no code for one frame inside a
    group), which holds still around that frame.
    """
    shape = _shape(engine, frames, width, height)
    if not keyframes:
        raise InputError("keyframes: give at least one (frame index, image) pair")
    known = torch.zeros(shape)
    mask = torch.zeros(shape[2], dtype=torch.bool)
    for index, image in keyframes:
        frame = index + frames if index < 0 else index
        if not 0 <= frame < frames:
            raise InputError(f"keyframe at frame {index}: outside the clip's {frames} frames (0..{frames - 1}, "
                             "or -1 for the last)")
        if tuple(image.shape) != (height, width, 3):
            raise InputError(f"keyframe at frame {index}: image is {tuple(image.shape)}, the video is "
                             f"{height}x{width}; resize it (e.g. ComfyUI's ImageScale) to [height, width, 3]")
        latent_frame = pixel_to_latent_frame(frame, TEMPORAL)
        if mask[latent_frame]:
            raise InputError(f"keyframe at frame {index}: another keyframe is in the same 4-frame group "
                             f"(frames {_group_pixels(latent_frame)}); space keyframes at least 4 frames apart")
        known[:, :, latent_frame:latent_frame + 1] = engine.still_latent(image, group=latent_frame > 0)
        mask[latent_frame] = True
    latent = engine.sample(shape, context, negative, known=known, mask=mask)
    return Clip(engine.decode(latent), latent)


def extend(engine: Engine, context: Tensor, negative: Tensor | None, clip: Clip, *, direction: str = "forward",
           new_frames: int = 12, overlap_frames: int = 8, times: int = 1) -> Clip:
    """Continue a clip after its end (``forward``) or before its start (``backward``), ``times`` times,
    each time by ``new_frames`` frames conditioned on ``overlap_frames`` frames of the clip.

    Forward works on latents: the clip's last latent frames are known, new ones are appended, and the
    clip's own frames stay as they were; the new frames are decoded after the clip's last frames, not
    with the whole clip (past the 33 frames it was trained on, the VAE's colours drift). Backward
    generates frames that lead into the clip's first frames (known at the end of the window, coded as
    groups) and puts them before the original frames.
    """
    if direction not in ("forward", "backward"):
        raise InputError(f"direction={direction!r}; use 'forward' or 'backward'")
    if times < 1:
        raise InputError(f"times={times}; use at least 1")
    overlap = _groups(overlap_frames, "overlap_frames")
    new = _groups(new_frames, "new_frames")
    frames = engine.frames_of(clip)
    if direction == "forward":
        latent = engine.latent_of(clip)
        if latent.shape[2] <= overlap:
            have = engine.vae.pixel_frames(latent.shape[2])
            raise InputError(f"overlap_frames={overlap_frames}: the clip has only {have} frames; use fewer "
                             "overlap frames than the clip has")
        for _ in range(times):
            window = torch.cat([latent[:, :, -overlap:], torch.zeros(_like(engine, latent, new))], dim=2)
            mask = torch.arange(window.shape[2]) < overlap
            out = engine.sample(tuple(window.shape), context, negative, known=window, mask=mask)
            latent = torch.cat([latent, out[:, :, overlap:]], dim=2)
            frames = torch.cat([frames, _decode_after(engine, frames, out[:, :, overlap:])])
        return Clip(frames, latent)
    check_frames(frames.shape[0], "video")
    if frames.shape[0] < TEMPORAL * overlap + 1:
        raise InputError(f"overlap_frames={overlap_frames}: the clip has only {frames.shape[0]} frames; "
                         "use fewer overlap frames than the clip has")
    for _ in range(times):
        known_end = engine.group_latents(frames, overlap)
        # window: first frame, new-1 groups, the group that ends in the clip's frame 0, then the known groups
        size = new + 1 + overlap
        window = torch.cat([torch.zeros(_like(engine, known_end, new + 1)), known_end], dim=2)
        mask = torch.arange(size) >= new + 1
        out = engine.sample(tuple(window.shape), context, negative, known=window, mask=mask)
        decoded = engine.decode(out[:, :, : new + 1])
        lead = decoded[: TEMPORAL * new]  # drop the slot of the clip's frame 0
        # The decode draws the clip's frame 0 (its slot) unlike the clip does, so the new frames are handed
        # over towards the clip's look, fully at the join, as a blend's end is.
        lead = _hand_over(lead, _moved_to_join(lead, decoded[TEMPORAL * new], frames[0]))
        frames = torch.cat([lead.to(frames.dtype), frames])
    return Clip(frames, None)


def loop(engine: Engine, context: Tensor, negative: Tensor | None, *, frames: int = 16, width: int = 64,
         height: int = 64, clip: Clip | None = None, regenerate_frames: int = 8) -> Clip:
    """A clip that plays seamlessly on repeat: its last frame leads into its first, by wrap-around
    denoising (no cross-fade). The result is one period of ``frames`` frames, a multiple of 4.

    The causal VAE codes a clip's first frame alone and the rest in 4-frame groups, so a period is made
    of groups only: they are denoised circularly (the DiT sees them after a lead of the period's last
    group, so the last group is a neighbour of the first like any two groups), then decoded with time wrapped
    around (:meth:`Engine.decode_loop`), so the decoder too sees the first group follow the last.
    From ``clip`` (4k+1 frames): its frames after the first are the period; its last
    ``regenerate_frames`` frames are generated anew so that they lead back into its start, and the
    others are kept.
    """
    if clip is None:
        groups = _groups(frames, "frames")
        shape = _shape(engine, TEMPORAL * groups + 1, width, height)
        period = engine.sample((*shape[:2], groups, *shape[3:]), context, negative, circular=True)
    else:
        latent = engine.latent_of(clip)
        regen = _groups(regenerate_frames, "regenerate_frames")
        if regen >= latent.shape[2] - 1:
            raise InputError(f"regenerate_frames={regenerate_frames}: the clip has only "
                             f"{engine.vae.pixel_frames(latent.shape[2])} frames; regenerate fewer")
        known = latent[:, :, 1:]
        mask = torch.arange(known.shape[2]) < known.shape[2] - regen
        period = engine.sample(tuple(known.shape), context, negative, known=known, mask=mask, circular=True)
    decoded = engine.decode_loop(period)
    if clip is not None and clip.frames is not None:  # the input's own frames, bit for bit
        keep = TEMPORAL * (period.shape[2] - regen)
        decoded = torch.cat([clip.frames[1: keep + 1], decoded[keep:]])
    return Clip(decoded)


def close_loop(clip: Clip) -> Clip:
    """A loop's period followed by its first frame again (4k+1 frames, what the VAE and the other
    operations take): extending it forward continues the loop from its start."""
    if clip.frames is None:
        raise InputError("close_loop: give the loop's frames")
    return Clip(torch.cat([clip.frames, clip.frames[:1]]))


def _decode_after(engine: Engine, frames: Tensor, groups: Tensor, context_groups: int = 2) -> Tensor:
    """The frames of group latents that continue ``frames``, decoded after its last ``4 * context_groups + 1``
    frames (re-encoded): a short window, whatever the length of the clip they continue."""
    lead = frames[-(TEMPORAL * context_groups + 1):]
    return engine.decode(torch.cat([engine.encode(lead), groups], dim=2))[lead.shape[0]:]


def _moved_to_join(frames: Tensor, decoded_join: Tensor, own_join: Tensor) -> Tensor:
    """``frames`` moved by the difference between a clip's own frame at a join and the decode's drawing of
    that same frame. The decodes draw a join unlike the clip: a clip's frames coded as groups (what a
    transition is continued *into*) come back about 11 levels off on the default model, and a clip given
    as pixels decodes unlike itself; moved, the join steps as the decode does, with no change of look."""
    return frames + (own_join - decoded_join)


def _hand_over(start: Tensor, end: Tensor) -> Tensor:
    """Frames that are ``start``'s at the first frame and ``end``'s at the last, linearly between."""
    weight = torch.linspace(0, 1, start.shape[0], dtype=start.dtype).view(-1, 1, 1, 1)
    return (start * (1 - weight) + end * weight).clamp(0, 1)


def blend(engine: Engine, context: Tensor, negative: Tensor | None, first: Clip, second: Clip, *,
          transition_frames: int = 11, overlap_frames: int = 8) -> Clip:
    """A transition that starts where ``first`` ends and ends where ``second`` begins:
    first + transition + second. ``transition_frames`` is 4k+3 (3, 7, 11, ...), so the result is 4k+1."""
    if transition_frames < 3 or (transition_frames - 3) % TEMPORAL:
        raise InputError(f"transition_frames={transition_frames}; use 4k+3 frames (3, 7, 11, 15, ...) so the "
                         "joined clip keeps the VAE's 4k+1 length")
    overlap = _groups(overlap_frames, "overlap_frames")
    new = (transition_frames - 3) // TEMPORAL
    if first.frames is not None:
        check_frames(first.frames.shape[0], "video_a")
    lat_a = engine.latent_of(first)
    frames_a, frames_b = engine.frames_of(first), engine.frames_of(second)
    check_frames(frames_b.shape[0], "video_b")
    if lat_a.shape[2] <= overlap or frames_b.shape[0] < TEMPORAL * overlap + 1:
        raise InputError(f"overlap_frames={overlap_frames}: both clips need more frames than that")
    if frames_a.shape[1:] != frames_b.shape[1:]:
        raise InputError(f"the two clips differ in size ({tuple(frames_a.shape[1:3])} vs "
                         f"{tuple(frames_b.shape[1:3])}); resize one to the other")
    known_b = engine.group_latents(frames_b, overlap)
    middle = torch.zeros(_like(engine, lat_a, new + 1))  # new groups, then the group that ends in B's frame 0
    window = torch.cat([lat_a[:, :, -overlap:], middle, known_b], dim=2)
    mask = torch.ones(window.shape[2], dtype=torch.bool)
    mask[overlap: overlap + new + 1] = False
    out = engine.sample(tuple(window.shape), context, negative, known=window, mask=mask)
    groups = out[:, :, overlap: overlap + new + 1]
    # The causal decoder carries its memory of A's look (background, shading) into every later frame,
    # even into B's own latents decoded after A. So the transition is decoded both after A and after a
    # still of B's first frame, and handed over from the one to the other across its frames. Both decode
    # the same latents: where things are and how they move stay the DiT's. (After A, not after A's last
    # frames re-encoded as extend does: that round trip put the first frame further from A's last, 6.80
    # against 5.63 on bench/bench_operations.py's blend pairs.)
    start = frames_a.shape[0]
    decoded_a = engine.decode(torch.cat([lat_a, groups], dim=2))
    after_a = decoded_a[start: start + transition_frames]
    still_b = frames_b[:1].expand(TEMPORAL + 1, -1, -1, -1)
    after_b = _decode_after(engine, still_b, groups, context_groups=1)[: transition_frames + 1]
    # Each decode is moved to its clip's own frame at its join (the blend line of docs/quality.md).
    from_a = _moved_to_join(after_a, decoded_a[start - 1], frames_a[-1])
    from_b = _moved_to_join(after_b[:transition_frames], after_b[transition_frames], frames_b[0])
    transition = _hand_over(from_a, from_b)
    return Clip(torch.cat([frames_a, transition.to(frames_a.dtype), frames_b]), None)


@dataclass(frozen=True)
class Shot:
    """One storyboard shot: its prompt's text context and the pixel frame it starts at (it lasts until
    the next shot starts)."""

    context: Tensor
    start: int


def storyboard(engine: Engine, shots: Sequence[Shot], negative: Tensor | None, *, frames: int, width: int,
               height: int) -> Clip:
    """Several prompts on one timeline, generated together in one pass: each latent frame follows the
    prompt of the shot it falls in, while attending to every other frame (the subject carries over)."""
    shape = _shape(engine, frames, width, height)
    if not shots:
        raise InputError("storyboard: give at least one shot")
    shots = sorted(shots, key=lambda s: s.start)
    if shots[0].start != 0:
        raise InputError(f"storyboard: the first shot starts at frame {shots[0].start}; start one at frame 0")
    if shots[-1].start >= frames:
        raise InputError(f"storyboard: a shot starts at frame {shots[-1].start}, after the clip's {frames} frames")
    # A latent frame belongs to the shot that holds the middle of its pixel frames.
    centres = torch.tensor([0.0] + [TEMPORAL * k - 1.5 for k in range(1, shape[2])])
    starts = torch.tensor([float(s.start) for s in shots])
    owner = (centres[:, None] >= starts[None, :]).sum(dim=1) - 1
    spans = []
    for i, shot in enumerate(shots):
        own = owner == i
        if not bool(own.any()):
            raise InputError(f"storyboard: the shot at frame {shot.start} gets no frames; start shots at least 4 "
                             "frames apart")
        spans.append(PromptSpan(shot.context, own))
    latent = engine.sample(shape, None, negative, spans=spans)
    return Clip(engine.decode(latent), latent)


def remix(engine: Engine, context: Tensor, negative: Tensor | None, clip: Clip, *, strength: float = 0.6) -> Clip:
    """Video-to-video: the clip noised to ``strength`` (0: unchanged, 1: ignored) and sampled back under
    the prompt. Low strength keeps layout and motion; high strength keeps little more than timing."""
    latent = engine.latent_of(clip)
    out = engine.sample(tuple(latent.shape), context, negative, init=latent, strength=strength)
    return Clip(engine.decode(out), out)


def recut(engine: Engine, context: Tensor, negative: Tensor | None, clip: Clip, *, start: int, end: int) -> Clip:
    """Regenerate frames ``start`` .. ``end - 1`` (widened to whole 4-frame groups) and keep every other
    frame of the clip, bit for bit, and its latent frames."""
    latent = engine.latent_of(clip)
    total = engine.vae.pixel_frames(latent.shape[2])
    if not 0 <= start < end <= total:
        raise InputError(f"re-cut span {start}..{end}: use 0 <= start < end <= {total} (the clip's frames)")
    first, last = pixel_to_latent_frame(start, TEMPORAL), pixel_to_latent_frame(end - 1, TEMPORAL)
    mask = torch.ones(latent.shape[2], dtype=torch.bool)
    mask[first: last + 1] = False  # the latent frames that hold recut_span(start, end)
    if not bool(mask.any()):
        raise InputError(f"re-cut span {start}..{end} covers the whole clip; generate a new clip instead")
    out = engine.sample(tuple(latent.shape), context, negative, known=latent, mask=mask)
    decoded = engine.decode(out)
    frames = engine.frames_of(clip)
    p0, p1 = recut_span(start, end)
    return Clip(torch.cat([frames[:p0], decoded[p0: p1 + 1], frames[p1 + 1:]]), out)


def recut_span(start: int, end: int) -> tuple[int, int]:
    """The pixel frames a re-cut of ``start`` .. ``end - 1`` really regenerates (inclusive)."""
    return (_group_pixels(pixel_to_latent_frame(start, TEMPORAL))[0],
            _group_pixels(pixel_to_latent_frame(end - 1, TEMPORAL))[1])


def parse_storyboard(text: str) -> list[tuple[int, str]]:
    """``"0: a red circle moves right\\n16: the red circle moves up"`` -> [(0, prompt), (16, prompt)]:
    one shot per line, its first frame, a colon, its prompt. Blank lines and lines starting with # are skipped."""
    shots = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        frame, sep, prompt = line.partition(":")
        if not sep or not frame.strip().isdigit() or not prompt.strip():
            raise InputError(f"storyboard line {number} ({line!r}): write it as 'FRAME: prompt', e.g. "
                             "'0: a red circle moves right'")
        shots.append((int(frame), prompt.strip()))
    if not shots:
        raise InputError("storyboard is empty: write one 'FRAME: prompt' line per shot")
    return shots
