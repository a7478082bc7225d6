"""Argument handling of the bench scripts that choose what ships (their runs are too long for tests)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from bench_operations import tally, tally_text  # noqa: E402
from compare_models import parse_settings, settings_label  # noqa: E402
from presence_failures import failure_kind  # noqa: E402
from quality import presence_by_speed  # noqa: E402


def test_settings_variants_parse_to_typed_generate_arguments() -> None:
    settings = parse_settings("shift=5, steps=30,sampler=euler")
    assert settings == {"shift": 5.0, "steps": 30, "sampler": "euler"}
    assert isinstance(settings["steps"], int) and isinstance(settings["shift"], float)
    assert settings_label(settings) == "shift 5 steps 30 sampler euler"


@pytest.mark.parametrize(("text", "names"), [("shfit=5", "steps, cfg, shift, sampler"), ("steps=3.5", "whole number"),
                                             ("cfg", "KEY=VALUE")])
def test_bad_settings_name_the_problem(text: str, names: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=names):
        parse_settings(text)


def test_presence_by_speed_counts_each_speed_apart() -> None:
    from sora_core.world.dataset import prompt_set

    cases = prompt_set(12, seed=6000, kind="short")
    results = [{"present_ok": c.scene.objects[0].speed == "fast"} for c in cases]  # only the fast ones kept
    counts = presence_by_speed(results, cases)
    fast = sum(c.scene.objects[0].speed == "fast" for c in cases)
    assert 0 < fast < len(cases)
    assert counts == {"slow": (0, len(cases) - fast), "fast": (fast, fast)}


def _frames(pattern: str) -> torch.Tensor:
    return torch.tensor([c == "x" for c in pattern])


@pytest.mark.parametrize(("asked", "others", "kind"), [
    ("xxxxxxxxxxxxx....", ["............xxxxx"], "colour hand-over"),
    ("...xxxxxxxxxxxxxx", ["x................"], "late start"),  # another colour in one of three frames
    ("xxxxxxxxxxxxxx...", [], "early end"),
    ("xxxxxx..xxxxxxxxx", ["xxxxxxxxxxxxxxxxx"], "colour hand-over"),
    ("xxxxxx..xxxxxxxxx", [], "gaps"),
    (None, ["xxxxxxxxxxxxxxxxx"], "never"),
    (".................", [], "never"),
])
def test_presence_failures_are_sorted_by_what_the_frames_show(asked: str | None, others: list[str],
                                                              kind: str) -> None:
    assert failure_kind(_frames(asked) if asked else None, [_frames(o) for o in others]) == kind


def test_tally_counts_right_and_clips_per_kind() -> None:
    counts: dict[str, list[int]] = {}
    for key, ok in (("still", True), ("bounce", False), ("still", True), ("bounce", True), ("still", False)):
        tally(counts, key, ok)
    assert counts == {"still": [2, 3], "bounce": [1, 2]}
    assert tally_text(counts) == "bounce 1/2, still 2/3"
