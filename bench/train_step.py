"""One DiT training step of the default model's configuration, float32 against bfloat16 autocast, one run.

The step `sora_core.train` takes (`dit_stage.train_step`: flow loss, backward, clipped AdamW) on the shipped
checkpoint's DiT, batch 16, random latents on the grid of the shipped 8x VAE and of a 4x VAE
(`--vae-spatial 4`), 17 frames at 64x64 and at 96x64. Both precisions start from the same weights and see
the same batch; the table gives the median step time of each, their ratio (< 1: bf16 is faster) and how
far the bf16 loss is from the float32 one on that batch.

    python bench/train_step.py [--repeats 5] [--threads 2] [--out docs/train_step.md]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import torch
from measure import emit_table

from sora_core.dit import WanDiT
from sora_core.loading import load_dit
from sora_core.pipeline import DEFAULT_CHECKPOINT
from sora_core.train.dit_stage import check_bf16, dit_optimizer, train_step

CASES = [  # (name, latent frames, latent height, latent width)
    ("64x64x17, 8x VAE", 5, 8, 8),
    ("64x64x17, 4x VAE", 5, 16, 16),
    ("96x64x17, 4x VAE", 5, 16, 24),
]
BATCH = 16


def timed_steps(dit: WanDiT, batch: tuple, bf16: bool, repeats: int) -> tuple[float, float]:
    """(median seconds per step after one warm-up, the first step's loss) for a copy of ``dit``."""
    model = copy.deepcopy(dit).train().requires_grad_(True)
    opt = dit_optimizer(model, 1e-4)
    times, first_loss = [], float("nan")
    for i in range(repeats + 1):
        start = time.perf_counter()
        loss = train_step(model, opt, bf16, *batch)
        if i == 0:
            first_loss = loss.item()
        else:
            times.append(time.perf_counter() - start)
    return statistics.median(times), first_loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    check_bf16("cpu")
    dit = load_dit(DEFAULT_CHECKPOINT)
    params = sum(p.numel() for p in dit.parameters()) / 1e6
    lines = [f"DiT training step, the shipped model's DiT ({params:.1f}M parameters), batch {BATCH}, "
             f"{dit.config.text_len} text tokens, median of {args.repeats} after a warm-up; "
             f"torch {torch.__version__}, {args.threads} threads.", "",
             "| case | tokens | fp32 s/step | bf16 s/step | time ratio | fp32 loss | bf16 loss | loss difference |",
             "|---|---|---|---|---|---|---|---|"]
    for name, t, h, w in CASES:
        gen = torch.Generator().manual_seed(1)
        shape = (BATCH, dit.config.in_dim, t, h, w)
        text = torch.randn(BATCH, dit.config.text_len, dit.config.text_dim, generator=gen)
        batch = (torch.randn(shape, generator=gen), text,
                 torch.rand(BATCH, generator=gen), torch.randn(shape, generator=gen),
                 torch.zeros(BATCH, t, dtype=torch.bool))
        fp32, loss32 = timed_steps(dit, batch, False, args.repeats)
        bf16, loss16 = timed_steps(dit, batch, True, args.repeats)
        _, ph, pw = dit.config.patch_size
        tokens = t * (h // ph) * (w // pw)
        lines.append(f"| {name} | {tokens} | {fp32:.2f} | {bf16:.2f} | {bf16 / fp32:.2f} | {loss32:.4f} | "
                     f"{loss16:.4f} | {abs(loss16 - loss32) / loss32:.2%} |")
    emit_table(lines, args.out)


if __name__ == "__main__":
    main()
