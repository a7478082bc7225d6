"""DiT forward time and peak memory: sora_core vs diffusers, same weights and shapes, one run.

Each (implementation, case) runs in its own fresh child process, so peak RSS is not polluted by
the other implementation; both load the same safetensors file. Output: a Markdown table with the
ratios sora_core / diffusers (time: < 1 is faster; memory: < 1 is lower).

    python bench/bench_dit.py [--layers 4] [--repeats 3] [--out docs/bench_dit.md]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from measure import emit_table, reset_peak, run_child, status_mib

CASES = [  # (name, latent T, H, W, dtype); bf16 only with --bf16: CPUs without AVX512-BF16 emulate it slowly
    ("17f 256x256 fp32", 5, 32, 32, "fp32"),
    ("33f 320x320 fp32", 9, 40, 40, "fp32"),
    ("33f 480x480 fp32", 9, 60, 60, "fp32"),
]
BF16_CASES = [("17f 256x256 bf16", 5, 32, 32, "bf16")]
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def child(impl: str, weights: str, layers: int, case: list, repeats: int) -> dict:
    """Runs in a fresh process: load, warm up, time `repeats` forwards, report peaks."""
    from sora_core.config import DIT_PRESETS
    from sora_core.loading import load_dit, read_safetensors

    _, t, h, w, dt = case
    dtype = DTYPES[dt]
    cfg = DIT_PRESETS["wan2.1-t2v-1.3B"]
    gc.collect()
    base = status_mib("VmRSS")
    if impl == "sora_core":
        model = load_dit(weights, dtype=dtype)
        call = lambda x, ts, ctx: model(x, ts, ctx)  # noqa: E731
    else:
        from diffusers import WanTransformer3DModel

        sd, _ = read_safetensors(weights)
        model = WanTransformer3DModel(
            num_attention_heads=cfg.num_heads, attention_head_dim=cfg.head_dim, ffn_dim=cfg.ffn_dim,
            num_layers=layers, text_dim=cfg.text_dim, freq_dim=cfg.freq_dim,
            cross_attn_norm=True, qk_norm="rms_norm_across_heads",
        )
        model.load_state_dict(sd)
        del sd
        model = model.to(dtype).eval()
        call = lambda x, ts, ctx: model(x, ts, ctx).sample  # noqa: E731
    # Touch every weight so memory-mapped pages count as loaded before the baseline is taken.
    with torch.no_grad():
        for p in model.parameters():
            p.float().sum()
    gc.collect()
    loaded = status_mib("VmRSS")
    reset_peak()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 16, t, h, w, generator=gen).to(dtype)
    ctx = torch.randn(1, 512, cfg.text_dim, generator=gen).to(dtype)
    ts = torch.tensor([500.0])
    times = []
    with torch.inference_mode():
        out = call(x, ts, ctx)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            out = call(x, ts, ctx)
            times.append(time.perf_counter() - start)
    times.sort()
    return {
        "impl": impl, "median_s": times[len(times) // 2], "peak_mib": status_mib("VmHWM"), "loaded_mib": loaded,
        "weights_mib": loaded - base, "out_sum": float(out.float().sum()),
    }


def make_weights(path: Path, layers: int) -> None:
    """A 1.3B-wide DiT with `layers` blocks, random weights, saved in diffusers' layout."""
    from diffusers import WanTransformer3DModel

    from sora_core.config import DIT_PRESETS
    from sora_core.loading import write_safetensors

    cfg = DIT_PRESETS["wan2.1-t2v-1.3B"]
    torch.manual_seed(0)
    model = WanTransformer3DModel(
        num_attention_heads=cfg.num_heads, attention_head_dim=cfg.head_dim, ffn_dim=cfg.ffn_dim, num_layers=layers,
        text_dim=cfg.text_dim, freq_dim=cfg.freq_dim, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
    )
    write_safetensors(path, model.state_dict())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=4, help="blocks of the 1.3B-wide DiT (the real one has 30)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown table here too")
    parser.add_argument("--bf16", action="store_true", help="add a bf16 case")
    parser.add_argument("--child", nargs=4, metavar=("IMPL", "WEIGHTS", "LAYERS", "CASE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        impl, weights, layers, case = args.child
        print(json.dumps(child(impl, weights, int(layers), json.loads(case), args.repeats)))
        return

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "dit.safetensors"
        make_weights(weights, args.layers)
        cases = CASES + (BF16_CASES if args.bf16 else [])
        for case in cases:
            result = {}
            for impl in ("diffusers", "sora_core"):
                cmd = [sys.executable, __file__, "--repeats", str(args.repeats), "--child", impl, str(weights),
                       str(args.layers), json.dumps(case)]
                result[impl] = run_child(cmd, os.environ)
            rows.append((case, result))
            print(case[0], json.dumps(result), file=sys.stderr)

    tokens = {c[0]: c[1] * c[2] * c[3] // 4 for c in CASES + BF16_CASES}
    lines = [
        f"DiT forward, Wan 1.3B width (dim 1536, ffn 8960, 12 heads), {args.layers} blocks, random weights, "
        f"batch 1, 512 text tokens, median of {args.repeats} after a warm-up; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads.",
        "",
        "| case | tokens | diffusers s | sora_core s | time ratio | diffusers peak MiB | sora_core peak MiB "
        "| peak ratio | diffusers act. MiB | sora_core act. MiB | act. ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case, r in rows:
        d, s = r["diffusers"], r["sora_core"]
        act_d = d["peak_mib"] - d["loaded_mib"]
        act_s = s["peak_mib"] - s["loaded_mib"]
        lines.append(
            f"| {case[0]} | {tokens[case[0]]} | {d['median_s']:.3f} | {s['median_s']:.3f} | "
            f"{s['median_s'] / d['median_s']:.2f} | {d['peak_mib']:.0f} | {s['peak_mib']:.0f} | "
            f"{s['peak_mib'] / d['peak_mib']:.2f} | {act_d:.0f} | {act_s:.0f} | {act_s / act_d:.2f} |"
        )
    emit_table(lines, args.out)


if __name__ == "__main__":
    main()
