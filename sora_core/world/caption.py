"""Captions and prompts, recaptioned as Sora does: train on detailed captions, expand short prompts.

- ``canonical_caption(scene)``: the one wording the DiT is trained on, e.g. "A medium red circle
  moves slowly to the right. The background is plain black." Every attribute is spelled out.
- ``detailed_caption(scene, rng)``: the canonical caption half of the time, otherwise one of a few
  other templates and word orders with the same content (for robustness to wording).
- ``short_prompt`` / ``paraphrase_prompt``: what a user would type, in two disjoint vocabularies
  (see ``lexicon``). Both name colour, shape and motion, and name size, speed and background only
  where they differ from the defaults, so they carry exactly the scene's content.
- ``expand_prompt(text)``: parse, fill the defaults (medium size, slow speed, still, white circle,
  plain black background) and write the canonical caption. ``expand_prompt(short_prompt(s))`` and
  ``expand_prompt(paraphrase_prompt(s))`` are both ``canonical_caption(s)``. Text naming no object
  comes back unchanged.
"""

from __future__ import annotations

import random

from .lexicon import (
    CANON_DIRECTION,
    CANON_OTHER_MOTION,
    CANON_SPEED,
    PARA_COLOUR,
    PARA_DIRECTION,
    PARA_OTHER_MOTION,
    PARA_SHAPE,
    PARA_SIZE,
    PARA_SPEED,
    PARA_TONE,
    PARA_VERBS,
    SHORT_DIRECTION,
    SHORT_OTHER_MOTION,
    SHORT_SPEED,
    SHORT_VERBS,
)
from .parse import DEFAULT_BACKGROUND, ObjectPrompt, PromptSpec, fill_defaults, parse_prompt, spec_of_scene
from .scene import Background, Scene

__all__ = [
    "canonical_caption", "detailed_caption", "short_prompt", "paraphrase_prompt", "expand_prompt", "parse_prompt",
]


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _spec(content: Scene | PromptSpec) -> PromptSpec:
    return spec_of_scene(content) if isinstance(content, Scene) else fill_defaults(content)


# --- canonical and detailed captions --------------------------------------------------------------
def _motion_phrase(obj: ObjectPrompt, order: int = 0) -> str:
    """The object's motion with its speed; ``order`` picks one of the word orders (0 is canonical)."""
    if obj.motion == "still":
        return ("stays still", "is stationary", "does not move")[order % 3]
    speed = CANON_SPEED[obj.speed]
    if obj.motion in CANON_DIRECTION:
        where = CANON_DIRECTION[obj.motion]
        return (f"moves {speed} {where}", f"moves {where} {speed}", f"{speed} moves {where}",
                f"moves {where} at a {obj.speed} pace")[order % 4]
    verb = CANON_OTHER_MOTION[obj.motion]
    return (f"{verb} {speed}", f"{speed} {verb}", f"{verb} at a {obj.speed} pace")[order % 3]


def _background_phrase(bg: Background) -> str:
    """'plain black' or 'a vertical gradient from navy at the top to black at the bottom'."""
    if bg.style == "plain":
        return f"plain {bg.start}"
    ends = ("at the top", "at the bottom") if bg.style == "vertical" else ("on the left", "on the right")
    return f"a {bg.style} gradient from {bg.start} {ends[0]} to {bg.end} {ends[1]}"


def _background_short(bg: Background) -> str:
    return f"plain {bg.start}" if bg.style == "plain" else f"{bg.start}-to-{bg.end} {bg.style} gradient"


def canonical_caption(content: Scene | PromptSpec) -> str:
    """The training caption: one sentence per object in order, then the background."""
    spec = _spec(content)
    lines = [_sentence(f"a {o.size} {o.colour} {o.shape} {_motion_phrase(o)}") for o in spec.objects]
    lines.append(_sentence(f"the background is {_background_phrase(spec.background)}"))
    return " ".join(lines)


def detailed_caption(scene: Scene, rng: random.Random, p_canonical: float = 0.5) -> str:
    """A full caption: canonical with probability ``p_canonical``, else another template."""
    spec = spec_of_scene(scene)
    if rng.random() < p_canonical:
        return canonical_caption(spec)

    def noun(o: ObjectPrompt) -> str:
        return rng.choice((f"a {o.size} {o.colour} {o.shape}", f"{_a(o.colour)} {o.shape} of {o.size} size"))

    def motion(o: ObjectPrompt) -> str:
        return _motion_phrase(o, rng.randrange(12))

    style = rng.randrange(3)
    if style == 0:
        objects = ", and ".join(f"{noun(o)} that {motion(o)}" for o in spec.objects)
        return f"A video of {objects}. The background is {_background_phrase(spec.background)}."
    if style == 1:
        objects = ", while ".join(f"{noun(o)} {motion(o)}" for o in spec.objects)
        return f"On a {_background_short(spec.background)} background, {objects}."
    lines = [_sentence(f"{noun(o)}: it {motion(o)}") for o in spec.objects]
    return " ".join(lines) + f" Background: {_background_phrase(spec.background)}."


# --- user prompts ---------------------------------------------------------------------------------
def _is_default(obj: ObjectPrompt, attribute: str) -> bool:
    default = {"size": "medium", "speed": "slow"}[attribute]
    return getattr(obj, attribute) == default or (attribute == "speed" and obj.motion == "still")


def short_prompt(scene: Scene, rng: random.Random) -> str:
    """A short user prompt: "a red circle moving right", "large blue square bouncing fast on navy"."""
    spec = spec_of_scene(scene)
    parts = []
    for o in spec.objects:
        words = [] if _is_default(o, "size") else [o.size]
        words += [o.colour, o.shape]
        if o.motion in SHORT_DIRECTION:
            words += [rng.choice(SHORT_VERBS), rng.choice(SHORT_DIRECTION[o.motion])]
        else:
            words.append(rng.choice(SHORT_OTHER_MOTION[o.motion]))
        if not _is_default(o, "speed"):
            words.append(rng.choice(SHORT_SPEED[o.speed]))
        text = " ".join(words)
        parts.append(_a(text) if rng.random() < 0.7 else text)
    text = " and ".join(parts)
    bg = spec.background
    if bg != DEFAULT_BACKGROUND:
        if bg.style == "plain":
            text += rng.choice((f" on {bg.start}", f" on a {bg.start} background", f", {bg.start} background"))
        else:
            text += f" on a {bg.start} to {bg.end} {bg.style} gradient"
    return text


def _para_colour(colour: str, rng: random.Random) -> str:
    return rng.choice(PARA_COLOUR[colour]) if rng.random() < 0.6 else colour


def _para_motion(o: ObjectPrompt, rng: random.Random, participle: bool) -> str:
    speed = "" if _is_default(o, "speed") else rng.choice(PARA_SPEED[o.speed])
    if o.motion in PARA_DIRECTION:
        verb = rng.choice(PARA_VERBS)[participle]
        core = f"{verb} {rng.choice(PARA_DIRECTION[o.motion])}"
    else:
        core = rng.choice(PARA_OTHER_MOTION[o.motion])[participle]
    if not speed:
        return core
    return f"{speed} {core}" if participle or rng.random() < 0.5 else f"{core} {speed}"


def _para_object(o: ObjectPrompt, rng: random.Random) -> str:
    shape, colour = rng.choice(PARA_SHAPE[o.shape]), _para_colour(o.colour, rng)
    size = None if _is_default(o, "size") else rng.choice(PARA_SIZE[o.size])
    form = rng.randrange(3)
    if form == 0:  # "a tiny scarlet ball drifts rightward"
        adjectives = [colour] if size is None else rng.choice(([size, colour], [colour, size]))
        return f"{_a(' '.join(adjectives))} {shape} {_para_motion(o, rng, False)}"
    if form == 1:  # "a ball in scarlet, tiny in size, that drifts rightward"
        size_part = "" if size is None else f", {size} in size,"
        return f"{_a(shape)} in {colour}{size_part} that {_para_motion(o, rng, False)}"
    # "drifting rightward, a tiny scarlet ball"
    adjectives = colour if size is None else f"{size} {colour}"
    return f"{_para_motion(o, rng, True)}, {_a(adjectives)} {shape}"


def _para_background(bg: Background, rng: random.Random) -> str:
    if bg.style == "plain":
        return f"against {_a(rng.choice(PARA_TONE[bg.start]))} backdrop"
    ends = ("at the top", "at the bottom") if bg.style == "vertical" else ("on the left", "on the right")
    a, b = rng.choice(PARA_TONE[bg.start]), rng.choice(PARA_TONE[bg.end])
    return f"against a backdrop fading from {a} {ends[0]} to {b} {ends[1]}"


def paraphrase_prompt(scene: Scene, rng: random.Random) -> str:
    """The short prompt's content in other words and orders: "drifting rightward, a scarlet ball"."""
    spec = spec_of_scene(scene)
    text = _para_object(spec.objects[0], rng)
    for o in spec.objects[1:]:
        joint = rng.choice((", while ", "; ", ". "))
        part = _para_object(o, rng)
        text += joint + (part[0].upper() + part[1:] if joint == ". " else part)
    if spec.background != DEFAULT_BACKGROUND:
        bg = _para_background(spec.background, rng)
        text = f"{bg[0].upper()}{bg[1:]}, {text}" if rng.random() < 0.5 else f"{text}, {bg}"
    return text


def expand_prompt(text: str) -> str:
    """A short or paraphrased prompt as the canonical training caption; unparseable text unchanged."""
    spec = parse_prompt(text)
    return text if spec is None else canonical_caption(spec)
