"""Draw a scene: ``render(scene) -> uint8 [T, H, W, 3]``, every frame at once in torch.

Each shape is a signed distance field evaluated at the pixel centres for all frames together
(``[T, H, W]``); coverage ``clamp(0.5 - distance, 0, 1)`` is a one-pixel linear ramp, which is
close to the exact area coverage for edges this smooth, so the edges are anti-aliased without
supersampling. Objects are composited back to front, the main (first) object last, on top.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .motion import TRIANGLE_HALF_BASE, TRIANGLE_HEIGHT, object_track
from .scene import BACKGROUND_TONES, COLOURS, Background, Scene


def render_background(background: Background, width: int, height: int) -> Tensor:
    """The background as float32 ``[H, W, 3]`` in 0..255."""
    start = torch.tensor(BACKGROUND_TONES[background.start], dtype=torch.float32)
    end = torch.tensor(BACKGROUND_TONES[background.end], dtype=torch.float32)
    if background.style == "vertical":
        t = torch.linspace(0, 1, height).view(height, 1, 1).expand(height, width, 1)
    elif background.style == "horizontal":
        t = torch.linspace(0, 1, width).view(1, width, 1).expand(height, width, 1)
    elif background.style == "plain":
        t = torch.zeros(height, width, 1)
    else:
        raise ValueError(f"unknown background style {background.style!r}: use plain, vertical or horizontal")
    return start + (end - start) * t


def signed_distance(shape: str, dx: Tensor, dy: Tensor, r: Tensor) -> Tensor:
    """Distance in pixels outside (> 0) or inside (< 0) a shape centred at the origin with radius ``r``."""
    if shape == "circle":
        return (dx**2 + dy**2).sqrt() - r
    if shape == "square":
        return torch.maximum(dx.abs(), dy.abs()) - 0.9 * r
    if shape == "triangle":
        # upward triangle whose centroid is the origin: apex at -2h/3, base at +h/3
        h, b = TRIANGLE_HEIGHT * r, TRIANGLE_HALF_BASE * r
        norm = (h**2 + b**2).sqrt()
        base = dy - h / 3
        side = (dx.abs() * h - (dy + 2 * h / 3) * b) / norm  # both slanted sides by symmetry
        return torch.maximum(base, side)
    raise ValueError(f"unknown shape {shape!r}: use circle, square or triangle")


def coverage(shape: str, cx: Tensor, cy: Tensor, r: Tensor, width: int, height: int) -> Tensor:
    """Anti-aliased coverage ``[T, H, W]`` in 0..1 of a shape whose centre and radius are ``[T]`` tensors."""
    ys = torch.arange(height, dtype=torch.float32).view(1, height, 1) + 0.5  # pixel centres
    xs = torch.arange(width, dtype=torch.float32).view(1, 1, width) + 0.5
    dx = xs - cx.view(-1, 1, 1)
    dy = ys - cy.view(-1, 1, 1)
    return (0.5 - signed_distance(shape, dx, dy, r.view(-1, 1, 1))).clamp_(0.0, 1.0)


def render(scene: Scene) -> Tensor:
    """The clip as uint8 ``[T, H, W, 3]``."""
    w, h, t = scene.width, scene.height, scene.frames
    image = render_background(scene.background, w, h).expand(t, h, w, 3).clone()
    for obj in reversed(scene.objects):  # main object last, so it is on top
        cx, cy, r = object_track(obj, w, h, t)
        alpha = coverage(obj.shape, cx, cy, r, w, h).unsqueeze(-1)
        colour = torch.tensor(COLOURS[obj.colour], dtype=torch.float32)
        image.lerp_(colour.expand_as(image), alpha)
    return image.round_().to(torch.uint8)


def to_model_range(frames: Tensor) -> Tensor:
    """uint8 ``[..., T, H, W, 3]`` -> float32 ``[..., 3, T, H, W]`` in [-1, 1] (the VAE's input)."""
    return frames.movedim(-1, -4).float() / 127.5 - 1.0


def from_model_range(video: Tensor) -> Tensor:
    """float ``[..., 3, T, H, W]`` in [-1, 1] -> uint8 ``[..., T, H, W, 3]``; values outside are clipped."""
    return ((video.float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).movedim(-4, -1)
