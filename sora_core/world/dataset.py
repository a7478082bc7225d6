"""Training clips and benchmark prompts from the synthetic world.

``sample_clip`` gives what a training step needs: frames, the scene, a detailed caption.
``prompt_set`` gives the quality benchmark: held-out scenes (their main triple never trained on),
each with a user prompt and the canonical caption that ``expand_prompt`` turns that prompt into.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from torch import Tensor

from .caption import canonical_caption, detailed_caption, expand_prompt, paraphrase_prompt, short_prompt
from .render import render
from .scene import TEST_TRIPLES, Scene, sample_scene


def sample_clip(
    rng: random.Random, split: str = "train", width: int = 64, height: int = 64, frames: int = 17,
    n_objects: int | None = None, p_canonical: float = 0.5,
) -> tuple[Tensor, Scene, str]:
    """A random clip: uint8 frames ``[T, H, W, 3]``, its scene, and a detailed caption."""
    scene = sample_scene(rng, split=split, width=width, height=height, frames=frames, n_objects=n_objects)
    return render(scene), scene, detailed_caption(scene, rng, p_canonical)


@dataclass(frozen=True)
class PromptCase:
    """One benchmark item: the scene to score against, the prompt to generate from, its expansion."""

    scene: Scene
    prompt: str
    caption: str  # expand_prompt(prompt), which is canonical_caption(scene)


PROMPT_KINDS = {"short": short_prompt, "paraphrase": paraphrase_prompt, "canonical": lambda s, _: canonical_caption(s)}


def prompt_set(
    n: int, seed: int = 0, kind: str = "short", width: int = 64, height: int = 64, frames: int = 17,
    n_objects: int = 1,
) -> list[PromptCase]:
    """``n`` held-out scenes with prompts of one kind ("short", "paraphrase" or "canonical").

    The held-out triples are cycled through in a seeded order, so every one is asked for about
    equally often. The same seed gives the same scenes for every kind, so short and paraphrase
    scores compare like with like.
    """
    if kind not in PROMPT_KINDS:
        raise ValueError(f"kind must be one of {sorted(PROMPT_KINDS)}, not {kind!r}")
    scene_rng, text_rng = random.Random(seed), random.Random(f"{seed}-{kind}")
    triples = list(TEST_TRIPLES)
    scene_rng.shuffle(triples)
    cases = []
    for i in range(n):
        scene = sample_scene(scene_rng, split="test", width=width, height=height, frames=frames,
                             n_objects=n_objects, main=triples[i % len(triples)])
        prompt = PROMPT_KINDS[kind](scene, text_rng)
        cases.append(PromptCase(scene, prompt, expand_prompt(prompt)))
    return cases
