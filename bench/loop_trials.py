"""Ways to denoise a loop's wrap-around, tried on the loop prompts of bench/bench_operations.py.

    python bench/loop_trials.py [--n 50] [--out docs/loop_trials.md]

Circular denoising (sora_core.conditioning) shows the DiT one window per step: the period after a lead of
its own last latent frame. Each trial here changes only that window, by wrapping the DiT in
:class:`WindowTrial`, which receives the shipped window and shows the DiT another one (the period rotated, a
trail of its first frame, no lead, ...); the sampler, the seeds and the decode are the shipped ones. Every
trial runs the same held-out prompts and seeds as the loop part of bench_operations: seam / median
consecutive difference and the evaluator's motion, per kind of motion.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_operations import Bench, loopable_cases, score_loops, tally_text  # noqa: E402
from measure import emit_table  # noqa: E402

from sora_core.conditioning import CIRCULAR_LEAD  # noqa: E402

# A window maker: (shipped window x [B, C, 1 + n, H, W], its timesteps t [B, 1 + n], call index) ->
# (window to show, its timesteps, function from the DiT's output to the output of the shipped window).
Window = Callable[[Tensor, Tensor, int], tuple[Tensor, Tensor, Callable[[Tensor], Tensor]]]


def shipped(x: Tensor, t: Tensor, call: int):
    return x, t, lambda out: out


def rotated(every_from: int, turn: int | None = None) -> Window:
    """The period rotated by a different number of latent frames each call from call ``every_from`` on (the
    circular denoising before commit 06513a8 rotated from the first call); the lead is the rotated period's
    last frame. With ``turn``, the period is rotated by that many frames on every call from ``every_from`` on
    (half the period puts the wrap-around in the middle of the window for the last steps)."""

    def window(x: Tensor, t: Tensor, call: int):
        period, tp = x[:, :, CIRCULAR_LEAD:], t[:, CIRCULAR_LEAD:]
        step_shift = call % period.shape[2] if turn is None else turn
        shift = step_shift if call >= every_from else 0
        period, tp = period.roll(shift, dims=2), tp.roll(shift, dims=1)
        shown = torch.cat([period[:, :, -CIRCULAR_LEAD:], period], dim=2)
        times = torch.cat([tp[:, -CIRCULAR_LEAD:], tp], dim=1)

        def back(out: Tensor) -> Tensor:
            return torch.cat([out[:, :, :CIRCULAR_LEAD], out[:, :, CIRCULAR_LEAD:].roll(-shift, dims=2)], dim=2)

        return shown, times, back

    return window


def lead_and_trail(x: Tensor, t: Tensor, call: int):
    """The period's first frame also after its end, so the last frame sees its successor too."""
    first = slice(CIRCULAR_LEAD, CIRCULAR_LEAD + 1)
    shown, times = torch.cat([x, x[:, :, first]], dim=2), torch.cat([t, t[:, first]], dim=1)
    return shown, times, lambda out: out[:, :, : x.shape[2]]


def trail_only(x: Tensor, t: Tensor, call: int):
    """No lead; the period's first frame after its end instead."""
    period, tp = x[:, :, CIRCULAR_LEAD:], t[:, CIRCULAR_LEAD:]
    shown, times = torch.cat([period, period[:, :, :1]], dim=2), torch.cat([tp, tp[:, :1]], dim=1)
    return shown, times, lambda out: torch.cat([out[:, :, :CIRCULAR_LEAD], out[:, :, : period.shape[2]]], dim=2)


def alternating(x: Tensor, t: Tensor, call: int):
    """The shipped lead on odd calls, a trail of the first frame on even ones."""
    return trail_only(x, t, call) if call % 2 == 0 else shipped(x, t, call)


def no_lead(x: Tensor, t: Tensor, call: int):
    """The period alone: the wrap-around is left to the decoder."""
    period, tp = x[:, :, CIRCULAR_LEAD:], t[:, CIRCULAR_LEAD:]
    return period, tp, lambda out: torch.cat([out[:, :, :CIRCULAR_LEAD], out], dim=2)


class WindowTrial:
    """The DiT behind another window: counts calls (one per sampler step: positive and negative prompts
    come as one batch) and hands everything else to the DiT."""

    def __init__(self, dit, window: Window) -> None:
        self.dit, self.window, self.calls = dit, window, 0

    def __call__(self, x: Tensor, t: Tensor, context: Tensor) -> Tensor:
        shown, times, back = self.window(x, t, self.calls)
        self.calls += 1
        return back(self.dit(shown, times, context))

    def __getattr__(self, name: str):
        return getattr(self.dit, name)


TRIALS: dict[str, Window] = {
    "shipped: lead of the last frame": shipped,
    "rotated every step": rotated(0),
    "rotated from step 10 of 20": rotated(10),
    "lead and a trail of the first frame": lead_and_trail,
    "lead and trail alternating": alternating,
    "no lead": no_lead,
    "rotated from step 15 of 20": rotated(15),
    "half a period turned from step 10 of 20": rotated(10, turn=2),
    "half a period turned from step 15 of 20": rotated(15, turn=2),
}


def run_trial(b: Bench, cases: list, window: Window) -> str:
    loops = score_loops(b, cases, wrap_dit=lambda dit: WindowTrial(dit, window))
    n = len(cases)
    return (f"{loops.motion / n:.0%} ({tally_text(loops.by_kind)}) | {statistics.median(loops.ratios):.2f} | "
            f"{sum(r <= 1.5 for r in loops.ratios)}/{n}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--seed", type=int, default=3000, help="bench_operations' seed")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--trials", nargs="+", choices=range(len(TRIALS)), type=int, default=None,
                        help="run only these rows (0: shipped, 1: rotated every step, ...)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    b = Bench(args.model, args.seed)
    cases = loopable_cases(b.seed, args.n)
    command = f"python bench/loop_trials.py --n {args.n}" + (
        f" --trials {' '.join(map(str, args.trials))}" if args.trials else "")
    lines = [
        "# Loop windows: how circular denoising shows the wrap-around to the DiT",
        "",
        f"Produced by `{command}` (model `{args.model}`; the {args.n} bounce or still "
        f"prompts and seeds of the loop part of bench/bench_operations.py; 16-frame periods, 4 latent frames).",
        "",
        "| window | motion correct | seam / median consecutive difference, median | seam within 1.5x |",
        "|---|---|---|---|",
    ]
    for i, (name, window) in enumerate(TRIALS.items()):
        if args.trials is not None and i not in args.trials:
            continue
        lines.append(f"| {name} | {run_trial(b, cases, window)} |")
        print(lines[-1], flush=True)
    lines += ["", f"Run time {time.perf_counter() - start:.0f} s on {torch.get_num_threads()} CPU threads."]
    emit_table(lines, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
