"""Whether a model's bounces fall like a dropped ball: at rest at the top, fastest at the floor.

    python bench/bounce_pace.py MODEL [MODEL ...] [--n 40] [--seed 8000] [--out docs/bounce_pace.md]

For n held-out bounce prompts each model generates a clip at its default settings (the same seed per
prompt for every model), and the object's height is read in every frame (the mean row of the pixels off
the background). Its pace is the mean height change per frame over the clip's outer quarters (near the
top, where a bounce starts and ends) divided by the mean over the middle half (near the floor): a fall
from rest is slow at the ends and fast in the middle, under 1; the world's bounce before 2026-12-05 (a
parabola with its vertex on the floor) the other way round, over 1. The rendered scenes give the
reference, and the evaluator's motion (bounce or not) is reported beside it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_operations import object_rows  # noqa: E402
from quality import to_uint8  # noqa: E402

from sora_core.pipeline import generate, load_models  # noqa: E402
from sora_core.world.dataset import prompt_set  # noqa: E402
from sora_core.world.evaluate import score_clip  # noqa: E402
from sora_core.world.render import render  # noqa: E402


def bounce_cases(n: int, seed: int) -> list:
    """The first ``n`` held-out prompts of ``seed`` whose object bounces."""
    pool = prompt_set(30 * n, seed=seed, kind="short")
    return [c for c in pool if c.scene.objects[0].motion == "bounce"][:n]


def pace(frames: torch.Tensor) -> float:
    """Mean height change per frame over the outer quarters of the clip / over its middle half."""
    speed = object_rows(frames).diff().abs()
    quarter = speed.shape[0] // 4
    ends = torch.cat([speed[:quarter], speed[-quarter:]]).mean()
    return float(ends / speed[quarter:-quarter].mean().clamp(min=1e-6))


def summary(paces: list[float], motion_right: int) -> str:
    n = len(paces)
    return (f"{statistics.median(paces):.2f} | {sum(p < 1 for p in paces)}/{n} | "
            f"{motion_right}/{n}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="checkpoint paths (or 'default')")
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--seed", type=int, default=8000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    start = time.perf_counter()
    cases = bounce_cases(args.n, args.seed)
    truth = [render(c.scene) for c in cases]
    truth_right = sum(bool(score_clip(c.scene, f)["motion_ok"]) for c, f in zip(cases, truth, strict=True))
    rows = [f"| rendered scenes (the world) | {summary([pace(f) for f in truth], truth_right)} |"]
    for model in args.models:
        models = load_models(model)
        paces, right = [], 0
        with torch.inference_mode():
            for i, case in enumerate(cases):
                frames = to_uint8(generate(case.prompt, models=models, seed=args.seed + i).frames)
                paces.append(pace(frames))
                right += bool(score_clip(case.scene, frames)["motion_ok"])
        rows.append(f"| `{model}` | {summary(paces, right)} |")
        print(rows[-1], file=sys.stderr, flush=True)
    lines = [
        "# Bounce pace", "",
        f"{len(cases)} held-out bounce prompts (`prompt_set(seed={args.seed})`), 17 frames at 64x64, default "
        "settings, one seed per prompt shared by every model. Pace: the object's mean height change per frame "
        "over the clip's outer quarters (near the top) divided by that over its middle half (near the floor); "
        "a ball dropped from rest is under 1. Produced by `python bench/bounce_pace.py`.", "",
        "| clips | pace, median | falls from rest (pace < 1) | evaluator: bounce |", "|---|---|---|---|",
        *rows, "", f"Run time {time.perf_counter() - start:.0f} s on {torch.get_num_threads()} CPU threads.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
