"""Prompt preparation: the recaptioning step between what a user types and what the text encoder reads.

Sora is trained on long, detailed captions and expands short user prompts into that style before
sampling. The project's default model works the same way: it was trained on the synthetic world's
detailed captions, so a short prompt ("a red circle moving right") is expanded by
:func:`sora_core.world.caption.expand_prompt` into the canonical caption first. A model says it wants
this through its text encoder's ``prompt_style`` (set from the checkpoint's metadata); models that do
not (Wan 2.1) get the prompt unchanged.
"""

from __future__ import annotations

from typing import Any

EXPAND = "expand_prompt"


def prepare_prompt(text_encoder: Any, prompt: str, expand: bool = True) -> str:
    """The text to encode for ``prompt``: expanded when the model asks for it and ``expand`` is on."""
    if not expand or getattr(text_encoder, "prompt_style", None) != EXPAND or not prompt.strip():
        return prompt
    from .world.caption import expand_prompt

    return expand_prompt(prompt)
