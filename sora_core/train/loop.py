"""What every training stage's loop shares: the learning-rate schedule and the step log."""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch


def set_lr(opt: torch.optim.Optimizer, step: int, steps: int, base: float, warmup: int) -> None:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 10% of ``base`` at ``steps``."""
    warm = min(1.0, (step + 1) / warmup)
    lr = base * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
    for group in opt.param_groups:
        group["lr"] = lr


def training_device(name: str = "auto") -> torch.device:
    """``auto``: the first CUDA GPU when torch sees one, else the CPU; otherwise a torch device name."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device {name!r} is not a torch device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r}: this torch build sees no CUDA GPU; use --device cpu")
    return device


class StepLog:
    """Appends ``step, seconds, values...`` as a TSV line to ``run/<stage>_log.tsv`` and echoes it."""

    def __init__(self, run: Path, stage: str) -> None:
        self.stage = stage
        self.file = open(run / f"{stage}_log.tsv", "a")
        self.start = time.perf_counter()

    def write(self, step: int, *values: object) -> None:
        cells = [str(step), f"{time.perf_counter() - self.start:.0f}"]
        cells += [f"{v:.5f}" if isinstance(v, float) else str(v) for v in values]
        line = "\t".join(cells)
        print(self.stage, line, flush=True)
        self.file.write(line + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()
