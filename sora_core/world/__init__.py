"""The synthetic video world: scenes of moving shapes, their renderer, captioner and evaluator.

Used to train and score the project's small default text-to-video model. Needs only torch (no
ComfyUI import). Modules: ``scene`` (vocabulary, held-out split, sampling), ``motion`` (kinematics),
``render`` (frames), ``caption`` / ``parse`` / ``lexicon`` (captions, prompts, expansion),
``evaluate`` (an analytic judge of generated clips), ``degrade`` (blur and noise for its tests),
``dataset`` (training clips and benchmark prompt sets).
"""

from .caption import canonical_caption, detailed_caption, expand_prompt, paraphrase_prompt, short_prompt
from .dataset import PromptCase, prompt_set, sample_clip
from .degrade import degrade
from .evaluate import DetectedObject, detect_objects, score_clip
from .parse import DEFAULT_BACKGROUND, DEFAULT_OBJECT, ObjectPrompt, PromptSpec, parse_prompt
from .render import from_model_range, render, to_model_range
from .scene import (
    BACKGROUND_STYLES,
    BACKGROUND_TONES,
    COLOURS,
    MOTIONS,
    SHAPES,
    SIZES,
    SPEEDS,
    TEST_TRIPLES,
    TRAIN_TRIPLES,
    Background,
    ObjectSpec,
    Scene,
    is_held_out,
    sample_scene,
)

__all__ = [
    "SHAPES", "COLOURS", "SIZES", "MOTIONS", "SPEEDS", "BACKGROUND_TONES", "BACKGROUND_STYLES",
    "TRAIN_TRIPLES", "TEST_TRIPLES", "Background", "ObjectSpec", "Scene", "is_held_out", "sample_scene",
    "render", "to_model_range", "from_model_range",
    "canonical_caption", "detailed_caption", "short_prompt", "paraphrase_prompt", "expand_prompt", "parse_prompt",
    "ObjectPrompt", "PromptSpec", "DEFAULT_OBJECT", "DEFAULT_BACKGROUND",
    "DetectedObject", "detect_objects", "score_clip", "degrade",
    "sample_clip", "prompt_set", "PromptCase",
]
