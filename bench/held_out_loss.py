"""The DiT's flow-matching loss on clips it trained on, on fresh clips and on held-out combinations.

    python bench/held_out_loss.py MODEL [MODEL ...] --pool RUN/latent_pool.safetensors [--n 96]
        [--sigmas 0.3,0.6,0.9] [--out FILE.md]

A lower training loss can mean a model that draws better or one that remembers its pool. Three sets of
64x64, 17-frame clips with their detailed captions tell them apart:

- **trained on**: the first ``n`` clips of that bucket of ``--pool`` (a run's latent pool; every model
  given must share the VAE that encoded it, and should have trained on those clips);
- **fresh clips**: new clips of the training split (seeds no pool uses), the same attribute combinations;
- **held-out combinations**: clips whose main object is a (colour, shape, motion) triple never trained on,
  as the benchmark's prompts are.

Each clip is scored at the same noise levels with the same noise for every model, text-to-video (no clean
frames), as the training loss is. The sets differ in difficulty (how many objects, how fast), so compare a
column between models, not the columns of one row: a loss that falls on the first set more than on the
others is memorising; one that falls on all three alike is learning.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sora_core.pipeline import SoraModels, load_models  # noqa: E402
from sora_core.train.data import clip_batch, step_rng  # noqa: E402
from sora_core.train.dit_stage import flow_loss, load_pool  # noqa: E402
from sora_core.world.caption import detailed_caption  # noqa: E402
from sora_core.world.render import render, to_model_range  # noqa: E402
from sora_core.world.scene import sample_scene  # noqa: E402

BUCKET = (64, 64, 17)
FRESH_SEED = 777_000  # pools use seeds 1000..(1000 * buckets + run seed): far from these
BATCH = 16


def fresh_clips(n: int) -> tuple[torch.Tensor, list[str]]:
    videos, captions = [], []
    for i in range(-(-n // BATCH)):
        batch = clip_batch(FRESH_SEED, i, BATCH, [BUCKET])
        videos.append(batch.video)
        captions += batch.captions
    return torch.cat(videos)[:n], captions[:n]


def held_out_clips(n: int) -> tuple[torch.Tensor, list[str]]:
    videos, captions = [], []
    for i in range(n):
        rng = step_rng(FRESH_SEED + 1, i)
        width, height, frames = BUCKET
        scene = sample_scene(rng, split="test", width=width, height=height, frames=frames)
        videos.append(to_model_range(render(scene)))
        captions.append(detailed_caption(scene, rng))
    return torch.stack(videos), captions


@torch.inference_mode()
def encode(models: SoraModels, video: torch.Tensor) -> torch.Tensor:
    return torch.cat([models.vae.encode(video[i:i + BATCH]) for i in range(0, len(video), BATCH)])


@torch.inference_mode()
def mean_loss(models: SoraModels, latents: torch.Tensor, captions: list[str], sigmas: list[float]) -> float:
    """Mean over clips and noise levels; the noise is drawn from a fixed seed, the same for every model."""
    gen = torch.Generator().manual_seed(0)
    noises = [torch.randn(latents.shape, generator=gen) for _ in sigmas]
    total = 0.0
    for start in range(0, len(latents), BATCH):
        x0 = latents[start:start + BATCH]
        context = models.text_encoder.encode(captions[start:start + BATCH]).context
        known = torch.zeros(x0.shape[0], x0.shape[2], dtype=torch.bool)
        for sigma, noise in zip(sigmas, noises, strict=True):
            s = torch.full((x0.shape[0],), sigma)
            loss = flow_loss(models.dit, x0, context, s, noise[start:start + BATCH], known)
            total += loss.item() * x0.shape[0]
    return total / (len(latents) * len(sigmas))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="checkpoints (project format) sharing the pool's VAE")
    parser.add_argument("--pool", type=Path, required=True, help="the run's latent_pool.safetensors")
    parser.add_argument("--n", type=int, default=96, help="clips per set")
    parser.add_argument("--sigmas", default="0.3,0.6,0.9", help="noise levels, comma-separated, in (0, 1)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="append the table to this Markdown file")
    args = parser.parse_args()
    sigmas = [float(s) for s in args.sigmas.split(",")]
    if not all(0 < s < 1 for s in sigmas):
        parser.error(f"--sigmas {args.sigmas}: every noise level must lie between 0 and 1")
    torch.set_num_threads(args.threads)
    start = time.perf_counter()

    pool = load_pool(args.pool)
    if BUCKET not in pool.latents or len(pool.captions[BUCKET]) < args.n:
        parser.error(f"--pool {args.pool} has fewer than {args.n} clips of {BUCKET}; lower --n")
    trained = (pool.latents[BUCKET][:args.n], pool.captions[BUCKET][:args.n])
    fresh, held = fresh_clips(args.n), held_out_clips(args.n)

    rows = ["| model | trained on | fresh clips | held-out combinations |", "|---|---|---|---|"]
    sets: list[tuple[torch.Tensor, list[str]]] = []
    vae_state: dict[str, torch.Tensor] = {}
    for path in args.models:
        models = load_models(path)
        if not sets:  # the models share one VAE: the fresh and held-out clips are encoded once
            vae_state = models.vae.state_dict()
            sets = [trained] + [(encode(models, video), captions) for video, captions in (fresh, held)]
        elif not all(torch.equal(v, vae_state[k]) for k, v in models.vae.state_dict().items()):
            parser.error(f"{path} has another VAE than {args.models[0]}: its latents are not the pool's; compare "
                         "only checkpoints that share the VAE that encoded --pool")
        cells = [mean_loss(models, latents, captions, sigmas) for latents, captions in sets]
        rows.append(f"| `{path}` | " + " | ".join(f"{c:.4f}" for c in cells) + " |")
        print(rows[-1], flush=True)
    command = "python bench/held_out_loss.py " + " ".join(sys.argv[1:])
    text = "\n".join(["```", command, "```", "", f"{args.n} clips per set, noise levels {args.sigmas}; mean "
                      "velocity MSE.", "", *rows, "", f"Run time {time.perf_counter() - start:.0f} s on "
                      f"{args.threads} CPU threads.", ""])
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
