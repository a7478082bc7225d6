"""Skip guidance (STG-A, as ComfyUI's LTXVSpatioTemporalGuidance node does it) on a checkpoint, on
compare_models' prompts: does guiding away from a weakened copy of the DiT keep objects in every frame?

    python bench/guidance_trials.py [MODEL] --trials "0" "0.5@3" "0.25@3" "0.5@1,4" [--n 120] [--out FILE.md]

A trial ``SCALE@BLOCKS`` adds ``SCALE * (v_cond - v_weakened)`` to the pipeline's classifier-free-guided
velocity, where the weakened DiT has the self-attention of the given blocks made a value pass-through
(every token attends only to itself, so spatial and temporal mixing is cut there); ``0`` is the plain
default. The report is compare_models' (rates, presence by speed and size, paired counts against the first
trial). Text-to-video only; a trial, not a setting of the product.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compare_models import report, score_model  # noqa: E402
from measure import emit_table  # noqa: E402

import sora_core.pipeline as pipeline  # noqa: E402
from sora_core.conditioning import conditioned_velocity  # noqa: E402
from sora_core.dit import WanDiT  # noqa: E402
from sora_core.world.dataset import prompt_set  # noqa: E402


def parse_trial(text: str) -> tuple[float, tuple[int, ...]]:
    """``"0.5@3"`` -> (0.5, (3,)); ``"0"`` -> (0.0, ())."""
    scale, _, blocks = text.partition("@")
    try:
        parsed = float(scale), tuple(int(b) for b in blocks.split(",") if b.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--trials {text!r}: write SCALE@BLOCK[,BLOCK...], e.g. 0.5@3") from None
    if parsed[0] and not parsed[1]:
        raise argparse.ArgumentTypeError(f"--trials {text!r}: a non-zero scale needs blocks, e.g. {scale}@3")
    return parsed


@contextlib.contextmanager
def value_passthrough(dit: WanDiT, blocks: Sequence[int]) -> Iterator[None]:
    """Within the block, the listed blocks' self-attention returns o(v(x)): an identity attention map."""
    attns = [dit.blocks[i].self_attn for i in blocks]
    for attn in attns:
        attn.forward = lambda x, rope, attn=attn: attn.o(attn.v(x))  # instance attribute shadows the method
    try:
        yield
    finally:
        for attn in attns:
            del attn.forward


def skip_guided(dit: WanDiT, context: torch.Tensor, negative: torch.Tensor, cfg: float, scale: float,
                blocks: Sequence[int]):
    """The pipeline's text-to-video denoiser plus ``scale * (v_cond - v_weakened)``; the conditional and
    weakened velocities come from the same denoiser at cfg 1 (two more DiT passes of batch 1 per step)."""
    plain = conditioned_velocity(dit, context, negative, cfg, None)
    if not scale:
        return plain
    conditional = conditioned_velocity(dit, context, None, 1.0, None)

    def model(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        pos = conditional(x, sigma)
        with value_passthrough(dit, blocks):
            weak = conditional(x, sigma)
        return plain(x, sigma) + scale * (pos - weak)

    return model


def with_skip_guidance(plain, scale: float, blocks: Sequence[int]):
    """A stand-in for ``conditioned_velocity`` (called as the pipeline calls it) that adds skip guidance to
    plain text-to-video denoisers and leaves every other kind (known frames, prompt spans, loops) to ``plain``."""

    def patched(dit, context, negative, cfg, cond, *, spans=None, circular=False):
        if cond is not None or spans is not None or circular or negative is None:
            return plain(dit, context, negative, cfg, cond, spans=spans, circular=circular)
        return skip_guided(dit, context, negative, cfg, scale, blocks)

    return patched


def run_trial(models, cases: list, seed: int, scale: float, blocks: tuple[int, ...]) -> list[dict[str, bool]]:
    plain = pipeline.conditioned_velocity
    pipeline.conditioned_velocity = with_skip_guidance(plain, scale, blocks)
    try:
        return score_model(models, cases, seed, {})
    finally:
        pipeline.conditioned_velocity = plain


def trial_label(scale: float, blocks: tuple[int, ...]) -> str:
    return f"skip guidance {scale:g} at blocks {','.join(map(str, blocks))}" if scale else "no skip guidance"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", default="default")
    parser.add_argument("--trials", type=parse_trial, nargs="+", default=[(0.0, ()), (0.5, (3,))])
    parser.add_argument("--n", type=int, default=120)
    parser.add_argument("--seed", type=int, default=6000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    torch.set_flush_denormal(True)
    models = pipeline.load_models(args.model)
    cases = prompt_set(args.n, seed=args.seed, kind="short")
    start = time.perf_counter()
    labels, scores = [], []
    for scale, blocks in args.trials:
        labels.append(f"{args.model} {trial_label(scale, blocks)}")
        scores.append(run_trial(models, cases, args.seed, scale, blocks))
        print(labels[-1], file=sys.stderr, flush=True)
    text = report(labels, scores, cases, args.seed, time.perf_counter() - start,
                  produced_by="python bench/guidance_trials.py")
    emit_table(text.splitlines(), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
