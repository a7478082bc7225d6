"""The Wan-VAE 2.1 against diffusers' AutoencoderKLWan; chunking, tiling, key layouts, input errors."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pytest
import torch

from sora_core.config import VAE_PRESETS, VAEConfig
from sora_core.errors import InputError, WeightsError
from sora_core.loading.vae_keys import (
    diffusers_key_to_wan,
    looks_like_diffusers_vae,
    looks_like_wan_vae,
    vae_state_dict_from_diffusers,
)
from sora_core.vae import CausalConv3d, TileSpec, WanVAE, WrapAround
from tests.conftest import randomize_, rel_err

diffusers = pytest.importorskip("diffusers")
CFG = VAE_PRESETS["test-tiny"]
SHARED = Path(__file__).resolve().parents[2] / "shared" / "research" / "keymaps"


@pytest.fixture(scope="module", autouse=True)
def flush_denormals():
    """Random weights drive SiLU deep into its negative tail, where float32 denormals make CPU
    convolutions 10-30x slower; flushing them changes results far below the tolerances."""
    torch.set_flush_denormal(True)
    yield
    torch.set_flush_denormal(False)


@pytest.fixture(scope="module")
def reference() -> torch.nn.Module:
    torch.manual_seed(0)
    ref = diffusers.AutoencoderKLWan(
        base_dim=CFG.base_dim, z_dim=CFG.z_dim, dim_mult=list(CFG.dim_mult), num_res_blocks=CFG.num_res_blocks,
        attn_scales=[], temperal_downsample=list(CFG.temporal_downsample),
        latents_mean=[0.0] * CFG.z_dim, latents_std=[1.0] * CFG.z_dim,
    )
    return randomize_(ref, seed=1).eval()


def load_from(reference: torch.nn.Module, cfg: VAEConfig = CFG) -> WanVAE:
    model = WanVAE(cfg)
    model.load_state_dict(vae_state_dict_from_diffusers(reference.state_dict()), strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def model(reference) -> WanVAE:
    return load_from(reference)


def video(b: int, t: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 3, t, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def latent(b: int, t: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, CFG.z_dim, t, h, w, generator=torch.Generator().manual_seed(seed))


SHAPES = [(2, 1, 32, 32), (1, 5, 32, 48), (1, 9, 48, 32), (1, 17, 32, 32)]  # (batch, frames, height, width)


@pytest.mark.parametrize("shape", SHAPES)
def test_encode_matches_diffusers(reference, model, shape):
    x = video(*shape)
    with torch.no_grad():
        ref = reference.encode(x).latent_dist.mean
    ours = model.encode_raw(x)
    b, t, h, w = shape
    assert ours.shape == (b, CFG.z_dim, (t - 1) // 4 + 1, h // 8, w // 8)
    assert rel_err(ours, ref) < 1e-5


@pytest.mark.parametrize("shape", SHAPES)
def test_decode_matches_diffusers(reference, model, shape):
    b, t, h, w = shape
    z = latent(b, (t - 1) // 4 + 1, h // 8, w // 8)
    with torch.no_grad():
        ref = reference.decode(z).sample
    ours = model.decode_raw(z)
    assert ours.shape == (b, 3, t, h, w)
    assert ours.abs().max() <= 1.0
    assert rel_err(ours, ref) < 1e-5


def test_decode_does_not_depend_on_chunk_size(model):
    z = latent(1, 5, 4, 6, seed=3)
    whole = model.decode(z, chunk_frames=5)
    for chunk in (1, 2, 3):
        ours = model.decode(z, chunk_frames=chunk)
        assert (ours - whole).abs().max() < 1e-5 and rel_err(ours, whole) < 5e-6


def test_encode_does_not_depend_on_chunk_size(model):
    x = video(1, 13, 16, 24, seed=4)
    one = model.encode(x, chunk_frames=1)
    for chunk in (2, 3):
        assert rel_err(model.encode(x, chunk_frames=chunk), one) < 1e-6


def test_decode_iter_streams_the_same_frames(model):
    z = latent(1, 4, 4, 4, seed=5)
    full = model.decode(z, chunk_frames=1)
    chunks = list(model.decode_iter(z, chunk_frames=1))
    assert [c.shape[2] for c in chunks] == [1, 4, 4, 4]
    assert torch.equal(torch.cat(chunks, dim=2), full)
    chunks = list(model.decode_iter(z, chunk_frames=3))
    assert [c.shape[2] for c in chunks] == [9, 4]
    assert (torch.cat(chunks, dim=2) - full).abs().max() < 1e-5


def test_periodic_decode_is_the_steady_state_of_the_period_repeated(model):
    """Wrap-around decoding gives what a causal decode gives once a period has repeated longer than the
    decoder's memory (about 38 latent frames of causal convolutions): the loop's seam is decoded like any
    other pair of neighbouring frames."""
    period = latent(1, 2, 4, 4, seed=9)
    repeats = 25  # 50 latent frames of the period after the first frame: past the decoder's history
    long = model.decode(torch.cat([latent(1, 1, 4, 4, seed=10), period.repeat(1, 1, repeats, 1, 1)], dim=2))
    looped = model.decode_periodic(period)
    assert looped.shape == (1, 3, 8, 32, 32)
    assert (looped - long[:, :, -8:]).abs().max() < 1e-4
    assert (looped - long[:, :, 1:9]).abs().max() > 1e-2  # the first repeat is still in the start-up transient
    assert torch.equal(model.decode_periodic(period, tile=(4, 4, 2)), looped)  # one tile: the same decode


def test_tiled_periodic_decode_is_the_tiled_steady_state(model):
    """With several tiles each tile is decoded wrapped around on its own and blended like a tiled causal
    decode, so the loop is still the steady state of that decode with the period repeated."""
    period = latent(1, 2, 4, 6, seed=11)
    tile = (4, 4, 2)  # two tiles across the width
    long = model.decode(torch.cat([latent(1, 1, 4, 6, seed=12), period.repeat(1, 1, 25, 1, 1)], dim=2), tile=tile)
    looped = model.decode_periodic(period, tile=tile)
    assert (looped - long[:, :, -8:]).abs().max() < 1e-4
    assert (looped - model.decode_periodic(period)).abs().max() > 1e-3  # the tiles did differ from one decode


def test_wrap_around_is_refused_for_encoding(model):
    with pytest.raises(NotImplementedError, match="wrap-around encoding"):
        model.encoder(torch.zeros(1, 3, 9, 32, 32), WrapAround())


def test_normalisation_round_trip(reference):
    cfg = dataclasses.replace(CFG, latents_mean=(0.5, -1.0, 2.0, 0.1), latents_std=(2.0, 0.5, 1.5, 3.0))
    model = load_from(reference, cfg)
    mean = torch.tensor(cfg.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(cfg.latents_std).view(1, -1, 1, 1, 1)
    x = video(1, 5, 16, 16, seed=6)
    mu = model.encode_raw(x)
    z = model.encode(x)
    assert rel_err(z, (mu - mean) / std) < 1e-6
    assert rel_err(model.denormalize_latent(z), mu) < 1e-6
    assert torch.equal(model.decode(z), model.decode_raw(model.denormalize_latent(z)))
    assert rel_err(model.decode(z), model.decode_raw(mu)) < 1e-5


def test_tiled_decode_is_close_and_exact_when_one_tile(model):
    z = latent(1, 1, 16, 16, seed=7)
    plain = model.decode(z)
    tiled = model.decode(z, tile=TileSpec(12, 12, 8))
    assert tiled.shape == plain.shape and tiled.abs().max() <= 1.0
    # Tiles see neither the whole frame (middle attention) nor beyond their borders, and random
    # weights are far less local than trained ones, so only a loose bound holds (measured 0.18).
    assert rel_err(tiled, plain) < 0.3
    assert torch.equal(model.decode(z, tile=(16, 16, 4)), plain)
    assert torch.equal(model.decode(z, tile=(20, 24, 4)), plain)
    # Tiling composes with chunking: each tile keeps its own causal cache.
    z = latent(1, 2, 8, 12, seed=8)
    tiled = model.decode(z, chunk_frames=2, tile=(4, 6, 2))
    assert (model.decode(z, chunk_frames=1, tile=(4, 6, 2)) - tiled).abs().max() < 1e-5


def test_tile_weights_make_a_constant_image_constant():
    """The blend weights sum to one: a decoder that outputs a constant gives that constant."""
    model = WanVAE(CFG).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.decoder.head[2].bias.fill_(0.25)
    out = model.decode(latent(1, 1, 8, 12), tile=(3, 5, 2))
    assert torch.allclose(out, torch.full_like(out, 0.25), atol=1e-6)


def test_half_precision_follows_the_module(model):
    x = video(1, 5, 16, 16, seed=8)
    z32 = model.encode(x)
    d32 = model.decode(z32)
    for dtype in (torch.bfloat16, torch.float16):
        half = WanVAE(CFG).eval()
        half.load_state_dict(model.state_dict())
        half.to(dtype)
        z = half.encode(x)
        d = half.decode(z32)
        assert z.dtype == dtype and d.dtype == dtype
        assert rel_err(z, z32) < 0.1 and rel_err(d, d32) < 0.1


def test_full_size_keys_and_shapes_match_wan_release():
    table = SHARED / "keys_wan21_vae_orig_vs_diffusers.tsv"
    if not table.exists():
        pytest.skip(f"{table} not available")
    with table.open() as f:
        rows = list(csv.reader(f, delimiter="\t"))[1:]
    expected = {orig: tuple(int(s) for s in shape.strip("()").split(",") if s.strip()) for orig, _, shape in rows}
    with torch.device("meta"):
        full = WanVAE(VAE_PRESETS["wan2.1"])
    got = {k: tuple(v.shape) for k, v in full.state_dict().items()}
    assert got == expected
    assert sum(v.numel() for v in full.state_dict().values()) == 126_892_531


@pytest.mark.parametrize("name", ["keys_wan21_vae_orig_vs_diffusers.tsv", "vae_key_mapping_orig_to_diffusers.tsv"])
def test_key_map_reproduces_tables(name):
    table = SHARED / name
    if not table.exists():
        pytest.skip(f"{table} not available")
    with table.open() as f:
        rows = [r for r in csv.reader(f, delimiter="\t") if r and not r[0].startswith("original")]
    assert len(rows) == 194
    for orig, diff, _ in rows:
        assert diffusers_key_to_wan(diff) == orig


def test_load_vae_reads_diffusers_and_wan_files(reference, model, tmp_path):
    from sora_core.loading import load_vae, write_safetensors

    z = latent(1, 2, 4, 4, seed=9)
    expected = model.decode(z)
    wan_file = write_safetensors(tmp_path / "wan_2.1_vae_tiny.safetensors", model.state_dict())
    diff_file = write_safetensors(tmp_path / "diffusion_pytorch_model.safetensors", reference.state_dict())
    for path in (wan_file, diff_file):
        loaded = load_vae(path, config=CFG)
        assert torch.equal(loaded.decode(z), expected)


def test_layout_detection_and_bad_keys(reference, model):
    diff_keys, wan_keys = set(reference.state_dict()), set(model.state_dict())
    assert looks_like_diffusers_vae(diff_keys) and not looks_like_wan_vae(diff_keys)
    assert looks_like_wan_vae(wan_keys) and not looks_like_diffusers_vae(wan_keys)
    assert not looks_like_wan_vae(wan_keys | {"decoder.upsamples.0.upsamples.0.residual.2.weight"})
    sd = dict(reference.state_dict())
    sd["decoder.up_blocks.0.avg_shortcut.weight"] = torch.zeros(1)
    with pytest.raises(WeightsError, match="no Wan 2.1 counterpart"):
        vae_state_dict_from_diffusers(sd)
    with pytest.raises(WeightsError, match="Wan 2.2"):
        vae_state_dict_from_diffusers({"decoder.up_blocks.0.upsampler.resample.1.weight": torch.zeros(1)})


def test_bad_inputs_say_what_to_use(model):
    with pytest.raises(InputError, match=r"6 frames.*4k\+1.*use 5 or 9"):
        model.encode(video(1, 6, 16, 16))
    with pytest.raises(InputError, match=r"44x30.*multiples of 8.*use 48x32"):
        model.encode(video(1, 5, 30, 44))
    with pytest.raises(InputError, match=r"\[batch, 3, frames, height, width\]"):
        model.encode(torch.zeros(3, 5, 16, 16))
    with pytest.raises(InputError, match="5 channels.*z_dim=4"):
        model.decode(torch.zeros(1, 5, 2, 2, 2))
    with pytest.raises(InputError, match="5 channels"):
        model.decode_iter(torch.zeros(1, 5, 2, 2, 2))  # raised at the call, not at the first next()
    with pytest.raises(InputError, match="chunk_frames"):
        model.decode(latent(1, 2, 2, 2), chunk_frames=0)
    with pytest.raises(InputError, match="overlap"):
        model.decode(latent(1, 2, 2, 2), tile=(2, 2, 2))


def _conv_kernels(fn) -> tuple[set[str], torch.Tensor]:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        out = fn()
    return {e.key for e in prof.key_averages() if "conv" in e.key}, out


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="this torch build has no oneDNN")
def test_inference_convolutions_take_onednn_with_pytorchs_numbers(model, monkeypatch):
    """A decode chunk is small enough that PyTorch itself would pick its slow unfold kernel; the VAE sends it
    to oneDNN instead. Same numbers either way; training (autograd on) keeps PyTorch's own choice."""
    z = latent(1, 3, 4, 4, seed=8)
    fast_kernels, fast = _conv_kernels(lambda: model.decode_raw(z))
    monkeypatch.setattr(CausalConv3d, "prefer_onednn", False)
    stock_kernels, stock = _conv_kernels(lambda: model.decode_raw(z))
    assert "aten::mkldnn_convolution" in fast_kernels and "aten::slow_conv3d_forward" not in fast_kernels
    assert "aten::slow_conv3d_forward" in stock_kernels
    assert (fast - stock).abs().max() < 1e-5
    monkeypatch.setattr(CausalConv3d, "prefer_onednn", True)
    conv = model.decoder.conv1
    x = torch.randn(1, conv.in_channels, 3, 4, 4, requires_grad=True)
    train_kernels, y = _conv_kernels(lambda: conv(x))
    y.sum().backward()
    assert "aten::mkldnn_convolution" not in train_kernels and x.grad is not None
