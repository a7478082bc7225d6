"""What the benchmarks share: resident-memory readings, child processes, and writing the Markdown table.

Scripts in bench/ run as ``python bench/NAME.py``, so this folder is on sys.path and ``import measure`` works.
"""

from __future__ import annotations

import json
import platform
import subprocess
from collections.abc import Mapping
from pathlib import Path


def status_mib(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS, VmHWM) in MiB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> None:
    """Linux: writing 5 to clear_refs resets VmHWM, so the peak covers what follows, not loading."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def run_child(cmd: list[str], env: Mapping[str, str]) -> dict:
    """Run one measurement in a fresh process; it prints its result as JSON on its last line."""
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True, env=dict(env))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def emit_table(lines: list[str], out: Path | None) -> None:
    table = "\n".join(lines)
    print(table)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(table + "\n")


# docs/quality.md has two parts written by two scripts: quality.py the top, bench_operations.py this section.
OPERATIONS_SECTION = "## Sora operations"


def write_quality_part(path: Path, text: str, operations: bool) -> None:
    """Replace one part of docs/quality.md (the operations section, or everything before it) and keep the other."""
    old = path.read_text() if path.exists() else ""
    head, sep, tail = old.partition(OPERATIONS_SECTION)
    section = sep + tail
    if operations:
        head = head.rstrip("\n")
        path.write_text((head + "\n\n" if head else "") + text)
    else:
        path.write_text(text + ("\n" + section if section else ""))


def cpu_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name as Linux reports it, else what platform knows."""
    try:
        with open(cpuinfo) as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"
