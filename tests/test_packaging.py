"""The pack's requirements.txt (what ComfyUI users install) says the same as pyproject's dependencies."""

from __future__ import annotations

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def _requirements() -> set[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def test_requirements_txt_matches_pyproject_except_torch() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    expected = {d for d in deps if not d.startswith("torch")}
    found = _requirements()
    assert found == expected, (
        "requirements.txt and pyproject.toml's dependencies differ: "
        f"only in requirements.txt {sorted(found - expected)}, only in pyproject {sorted(expected - found)}"
    )


def test_requirements_never_pull_torch() -> None:
    # pip would otherwise be free to replace the user's ComfyUI torch (e.g. with a CUDA build).
    assert not any(r.split(">")[0].split("=")[0].strip().startswith("torch") for r in _requirements())
