"""Generation time of two or more checkpoints side by side, in one process on the same CPU.

    python bench/time_models.py MODEL [MODEL ...] [--runs 7] [--threads 2] [--out docs/timing.md]

bench/quality.py reports one checkpoint's time on whatever machine ran it; machines differ by several times
(CPU generation, steal time under a hypervisor), so a time measured in another session says little about a
new checkpoint. This times each model with quality.py's own timing loop (default frames, size and settings, model
loaded, after a warm-up), interleaving the models run by run so that a slow spell of the machine falls on
all of them, and reports each median beside its ratio to the first model's, with the CPU it ran on.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from measure import cpu_name, emit_table  # noqa: E402
from quality import interleaved_times  # noqa: E402

from sora_core.pipeline import load_models  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="'default' or safetensors checkpoints; the first is the reference")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    models = [load_models(name) for name in args.models]
    times = interleaved_times(models, args.runs)
    reference = statistics.median(times[0])
    d = models[0].defaults
    lines = [
        "# Generation time, checkpoints side by side", "",
        f"{d.frames} frames at {d.width}x{d.height}, default settings, model loaded, {args.runs} interleaved runs "
        "after a warm-up, "
        f"{args.threads} CPU threads of an {cpu_name()} (torch {torch.__version__}). Produced by "
        f"`python bench/time_models.py {' '.join(args.models)} --out FILE`.", "",
        "| model | median | min | max | median / first model's |", "|---|---|---|---|---|",
    ]
    for name, t in zip(args.models, times, strict=True):
        median = statistics.median(t)
        lines.append(f"| `{name}` | {median:.2f} s | {min(t):.2f} s | {max(t):.2f} s | {median / reference:.2f}x |")
    emit_table(lines, args.out)


if __name__ == "__main__":
    main()
