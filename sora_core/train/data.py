"""Batches of rendered clips from the synthetic world, drawn from size/length buckets.

The batch of step ``n`` is a pure function of (seed, n): resuming a run replays the same data.
One batch holds one bucket (all clips the same size and length), as variable-size training does.
A bucket is (width, height, frames), or (width, height, frames, longest) for clips cut from longer
scenes (4k+1 frames, from ``frames + 8`` up to ``longest``): the world slows every motion so that a
long scene fits in the frame, so a slice of one shows an object at a slower pace than any whole clip
of that length, the pace a long video being extended has.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from ..world.render import render, to_model_range
from ..world.scene import Scene, sample_scene

Bucket = tuple[int, ...]  # (width, height, frames) or (width, height, frames, longest scene)

# The sizes and lengths the default model is trained on.
DIT_BUCKETS: tuple[Bucket, ...] = (
    (64, 64, 17), (64, 64, 17), (64, 64, 9), (64, 64, 33), (96, 64, 17), (64, 96, 17),
)
# The VAE sees clips as long as the ones it decodes (17 and 33 frames): trained on 9 frames at most, its
# later frames faded (mean reconstruction error rose from 8 to 28 of 255 between frames 0 and 16).
VAE_BUCKETS: tuple[Bucket, ...] = (
    (64, 64, 1), (64, 64, 9), (64, 64, 17), (64, 64, 17), (96, 64, 17), (64, 96, 17), (64, 64, 33),
)
# 33-frame slices of 41- to 81-frame scenes (``--long-scenes``): the DiT sees them only with known first
# or last frames (dit_stage.context_mask), so it learns to take an extension's pace from the frames it
# continues, and text-to-video keeps the pace its speed words have in whole clips.
LONG_SCENE_BUCKET: Bucket = (64, 64, 33, 81)


def is_slice_bucket(bucket: Bucket) -> bool:
    return len(bucket) == 4


@dataclass
class ClipBatch:
    video: Tensor  # [B, 3, T, H, W] in [-1, 1]
    scenes: list[Scene]
    captions: list[str]
    starts: list[int] | None = None  # each clip's first frame in its scene (None: all 0)


def step_rng(seed: int, step: int, salt: int = 0) -> random.Random:
    return random.Random(seed * 1_000_003 + step * 7919 + salt)


def clip_batch(seed: int, step: int, batch: int, buckets: Sequence[Bucket],
               captions: bool = True, frame_budget: int | None = None, fast_only: bool = False) -> ClipBatch:
    """Training clips (split "train": held-out attribute triples never appear) with detailed captions.

    With ``frame_budget`` the batch size follows the bucket: ``frame_budget // frames`` clips (at
    least one), so long and short buckets cost about the same per step. ``fast_only`` keeps only scenes
    whose main object moves fast (the hardest case for the small VAE).
    """
    rng = step_rng(seed, step)
    width, height, frames, *longest = rng.choice(buckets)
    if frame_budget is not None:
        batch = max(1, frame_budget // frames)
    scenes = []
    while len(scenes) < batch:
        scene_frames = rng.randrange(frames + 8, longest[0] + 1, 4) if longest else frames
        scene = sample_scene(rng, split="train", width=width, height=height, frames=scene_frames)
        if not fast_only or scene.objects[0].speed == "fast":
            scenes.append(scene)
    # whole-clip buckets draw nothing more here, so their batches stay what they were before slices existed
    starts = [rng.randrange(s.frames - frames + 1) for s in scenes] if longest else None
    video = torch.stack([to_model_range(render(s)[start:start + frames])
                         for s, start in zip(scenes, starts or [0] * len(scenes), strict=True)])
    texts: list[str] = []
    if captions:
        from ..world.caption import detailed_caption

        texts = [detailed_caption(s, rng) for s in scenes]
    return ClipBatch(video=video, scenes=scenes, captions=texts, starts=starts)


def object_pixels(scenes: Sequence[Scene], video: Tensor) -> Tensor:
    """[B, 1, T, H, W] bool: where ``video`` (in [-1, 1]) differs from its scene's bare background
    (backgrounds do not change over time, so a clip cut from a longer scene needs only its length)."""
    t = video.shape[2]
    bare = torch.stack([to_model_range(render(replace(s, objects=(), frames=t))) for s in scenes])
    return (video - bare).abs().amax(dim=1, keepdim=True) > 0.05
