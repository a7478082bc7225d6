"""VAE decode time with the causal convolutions on oneDNN (what sora_core does) vs PyTorch's own kernel choice.

    python bench/vae_conv_path.py [--runs 7] [--threads 2] [--out docs/vae_conv_path.md]

PyTorch's CPU convolution picks its unfold-based ``slow_conv3d`` for small 5-D inputs, and a VAE decode is
a run of small inputs (a chunk of a few latent frames at 16x16). ``CausalConv3d`` sends inference to oneDNN
instead; ``CausalConv3d.prefer_onednn = False`` restores PyTorch's choice. This decodes the same latents
both ways, interleaved run by run in one process, with the default model's VAE and with the Wan 2.1 VAE
configuration (random weights), and reports each median, the ratio, and the largest difference of the
decoded pixels.
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

from measure import cpu_name, emit_table  # noqa: E402

from sora_core.config import VAE_PRESETS  # noqa: E402
from sora_core.loading import load_vae  # noqa: E402
from sora_core.pipeline import DEFAULT_CHECKPOINT  # noqa: E402
from sora_core.vae import CausalConv3d, WanVAE  # noqa: E402


def decode_times(vae: WanVAE, z: torch.Tensor, runs: int) -> tuple[list[float], list[float], float]:
    """Seconds per decode with oneDNN and with PyTorch's choice (after one warm-up of each), and the largest
    pixel difference between the two."""
    results: dict[bool, torch.Tensor] = {}
    times: dict[bool, list[float]] = {True: [], False: []}
    try:
        for i in range(runs + 1):
            for onednn in (True, False):
                CausalConv3d.prefer_onednn = onednn
                start = time.perf_counter()
                results[onednn] = vae.decode_raw(z)
                if i:
                    times[onednn].append(time.perf_counter() - start)
    finally:
        CausalConv3d.prefer_onednn = True
    return times[True], times[False], (results[True] - results[False]).abs().max().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    default = load_vae(DEFAULT_CHECKPOINT)  # the bundle's VAE alone: no DiT or text encoder to load
    torch.manual_seed(0)
    wan = WanVAE(VAE_PRESETS["wan2.1"]).eval()
    cases = [  # (name, vae, frames, height, width)
        ("default model", default, 17, 64, 64), ("default model", default, 33, 96, 64),
        ("Wan 2.1 (random weights)", wan, 17, 64, 64),
    ]
    lines = [
        "# VAE decode: oneDNN vs PyTorch's own kernel choice", "",
        f"Decode of one clip from random latents, {args.runs} interleaved runs after a warm-up, {args.threads} "
        f"CPU threads of an {cpu_name()} (torch {torch.__version__}). Produced by "
        "`python bench/vae_conv_path.py --out FILE`.", "",
        "| VAE | frames | size | oneDNN s | PyTorch's choice s | time ratio | max pixel difference |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, vae, frames, height, width in cases:
        sf, tf = vae.config.spatial_factor, vae.config.temporal_factor
        z = torch.randn(1, vae.config.z_dim, (frames - 1) // tf + 1, height // sf, width // sf)
        fast, stock, diff = decode_times(vae, z, args.runs)
        f, s = statistics.median(fast), statistics.median(stock)
        lines.append(f"| {name} | {frames} | {width}x{height} | {f:.3f} | {s:.3f} | {f / s:.2f} | {diff:.1e} |")
        print(lines[-1], flush=True)
    emit_table(lines, args.out)


if __name__ == "__main__":
    main()
