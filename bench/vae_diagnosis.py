"""Where the default model's VAE loses objects: by speed, over the clip's time, and what a wider VAE costs.

    python bench/vae_diagnosis.py [--model default] [--n 120] [--seed 6000] [--vae-state NAME=PATH ...]
        [--out docs/vae_diagnosis.md]

1. The evaluator on the VAE's reconstruction of rendered scenes (the comparison prompts of
   bench/compare_models.py by default), presence split by the object's speed; ``--vae-state`` adds a row
   per VAE training state: ``vae_state.safetensors`` of a VAE stage, or ``decoder_state.safetensors`` of a
   ``--decoder-only`` run (both hold the whole VAE; a ``--decoder-width`` run's decoder is wider).
2. For the scenes whose reconstruction loses the object: the object's mean absolute error (of 255) per frame,
   with the clip played forwards and backwards through the VAE. If the error followed the object's position
   (e.g. the frame's border), reversing the clip would leave it on the same frames; if it follows the clip's
   time, it moves to the other end.
3. Cost of wider VAEs of the same architecture (random weights): parameters, decode time of 17 frames at 64x64,
   and one training step on four 17-frame clips.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import torch
from safetensors import safe_open

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from measure import emit_table  # noqa: E402
from quality import presence_by_speed, rate_cells, vae_results  # noqa: E402

from sora_core.pipeline import load_models  # noqa: E402
from sora_core.train.data import clip_batch, object_pixels  # noqa: E402
from sora_core.train.state import load_state  # noqa: E402
from sora_core.train.vae_stage import DEFAULT_VAE, vae_config_for, vae_loss  # noqa: E402
from sora_core.train.widen import widen_decoder  # noqa: E402
from sora_core.vae import WanVAE  # noqa: E402
from sora_core.world.dataset import prompt_set  # noqa: E402
from sora_core.world.render import render, to_model_range  # noqa: E402


def speed_row(name: str, results: list[dict[str, bool]], cases: list) -> str:
    speed = " | ".join(f"{hits}/{n}" for hits, n in presence_by_speed(results, cases).values())
    return f"| {name} | {rate_cells(results)} | {speed} |"


def object_error_per_frame(vae: WanVAE, video: torch.Tensor, objects: torch.Tensor) -> list[float]:
    """Mean absolute error (0..255) over the object pixels ``objects`` [T, H, W] of each frame of ``video``'s
    reconstruction (``video``: [1, 3, T, H, W] in [-1, 1])."""
    with torch.inference_mode():
        out = vae.decode(vae.encode(video))
    error = (out - video).abs().mean(1)[0] * 127.5  # [T, H, W]
    return [e[m].mean().item() if m.any() else 0.0 for e, m in zip(error, objects, strict=True)]


def time_or_position(vae: WanVAE, failing: list) -> list[str]:
    lines = ["| scene | played | error, first 3 frames | error, last 3 frames |", "|---|---|---|---|"]
    for case in failing:
        video = to_model_range(render(case.scene))[None]
        objects = object_pixels([case.scene], video)[0, 0]
        forwards = object_error_per_frame(vae, video, objects)
        backwards = object_error_per_frame(vae, video.flip(2), objects.flip(0))  # in the order the VAE saw them
        obj = case.scene.objects[0]
        label = f"{obj.size} {obj.colour} {obj.shape}, {obj.motion} {obj.speed}"
        for played, errors in (("forwards", forwards), ("backwards", backwards)):
            first, last = statistics.mean(errors[:3]), statistics.mean(errors[-3:])
            lines.append(f"| {label} | {played} | {first:.0f} | {last:.0f} |")
    return lines


def vae_for_state(vae: WanVAE, path: str) -> WanVAE:
    """A VAE shaped for the training state at ``path``: the checkpoint's, with its decoder widened as a
    ``--decoder-width`` run widened it, or a fresh one of a ``--vae-spatial`` run's compression (the state
    then overwrites every weight)."""
    with safe_open(path, framework="pt") as fh:  # the shape from the header: load_state reads the weights
        width = fh.get_slice("model.decoder.conv1.weight").get_shape()[0]
        info = json.loads((fh.metadata() or {}).get("info", "{}"))
    spatial = int(info.get("spatial_factor", vae.config.spatial_factor))
    if spatial != vae.config.spatial_factor:
        return WanVAE(vae_config_for(spatial, vae.config)).eval()
    factor = width // vae.decoder.conv1.out_channels
    return widen_decoder(vae, factor).eval()


def wider_vae_costs(base_dims: tuple[int, ...] = (12, 16, 24)) -> list[str]:
    lines = ["| base_dim | parameters | decode 17x64x64 | training step, 4 clips of 17 frames |", "|---|---|---|---|"]
    clips = clip_batch(0, 2, 4, [(64, 64, 17)], captions=False)
    latent = torch.randn(1, 16, 5, 8, 8)
    for base_dim in base_dims:
        torch.manual_seed(0)
        vae = WanVAE(replace(DEFAULT_VAE, base_dim=base_dim))
        with torch.inference_mode():
            vae.decode(latent)  # warm-up
            start = time.perf_counter()
            for _ in range(3):
                vae.decode(latent)
            decode = (time.perf_counter() - start) / 3
        opt = torch.optim.AdamW(vae.parameters(), lr=1e-4)
        steps = []
        for i in range(3):
            start = time.perf_counter()
            loss, _ = vae_loss(vae, clips.video, torch.Generator().manual_seed(i))
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps.append(time.perf_counter() - start)
        params = sum(p.numel() for p in vae.parameters())
        lines.append(f"| {base_dim} | {params / 1e6:.2f}M | {decode:.2f} s | {min(steps):.2f} s |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--n", type=int, default=120)
    parser.add_argument("--seed", type=int, default=6000)
    parser.add_argument("--vae-state", nargs="*", default=[], metavar="NAME=PATH",
                        help="VAE or decoder training states to score beside the checkpoint's own VAE")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    start = time.perf_counter()
    cases = prompt_set(args.n, seed=args.seed, kind="short")
    models = load_models(args.model)
    base = vae_results(models, args.n, args.seed)
    lines = [
        "# Where the VAE loses objects",
        "",
        f"Produced by `python bench/vae_diagnosis.py` (model `{args.model}`, {args.n} scenes of "
        f"`prompt_set(seed={args.seed})`, rendered and passed through the VAE; still objects count as slow).",
        "",
        "## Reconstruction of the rendered scenes, by speed",
        "",
        "| VAE | colour | shape | motion | present in every frame | all four | present: slow | present: fast |",
        "|---|---|---|---|---|---|---|---|",
        speed_row("the checkpoint's", base, cases),
    ]
    for item in args.vae_state:
        name, _, path = item.partition("=")
        vae = vae_for_state(models.vae, path)
        step, _ = load_state(path, vae, None)
        lines.append(speed_row(f"{name} (step {step})", vae_results(SimpleNamespace(vae=vae), args.n, args.seed),
                               cases))
    failing = [c for c, r in zip(cases, base, strict=True) if not r["present_ok"]]
    lines += ["", f"## Time or position? The {len(failing)} scenes whose reconstruction loses the object", "",
              "Mean absolute error (of 255) over the object's pixels, first and last three frames in the order the "
              "VAE saw them.", ""]
    lines += time_or_position(models.vae, failing)
    lines += ["", "## What a wider VAE costs (random weights, same architecture)", ""]
    lines += wider_vae_costs()
    lines += ["", f"Run time {time.perf_counter() - start:.0f} s on {torch.get_num_threads()} CPU threads."]
    emit_table(lines, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
