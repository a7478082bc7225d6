"""Kinematics of the synthetic world: how big each object is and where it is in every frame.

Everything is measured relative to ``m = min(width, height)`` so a scene means the same at 64x64,
96x64 and 64x96. Speeds are pixels per frame (``SPEED_FRACTION * m``): a "fast" object moves twice
as far per frame as a "slow" one. Long clips would carry a fast object out of the frame, so when
the fast travel over the clip does not fit in the free span, *both* speeds are scaled down by the
same factor: fast stays twice slow, and every object stays wholly inside the frame for the whole
clip (a shape cut by the border would fool the evaluator's shape features). A diagonal motion
moves that distance along both axes. A bounce goes down to its floor at mid-clip and back up to
the start as a dropped ball does: at rest at its top, falling faster and faster to the floor, where it
bounces back up at the speed it hit and slows to rest at the top again (a parabola on each half). Until
2026-12-05 the world had this the wrong way round (one parabola with its vertex on the floor: fastest at
the top, at rest on the floor); the DiTs trained before then draw that pace (bench/bounce_pace.py). Grow and
shrink scale the radius geometrically, fast by up to 2x over the clip, slow by the square root of fast's factor.

Shapes are drawn around a centre with a "radius" r: a circle of radius r, a square of half-side
0.9 r (about the circle's area) and an upward isosceles triangle of half-base 1.1 r and height
2.1 r whose *centroid* is the centre, so growing and shrinking do not move its centre of mass.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from .scene import ObjectSpec

SIZE_FRACTION = {"small": 0.14, "medium": 0.19, "large": 0.25}  # radius / m
SPEED_FRACTION = {"slow": 0.02, "fast": 0.04}  # pixels per frame / m
# Grow/shrink rates: the radius scales by exp(rate * (frames - 1)) over a clip, capped below.
SCALE_RATE = {"slow": 0.03, "fast": 0.06}
MAX_SCALE = 2.0  # a growing object at most doubles its radius ...
MAX_RADIUS_FRACTION = 0.40  # ... and never passes this radius / m
MIN_RADIUS_FRACTION = 0.08  # a shrinking one stays at least this big (visible after an 8x VAE)
# Motions whose clip ends where it starts, so the clip can repeat: a bounce is back at rest at its start.
PERIODIC_MOTIONS = ("bounce", "still")
EDGE_PX = 1.0  # gap kept between every shape and the frame border

TRIANGLE_HALF_BASE = 1.1
TRIANGLE_HEIGHT = 2.1
# How far each shape reaches from its centre, in radii: (left, right, up, down).
SHAPE_EXTENT = {
    "circle": (1.0, 1.0, 1.0, 1.0),
    "square": (0.9, 0.9, 0.9, 0.9),
    "triangle": (TRIANGLE_HALF_BASE, TRIANGLE_HALF_BASE, TRIANGLE_HEIGHT * 2 / 3, TRIANGLE_HEIGHT / 3),
}
# Unit steps of the translations, in image coordinates (y grows downwards).
DIRECTIONS = {
    "left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1),
    "up-left": (-1, -1), "up-right": (1, -1), "down-left": (-1, 1), "down-right": (1, 1),
}


def radius_px(size: str, width: int, height: int) -> float:
    """Starting radius in pixels of an object of this size."""
    return SIZE_FRACTION[size] * min(width, height)


def _free_span(shape: str, radius: float, width: int, height: int) -> tuple[float, float]:
    """How far the centre of a shape of this radius can travel (x, y) while staying inside."""
    left, right, up, down = SHAPE_EXTENT[shape]
    return (width - (left + right) * radius - 2 * EDGE_PX, height - (up + down) * radius - 2 * EDGE_PX)


def travel_px(shape: str, size: str, motion: str, speed: str, width: int, height: int, frames: int) -> float:
    """Distance moved along each moving axis over the clip (the fall height for a bounce); 0 otherwise."""
    if motion in DIRECTIONS:
        dx, dy = DIRECTIONS[motion]
    elif motion == "bounce":
        dx, dy = 0, 1
    else:
        return 0.0
    m = min(width, height)
    span_x, span_y = _free_span(shape, radius_px(size, width, height), width, height)
    spans = [s for s, d in ((span_x, dx), (span_y, dy)) if d]
    fast = SPEED_FRACTION["fast"] * m * (frames - 1)
    fit = min([1.0] + [s / fast for s in spans if fast > 0])  # the same factor for both speeds
    return SPEED_FRACTION[speed] * m * (frames - 1) * fit


def scale_factor(shape: str, size: str, motion: str, speed: str, width: int, height: int, frames: int) -> float:
    """Final radius / starting radius over the clip: > 1 for grow, < 1 for shrink, 1 otherwise."""
    if motion not in ("grow", "shrink"):
        return 1.0
    m = min(width, height)
    r0 = radius_px(size, width, height)
    if motion == "grow":
        left, right, up, down = SHAPE_EXTENT[shape]
        fits = min((width - 2 * EDGE_PX) / (left + right), (height - 2 * EDGE_PX) / (up + down))
        cap = min(MAX_SCALE, MAX_RADIUS_FRACTION * m / r0, fits / r0)
    else:
        cap = min(MAX_SCALE, r0 / (MIN_RADIUS_FRACTION * m))
    fast = min(cap, math.exp(SCALE_RATE["fast"] * (frames - 1)))
    # slow covers half of fast's log-scale, so the two stay distinct when fast hits the cap
    factor = fast if speed == "fast" else math.sqrt(fast)
    return factor if motion == "grow" else 1.0 / factor


@lru_cache(maxsize=4096)  # few distinct arguments; sampling asks again and again. Do not modify the result.
def relative_track(
    shape: str, size: str, motion: str, speed: str, width: int, height: int, frames: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Offsets of the centre from its start (dx, dy) and the radius, each ``[frames]`` float32 pixels."""
    s = torch.linspace(0.0, 1.0, frames) if frames > 1 else torch.zeros(1)
    zero = torch.zeros_like(s)
    r0 = radius_px(size, width, height)
    dist = travel_px(shape, size, motion, speed, width, height, frames)
    if motion in DIRECTIONS:
        ux, uy = DIRECTIONS[motion]
        return ux * dist * s, uy * dist * s, torch.full_like(s, r0)
    if motion == "bounce":
        # a fall from rest and its mirror image: at rest at the top, fastest on the floor at mid-clip
        return zero, dist * (1 - (2 * s - 1).abs()) ** 2, torch.full_like(s, r0)
    factor = scale_factor(shape, size, motion, speed, width, height, frames)
    return zero, zero, r0 * factor**s  # geometric, so the log-area changes linearly


@lru_cache(maxsize=4096)
def start_bounds(
    shape: str, size: str, motion: str, speed: str, width: int, height: int, frames: int
) -> tuple[float, float, float, float]:
    """Range of start centres (x_lo, x_hi, y_lo, y_hi) in pixels that keep the whole track inside."""
    dx, dy, r = relative_track(shape, size, motion, speed, width, height, frames)
    left, right, up, down = SHAPE_EXTENT[shape]
    x_lo = (EDGE_PX + left * r - dx).max().item()
    x_hi = (width - EDGE_PX - right * r - dx).min().item()
    y_lo = (EDGE_PX + up * r - dy).max().item()
    y_hi = (height - EDGE_PX - down * r - dy).min().item()
    return x_lo, x_hi, y_lo, y_hi


def object_track(obj: ObjectSpec, width: int, height: int, frames: int) -> tuple[Tensor, Tensor, Tensor]:
    """Centre x, centre y and radius of an object in every frame, ``[frames]`` float32 pixels each."""
    dx, dy, r = relative_track(obj.shape, obj.size, obj.motion, obj.speed, width, height, frames)
    return obj.x * width + dx, obj.y * height + dy, r
