"""Prompt expansion is applied only for models trained on the detailed caption style, and can be turned off."""

from __future__ import annotations

from types import SimpleNamespace

from sora_core.prompts import EXPAND, prepare_prompt
from sora_core.world.caption import expand_prompt


def test_expands_for_models_that_ask() -> None:
    encoder = SimpleNamespace(prompt_style=EXPAND)
    got = prepare_prompt(encoder, "a red circle moving right")
    assert got == expand_prompt("a red circle moving right") != "a red circle moving right"
    assert "red circle" in got and "right" in got


def test_unchanged_when_off_or_not_asked() -> None:
    assert prepare_prompt(SimpleNamespace(prompt_style=EXPAND), "a red circle moving right", expand=False) \
        == "a red circle moving right"
    assert prepare_prompt(SimpleNamespace(), "a red circle moving right") == "a red circle moving right"
    assert prepare_prompt(SimpleNamespace(prompt_style=None), "a cat surfing") == "a cat surfing"


def test_unparseable_prompt_passes_through() -> None:
    assert prepare_prompt(SimpleNamespace(prompt_style=EXPAND), "a cat surfing at dawn") == "a cat surfing at dawn"
