"""The words of the world: canonical caption phrases, short-prompt words, paraphrase words.

Three vocabularies, kept apart on purpose:

- canonical: the one wording the DiT is trained on (``caption.canonical_caption``);
- short: what a user types ("a red circle moving right");
- paraphrase: the same content in other words ("a scarlet ball drifts rightward"). No shape,
  size, speed or motion phrase of the paraphrases is used by the short prompts, so a benchmark
  on paraphrases tests words the short prompts never showed.

``PARSE_LEXICON`` maps every phrase of all three (plus a few common extras) to its meaning, so
``parse_prompt`` reads them all. Phrases are lower-case words; hyphens count as spaces.
"""

from __future__ import annotations

from dataclasses import dataclass

from .scene import BACKGROUND_TONES, COLOURS, SHAPES, SIZES

# --- canonical captions -------------------------------------------------------------------------
CANON_SPEED = {"slow": "slowly", "fast": "quickly"}
CANON_DIRECTION = {
    "left": "to the left", "right": "to the right", "up": "up", "down": "down",
    "up-left": "up and to the left", "up-right": "up and to the right",
    "down-left": "down and to the left", "down-right": "down and to the right",
}
CANON_OTHER_MOTION = {
    "bounce": "falls and bounces back up", "grow": "grows", "shrink": "shrinks", "still": "stays still",
}

# --- short prompts ------------------------------------------------------------------------------
SHORT_SPEED = {"slow": ("slowly",), "fast": ("fast", "quickly")}
SHORT_VERBS = ("moving", "moves", "going")
SHORT_DIRECTION = {m: (m,) for m in CANON_DIRECTION}  # "right", "up-left", ...
SHORT_OTHER_MOTION = {
    "bounce": ("bouncing", "bounces"), "grow": ("growing", "grows"),
    "shrink": ("shrinking", "shrinks"), "still": ("standing still", "sitting still"),
}

# --- paraphrases --------------------------------------------------------------------------------
PARA_SHAPE = {
    "circle": ("ball", "disc", "round shape"),
    "square": ("box", "block", "tile"),
    "triangle": ("wedge", "triangular shape", "three-sided shape"),
}
PARA_COLOUR = {  # only unambiguous synonyms; a paraphrase may also keep the plain colour name
    "red": ("scarlet",), "orange": ("tangerine",), "yellow": ("lemon",), "green": ("emerald",),
    "cyan": ("aqua", "turquoise"), "blue": ("cobalt",), "purple": ("violet",), "white": ("snow-white",),
}
PARA_SIZE = {"small": ("tiny", "little"), "medium": ("mid-sized",), "large": ("big", "huge")}
PARA_SPEED = {"slow": ("gently", "leisurely"), "fast": ("rapidly", "swiftly", "at high speed")}
PARA_VERBS = (("drifts", "drifting"), ("travels", "travelling"), ("glides", "gliding"), ("heads", "heading"))
PARA_DIRECTION = {
    "left": ("leftward", "from right to left"), "right": ("rightward", "from left to right"),
    "up": ("upward", "toward the top"), "down": ("downward", "toward the bottom"),
    "up-left": ("toward the upper left", "diagonally to the top left"),
    "up-right": ("toward the upper right", "diagonally to the top right"),
    "down-left": ("toward the lower left", "diagonally to the bottom left"),
    "down-right": ("toward the lower right", "diagonally to the bottom right"),
}
# (finite, participle) pairs, so a paraphrase can start with the motion
PARA_OTHER_MOTION = {
    "bounce": (("drops and rebounds", "dropping and rebounding"), ("hops", "hopping")),
    "grow": (("gets bigger", "getting bigger"), ("expands", "expanding"), ("swells", "swelling")),
    "shrink": (("gets smaller", "getting smaller"), ("contracts", "contracting"), ("dwindles", "dwindling")),
    "still": (("stays put", "staying put"), ("does not move", "unmoving"), ("remains motionless", "motionless")),
}
PARA_TONE = {
    "black": ("pitch-black", "jet-black"), "dark grey": ("charcoal", "dark gray"),
    "navy": ("navy blue", "midnight blue"), "dark brown": ("chocolate", "deep brown"),
}

# --- parsing ------------------------------------------------------------------------------------
DIRECTION_VECTORS = {
    "left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1),
    "up-left": (-1, -1), "up-right": (1, -1), "down-left": (-1, 1), "down-right": (1, 1),
}
VECTOR_DIRECTIONS = {v: k for k, v in DIRECTION_VECTORS.items()}


@dataclass(frozen=True)
class Word:
    """One lexicon meaning. ``kind``: shape, colour, size, motion, speed, tone, orient (gradient
    direction) or pos (a tone's place in a gradient). ``value``: the canonical name (a direction
    is a unit vector, so "up" then "left" add up to "up-left"; a generic noun's shape is None).
    ``forward``: an adjective before its noun ("red circle"), not after it ("circle in red")."""

    kind: str
    value: object
    forward: bool = False


def _phrase(text: str) -> tuple[str, ...]:
    return tuple(text.replace("-", " ").split())


def _build() -> dict[tuple[str, ...], Word]:
    table: dict[tuple[str, ...], Word] = {}

    def add(text: str, word: Word) -> None:
        key = _phrase(text)
        if table.get(key, word) != word:
            raise ValueError(f"lexicon phrase {text!r} has two meanings: {table[key]} and {word}")
        table[key] = word

    for shape in SHAPES:
        for text in (shape, shape + "s", *PARA_SHAPE[shape]):
            add(text, Word("shape", shape))
    extra_nouns = {"disk": "circle", "dot": "circle", "round": "circle", "rectangle": "square", "cube": "square",
                   "pyramid": "triangle", "triangular": "triangle"}
    for text, shape in extra_nouns.items():
        add(text, Word("shape", shape))
    for text in ("object", "shape", "thing"):  # generic nouns: an object of the default shape
        add(text, Word("shape", None))
    for colour in COLOURS:
        for name in (colour, *PARA_COLOUR[colour]):
            add(name, Word("colour", colour, forward=True))
            for lead in ("in", "coloured", "colored"):
                add(f"{lead} {name}", Word("colour", colour))
    for size in SIZES:
        for name in (size, *PARA_SIZE[size]):
            add(name, Word("size", size, forward=True))
            for post in (f"{name} size", f"of {name} size", f"{name} in size", f"{name} sized"):
                add(post, Word("size", size, forward=post.endswith("sized")))
    for speed, names in (("slow", ("slow", "slowly", "at a slow pace", *PARA_SPEED["slow"])),
                         ("fast", ("fast", "quick", "quickly", "at a fast pace", *PARA_SPEED["fast"]))):
        for name in names:
            add(name, Word("speed", speed))
    directions = {
        "left": ("left", "leftwards", "to the left", "towards the left", "right to left"),
        "right": ("right", "rightwards", "to the right", "towards the right", "left to right"),
        "up": ("up", "upwards", "to the top", "towards the top", "rises", "rising", "climbs", "ascends"),
        "down": ("down", "downwards", "to the bottom", "towards the bottom", "falls", "falling", "sinks",
                 "sinking", "descends"),
        "up-left": ("top left", "upper left"), "up-right": ("top right", "upper right"),
        "down-left": ("bottom left", "lower left"), "down-right": ("bottom right", "lower right"),
    }
    for motion, names in directions.items():
        for name in (*names, *PARA_DIRECTION[motion]):
            add(name, Word("motion", DIRECTION_VECTORS[motion]))
    others = {
        "bounce": ("bounce", "bounces back up", "bounces up and down", "bouncing up and down", "rebounds"),
        "grow": ("grow", "becomes bigger", "grows larger", "enlarges"),
        "shrink": ("shrink", "becomes smaller", "grows smaller"),
        "still": ("still", "static", "stationary", "is stationary", "stays", "doesnt move", "not move", "not moving"),
    }
    for motion, names in others.items():
        pairs = [p for pair in PARA_OTHER_MOTION[motion] for p in pair]
        for name in (*names, *SHORT_OTHER_MOTION[motion], *pairs, CANON_OTHER_MOTION[motion]):
            add(name, Word("motion", motion))
    for tone in BACKGROUND_TONES:
        for name in (tone, *PARA_TONE[tone]):
            add(name, Word("tone", tone))
        if "grey" in tone:
            add(tone.replace("grey", "gray"), Word("tone", tone))
    for name, orient in (("vertical", "vertical"), ("vertically", "vertical"), ("top to bottom", "vertical"),
                         ("horizontal", "horizontal"), ("horizontally", "horizontal"),
                         ("side to side", "horizontal")):
        add(name, Word("orient", orient))
    for name, pos in (("at the top", "top"), ("at the bottom", "bottom"), ("on the left", "left"),
                      ("on the right", "right")):
        add(name, Word("pos", pos))
    return table


PARSE_LEXICON = _build()
MAX_PHRASE = max(len(k) for k in PARSE_LEXICON)
