"""What a checkpoint's VAE draws when a clip's first latent frame is a 4-frame group instead of a first frame.

    python bench/group_windows.py [--model default] [--n 40] [--seed 5] [--out docs/group_windows.md]
                                  [--sheet docs/group_windows.png]

The causal VAE codes a clip's frame 0 alone and every later latent frame from 4 frames. A DiT that opens a
text-to-video clip on a group latent (as training on mid-clip windows without known frames taught it to) hands
the decoder a latent it decodes as a lone first frame. This bench shows what that looks like without any DiT:
n rendered 33-frame scenes (one object) are encoded, and their latent frames 2-6 (pixel frames 5-24) are
decoded once in place (the whole clip) and once as a clip of their own. For each, the asked colour's per-frame
presence (the world's evaluator) in the 17 frames both decodes cover. Only the VAE runs: about a minute
for 40 scenes on 2 CPU threads.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from measure import emit_table  # noqa: E402
from presence_failures import strip  # noqa: E402

from sora_core.pipeline import load_models  # noqa: E402
from sora_core.world.dataset import sample_clip  # noqa: E402
from sora_core.world.evaluate import detect_objects  # noqa: E402
from sora_core.world.render import from_model_range, to_model_range  # noqa: E402

WINDOW = slice(2, 7)  # latent frames 2-6: a window opening on a group, as a mid-clip training window does


def presence_of(frames: torch.Tensor, colour: str) -> torch.Tensor:
    """Per-frame presence of ``colour`` in uint8 frames ``[T, H, W, 3]`` (all False if never detected)."""
    found = next((d for d in detect_objects(frames) if d.colour == colour), None)
    return found.presence if found is not None else torch.zeros(frames.shape[0], dtype=torch.bool)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--sheet", type=Path, help="PNG: per scene, the in-place frames above the window's own")
    args = parser.parse_args()
    torch.set_num_threads(2)

    vae = load_models(args.model).vae
    tf = vae.config.temporal_factor
    first_pixel = 1 + (WINDOW.start - 1) * tf  # frame 0 is coded alone, then groups of tf frames
    rng = random.Random(args.seed)
    rows, sheet_rows = [], []
    counts = {"in place: frame 0": 0, "in place: every frame": 0, "own clip: frame 0": 0, "own clip: every frame": 0}
    for i in range(args.n):
        rendered, scene, _ = sample_clip(rng, frames=33, n_objects=1)
        with torch.inference_mode():
            z = vae.encode(to_model_range(rendered)[None])
            whole = from_model_range(vae.decode(z)[0])
            window = from_model_range(vae.decode(z[:, :, WINDOW])[0])
        in_place = whole[first_pixel: first_pixel + window.shape[0]]
        obj = scene.objects[0]
        placed, alone = presence_of(in_place, obj.colour), presence_of(window, obj.colour)
        counts["in place: frame 0"] += bool(placed[0])
        counts["in place: every frame"] += bool(placed.all())
        counts["own clip: frame 0"] += bool(alone[0])
        counts["own clip: every frame"] += bool(alone.all())
        others = [d for d in detect_objects(window) if d.colour != obj.colour]
        stand_in = "; ".join(f"{d.colour} `{strip(d.presence)}`" for d in others[:2]) or "-"
        rows.append(f"| {i} | {obj.size} {obj.colour} {obj.shape}, {obj.motion} {obj.speed} | `{strip(placed)}` | "
                    f"`{strip(alone)}` | {stand_in} |")
        if args.sheet and len(sheet_rows) < 16:
            sheet_rows += [torch.cat(list(in_place[:9]), 1), torch.cat(list(window[:9]), 1)]

    n = args.n
    lines = [
        "# A clip opening on a group latent: what the VAE draws",
        "",
        f"Model `{args.model}`'s VAE; {n} rendered 33-frame scenes (one object, seed {args.seed}). Latent frames 2-6 "
        "are decoded in place (within the whole clip) and as a clip of their own, where the decoder takes latent "
        "frame 2, a 4-frame group, for a lone first frame. The asked colour is found (the world's evaluator) in:",
        "",
        "| decoded | frame 0 | every frame |",
        "|---|---|---|",
        f"| in place | {counts['in place: frame 0']} of {n} | {counts['in place: every frame']} of {n} |",
        f"| as its own clip | {counts['own clip: frame 0']} of {n} | {counts['own clip: every frame']} of {n} |",
        "",
        f"Produced by `python bench/group_windows.py --model {args.model} --n {n} --seed {args.seed}`.",
        "",
        "| scene | object | asked colour in place | as own clip | other colours in the own clip |",
        "|---|---|---|---|---|",
        *rows,
    ]
    emit_table(lines, args.out)
    if args.sheet and sheet_rows:
        from PIL import Image

        args.sheet.parent.mkdir(parents=True, exist_ok=True)
        image = torch.cat(sheet_rows, 0).numpy()
        Image.fromarray(image).save(args.sheet)


if __name__ == "__main__":
    main()
