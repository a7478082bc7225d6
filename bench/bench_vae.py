"""VAE decode time and peak memory: sora_core vs diffusers' AutoencoderKLWan, same weights, in one run.

Real Wan 2.1 VAE shape (126.9M parameters, random weights), latents for 17, 33 and 81 frames at a
size this CPU decodes in reasonable time. Each (implementation, length) runs in a fresh child process
and its peak resident memory is measured from just before the decode (VmHWM reset), so it shows
what the decode itself needs. Each case runs twice: once with glibc's default allocator for the time
(what a user gets), once with ``MALLOC_MMAP_THRESHOLD_=65536`` for the memory, so that freed tensors
go back to the OS and the resident peak is the peak of live tensors rather than of heap the
allocator kept (with the default allocator the resident peak of either implementation varies by
hundreds of MiB from run to run with the order of its allocations). sora_core is measured twice:
``decode()`` (the whole clip returned as one tensor) and ``decode_iter()`` (frames streamed to a
consumer, as the CLI's writer can).

    python bench/bench_vae.py [--size 128] [--out docs/bench_vae.md]
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

FRAMES = (17, 33, 81)


def child(impl: str, weights: str, frames: int, size: int) -> dict:
    from sora_core.loading import load_vae, read_safetensors

    torch.set_flush_denormal(True)  # random weights produce denormals that slow convolutions 10-30x
    latent = torch.randn(1, 16, (frames - 1) // 4 + 1, size // 8, size // 8, generator=torch.Generator().manual_seed(0))
    if impl == "diffusers":
        from diffusers import AutoencoderKLWan

        model = AutoencoderKLWan().eval()
        sd, _ = read_safetensors(weights)
        model.load_state_dict(sd)
        del sd

        def run() -> float:
            return float(model.decode(latent).sample.sum())
    else:
        model = load_vae(weights)

        if impl == "sora_core":
            def run() -> float:
                return float(model.decode_raw(latent).sum())
        else:  # streamed: each chunk is consumed (summed) and dropped, as a file writer would
            def run() -> float:
                return sum(float(chunk.sum()) for chunk in model.decode_iter(model.normalize_latent(latent)))
    # load_vae maps the file's pages instead of copying them: fault every weight in now, so the decode's
    # peak does not count weights being paged in (diffusers' copy is resident already).
    with torch.no_grad():
        for p in model.parameters():
            p.sum()
    gc.collect()
    loaded = status_mib("VmRSS")
    reset_peak()
    start = time.perf_counter()
    with torch.inference_mode():
        checksum = run()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_mib": status_mib("VmHWM"), "loaded_mib": loaded, "checksum": checksum}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128, help="frame width and height in pixels")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--child", nargs=4, metavar=("IMPL", "WEIGHTS", "FRAMES", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        impl, weights, frames, size = args.child
        print(json.dumps(child(impl, weights, int(frames), int(size))))
        return

    from diffusers import AutoencoderKLWan

    from sora_core.loading import write_safetensors

    impls = ("diffusers", "sora_core", "sora_core_stream")
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "vae.safetensors"
        torch.manual_seed(0)
        write_safetensors(weights, AutoencoderKLWan().state_dict())
        for frames in FRAMES:
            for impl in impls:
                cmd = [sys.executable, __file__, "--child", impl, str(weights), str(frames), str(args.size)]
                timed = run_child(cmd, os.environ)
                # Big blocks go back to the OS when freed, so the resident peak follows live tensors.
                measured = run_child(cmd, {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"})
                results[(impl, frames)] = {**measured, "seconds": timed["seconds"]}
                print(frames, impl, results[(impl, frames)], file=sys.stderr)

    lines = [
        f"Wan 2.1 VAE decode (real config, random weights, fp32), {args.size}x{args.size} frames, batch 1; "
        "time with the default allocator; peak = live memory above the loaded model during the decode "
        f"(resident peak with MALLOC_MMAP_THRESHOLD_=65536); torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads.",
        "",
        "| frames | diffusers s | sora_core s | time ratio | diffusers peak MiB | sora_core peak MiB | peak ratio "
        "| streamed peak MiB | streamed / diffusers |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for frames in FRAMES:
        d, s, st = (results[(impl, frames)] for impl in impls)
        dp, sp, stp = (r["peak_mib"] - r["loaded_mib"] for r in (d, s, st))
        lines.append(
            f"| {frames} | {d['seconds']:.1f} | {s['seconds']:.1f} | {s['seconds'] / d['seconds']:.2f} | {dp:.0f} "
            f"| {sp:.0f} | {sp / dp:.2f} | {stp:.0f} | {stp / dp:.2f} |"
        )
    emit_table(lines, args.out)


if __name__ == "__main__":
    main()
