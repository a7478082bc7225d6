"""Two ways to give a storyboard's shots their prompts, on the storyboard prompts of bench/bench_operations.py.

    python bench/storyboard_trials.py [--n 100] [--out docs/storyboard_trials.md]

- frame prompts (shipped, sora_core.conditioning): one DiT pass per step over the whole clip in which the
  tokens of each latent frame read their own shot's prompt in cross-attention;
- whole-clip prompts (shipped until 2026-12-04): one pass per shot and step, each with that shot's prompt
  read by every frame; each pass's velocity is kept on its own shot's frames.

Both see every frame in self-attention and run the same sampler, seeds and decode. Each case runs both ways
one after the other (so a change in the machine's speed hits both alike); the report gives each way's
evaluator scores per shot, whether the object keeps its colour and shape across shots, and its sampling time
against the shipped way's.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_operations import Bench, judge_storyboard, run_storyboard, storyboard_cases  # noqa: E402
from measure import cpu_name, emit_table  # noqa: E402

import sora_core.pipeline as pipeline  # noqa: E402
from sora_core.conditioning import frame_owners  # noqa: E402

WAYS = ("frame prompts", "whole-clip prompts")


def whole_clip_prompts(plain: Callable) -> Callable:
    """A stand-in for ``conditioned_velocity`` (called as the pipeline calls it): storyboards get one guided
    velocity per shot, its prompt read by the whole clip, kept on that shot's frames; the rest goes to
    ``plain``."""

    def patched(dit, context, negative, cfg, cond, *, spans=None, circular=False):
        if spans is None or len(spans) == 1:
            return plain(dit, context, negative, cfg, cond, spans=spans, circular=circular)
        per_shot = [plain(dit, sp.context, negative, cfg, cond, circular=circular) for sp in spans]

        def model(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            owner = frame_owners(spans, x.shape[2]).to(x.device).view(1, 1, -1, 1, 1)
            v = per_shot[0](x, sigma)
            for i, shot in enumerate(per_shot[1:], start=1):
                v = torch.where(owner == i, shot(x, sigma), v)
            return v

        return model

    return patched


def run_way(b: Bench, case, way: str) -> tuple[dict[str, bool], float]:
    plain = pipeline.conditioned_velocity
    if way == "whole-clip prompts":
        pipeline.conditioned_velocity = whole_clip_prompts(plain)
    try:
        start = time.perf_counter()
        frames = run_storyboard(b, case)
        return judge_storyboard(case, frames), time.perf_counter() - start
    finally:
        pipeline.conditioned_velocity = plain


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--seed", type=int, default=3000, help="bench_operations' seed: its first cases")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_flush_denormal(True)
    start = time.perf_counter()
    b = Bench(args.model, args.seed)
    judged: dict[str, list[dict[str, bool]]] = {w: [] for w in WAYS}
    seconds: dict[str, float] = dict.fromkeys(WAYS, 0.0)
    with torch.inference_mode():
        run_storyboard(b, storyboard_cases(b, 1)[0])  # warm-up
        for k, case in enumerate(storyboard_cases(b, args.n)):
            for way in WAYS if k % 2 == 0 else WAYS[::-1]:
                result, took = run_way(b, case, way)
                judged[way].append(result)
                seconds[way] += took
    d = b.d
    lines = [
        "# Storyboards: how each shot reads its prompt", "",
        f"Produced by `python bench/storyboard_trials.py --n {args.n}` (model `{args.model}`, {d.steps} {d.sampler} "
        f"steps, cfg {d.cfg}; the first {args.n} storyboard cases of bench/bench_operations.py: 33 frames at 64x64, "
        "shot 1 frames 0-15 with a held-out prompt, shot 2 from frame 16 with the same object turned another "
        "direction; the same seeds for both ways, run one after the other per case).", "",
        "| way | shot 1 all four right | shot 2 all four right | shot 2 motion | same colour and shape in both "
        "shots | time per storyboard | time / frame prompts' |",
        "|---|---|---|---|---|---|---|",
    ]
    for way in WAYS:
        rate = {key: sum(j[key] for j in judged[way]) / args.n for key in judged[way][0]}
        label = f"{way} (shipped)" if way == WAYS[0] else way
        lines.append(f"| {label} | {rate['shot1']:.0%} | {rate['shot2']:.0%} | {rate['shot2_motion']:.0%} | "
                     f"{rate['identity']:.0%} | {seconds[way] / args.n:.2f} s | "
                     f"{seconds[way] / seconds[WAYS[0]]:.2f} |")
    both = [(a["shot2"], c["shot2"]) for a, c in zip(judged[WAYS[0]], judged[WAYS[1]], strict=True)]
    lines += ["", f"Shot 2 right with frame prompts only: {sum(a and not c for a, c in both)}; with whole-clip "
              f"prompts only: {sum(c and not a for a, c in both)} (of {args.n}).", "",
              f"Run time {time.perf_counter() - start:.0f} s on {torch.get_num_threads()} CPU threads of an "
              f"{cpu_name()}."]
    emit_table(lines, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
