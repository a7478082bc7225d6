"""Batches of rendered clips from the synthetic world, drawn from size/length buckets.

The batch of step ``n`` is a pure function of (seed, n): resuming a run replays the same data.
One batch holds one bucket (all clips the same size and length), as variable-size training does.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from ..world.render import render, to_model_range
from ..world.scene import Scene, sample_scene

# (width, height, frames): the sizes and lengths the default model is trained on.
DIT_BUCKETS: tuple[tuple[int, int, int], ...] = (
    (64, 64, 17), (64, 64, 17), (64, 64, 9), (64, 64, 33), (96, 64, 17), (64, 96, 17),
)
# The VAE sees clips as long as the ones it decodes (17 and 33 frames): trained on 9 frames at most, its
# later frames faded (mean reconstruction error rose from 8 to 28 of 255 between frames 0 and 16).
VAE_BUCKETS: tuple[tuple[int, int, int], ...] = (
    (64, 64, 1), (64, 64, 9), (64, 64, 17), (64, 64, 17), (96, 64, 17), (64, 96, 17), (64, 64, 33),
)


@dataclass
class ClipBatch:
    video: Tensor  # [B, 3, T, H, W] in [-1, 1]
    scenes: list[Scene]
    captions: list[str]


def step_rng(seed: int, step: int, salt: int = 0) -> random.Random:
    return random.Random(seed * 1_000_003 + step * 7919 + salt)


def clip_batch(seed: int, step: int, batch: int, buckets: Sequence[tuple[int, int, int]],
               captions: bool = True, frame_budget: int | None = None, fast_only: bool = False) -> ClipBatch:
    """Training clips (split "train": held-out attribute triples never appear) with detailed captions.

    With ``frame_budget`` the batch size follows the bucket: ``frame_budget // frames`` clips (at
    least one), so long and short buckets cost about the same per step. ``fast_only`` keeps only scenes
    whose main object moves fast (the hardest case for the small VAE).
    """
    rng = step_rng(seed, step)
    width, height, frames = rng.choice(buckets)
    if frame_budget is not None:
        batch = max(1, frame_budget // frames)
    scenes = []
    while len(scenes) < batch:
        scene = sample_scene(rng, split="train", width=width, height=height, frames=frames)
        if not fast_only or scene.objects[0].speed == "fast":
            scenes.append(scene)
    video = torch.stack([to_model_range(render(s)) for s in scenes])
    texts: list[str] = []
    if captions:
        from ..world.caption import detailed_caption

        texts = [detailed_caption(s, rng) for s in scenes]
    return ClipBatch(video=video, scenes=scenes, captions=texts)


def object_pixels(scenes: Sequence[Scene], video: Tensor) -> Tensor:
    """[B, 1, T, H, W] bool: where ``video`` (in [-1, 1]) differs from its scene's bare background."""
    bare = torch.stack([to_model_range(render(replace(s, objects=()))) for s in scenes])
    return (video - bare).abs().amax(dim=1, keepdim=True) > 0.05
