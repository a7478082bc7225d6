"""python -m sora_core.train: train the default model on the synthetic world and export it.

    python -m sora_core.train --run runs/default --vae-steps 600 --dit-steps 3000 \
        --out sora_core/assets/default.safetensors

Stages run in order and resume from the run folder: a finished stage is skipped, an interrupted one
continues from its last saved step.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ..config import DiTConfig
from ..dit import WanDiT
from .decoder_stage import OBJECT_WEIGHT as DECODER_OBJECT_WEIGHT


def motion_weight(text: str) -> tuple[str, float]:
    """``--motion-weight bounce=4`` -> ("bounce", 4.0); the motion is checked against the world's."""
    from ..world.scene import MOTIONS

    motion, _, weight = text.partition("=")
    try:
        value = float(weight)
    except ValueError:
        value = -1.0
    if motion not in MOTIONS or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give MOTION=W with W > 0 and MOTION one of {', '.join(MOTIONS)}")
    return motion, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sora_core.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("runs/default"), help="folder for states and logs")
    parser.add_argument("--vae-steps", type=int, default=600)
    parser.add_argument("--vae-batch", type=int, default=8, help="9-frame clips per VAE step (longer buckets: fewer)")
    parser.add_argument("--vae-lr", type=float, default=1e-3)
    parser.add_argument("--vae-object-weight", type=float, default=0.0,
                        help="extra VAE loss weight of the pixels that show an object (0: plain mean; the "
                        f"decoder stage uses {DECODER_OBJECT_WEIGHT:g})")
    parser.add_argument("--vae-spatial", type=int, choices=(8, 4), default=None,
                        help="spatial compression of the VAE (8: Wan's; 4: four times the latent cells, so small "
                        "and fast objects keep more of their pixels, at four times the DiT's tokens); default: "
                        "the --init-from VAE's, else 8")
    parser.add_argument("--dit-steps", type=int, default=3000)
    parser.add_argument("--dit-batch", type=int, default=16)
    parser.add_argument("--dit-bf16", action="store_true",
                        help="run the DiT's forward pass in bfloat16 (autocast; weights, optimizer and EMA stay "
                        "float32): 0.7-0.8x the float32 step time on a CPU with AVX512-BF16 "
                        "(bench/train_step.py); refused where bfloat16 is emulated")
    parser.add_argument("--dit-lr", type=float, default=4e-4,
                        help="peak DiT learning rate (cosine decay to 10%% of it); lower to fine-tune gently")
    parser.add_argument("--decoder-steps", type=int, default=0,
                        help="with --decoder-only: steps of decoder fine-tuning (encoder frozen)")
    parser.add_argument("--decoder-lr", type=float, default=5e-4,
                        help="peak learning rate of the decoder fine-tuning (cosine decay to 10%% of it)")
    parser.add_argument("--decoder-fast-only", action="store_true",
                        help="with --decoder-only: fine-tune on fast-moving objects in clips of 17+ frames only")
    parser.add_argument("--decoder-width", type=int, default=1,
                        help="with --decoder-only: first make the decoder this many times wider (it starts decoding "
                        "exactly as before and the latent space is kept, so the DiT stays valid)")
    parser.add_argument("--decoder-only", action="store_true",
                        help="only fine-tune the decoder (can run beside the DiT stage: the latents do not change); "
                        "with no --decoder-steps it stops after the VAE stage")
    parser.add_argument("--object-weight", type=float, default=1.0,
                        help="DiT loss weight of the latent cells that show an object, relative to background "
                        "cells (1: plain mean)")
    parser.add_argument("--dit-patch", type=int, default=None,
                        help="spatial patch size of the DiT in latent cells (the shipped model: 2; 1 gives 4x the "
                        "tokens, so a small object spans several, at about 3x the sampling time; 4 with --vae-spatial "
                        "4 keeps the shipped model's tokens per pixel); an --init-from or --init-dit-from DiT with "
                        "other patches is converted to it (sora_core/train/repatch.py)")
    parser.add_argument("--long-scenes", type=int, default=0,
                        help="draw a bucket of 33-frame slices of 41- to 81-frame scenes this many times as often as "
                        "one whole-clip bucket (there are 6); they are trained only as extensions (known first or "
                        "last frames), so extensions take their pace from the frames they continue")
    parser.add_argument("--loop-windows", type=float, default=0.0,
                        help="share (0-1) of whole clips that end where they start (bounces, still objects) shown as "
                        "a loop's period after a lead of its last group, the window ops.loop denoises, so loops are "
                        "trained natively")
    parser.add_argument("--loop-phases", action="store_true",
                        help="start each loop window's period at a random group (for a sampler that rotates the "
                        "period between steps)")
    parser.add_argument("--motion-weight", action="append", type=motion_weight, default=[], metavar="MOTION=W",
                        help="draw the clips whose caption names this motion W times as often as others (e.g. "
                        "bounce=4, to teach a motion anew); repeat for more motions")
    parser.add_argument("--pool", type=int, default=1500,
                        help="encoded training clips per size/length bucket; a larger value on an existing run "
                        "grows its pool (the clips it has are kept, only the new ones are encoded)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto",
                        help="auto (a CUDA GPU when torch sees one, else the CPU), cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--out", type=Path, default=None, help="write the project checkpoint here at the end")
    parser.add_argument("--init-from", type=Path, default=None,
                        help="start fresh stages from this project checkpoint's weights (e.g. to train the shipped "
                        "default model further)")
    parser.add_argument("--init-dit-from", type=Path, default=None,
                        help="start a fresh DiT from this project checkpoint's DiT only, for a run whose VAE is new "
                        "(e.g. --vae-spatial 4): its blocks, text and timestep layers carry over, and it relearns "
                        "the new latent space")
    args = parser.parse_args(argv)
    if args.init_from and args.init_dit_from:
        parser.error("--init-dit-from is for a run with a new VAE; with --init-from the DiT comes from that "
                     "checkpoint already: give one of them")
    decoder_options = [f"--{dest.replace('_', '-')}" for dest in ("decoder_steps", "decoder_lr", "decoder_fast_only",
                                                                            "decoder_width")
                       if getattr(args, dest) != parser.get_default(dest)]
    if decoder_options and not args.decoder_only:
        parser.error(f"{', '.join(decoder_options)} only apply to a --decoder-only run (the decoder fine-tuning "
                     "runs as its own process beside the DiT stage); add --decoder-only or drop them")
    if args.decoder_only and args.out and not args.init_from:
        parser.error("--decoder-only with --out needs --init-from: the checkpoint whose DiT is written out beside "
                     "the fine-tuned decoder")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # fresh small weights produce denormals that slow CPU kernels badly

    from ..loading import load_dit, load_vae
    from ..text_minilm import MiniLMTextEncoder
    from .dit_stage import build_pool, load_pool, pool_needs_clips, save_pool, train_dit, training_buckets
    from .export import export_default, with_latent_stats
    from .loop import training_device
    from .vae_stage import latent_stats, train_vae, vae_config_for

    device = training_device(args.device)
    print(f"training on {device}", flush=True)

    args.run.mkdir(parents=True, exist_ok=True)
    init_vae = init_stats = None
    dit_from = args.init_from or args.init_dit_from
    init_dit_model = load_dit(dit_from) if dit_from else None
    loaded = load_vae(args.init_from) if args.init_from else None
    if args.vae_spatial is None:
        args.vae_spatial = loaded.config.spatial_factor if loaded is not None else 8
    vae_config = vae_config_for(args.vae_spatial)
    if loaded is not None:
        init_vae, init_stats = loaded.state_dict(), [list(loaded.config.latents_mean), list(loaded.config.latents_std)]
        if loaded.config.spatial_factor != args.vae_spatial:
            parser.error(f"--vae-spatial {args.vae_spatial}: the --init-from VAE compresses "
                         f"{loaded.config.spatial_factor}x; give --vae-spatial {loaded.config.spatial_factor} or "
                         "start without --init-from")
        vae_config = dataclasses.replace(vae_config, decoder_base_dim=loaded.config.decoder_base_dim)
    t0 = time.perf_counter()
    vae = train_vae(args.run, steps=args.vae_steps, batch=args.vae_batch, lr=args.vae_lr, seed=args.seed,
                    config=vae_config, init=init_vae, device=device, object_weight=args.vae_object_weight)
    t_vae = time.perf_counter() - t0
    mean, std = run_latent_stats(args.run / "latent_stats.json", init_stats if args.vae_steps == 0 else None,
                                 lambda: latent_stats(vae, args.seed))
    vae = with_latent_stats(vae, mean, std).requires_grad_(False).to(device)
    if args.decoder_only:
        from .decoder_stage import train_decoder
        from .widen import WIDEN_NOISE, widen_decoder

        if args.decoder_width > 1:  # the same widening every time, so an interrupted run resumes onto it
            vae = widen_decoder(vae, args.decoder_width, noise=WIDEN_NOISE, seed=args.seed)
        t1 = time.perf_counter()
        train_decoder(args.run, vae, steps=args.decoder_steps, lr=args.decoder_lr, seed=args.seed,
                      fast_only=args.decoder_fast_only)
        if args.out:
            export_with_new_decoder(args, init_dit_model, vae, round(time.perf_counter() - t1))
        return 0
    pool_path = args.run / "latent_pool.safetensors"
    pool = load_pool(pool_path) if pool_path.exists() else None
    buckets = training_buckets(args.long_scenes)
    if pool_needs_clips(pool, args.pool, buckets):  # a larger --pool or a new bucket grows it, keeping its clips
        pool = build_pool(vae, args.seed, args.pool, grow=pool, buckets=buckets)
        save_pool(pool, pool_path)
    t_pool = time.perf_counter() - t0 - t_vae
    text = MiniLMTextEncoder().to(device)
    dit_config, init_dit = dit_setup(args.dit_patch, init_dit_model)
    _, ema = train_dit(args.run, pool, text, steps=args.dit_steps, batch=args.dit_batch, lr=args.dit_lr,
                       seed=args.seed, init=init_dit, object_weight=args.object_weight, device=device,
                       config=dit_config, buckets=buckets, loop_windows=args.loop_windows,
                       loop_phases=args.loop_phases, bf16=args.dit_bf16, motion_weights=dict(args.motion_weight))
    t_dit = time.perf_counter() - t0 - t_vae - t_pool
    timing = {"vae_steps": args.vae_steps, "dit_steps": args.dit_steps, "pool_per_bucket": args.pool,
              "seconds_this_run": {"vae": round(t_vae), "pool": round(t_pool), "dit": round(t_dit)},
              "threads": torch.get_num_threads(), "seed": args.seed, "device": str(device),
              "object_weight": args.object_weight, "dit_lr": args.dit_lr,
              "vae_object_weight": args.vae_object_weight, "dit_patch": list(dit_config.patch_size),
              "long_scenes": args.long_scenes, "vae_spatial": args.vae_spatial,
              "loop_windows": args.loop_windows, "loop_phases": args.loop_phases, "dit_bf16": args.dit_bf16,
              "motion_weights": dict(args.motion_weight),
              "init_from": str(args.init_from) if args.init_from else None,
              "init_dit_from": str(args.init_dit_from) if args.init_dit_from else None}
    if args.init_from:  # the checkpoint this run continues keeps its own record inside this one
        from ..loading.safetensors_io import read_metadata

        timing["init_record"] = json.loads(read_metadata(args.init_from).get("training", "{}"))
    print(json.dumps(timing))
    decoder_state = args.run / "decoder_state.safetensors"
    if decoder_state.exists():  # the decoder fine-tuned beside the DiT stage
        from .state import load_state

        timing["decoder_steps"], _ = load_state(decoder_state, vae, None)
    if args.out:
        export_default(args.out, ema, vae, text, timing)
        print(f"wrote {args.out} ({args.out.stat().st_size / 2**20:.1f} MiB)")
    return 0


def export_with_new_decoder(args: argparse.Namespace, dit: torch.nn.Module, vae: torch.nn.Module, seconds: int) -> None:
    """``--decoder-only --out``: the ``--init-from`` checkpoint with its decoder replaced by the fine-tuned one;
    its training record gains the decoder fine-tuning."""
    from ..loading.safetensors_io import read_metadata
    from ..text_minilm import MiniLMTextEncoder
    from .export import export_default

    training = json.loads(read_metadata(args.init_from).get("training", "{}"))
    training["decoder_finetune"] = {"steps": args.decoder_steps, "lr": args.decoder_lr, "seed": args.seed,
                                    "fast_only": args.decoder_fast_only,
                                    "width_factor": args.decoder_width,
                                    "seconds": seconds, "threads": torch.get_num_threads()}
    export_default(args.out, dit, vae.cpu(), MiniLMTextEncoder(), training)
    print(f"wrote {args.out} ({args.out.stat().st_size / 2**20:.1f} MiB): the DiT of {args.init_from} with the "
          "fine-tuned decoder")


def dit_setup(patch: int | None, init: WanDiT | None) -> tuple[DiTConfig, dict[str, torch.Tensor] | None]:
    """(DiT config, initial state or None) for a run: the --init-from DiT's config unless ``patch`` asks for
    other spatial patches, in which case its weights are converted to them (finer or coarser)."""
    from .dit_stage import DEFAULT_DIT
    from .repatch import repatch_state

    config = init.config if init is not None else DEFAULT_DIT
    state = init.state_dict() if init is not None else None
    if patch is None or config.patch_size[1:] == (patch, patch):
        return config, state
    new = dataclasses.replace(config, patch_size=(config.patch_size[0], patch, patch))
    if state is not None:
        state = repatch_state(state, config.patch_size, new.patch_size, config.out_dim)
    return new, state


def run_latent_stats(path: Path, init_stats: Sequence[Sequence[float]] | None,
                     measure: Callable[[], tuple[list, list]]) -> tuple[list, list]:
    """The latent normalisation of a run, fixed once and kept in ``path``: a continued run whose VAE is not
    trained keeps its checkpoint's (``init_stats``: measuring again would rescale the latents the DiT
    learned on); otherwise it is measured on the run's VAE (``measure()``)."""
    if path.exists():
        mean, std = json.loads(path.read_text())
    else:
        mean, std = init_stats if init_stats is not None else measure()
        path.write_text(json.dumps([list(mean), list(std)]))
    return list(mean), list(std)


if __name__ == "__main__":
    raise SystemExit(main())
