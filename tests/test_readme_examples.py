"""The README's library examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_operations_example_runs_and_extends_the_loop(tmp_path, monkeypatch) -> None:
    block = next(b for b in python_blocks() if "operations as ops" in b)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)  # noqa: S102 - the README's own example
    assert scope["clip"].frames.shape == (16, 64, 64, 3)
    assert scope["longer"].frames.shape == (17 + 3 * 12, 64, 64, 3)
    assert (scope["longer"].frames[:16] == scope["clip"].frames).all()
    assert (scope["longer"].frames[16] == scope["clip"].frames[0]).all()  # closed: the loop starts again
