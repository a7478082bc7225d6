"""Where the default model loses its object: the anatomy of the clips that fail "present in every frame".

    python bench/presence_failures.py [--n 200] [--seed 1000] [--out docs/presence_failures.md]

Generates the prompts of bench/quality.py (same set, same seeds, so the failures are the ones behind its
presence rate) and, for every clip whose asked object is missing from some frames, reads the evaluator's
per-frame detections and sorts the failure into a kind:

- colour hand-over: the object is there throughout, but in another palette colour for some frames
  (another detected colour covers most of the frames the asked one misses);
- late start / early end: the asked colour is missing only from the first / last frames, and nothing
  stands in for it;
- gaps: missing frames in the middle, nothing standing in;
- never: the asked colour is not found at all (the clip is scored by another colour's object).

It also gives each size's diameter in DiT patches (pixels per token side: the VAE's 8x times the patch's 2x),
which latent frame the first missing frame belongs to (the causal VAE codes frame 0 alone, then frames
1-4, 5-8, ... per latent frame) and whether the VAE's own reconstruction of the rendered scene
fails the same way: a failure the VAE shares is one the DiT cannot fix.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from measure import emit_table  # noqa: E402
from quality import to_uint8, vae_results  # noqa: E402

from sora_core.conditioning import pixel_to_latent_frame  # noqa: E402
from sora_core.pipeline import generate, load_models  # noqa: E402
from sora_core.world.dataset import prompt_set  # noqa: E402
from sora_core.world.evaluate import detect_objects, score_clip  # noqa: E402
from sora_core.world.motion import radius_px  # noqa: E402

SIZES = ("small", "medium", "large")
KINDS = ("colour hand-over", "late start", "early end", "gaps", "never")


def failure_kind(asked: torch.Tensor | None, others: list[torch.Tensor]) -> str:
    """The kind of a presence failure from the asked colour's per-frame presence (None: never found) and
    the other detected colours' per-frame presence (bool tensors of the clip's length)."""
    if asked is None or not bool(asked.any()):
        return "never"
    missing = ~asked
    if any((other & missing).sum() * 2 > missing.sum() for other in others):
        return "colour hand-over"
    present = asked.nonzero().flatten()
    first, last = int(present[0]), int(present[-1])
    if bool(asked[first: last + 1].all()):
        return "late start" if first > 0 else "early end"
    return "gaps"


def strip(presence: torch.Tensor) -> str:
    return "".join("x" if p else "." for p in presence.tolist())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1000, help="bench/quality.py's prompt set and seeds")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_flush_denormal(True)
    start = time.perf_counter()
    models = load_models(args.model)
    cases = prompt_set(args.n, seed=args.seed, kind="short")
    vae_present = [r["present_ok"] for r in vae_results(models, args.n, args.seed)]
    rows, kinds, first_missing = [], collections.Counter(), collections.Counter()
    shared_with_vae = 0
    by_size = {size: [0, sum(c.scene.objects[0].size == size for c in cases)] for size in SIZES}
    for i, case in enumerate(cases):
        with torch.inference_mode():
            frames = to_uint8(generate(case.prompt, models=models, seed=args.seed + i).frames)
        if score_clip(case.scene, frames)["present_ok"]:
            continue
        obj = case.scene.objects[0]
        detections = detect_objects(frames)
        asked = next((d for d in detections if d.colour == obj.colour), None)
        others = [d for d in detections if d is not asked]
        kind = failure_kind(asked.presence if asked is not None else None, [d.presence for d in others])
        kinds[kind] += 1
        by_size[obj.size][0] += 1
        if asked is not None and bool(asked.presence.any()):
            first_missing[pixel_to_latent_frame(int((~asked.presence).nonzero()[0]), models.temporal_factor)] += 1
        shared_with_vae += not vae_present[i]
        seen = "; ".join(f"{d.colour} {strip(d.presence)}" for d in ([asked] if asked else []) + others[:2])
        rows.append(f"| {i} | {obj.size} {obj.colour} {obj.shape}, {obj.motion} {obj.speed} | {kind} | "
                    f"{'fails too' if not vae_present[i] else 'keeps it'} | `{seen}` |")
    failed = len(rows)
    patch = models.spatial_factor  # pixels per DiT token side
    w, h = models.defaults.width, models.defaults.height  # the size generate() made the clips at
    lines = [
        "# Where the default model loses its object",
        "",
        f"Model `{models.name}`, the {args.n} short prompts of `bench/quality.py` (prompt set seed {args.seed}, "
        "the same generation seeds), default settings. The object is missing from some frames in "
        f"**{failed}** clips ({failed / args.n:.1%}); the VAE's reconstruction of the rendered scene fails the "
        f"same prompt in {shared_with_vae} of them (it fails {sum(not p for p in vae_present)} of all "
        f"{args.n}). Produced by `python bench/presence_failures.py --out docs/presence_failures.md`.",
        "",
        "| kind of failure | clips |",
        "|---|---|",
        *(f"| {kind} | {kinds[kind]} |" for kind in KINDS),
        "",
        f"Failures by the size of the asked object (its diameter in DiT patches of {patch}x{patch} px, at "
        f"{w}x{h}): " + ", ".join(
            f"{size} {failed_n} of {asked_n} ({failed_n / max(asked_n, 1):.0%}; "
            f"{2 * radius_px(size, w, h) / patch:.1f} patches across)"
            for size, (failed_n, asked_n) in by_size.items()) + ".",
        "",
        "Latent frame of the first frame the asked colour is missing from (0: frame 0, 1: frames 1-4, 2: 5-8, "
        "3: 9-12, 4: 13-16): " + ", ".join(f"{k}: {v}" for k, v in sorted(first_missing.items())) + ".",
        "",
        "Each failing clip, with the per-frame presence (x: found in that frame) of the asked colour first, "
        "then up to two other detected colours:",
        "",
        "| prompt | scene object | kind | VAE reconstruction | detections |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"Run time {time.perf_counter() - start:.0f} s on {torch.get_num_threads()} CPU threads.",
    ]
    emit_table(lines, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
