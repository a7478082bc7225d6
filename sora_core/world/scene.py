"""The synthetic world's vocabulary, its scene description and the held-out split.

A scene is up to three flat shapes moving over a dark background. Each object is described by five
words (shape, colour, size, motion, speed) and a start position; the background by a style and one
or two dark tones. Colours are bright and far from each other and from every background tone, so a
nearest-colour rule finds them again in a blurred, noisy video.

The held-out split keeps a fixed sixth of the (colour, shape, motion) triples out of training, but
every pair of those attributes still appears there: a model that generalises compositionally can
make the held-out triples, one that memorised triples cannot.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from .motion import DIRECTIONS, SHAPE_EXTENT, SIZE_FRACTION, SPEED_FRACTION, object_track, start_bounds

SHAPES = ("circle", "square", "triangle")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (225, 30, 30),
    "orange": (255, 140, 0),
    "yellow": (245, 230, 40),
    "green": (40, 200, 60),
    "cyan": (40, 220, 235),
    "blue": (40, 80, 255),
    "purple": (170, 60, 230),
    "white": (240, 240, 240),
}
COLOURS_INDEX = {name: i for i, name in enumerate(COLOURS)}
SIZES = tuple(SIZE_FRACTION)
MOTIONS = tuple(DIRECTIONS) + ("bounce", "grow", "shrink", "still")
SPEEDS = tuple(SPEED_FRACTION)
# Dark tones only, so every palette colour stands out from every background.
BACKGROUND_TONES: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "dark grey": (48, 48, 48),
    "navy": (14, 22, 70),
    "dark brown": (52, 34, 20),
}
BACKGROUND_STYLES = ("plain", "vertical", "horizontal")  # gradients: top to bottom, left to right


@dataclass(frozen=True)
class Background:
    """``start`` is the top (vertical) or left (horizontal) tone; plain backgrounds have end == start."""

    style: str = "plain"
    start: str = "black"
    end: str = "black"


@dataclass(frozen=True)
class ObjectSpec:
    """One object; ``x``, ``y`` are its start centre as fractions of the frame's width and height."""

    shape: str
    colour: str
    size: str
    motion: str
    speed: str
    x: float
    y: float


@dataclass(frozen=True)
class Scene:
    """A clip to render: objects (the first is the main one, drawn on top), background, size, length."""

    objects: tuple[ObjectSpec, ...]
    background: Background
    width: int
    height: int
    frames: int


def is_held_out(colour: str, shape: str, motion: str) -> bool:
    """True for the (colour, shape, motion) triples never used in training.

    Held out when the sum of the three vocabulary indices is divisible by 6: for any fixed pair
    at most 2 of the 12 motions, 1 of the 3 shapes, 2 of the 8 colours are held out, so every pair
    stays in training, and exactly 1/6 of the triples (48 of 288) are held out.
    """
    return (COLOURS_INDEX[colour] + SHAPES.index(shape) + MOTIONS.index(motion)) % 6 == 0


TRIPLES = tuple((c, s, m) for c in COLOURS for s in SHAPES for m in MOTIONS)
TEST_TRIPLES = tuple(t for t in TRIPLES if is_held_out(*t))
TRAIN_TRIPLES = tuple(t for t in TRIPLES if not is_held_out(*t))


def check_size(width: int, height: int, frames: int) -> None:
    """Raise ValueError for a clip size the world does not draw sensibly."""
    if min(width, height) < 32 or frames < 1:
        raise ValueError(f"scene size {width}x{height}x{frames} too small: need width, height >= 32 and frames >= 1")


def _footprint(obj: ObjectSpec, width: int, height: int, frames: int) -> list[tuple[float, float, float]]:
    """Centre and bounding-circle radius of an object in every frame (plain floats: checked often)."""
    cx, cy, r = object_track(obj, width, height, frames)
    return list(zip(cx.tolist(), cy.tolist(), (max(SHAPE_EXTENT[obj.shape]) * r).tolist(), strict=True))


def _apart(a: list[tuple[float, float, float]], b: list[tuple[float, float, float]], whole_clip: bool) -> bool:
    """Whether two footprints stay apart (at the start, or in every frame)."""
    pairs = zip(a, b, strict=True) if whole_clip else [(a[0], b[0])]
    return all(math.hypot(ax - bx, ay - by) - ar - br > 2.0 for (ax, ay, ar), (bx, by, br) in pairs)


def place_object(
    rng: random.Random, shape: str, colour: str, size: str, motion: str, speed: str, width: int, height: int,
    frames: int,
) -> ObjectSpec:
    """An object with a random start position from which its whole track stays in the frame."""
    x_lo, x_hi, y_lo, y_hi = start_bounds(shape, size, motion, speed, width, height, frames)
    x = rng.uniform(x_lo, max(x_lo, x_hi)) / width
    y = rng.uniform(y_lo, max(y_lo, y_hi)) / height
    return ObjectSpec(shape, colour, size, motion, speed, x, y)


def sample_background(rng: random.Random) -> Background:
    """Plain half of the time, otherwise a vertical or horizontal gradient between two tones."""
    style = rng.choice(("plain", "plain", "vertical", "horizontal"))
    start = rng.choice(tuple(BACKGROUND_TONES))
    end = start if style == "plain" else rng.choice([t for t in BACKGROUND_TONES if t != start])
    return Background(style, start, end)


def sample_scene(
    rng: random.Random, *, split: str = "train", width: int = 64, height: int = 64, frames: int = 17,
    n_objects: int | None = None, main: tuple[str, str, str] | None = None,
) -> Scene:
    """A random scene. The main object's triple is a training one (split "train") or a held-out one
    (split "test"); other objects always use training triples and colours distinct from each other.
    ``n_objects`` None draws 1, 2 or 3 objects (60/25/15 %). ``main`` fixes the main object's
    (colour, shape, motion) triple; it must belong to the split. Objects never overlap at the start
    and, where a few tries find such positions, not at all during the clip.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    check_size(width, height, frames)
    n = n_objects if n_objects is not None else rng.choices((1, 2, 3), weights=(0.6, 0.25, 0.15))[0]
    if not 1 <= n <= 3:
        raise ValueError(f"n_objects must be 1, 2 or 3, not {n}")
    if main is not None and is_held_out(*main) != (split == "test"):
        raise ValueError(f"main triple {main} is not in the {split} split")
    objects: list[ObjectSpec] = []
    footprints: list[list[tuple[float, float, float]]] = []
    for i in range(n):
        pool = TEST_TRIPLES if (i == 0 and split == "test") else TRAIN_TRIPLES
        pool = [main] if (i == 0 and main is not None) else pool
        pool = [t for t in pool if t[0] not in {o.colour for o in objects}]
        for attempt in range(80):
            colour, shape, motion = rng.choice(pool)
            size = rng.choice(SIZES)
            speed = "slow" if motion == "still" else rng.choice(SPEEDS)  # a still object has no speed
            obj = place_object(rng, shape, colour, size, motion, speed, width, height, frames)
            footprint = _footprint(obj, width, height, frames)
            if all(_apart(footprint, other, whole_clip=attempt < 40) for other in footprints):
                objects.append(obj)
                footprints.append(footprint)
                break
        # no room found for this object: the scene keeps the ones it has
    return Scene(tuple(objects), sample_background(rng), width, height, frames)
