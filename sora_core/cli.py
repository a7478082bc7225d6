"""Command line: ``python -m sora_core generate --prompt TEXT --out FILE.mp4``, ``python -m sora_core verify FILE``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from .errors import SoraError

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
VIDEO_SUFFIXES = (".mp4", ".webm", ".webp", ".gif")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sora_core", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="generate a video (or a still image with --frames 1) from a prompt")
    gen.add_argument("--prompt", required=True, help="what the video shows")
    gen.add_argument("--out", required=True, type=Path, help="output file: .mp4, .webm, .webp, .gif (or .png)")
    gen.add_argument("--negative-prompt", default=None, help="what to steer away from (default: the model's)")
    gen.add_argument("--frames", type=int, default=None, help="frame count, 4k+1 (1 makes a PNG still)")
    gen.add_argument("--width", type=int, default=None, help="pixels, a multiple of 16")
    gen.add_argument("--height", type=int, default=None, help="pixels, a multiple of 16")
    gen.add_argument("--steps", type=int, default=None, help="sampling steps")
    gen.add_argument("--cfg", type=float, default=None, help="classifier-free guidance scale (1 = off)")
    gen.add_argument("--shift", type=float, default=None,
                     help="sigma schedule shift (higher: more time at high noise)")
    gen.add_argument("--sampler", default=None, help="euler or unipc")
    gen.add_argument("--seed", type=int, default=0, help="same seed, same video on the same device")
    gen.add_argument("--fps", type=float, default=None, help="frames per second of the file")
    gen.add_argument("--model", default="default", help="'default', a bundled checkpoint, or a DiT file")
    gen.add_argument("--vae", default=None, help="VAE file, when --model is a lone DiT file")
    gen.add_argument("--text-encoder", default=None, help="text-encoder file, when --model is a lone DiT file")
    gen.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu, cuda, cuda:1 ...")
    gen.add_argument("--dtype", choices=sorted(DTYPES), default="fp32", help="weights and compute precision")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    gen.add_argument("--no-expand", action="store_true",
                     help="encode the prompt as typed (by default a model trained on detailed captions, like the "
                     "default model, gets short prompts rewritten into that style first)")
    _add_provenance_flags(gen)
    ver = sub.add_parser("verify", help="check a file for the invisible watermark and a C2PA manifest")
    ver.add_argument("file", type=Path, help="a video or image file")
    ver.add_argument("--json", action="store_true", help="print one JSON object (for scripts)")
    return parser


# ----- provenance (kept together so the rest of the CLI does not depend on it) -----


def _add_provenance_flags(gen: argparse.ArgumentParser) -> None:
    gen.add_argument("--no-watermark", action="store_true", help="do not embed the invisible watermark")
    gen.add_argument("--no-c2pa", action="store_true", help="do not sign the file with a C2PA manifest")


def _write_marked(args: argparse.Namespace, out: Path, frames: torch.Tensor, fps: float, settings: dict,
                  model: str, metadata: dict[str, str]) -> Path:
    """Write the clip watermarked and C2PA-signed (unless switched off); notes go to stderr."""
    from .provenance import sha256_json, sha256_text, write_with_provenance

    written = write_with_provenance(
        out, frames, fps=fps, watermark=not args.no_watermark, c2pa=not args.no_c2pa,
        prompt_sha256=sha256_text(args.prompt), workflow_sha256=sha256_json(settings), model=model, metadata=metadata,
    )
    marks = [f"watermark {written.watermark_payload:08x}"] if written.watermark_payload is not None else []
    if written.signed:
        marks.append("C2PA" + (" (development certificate)" if written.development_certificate else ""))
    print(f"provenance: {', '.join(marks) or 'none'}", file=sys.stderr)
    for note in written.notes:
        print(f"note: {note}", file=sys.stderr)
    return written.path


def _run_verify(args: argparse.Namespace) -> int:
    import json

    from .verify import verify_file

    if not args.file.exists():
        raise SoraError(f"no such file: {args.file}")
    report = verify_file(args.file)
    print(json.dumps(report.to_dict()) if args.json else report.to_text())
    return 0


def _output_path(out: Path, frames: int) -> Path:
    """A 1-frame request is an image: it is written as PNG whatever video suffix was asked for."""
    if frames == 1 and out.suffix.lower() in VIDEO_SUFFIXES:
        return out.with_suffix(".png")
    return out


def _run_generate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .pipeline import generate, load_models

    started = time.perf_counter()
    models = load_models(args.model, vae=args.vae, text_encoder=args.text_encoder, device=args.device,
                         dtype=DTYPES[args.dtype])
    if not models.trained:
        print(
            "NOTE: no trained default model is installed yet, so this run uses a small randomly initialised "
            "model: the pipeline works end to end, but the video will look like coloured noise.",
            file=sys.stderr,
        )
    loaded = time.perf_counter()
    frames = models.defaults.frames if args.frames is None else args.frames
    out = _output_path(args.out, frames)
    if out.suffix.lower() not in (*VIDEO_SUFFIXES, ".png"):
        raise SoraError(f"--out {args.out}: unsupported file type; use .mp4, .webm, .webp, .gif or .png")
    steps = models.defaults.steps if args.steps is None else args.steps
    bar = tqdm(total=steps, desc="sampling", unit="step", disable=args.quiet, file=sys.stderr)
    try:
        result = generate(
            args.prompt, models=models, negative_prompt=args.negative_prompt, frames=frames, width=args.width,
            height=args.height, steps=steps, cfg=args.cfg, shift=args.shift, sampler=args.sampler, seed=args.seed,
            callback=lambda info: bar.update(1), expand_prompt=not args.no_expand,
        )
    finally:
        bar.close()
    generated = time.perf_counter()
    if result.settings["encoded_prompt"] != args.prompt:
        print(f"prompt expanded to: {result.settings['encoded_prompt']}", file=sys.stderr)
    fps = args.fps or models.defaults.fps
    metadata = {"comment": f"sora_core: {result.settings}"}
    written = _write_marked(args, out, result.frames, fps, result.settings, models.name, metadata)
    if written != args.out:
        print(f"1 frame requested: wrote a still image to {written}", file=sys.stderr)
    t, h, w, _ = result.frames.shape
    print(
        f"wrote {written} ({t} frame{'s' if t > 1 else ''}, {w}x{h}): model loaded in {loaded - started:.1f} s, "
        f"generated in {generated - loaded:.1f} s, written in {time.perf_counter() - generated:.1f} s"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        if args.command == "generate":
            return _run_generate(args)
        if args.command == "verify":
            return _run_verify(args)
    except SoraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 1
