"""Read a prompt back into scene content: ``parse_prompt(text) -> PromptSpec | None``.

The text is lower-cased, hyphens become spaces, and ``. , ; : ! ?`` split it into segments. The
longest lexicon phrase is matched at each word; unknown words are skipped. Every shape noun starts
an object. Each other word is bound to a noun:

- in a segment with nouns, a pre-nominal adjective ("red", "tiny") goes to the next noun and
  everything else (motion, speed, "in red", "of medium size") to the previous one, falling back
  to the other side when there is none or its slot is taken;
- a segment without nouns ("moving right, a red circle"; "Blue square, small size, ...") is bound
  as a whole to the previous object, or to the next one when the previous cannot take it.

Two perpendicular directions in one segment add up ("up and to the left" -> up-left). The
background is read from its tones: one tone is plain, two are a gradient (vertical unless the
text says horizontal or "on the left"/"on the right").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from .lexicon import MAX_PHRASE, PARSE_LEXICON, VECTOR_DIRECTIONS, Word
from .scene import Background, Scene

SEPARATOR = "|"


@dataclass(frozen=True)
class ObjectPrompt:
    """What a prompt says about one object; None where it says nothing."""

    shape: str | None = None
    colour: str | None = None
    size: str | None = None
    motion: str | None = None
    speed: str | None = None


@dataclass(frozen=True)
class PromptSpec:
    """What a prompt says about a scene: its objects in order and maybe the background."""

    objects: tuple[ObjectPrompt, ...]
    background: Background | None = None


# What an unspecified attribute becomes in an expanded prompt.
DEFAULT_OBJECT = ObjectPrompt(shape="circle", colour="white", size="medium", motion="still", speed="slow")
DEFAULT_BACKGROUND = Background("plain", "black", "black")


def normalise(text: str) -> list[str]:
    """Lower-case words, with segment separators as ``|``."""
    text = text.lower().replace("'", "").replace("\u2019", "")
    text = re.sub(r"[.,;:!?]+", f" {SEPARATOR} ", text)
    return re.sub(r"[^a-z0-9|]+", " ", text).split()


def tokenize(text: str) -> list[tuple[int, Word]]:
    """(segment index, meaning) for every lexicon phrase in the text, longest match first."""
    words = normalise(text)
    out: list[tuple[int, Word]] = []
    segment, i = 0, 0
    while i < len(words):
        if words[i] == SEPARATOR:
            segment, i = segment + 1, i + 1
            continue
        for n in range(min(MAX_PHRASE, len(words) - i), 0, -1):
            word = PARSE_LEXICON.get(tuple(words[i : i + n]))
            if word is not None:
                out.append((segment, word))
                i += n
                break
        else:
            i += 1
    return out


def _accepts(obj: dict, word: Word, same_segment: bool) -> bool:
    """Whether an object still has room for this word."""
    current = obj.get(word.kind)
    if word.kind == "speed" and obj.get("motion") == "still":
        return False  # a still object has no speed: the word is for another object
    if current is None:
        return True
    if word.kind == "motion" and same_segment and isinstance(current, tuple) and isinstance(word.value, tuple):
        (cx, cy), (wx, wy) = current, word.value
        return (cx == 0 and wy == 0 and wx != 0) or (cy == 0 and wx == 0 and wy != 0)  # perpendicular
    return False


def _assign(obj: dict, word: Word) -> None:
    current = obj.get(word.kind)
    if current is None:
        obj[word.kind] = word.value
    else:  # perpendicular directions add up
        obj[word.kind] = (current[0] + word.value[0], current[1] + word.value[1])


def _with_all(obj: dict, words: list[Word]) -> dict | None:
    """The object with all the words added, or None if one of them does not fit."""
    trial, added = dict(obj), set()
    for word in words:
        # directions add up only within the group, never with a direction from another segment
        if not _accepts(trial, word, same_segment=word.kind in added):
            return None
        _assign(trial, word)
        added.add(word.kind)
    return trial


def _bind_objects(tokens: list[tuple[int, Word]]) -> list[dict]:
    nouns = [i for i, (_, w) in enumerate(tokens) if w.kind == "shape"]
    objects = [{"shape": tokens[i][1].value} for i in nouns]
    owner = {token: k for k, token in enumerate(nouns)}  # token index of a noun -> object index
    attributes = ("colour", "size", "motion", "speed")
    for seg in sorted({s for s, _ in tokens}):
        members = [i for i, (s, w) in enumerate(tokens) if s == seg and w.kind in attributes]
        seg_nouns = [i for i, (s, w) in enumerate(tokens) if s == seg and w.kind == "shape"]
        if not members:
            continue
        if seg_nouns:
            for i in members:
                word = tokens[i][1]
                before = [owner[n] for n in seg_nouns if n < i][-1:]
                after = [owner[n] for n in seg_nouns if n > i][:1]
                for k in (after + before) if word.forward else (before + after):
                    if _accepts(objects[k], word, same_segment=True):
                        _assign(objects[k], word)
                        break
            continue
        # a segment without a noun describes the previous (or the next) object as a whole
        before = [owner[n] for n in nouns if n < members[0]][-1:]
        after = [owner[n] for n in nouns if n > members[0]][:1]
        words = [tokens[i][1] for i in members]
        order = (after + before) if words[0].forward else (before + after)
        for k in order:
            trial = _with_all(objects[k], words)
            if trial is not None:
                objects[k] = trial
                break
        else:
            for word in words:
                for k in order:
                    if _accepts(objects[k], word, same_segment=False):
                        _assign(objects[k], word)
                        break
    return objects


def _background(tokens: list[tuple[int, Word]]) -> Background | None:
    tones = [(i, w.value) for i, (_, w) in enumerate(tokens) if w.kind == "tone"]
    if not tones:
        return None
    first, second = tones[0], next((t for t in tones[1:] if t[1] != tones[0][1]), None)
    if second is None:
        return Background("plain", first[1], first[1])
    orients = [w.value for _, w in tokens if w.kind == "orient"]
    places = {i: w.value for i, (_, w) in enumerate(tokens) if w.kind == "pos"}
    orient = orients[0] if orients else None
    if orient is None and places:
        orient = "horizontal" if set(places.values()) & {"left", "right"} else "vertical"
    start, end = first[1], second[1]
    if places.get(first[0] + 1) in ("bottom", "right"):  # "black at the bottom, navy at the top"
        start, end = end, start
    return Background(orient or "vertical", start, end)


def parse_prompt(text: str) -> PromptSpec | None:
    """The scene content a prompt names, or None when it names no object (no shape noun)."""
    tokens = tokenize(text)
    objects = _bind_objects(tokens)
    if not objects:
        return None
    prompts = []
    for obj in objects:
        motion = obj.get("motion")
        if isinstance(motion, tuple):
            motion = VECTOR_DIRECTIONS.get((max(-1, min(1, motion[0])), max(-1, min(1, motion[1]))))
        prompts.append(ObjectPrompt(obj.get("shape"), obj.get("colour"), obj.get("size"), motion, obj.get("speed")))
    return PromptSpec(tuple(prompts), _background(tokens))


def fill_defaults(spec: PromptSpec) -> PromptSpec:
    """Every unspecified attribute set to its default; a still object's speed is always "slow"."""
    objects = []
    for obj in spec.objects:
        given = zip(_fields(obj), _fields(DEFAULT_OBJECT), strict=True)
        full = ObjectPrompt(*(value if value is not None else default for value, default in given))
        objects.append(replace(full, speed="slow") if full.motion == "still" else full)
    return PromptSpec(tuple(objects), spec.background or DEFAULT_BACKGROUND)


def spec_of_scene(scene: Scene) -> PromptSpec:
    """The full prompt content of a scene (positions dropped)."""
    objects = tuple(ObjectPrompt(o.shape, o.colour, o.size, o.motion, o.speed) for o in scene.objects)
    return fill_defaults(PromptSpec(objects, scene.background))


def _fields(obj: ObjectPrompt) -> tuple[str | None, ...]:
    return (obj.shape, obj.colour, obj.size, obj.motion, obj.speed)
