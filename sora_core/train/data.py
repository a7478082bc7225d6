"""Batches of rendered clips from the synthetic world, drawn from size/length buckets.

The batch of step ``n`` is a pure function of (seed, n): resuming a run replays the same data.
One batch holds one bucket (all clips the same size and length), as variable-size training does.
A bucket is (width, height, frames), or (width, height, frames, scene_frames) for clips cut from
longer scenes: the world slows every motion so a long scene fits in the frame, and a slice of one
shows a "fast" object at a pace no whole clip of that length has.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from ..world.render import render, to_model_range
from ..world.scene import Scene, sample_scene

Bucket = tuple[int, ...]  # (width, height, frames) or (width, height, frames, scene_frames)

# The sizes and lengths the default model is trained on. The last one: 33-frame slices of 65-frame
# scenes, so that an extended clip goes on at its own pace, not at the pace its caption's speed word
# has in a 17-frame clip (docs/model_comparison.md, tenth run).
DIT_BUCKETS: tuple[Bucket, ...] = (
    (64, 64, 17), (64, 64, 17), (64, 64, 9), (64, 64, 33), (96, 64, 17), (64, 96, 17), (64, 64, 33, 65),
)
# The VAE sees clips as long as the ones it decodes (17 and 33 frames): trained on 9 frames at most, its
# later frames faded (mean reconstruction error rose from 8 to 28 of 255 between frames 0 and 16).
VAE_BUCKETS: tuple[Bucket, ...] = (
    (64, 64, 1), (64, 64, 9), (64, 64, 17), (64, 64, 17), (96, 64, 17), (64, 96, 17), (64, 64, 33),
)


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
    width, height, frames, *longer = rng.choice(buckets)
    scene_frames = longer[0] if longer else frames
    if frame_budget is not None:
        batch = max(1, frame_budget // frames)
    scenes = []
    while len(scenes) < batch:
        scene = sample_scene(rng, split="train", width=width, height=height, frames=scene_frames)
        if not fast_only or scene.objects[0].speed == "fast":
            scenes.append(scene)
    # whole-scene buckets draw nothing more, so their batches stay what they were before slices existed
    starts = [rng.randrange(scene_frames - frames + 1) for _ in scenes] if longer else None
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
