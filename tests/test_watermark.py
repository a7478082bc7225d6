"""The invisible watermark: payload coding, quality, robustness to the attacks of docs/provenance.md, false positives.

Clips are procedural (tests/clips.py) at 256x448 (a quarter of 480x832's pixels) so the suite stays quick; the
benchmark (bench/bench_watermark.py) runs the same attacks at 480x832 against imwatermark.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sora_core import videoio
from sora_core import watermark as wm
from sora_core.errors import InputError
from tests.clips import KINDS, make_clip

PAYLOAD = 0xC0FFEE11
SIZE = (256, 448)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.float() - b.float()).square().mean().item()
    return 10 * np.log10(255.0**2 / mse)


def roundtrip(frames: torch.Tensor, tmp_path, suffix: str = ".mp4", crf: int = 23) -> torch.Tensor:
    path = tmp_path / f"clip{suffix}"
    videoio.write_video(path, frames, fps=16, crf=crf)
    out, _ = videoio.read_video(path)
    return (out * 255).round().to(torch.uint8)


def resize(frames: torch.Tensor, scale: float) -> torch.Tensor:
    x = frames.permute(0, 3, 1, 2).float()
    size = (round(x.shape[-2] * scale / 2) * 2, round(x.shape[-1] * scale / 2) * 2)
    x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def centre_crop(frames: torch.Tensor, keep: float) -> torch.Tensor:
    _, h, w, _ = frames.shape
    ch, cw = round(h * keep / 2) * 2, round(w * keep / 2) * 2
    return frames[:, (h - ch) // 2 : (h - ch) // 2 + ch, (w - cw) // 2 : (w - cw) // 2 + cw].contiguous()


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A marked 33-frame clip as the CLI writes it (H.264 CRF 19), decoded."""
    clip = make_clip("shapes", 33, *SIZE, seed=3)
    return roundtrip(wm.embed_watermark(clip, PAYLOAD), tmp_path_factory.mktemp("wm"), crf=19)


# ----- payload coding -----------------------------------------------------------------------------------------


def test_payload_code_round_trips_and_corrects_errors():
    rng = np.random.default_rng(0)
    for payload in (0, 1, 0xFFFFFFFF, 0xDEADBEEF, int(rng.integers(0, 2**32))):
        coded = wm.encode_payload(payload)
        assert len(coded) == 108
        soft = np.array(coded, dtype=float) * 2 - 1
        bits, ok = wm.decode_payload(soft)
        assert ok and int("".join(map(str, bits[:32])), 2) == payload
        # Five hard errors spread over the codeword, plus noise: still decoded.
        noisy = soft + rng.normal(0, 0.5, soft.shape)
        noisy[[3, 25, 50, 75, 100]] *= -1
        bits, ok = wm.decode_payload(noisy)
        assert ok and int("".join(map(str, bits[:32])), 2) == payload


def test_crc_flags_a_payload_that_cannot_be_decoded():
    rng = np.random.default_rng(1)
    fails = sum(not wm.decode_payload(rng.normal(0, 1, 108))[1] for _ in range(200))
    assert fails >= 198  # noise passes the CRC-16 about once in 65 536


# ----- embedding ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_psnr_is_at_least_40_db(kind):
    clip = make_clip(kind, 5, *SIZE, seed=11)
    marked = wm.embed_watermark(clip, PAYLOAD)
    assert psnr(marked, clip) >= 40.0


def test_float_uint8_single_frame_and_alpha_keep_layout():
    clip = make_clip("pan", 3, 96, 160, seed=0)
    as_float = clip.float() / 255
    out = wm.embed_watermark(as_float, 7)
    assert out.dtype == torch.float32 and out.shape == clip.shape and 0 <= out.min() and out.max() <= 1
    out8 = wm.embed_watermark(clip, 7)
    assert out8.dtype == torch.uint8 and out8.shape == clip.shape
    # The float and uint8 paths embed the same change (up to rounding).
    assert (out * 255 - out8.float()).abs().max() <= 1.0 + 1e-4
    single = wm.embed_watermark(clip[0], 7)
    assert single.shape == clip[0].shape
    rgba = torch.cat([as_float, torch.full((3, 96, 160, 1), 0.5)], dim=-1)
    out4 = wm.embed_watermark(rgba, 7)
    assert out4.shape == rgba.shape and torch.equal(out4[..., 3], rgba[..., 3])
    assert torch.equal(wm.embed_watermark(clip, 7), out8)  # deterministic


def test_bad_inputs_say_what_is_wrong():
    clip = make_clip("pan", 2, 64, 64, seed=0)
    with pytest.raises(InputError, match="payload"):
        wm.embed_watermark(clip, 2**32)
    with pytest.raises(InputError, match="payload"):
        wm.embed_watermark(clip, -1)
    with pytest.raises(InputError, match="strength"):
        wm.embed_watermark(clip, 1, strength=0)
    with pytest.raises(InputError, match=r"\[T, H, W, 3\]"):
        wm.embed_watermark(clip.permute(0, 3, 1, 2), 1)
    with pytest.raises(InputError, match="dtype"):
        wm.embed_watermark(clip.to(torch.int32), 1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_the_frames_device():
    clip = make_clip("shapes", 9, *SIZE, seed=2).cuda()
    marked = wm.embed_watermark(clip.float() / 255, PAYLOAD)
    assert marked.device == clip.device
    found = wm.detect_watermark(marked)
    assert found.found and found.payload == PAYLOAD


def test_visible_label_changes_only_its_corner():
    clip = make_clip("smooth", 2, 128, 256, seed=0).float() / 255
    out = wm.draw_label(clip, "AI-generated")
    changed = (out - clip).abs().sum(dim=(0, 3)) > 0
    rows, cols = changed.nonzero(as_tuple=True)
    assert rows.min() > 128 // 2 and cols.min() > 256 // 2  # bottom-right
    assert torch.equal(wm.draw_label(clip, "  "), clip)


# ----- detection and robustness -------------------------------------------------------------------------------


def test_lossless_marked_frames_give_the_payload():
    clip = make_clip("pan", 9, *SIZE, seed=4)
    found = wm.detect_watermark(wm.embed_watermark(clip, PAYLOAD))
    assert found.found and found.crc_ok and found.payload == PAYLOAD
    assert found.confidence > 1 - 1e-9 and found.period == pytest.approx(128)  # 32 cells of 4 px
    assert found.payload_hex() == "c0ffee11"


def test_unmarked_and_other_key_are_not_found():
    clip = make_clip("noise", 9, *SIZE, seed=5)
    assert not wm.detect_watermark(clip).found
    assert not wm.detect_watermark(wm.embed_watermark(clip, PAYLOAD, key=12345)).found


ATTACKS = {
    "h264_crf23": lambda f, tmp: roundtrip(f, tmp, crf=23),
    "h264_crf28": lambda f, tmp: roundtrip(f, tmp, crf=28),
    "vp9": lambda f, tmp: roundtrip(f, tmp, ".webm", crf=32),
    "resize_50": lambda f, tmp: roundtrip(resize(f, 0.5), tmp),
    "centre_crop_10": lambda f, tmp: roundtrip(centre_crop(f, 0.9), tmp),
    "every_other_frame": lambda f, tmp: roundtrip(f[::2], tmp),
    "8_frames_cut": lambda f, tmp: roundtrip(torch.cat([f[:12], f[20:]]), tmp),
}


@pytest.mark.parametrize("attack", ATTACKS)
def test_survives(attack, written, tmp_path):
    found = wm.detect_watermark(ATTACKS[attack](written, tmp_path))
    assert found.found, found
    assert found.payload == PAYLOAD, found
    if attack == "resize_50":
        assert found.period == pytest.approx(64, abs=0.5)


def test_resize_to_an_odd_scale_is_found_by_the_period_search(written, tmp_path):
    found = wm.detect_watermark(roundtrip(resize(written, 0.7), tmp_path))
    assert found.found and found.payload == PAYLOAD
    assert found.period == pytest.approx(0.7 * 128, rel=0.01) and found.resized


def test_no_false_positives_on_unmarked_clips(tmp_path):
    """A quick sample; the benchmark checks 200+ clips (docs/provenance.md)."""
    rng = random.Random(0)
    sizes = [(64, 64), (128, 224), (256, 256), (176, 320)]
    for i in range(20):
        clip = make_clip(KINDS[i % len(KINDS)], rng.choice([9, 17]), *sizes[i % len(sizes)], seed=500 + i)
        if i % 2:
            clip = roundtrip(clip, tmp_path, crf=rng.choice([19, 28]))
        found = wm.detect_watermark(clip)
        assert not found.found and found.false_positive_bound > wm.FALSE_POSITIVE_RATE, (i, found)


def test_detect_from_files(tmp_path):
    clip = make_clip("shapes", 17, 128, 128, seed=6)
    marked = wm.embed_watermark(clip, PAYLOAD)
    for suffix in (".mp4", ".webm", ".webp", ".gif"):
        path = tmp_path / f"clip{suffix}"
        videoio.write_video(path, marked, fps=16)
        found = wm.detect_watermark_file(path)
        assert found.found and found.payload == PAYLOAD, (suffix, found)
    still = tmp_path / "still.png"
    videoio.write_video(still, wm.embed_watermark(make_clip("shapes", 1, 256, 256, seed=7), PAYLOAD), fps=16)
    found = wm.detect_watermark_file(still)
    assert found.found and found.payload == PAYLOAD and found.frames == 1
