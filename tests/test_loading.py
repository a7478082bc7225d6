"""Weights files that are missing, pickled, truncated or of the wrong kind get clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sora_core.config import DIT_PRESETS, DiTConfig
from sora_core.dit import WanDiT
from sora_core.errors import WeightsError
from sora_core.loading import detect_file, load_dit, read_safetensors, save_project_file, write_safetensors
from sora_core.loading.layouts import Layout

CFG = DIT_PRESETS["test-tiny"]


@pytest.fixture
def dit_file(tmp_path) -> Path:
    return write_safetensors(tmp_path / "dit.safetensors", WanDiT(CFG).state_dict())


def test_missing_file(tmp_path):
    with pytest.raises(WeightsError, match="weights file not found: .*nope.safetensors"):
        load_dit(tmp_path / "nope.safetensors")


@pytest.mark.parametrize("name", ["model.pt", "model.safetensors"])
def test_pickles_are_refused_without_unpickling(tmp_path, name):
    path = tmp_path / name
    torch.save({"head.modulation": torch.zeros(1, 2, 256)}, path)
    with pytest.raises(WeightsError, match="pickled PyTorch checkpoint, not safetensors.*save_file"):
        load_dit(path)


@pytest.mark.parametrize("first_bytes", [b"\x80", b"PK"])
def test_safetensors_whose_header_length_looks_like_pickle_magic_loads(tmp_path, first_bytes):
    # The 8-byte little-endian header length can start with 0x80 (pickle's marker) or "PK" (zip's):
    # pad the metadata until it does; such a file is valid and must load.
    def write(pad: int) -> Path:
        return write_safetensors(tmp_path / "w.safetensors", {"x": torch.arange(4.0)}, {"pad": "y" * pad})

    base = int.from_bytes(write(0).read_bytes()[:8], "little")
    goal = 0x80 + 256 * (base // 256 + 1) if first_bytes == b"\x80" else int.from_bytes(b"PK", "little")
    for pad in range(goal - base - 16, goal - base + 16):
        path = write(pad)
        if path.read_bytes()[:len(first_bytes)] == first_bytes:
            break
    else:
        pytest.fail("the padding search did not reach the pattern")
    tensors, meta = read_safetensors(path)
    assert torch.equal(tensors["x"], torch.arange(4.0)) and meta["pad"].startswith("y")


def test_raw_pickle_stream_is_refused(tmp_path):
    import pickle

    path = tmp_path / "weights.safetensors"
    path.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    with pytest.raises(WeightsError, match="pickled"):
        read_safetensors(path)


def test_truncated_file(dit_file):
    data = dit_file.read_bytes()
    dit_file.write_bytes(data[: len(data) - 1000])
    with pytest.raises(WeightsError, match=r"truncated: its tensors need \d+ bytes of data but only \d+ are there"):
        load_dit(dit_file)


def test_garbage_header(tmp_path):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(WeightsError, match="not a safetensors file"):
        load_dit(path)


def test_vae_given_as_dit_names_both(tmp_path):
    path = write_safetensors(tmp_path / "wan_2.1_vae.safetensors", {"decoder.middle.0.residual.0.gamma": torch.ones(4)})
    with pytest.raises(WeightsError, match="expected a diffusion transformer.*holds a video VAE.*models/vae"):
        load_dit(path)


def test_unknown_keys(tmp_path):
    path = write_safetensors(tmp_path / "other.safetensors", {"foo.weight": torch.ones(2)})
    with pytest.raises(WeightsError, match="no known network"):
        load_dit(path)


def test_shape_mismatch_names_keys(dit_file):
    wrong = DiTConfig(**{**CFG.__dict__, "ffn_dim": 256})
    with pytest.raises(WeightsError, match=r"shape mismatches, e.g. \['blocks.0.ffn.0.weight: file \(512, 256\)"):
        load_dit(dit_file, config=wrong)


def test_missing_block(tmp_path):
    sd = WanDiT(CFG).state_dict()
    del sd["blocks.1.ffn.2.bias"]
    path = write_safetensors(tmp_path / "partial.safetensors", sd)
    with pytest.raises(WeightsError, match=r"missing 1 keys, e.g. \['blocks.1.ffn.2.bias'\]"):
        load_dit(path, config=CFG)


def test_image_to_video_weights_are_named(tmp_path):
    sd = WanDiT(CFG).state_dict()
    sd["img_emb.proj.0.weight"] = torch.ones(8)
    path = write_safetensors(tmp_path / "i2v.safetensors", sd)
    with pytest.raises(WeightsError, match="image-to-video"):
        load_dit(path)


def test_project_file_describes_itself(tmp_path):
    model = WanDiT(CFG)
    path = save_project_file(tmp_path / "p.safetensors", {"dit": model})
    det = detect_file(path)
    assert det.layout is Layout.PROJECT and det.component == "dit"
    loaded = load_dit(path)
    assert loaded.config == CFG
    pairs = zip(model.state_dict().values(), loaded.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


def test_write_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "keep.safetensors"
    target.write_bytes(b"old")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("sora_core.loading.safetensors_io.save_file", boom)
    with pytest.raises(OSError, match="disk full"):
        write_safetensors(target, {"a": torch.ones(1)})
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.safetensors"]
