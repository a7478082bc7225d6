"""Skip guidance (STG-A, as ComfyUI's LTXVSpatioTemporalGuidance node does it) on a checkpoint, on
compare_models' prompts: does guiding away from a weakened copy of the DiT keep objects in every frame?

    python bench/guidance_trials.py [MODEL] --trials "0" "0.5@3" "0.25@3" "0.5@1,4" [--n 120] [--out FILE.md]

A trial ``SCALE@BLOCKS`` runs each step's DiT a third time with the self-attention of the given blocks made a
value pass-through (every token attends only to itself, so spatial and temporal mixing is cut there) and
adds ``SCALE * (v_cond - v_weakened)`` to the classifier-free-guided velocity; ``0`` is the plain default.
Text-to-video only; a trial, not a setting of the product.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compare_models import score_model  # noqa: E402
from quality import KEYS  # noqa: E402

import sora_core.pipeline as pipeline  # noqa: E402
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
    """The text-to-video denoiser with cfg (as conditioned_velocity computes it) plus skip guidance."""
    length = max(context.shape[1], negative.shape[1])
    context, negative = (F.pad(c, (0, 0, 0, length - c.shape[1])) for c in (context, negative))

    def model(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        b, frames = x.shape[0], x.shape[2]
        t = (sigma.reshape(-1).to(x.device, torch.float32).expand(b) * 1000)[:, None].expand(b, frames)
        xd = x.to(dit.dtype)
        pos, neg = dit(torch.cat([xd, xd]), torch.cat([t, t]), torch.cat([context, negative])).float().chunk(2)
        guided = neg + cfg * (pos - neg)
        if not scale:
            return guided
        with value_passthrough(dit, blocks):
            weak = dit(xd, t, context).float()
        return guided + scale * (pos - weak)

    return model


def run_trial(models, cases: list, seed: int, scale: float, blocks: tuple[int, ...]) -> list[dict[str, bool]]:
    plain = pipeline.conditioned_velocity

    def patched(dit, context, negative, cfg, cond, **kw):
        if cond is not None or kw or negative is None:
            return plain(dit, context, negative, cfg, cond, **kw)
        return skip_guided(dit, context, negative, cfg, scale, blocks)

    pipeline.conditioned_velocity = patched
    try:
        return score_model(models, cases, seed, {})
    finally:
        pipeline.conditioned_velocity = plain


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
    lines = ["| skip guidance | colour | shape | motion | present in every frame | all four |",
             "|---|---|---|---|---|---|"]
    for scale, blocks in args.trials:
        results = run_trial(models, cases, args.seed, scale, blocks)
        label = f"scale {scale:g}, blocks {', '.join(map(str, blocks))}" if scale else "none (the default)"
        lines.append(f"| {label} | " + " | ".join(f"{100 * sum(r[k] for r in results) / args.n:.1f}%" for k in KEYS)
                     + " |")
        print(lines[-1], file=sys.stderr, flush=True)
    lines += ["", f"`{args.model}`, {args.n} prompts of `prompt_set(seed={args.seed})`; run time "
              f"{time.perf_counter() - start:.0f} s on {torch.get_num_threads()} CPU threads."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
