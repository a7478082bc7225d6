"""Provenance benchmark: sora_core's watermark vs imwatermark (dwtDctSvd, rivaGan) on the same clips, the false-
positive rate on unmarked clips, and the C2PA checks. Writes docs/provenance.md.

    python bench/bench_watermark.py [--clips 4] [--frames 17] [--size 480x832] [--fpr-clips 200]
                                    [--riva-clips 1] [--riva-frames 9] [--out docs/provenance.md]

Clips are procedural (tests/clips.py: pans and zooms over 1/f "natural" textures, moving shapes, film grain,
smooth gradients), so the benchmark needs no download. Every marked clip is first written as the CLI writes it
(H.264 CRF 19); each attack then starts from that file's frames and ends in a new file:

- H.264 CRF 23 / CRF 28 / VP9 (CRF 32): a plain re-encode;
- resize 50 %, centre crop 10 % (the central 90 % of width and height), every other frame dropped, 8 frames cut
  out of the middle: the edit, then H.264 CRF 23 (an edited video is saved again).

Bit accuracy is for the 32 payload bits of the clip (sora_core: after error correction; imwatermark: a majority
vote of its per-frame bits, which it has no better way to combine). A clip counts as detected when sora_core
says ``found`` (false-positive bound <= 1e-6), or, for imwatermark (which has no detection statistic), when at
least 29 of 32 bits match the payload (the chance of that by luck is 1.3e-6: a comparable bar). imwatermark
has no scale search, so after the resize it is given the frames scaled back to the original size; sora_core
gets the small frames as they are.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sora_core import __version__, provenance, videoio  # noqa: E402
from sora_core import watermark as wm  # noqa: E402
from tests.clips import KINDS, make_clip, media_offset  # noqa: E402

DETECT_BITS = 29  # imwatermark "detected": >= 29 of 32 bits right (P = 1.3e-6 by chance)


# ----------------------------------------------------------------------------------------------------------------
# Attacks: uint8 frames [T, H, W, 3] in, uint8 frames out (through a real file)


def encode_decode(frames: torch.Tensor, suffix: str, crf: int, tmp: Path) -> torch.Tensor:
    path = tmp / f"clip{suffix}"
    videoio.write_video(path, frames, fps=16, crf=crf)
    out, _ = videoio.read_video(path)
    return (out * 255).round().to(torch.uint8)


def resize(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    x = frames.permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=size, mode="bilinear", antialias=size[0] < x.shape[-2], align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def even(x: float) -> int:
    return max(2, round(x / 2) * 2)


def centre_crop(frames: torch.Tensor, keep: float) -> torch.Tensor:
    _, h, w, _ = frames.shape
    ch, cw = even(h * keep), even(w * keep)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return frames[:, y0 : y0 + ch, x0 : x0 + cw].contiguous()


def cut_middle(frames: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` frames cut out of the middle (at least one frame is kept)."""
    t = frames.shape[0]
    n = min(n, t - 1)
    start = (t - n) // 2
    return torch.cat([frames[:start], frames[start + n :]])


def attacks(tmp: Path) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    def h264(crf: int) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda f: encode_decode(f, ".mp4", crf, tmp)

    return {
        "as written (H.264 CRF 19)": lambda f: f,
        "H.264 CRF 23": h264(23),
        "H.264 CRF 28": h264(28),
        "VP9 re-encode (CRF 32)": lambda f: encode_decode(f, ".webm", 32, tmp),
        "resize to 50 %": lambda f: h264(23)(resize(f, (even(f.shape[1] / 2), even(f.shape[2] / 2)))),
        "centre crop 10 %": lambda f: h264(23)(centre_crop(f, 0.9)),
        "every other frame dropped": lambda f: h264(23)(f[::2]),
        "8 frames cut out": lambda f: h264(23)(cut_middle(f, 8)),
    }


# ----------------------------------------------------------------------------------------------------------------
# Methods


def bits_of(payload: int) -> list[int]:
    return [(payload >> (31 - i)) & 1 for i in range(32)]


class Method:
    name: str

    def embed(self, frames: torch.Tensor, payload: int) -> torch.Tensor:
        raise NotImplementedError

    def detect(self, frames: torch.Tensor, original_size: tuple[int, int], payload: int) -> tuple[list[int], bool]:
        raise NotImplementedError


class SoraCore(Method):
    name = "sora_core"

    def embed(self, frames: torch.Tensor, payload: int) -> torch.Tensor:
        return wm.embed_watermark(frames, payload)

    def detect(self, frames: torch.Tensor, original_size: tuple[int, int], payload: int) -> tuple[list[int], bool]:
        d = wm.detect_watermark(frames)
        return d.bits or [0] * 32, d.found


class ImWatermark(Method):
    def __init__(self, method: str) -> None:
        from imwatermark import WatermarkDecoder, WatermarkEncoder

        self.method, self.name = method, f"imwatermark {method}"
        self._encoder_cls, self._decoder_cls = WatermarkEncoder, WatermarkDecoder
        if method == "rivaGan":
            WatermarkEncoder.loadModel()

    def embed(self, frames: torch.Tensor, payload: int) -> torch.Tensor:
        enc = self._encoder_cls()
        enc.set_watermark("bits", bits_of(payload))
        out = [enc.encode(np.ascontiguousarray(f[..., ::-1]), self.method)[..., ::-1] for f in frames.numpy()]
        return torch.from_numpy(np.ascontiguousarray(np.stack(out)))

    def detect(self, frames: torch.Tensor, original_size: tuple[int, int], payload: int) -> tuple[list[int], bool]:
        if tuple(frames.shape[1:3]) != original_size:  # no scale search: give it the original size back
            if frames.shape[1] < original_size[0]:
                frames = resize(frames, original_size)
        dec = self._decoder_cls("bits", 32)
        votes = np.zeros(32)
        for f in frames.numpy():
            try:
                votes += np.asarray(dec.decode(np.ascontiguousarray(f[..., ::-1]), self.method), dtype=float)
            except Exception:  # e.g. a frame under its 256x256 minimum: no vote
                votes += 0.5
        bits = [int(v > len(frames) / 2) for v in votes]
        return bits, sum(a == b for a, b in zip(bits, bits_of(payload), strict=True)) >= DETECT_BITS


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.float() - b.float()).square().mean().item()
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


# ----------------------------------------------------------------------------------------------------------------
# Runs


@dataclass
class Tally:
    accuracy: dict[str, list[float]] = field(default_factory=dict)
    detected: dict[str, list[bool]] = field(default_factory=dict)
    psnr: list[float] = field(default_factory=list)
    embed_ms: list[float] = field(default_factory=list)
    detect_ms: list[float] = field(default_factory=list)


def run_robustness(method: Method, clips: list[torch.Tensor], tmp: Path, tally: Tally) -> None:
    rng = random.Random(1)
    for i, clip in enumerate(clips):
        payload = rng.getrandbits(32)
        t0 = time.perf_counter()
        marked = method.embed(clip, payload)
        tally.embed_ms.append((time.perf_counter() - t0) * 1000 / clip.shape[0])
        tally.psnr.append(psnr(marked, clip))
        written = encode_decode(marked, ".mp4", 19, tmp)
        for name, attack in attacks(tmp).items():
            attacked = attack(written)
            t0 = time.perf_counter()
            bits, found = method.detect(attacked, tuple(clip.shape[1:3]), payload)
            if name.startswith("as written"):
                tally.detect_ms.append((time.perf_counter() - t0) * 1000 / attacked.shape[0])
            acc = sum(a == b for a, b in zip(bits, bits_of(payload), strict=True)) / 32
            tally.accuracy.setdefault(name, []).append(acc)
            tally.detected.setdefault(name, []).append(found)
        print(f"  {method.name} clip {i + 1}/{len(clips)}: "
              + " ".join(f"{a[-1]:.2f}{'+' if d[-1] else '-'}"
                         for a, d in zip(tally.accuracy.values(), tally.detected.values(), strict=True)), flush=True)


def run_false_positives(n: int, tmp: Path) -> tuple[int, list[float], int]:
    """sora_core's detector on n unmarked clips of mixed kinds, sizes, lengths and H.264 quality."""
    sizes = [(256, 256), (320, 576), (480, 832), (176, 320), (384, 384), (240, 416)]
    rng = random.Random(7)
    found, scores, crc_ok = 0, [], 0
    for i in range(n):
        h, w = sizes[i % len(sizes)]
        frames = rng.choice([9, 17, 33])
        clip = make_clip(KINDS[i % len(KINDS)], frames, h, w, seed=10_000 + i)
        clip = encode_decode(clip, ".mp4", rng.choice([19, 23, 28]), tmp)
        d = wm.detect_watermark(clip)
        found += d.found
        crc_ok += d.crc_ok
        scores.append(d.score)
        if (i + 1) % 25 == 0:
            print(f"  unmarked {i + 1}/{n}: found {found}, max score {max(scores):.2f}", flush=True)
    return found, scores, crc_ok


def run_timing(methods: list[Method], size: tuple[int, int], frames: int) -> dict[str, tuple[float, float]]:
    """ms per frame to embed and to detect at ``size``, interleaved so a busy machine slows all alike."""
    clip = make_clip("pan", frames, *size, seed=99)
    out: dict[str, tuple[float, float]] = {}
    for method in methods:
        marked = method.embed(clip[:2], 1)  # warm-up (model loading, caches)
        t0 = time.perf_counter()
        marked = method.embed(clip, 0x5EC0)
        t1 = time.perf_counter()
        method.detect(marked, size, 0x5EC0)
        t2 = time.perf_counter()
        out[method.name] = ((t1 - t0) * 1000 / frames, (t2 - t1) * 1000 / frames)
        print(f"  timing {method.name}: embed {out[method.name][0]:.1f} ms/frame, "
              f"detect {out[method.name][1]:.1f} ms/frame", flush=True)
    return out


def run_c2pa(tmp: Path) -> list[dict]:
    """Sign each supported type, verify, flip one byte of the picture data, verify again, read the manifest."""
    os.environ["SORA_C2PA_DIR"] = str(tmp / "c2pa")
    clip = make_clip("shapes", 17, 240, 416, seed=5)
    prompt_sha, workflow_sha = provenance.sha256_text("a red circle"), provenance.sha256_json({"steps": 8})
    rows = []
    for suffix in (".mp4", ".png", ".webp", ".gif"):
        path = tmp / f"signed{suffix}"
        frames = clip[:1] if suffix == ".png" else clip
        videoio.write_video(path, frames, fps=16)
        provenance.sign_file(path, prompt_sha256=prompt_sha, workflow_sha256=workflow_sha, model="bench")  # warm
        videoio.write_video(path, frames, fps=16)
        t0 = time.perf_counter()
        provenance.sign_file(path, prompt_sha256=prompt_sha, workflow_sha256=workflow_sha, model="bench")
        sign_ms = (time.perf_counter() - t0) * 1000
        report = provenance.verify_c2pa(path)
        tampered = tmp / f"tampered{suffix}"
        data = bytearray(path.read_bytes())
        data[media_offset(bytes(data), suffix)] ^= 0x01
        tampered.write_bytes(bytes(data))
        bad = provenance.verify_c2pa(tampered)
        root = (tmp / "c2pa" / "dev" / "root.pem").read_text()
        rows.append({
            "type": suffix, "sign_ms": sign_ms, "state": report.state,
            "trusted_with_root": provenance.verify_c2pa(path, trust_anchors=root).state,
            "tampered": bad.state, "tamper_errors": ", ".join(bad.errors),
            "generator": f"{report.generator} {report.generator_version}",
            "source_type": (report.digital_source_type or "").rsplit("/", 1)[-1], "actions": ", ".join(report.actions),
            "hashes_match": report.generation.get("prompt_sha256") == prompt_sha
            and report.generation.get("workflow_sha256") == workflow_sha,
        })
        print(f"  C2PA {suffix}: {rows[-1]}", flush=True)
    return rows


# ----------------------------------------------------------------------------------------------------------------
# Report


def decision(results: dict[str, Tally], timing: dict) -> str:
    """The choice, from the numbers: which attacks each method missed, and the speed ratio."""
    missed = {name: [a for a, d in t.detected.items() if not all(d)] for name, t in results.items()}
    parts = []
    for name, attacks_missed in missed.items():
        parts.append(f"{name} " + (f"missed clips after: {', '.join(attacks_missed)}" if attacks_missed
                                   else "detected every clip after every attack"))
    ours = timing["sora_core"]
    speed = ", ".join(f"{(t[0] + t[1]) / (ours[0] + ours[1]):.0f}x slower than sora_core (embed + detect)"
                      f" for {n}" for n, t in timing.items() if n != "sora_core")
    return (
        "**Decision: sora_core's own watermark** (`sora_core/watermark.py`). On these clips " + "; ".join(parts)
        + f". Speed: {speed}. Beyond the numbers, it is the only one with a real detection threshold (a stated "
        "false-positive rate, a CRC-checked payload), it is built to find the pattern after resizing and "
        "cropping (dwtDctSvd works on a fixed pixel grid, even when given the original size back after the "
        "resize; rivaGan copes, at hundreds of times the cost), and it runs in "
        "torch on the frames' device, with no opencv, onnxruntime or model weights."
    )


def write_report(out: Path, args: argparse.Namespace, results: dict[str, Tally], timing: dict, fpr: tuple,
                 c2pa_rows: list[dict], riva_frames: int) -> None:
    h, w = args.size
    names = list(results)
    found, scores, crc_ok = fpr
    cpu = platform.processor() or platform.machine()
    lines = [
        "# Provenance: watermark and C2PA",
        "",
        f"Produced by `python bench/bench_watermark.py {' '.join(sys.argv[1:])}` (sora_core {__version__}, "
        f"torch {torch.__version__}, {os.cpu_count()} CPU cores ({cpu}), {torch.get_num_threads()} threads; the "
        "machine was shared with other jobs, so absolute times are rough; the methods were timed back to back).",
        "",
        "Every file sora_core writes (CLI `generate`, the `SoraSaveVideo` node) carries two marks by default: an "
        "invisible watermark in the pictures, which survives re-encoding, resizing, cropping and trimming, and a "
        "signed C2PA manifest, which says exactly what made the file but is lost when the file is re-encoded. "
        "`python -m sora_core verify [--json] FILE` and the `SoraVerifyVideo` node check both.",
        "",
        "## Which watermark",
        "",
        f"Same clips for every method: {args.clips} procedural clips of {args.frames} frames at {w}x{h} "
        f"({', '.join(KINDS[: args.clips])}), rivaGan on the first {min(args.riva_clips, args.clips)} of them cut "
        f"to {riva_frames} frames (it needs seconds a frame here). How the attacks, the bit accuracy and "
        "'detected' are defined is in the script's docstring; in short: every attack ends in a new H.264/VP9 file, "
        "sora_core combines the whole clip and corrects errors, imwatermark gets a per-bit majority vote over "
        "frames, and a detection must be as unlikely by chance as 1e-6.",
        "",
        "Bit accuracy of the 32-bit payload (mean over clips) / share of clips detected:",
        "",
        "| attack | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for attack in results[names[0]].accuracy:
        cells = []
        for name in names:
            t = results[name]
            acc, det = t.accuracy.get(attack, []), t.detected.get(attack, [])
            cells.append(f"{statistics.mean(acc):.3f} / {sum(det)}/{len(det)}" if acc else "-")
        lines.append(f"| {attack} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Quality and speed:",
        "",
        f"| | {' | '.join(names)} |",
        "|---|" + "---|" * len(names),
        "| PSNR marked vs unmarked, mean (min) dB | "
        + " | ".join(f"{statistics.mean(results[n].psnr):.2f} ({min(results[n].psnr):.2f})" for n in names) + " |",
        f"| embed ms/frame at {w}x{h} (CPU) | " + " | ".join(f"{timing[n][0]:.1f}" for n in names) + " |",
        f"| detect ms/frame at {w}x{h} (CPU) | " + " | ".join(f"{timing[n][1]:.1f}" for n in names) + " |",
        "",
        "sora_core's detector reads the clip once and has a fixed cost per clip (period search, correlation), so "
        f"its ms/frame falls with longer clips; timing used {args.timing_frames} frames.",
        "",
        decision(results, timing),
        "",
        "## False positives",
        "",
        f"sora_core's detector on {len(scores)} unmarked clips (all kinds, sizes from 176x320 to 480x832, 9-33 "
        "frames, H.264 CRF 19/23/28): "
        f"**{found} found** (goal 0). Sync scores: median {statistics.median(scores):.2f}, max {max(scores):.2f} "
        f"(a clip is marked at a false-positive bound of {wm.FALSE_POSITIVE_RATE:g}: a score of 6.5-7.0 alone, "
        f"4.5-5.2 with a valid payload CRC, depending on how many periods were tried); the payload CRC passed by "
        f"chance on {crc_ok} of them.",
        "",
        "The bound: under 'no mark' the correlation surface is close to standard normal at every shift, so the "
        "chance that the best of M tested shifts and periods reaches a score z is at most M Q(z) (Q: the normal "
        "tail); at 480x832, M is 87 040 (the four native periods) or 234 496 (plus nine around an estimated one), "
        "and z = 6.7 or 6.8 brings M Q(z) to 1e-6. A valid CRC-16 on the decoded payload multiplies it by 2^-16.",
        "",
        "## C2PA",
        "",
        "Each type signed with the development certificate (thumbnails off), read back, then one byte in the "
        "middle of the picture data changed:",
        "",
        "| type | sign ms | state | with the dev root as trust anchor | one byte changed | generator | source type "
        "| actions | prompt/workflow hashes read back |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in c2pa_rows:
        lines.append(
            f"| {r['type']} | {r['sign_ms']:.1f} | {r['state']} | {r['trusted_with_root']} | {r['tampered']} "
            f"({r['tamper_errors']}) | {r['generator']} | {r['source_type']} | {r['actions']} | "
            f"{'yes' if r['hashes_match'] else 'NO'} |"
        )
    lines += [
        "",
        "`valid` is what a file signed with the local development certificate reads as: intact and well signed, "
        "but by a certificate nobody trusts. With your own certificate in the config folder, and its root in a "
        "verifier's trust list (here: `trust.pem` in the same folder), it reads `trusted`.",
        "",
        "## How the watermark works",
        "",
        "See the docstring of `sora_core/watermark.py`. In short: the 32-bit payload gets a CRC-16 and a rate-1/2 "
        "convolutional code (108 coded bits, soft-decision Viterbi); a key shuffles them, 7 cells each, with a "
        "known sync pattern over a 32x32-cell tile that repeats over the frame and is the same in every frame; it "
        "is added to luma only, shaped by a texture mask, at an RMS of 2.4 levels (about 40.4 dB PSNR). The "
        "detector averages the clip's frames, finds the repeat period (the native ones, or one estimated from the "
        "autocorrelation after a resize), folds the frame into one tile, whitens it and finds the pattern's shift "
        "by FFT correlation; the z-score of that peak is the evidence. The key is public (anyone can check a "
        "file): this mark survives ordinary handling, not a determined attack.",
        "",
        "## Setting up your certificate",
        "",
        "Put `cert.pem` (your certificate chain, end-entity first) and `key.pem` (its private key) in "
        "`~/.config/sora_core/c2pa/` (or the folder `$SORA_C2PA_DIR` names); optionally `trust.pem` with the roots "
        "to trust when verifying. The end-entity certificate needs KeyUsage digitalSignature (critical), an "
        "Authority Key Identifier and ExtendedKeyUsage emailProtection. Without them, a development certificate is "
        "made once in `dev/` there, and files signed with it read as `valid` (untrusted).",
        "",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


def parse_size(text: str) -> tuple[int, int]:
    w, h = (int(v) for v in text.lower().split("x"))
    return h, w


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--size", type=parse_size, default=(480, 832), help="WIDTHxHEIGHT, e.g. 832x480")
    parser.add_argument("--fpr-clips", type=int, default=200)
    parser.add_argument("--riva-clips", type=int, default=1)
    parser.add_argument("--riva-frames", type=int, default=9)
    parser.add_argument("--timing-frames", type=int, default=9)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "provenance.md")
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    try:
        import imwatermark  # noqa: F401
    except ImportError:
        sys.exit("imwatermark is missing: pip install --no-deps invisible-watermark opencv-python-headless "
                 "PyWavelets onnxruntime (or scripts/setup.sh --test)")
    h, w = args.size
    kinds = [KINDS[i % len(KINDS)] for i in range(args.clips)]
    clips = [make_clip(k, args.frames, h, w, seed=100 + i) for i, k in enumerate(kinds)]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        ours, dwt, riva = SoraCore(), ImWatermark("dwtDctSvd"), ImWatermark("rivaGan")
        print("timing", flush=True)
        timing = run_timing([ours, dwt, riva], (h, w), args.timing_frames)
        results: dict[str, Tally] = {}
        for method in (ours, dwt):
            print(f"robustness: {method.name}", flush=True)
            results[method.name] = Tally()
            run_robustness(method, clips, tmp, results[method.name])
        riva_frames = min(args.riva_frames, args.frames)
        print(f"robustness: {riva.name}", flush=True)
        results[riva.name] = Tally()
        run_robustness(riva, [c[:riva_frames] for c in clips[: args.riva_clips]], tmp, results[riva.name])
        print("false positives", flush=True)
        fpr = run_false_positives(args.fpr_clips, tmp)
        print("C2PA", flush=True)
        c2pa_rows = run_c2pa(tmp)
    write_report(args.out, args, results, timing, fpr, c2pa_rows, riva_frames)


if __name__ == "__main__":
    main()
