"""The DiT against diffusers' WanTransformer3DModel, through every supported file layout."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from sora_core.config import DIT_PRESETS, DiTConfig
from sora_core.dit import WanDiT, prompt_token_groups
from sora_core.errors import InputError
from sora_core.loading import load_dit, save_project_file, write_safetensors
from sora_core.loading.dit_keys import diffusers_key_to_wan
from tests.conftest import randomize_, rel_err

diffusers = pytest.importorskip("diffusers")
CFG = DIT_PRESETS["test-tiny"]
SHARED = Path(__file__).resolve().parents[2] / "shared" / "research" / "keymaps"


def diffusers_dit(cfg: DiTConfig = CFG) -> torch.nn.Module:
    torch.manual_seed(0)
    ref = diffusers.WanTransformer3DModel(
        patch_size=cfg.patch_size, num_attention_heads=cfg.num_heads, attention_head_dim=cfg.head_dim,
        in_channels=cfg.in_dim, out_channels=cfg.out_dim, text_dim=cfg.text_dim, freq_dim=cfg.freq_dim,
        ffn_dim=cfg.ffn_dim, num_layers=cfg.num_layers, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
        eps=cfg.eps,
    )
    return randomize_(ref).eval()


@pytest.fixture(scope="module")
def reference() -> torch.nn.Module:
    return diffusers_dit()


@pytest.fixture(scope="module")
def files(reference, tmp_path_factory) -> dict[str, Path]:
    """The same weights saved in each supported layout."""
    d = tmp_path_factory.mktemp("dit")
    ref_sd = reference.state_dict()
    wan_sd = {diffusers_key_to_wan(k): v for k, v in ref_sd.items()}
    model = WanDiT(CFG)
    model.load_state_dict(wan_sd)
    return {
        "diffusers": write_safetensors(d / "diffusion_pytorch_model.safetensors", ref_sd),
        "wan": write_safetensors(d / "wan2.1_t2v_tiny.safetensors", wan_sd),
        "comfy_prefixed": write_safetensors(
            d / "wan2.1_t2v_tiny_prefixed.safetensors", {"model.diffusion_model." + k: v for k, v in wan_sd.items()}
        ),
        "fp16": write_safetensors(d / "wan2.1_t2v_tiny_fp16.safetensors", {k: v.half() for k, v in wan_sd.items()}),
        "project": save_project_file(d / "project.safetensors", {"dit": model}),
    }


SHAPES = [  # (batch, latent frames, latent height, latent width): 1, 5, 9 and 17 pixel frames
    (1, 1, 4, 4),
    (2, 2, 6, 4),
    (1, 3, 4, 8),
    (1, 5, 2, 6),
]


@pytest.mark.parametrize("layout", ["diffusers", "wan", "comfy_prefixed", "project"])
@pytest.mark.parametrize("shape", SHAPES)
def test_layouts_match_diffusers(reference, files, layout, shape):
    model = load_dit(files[layout], config=CFG if layout != "project" else None)
    b, t, h, w = shape
    gen = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(b, 16, t, h, w, generator=gen)
    ts = torch.rand(b, generator=gen) * 1000
    ctx = torch.randn(b, CFG.text_len, CFG.text_dim, generator=gen)
    with torch.no_grad():
        ours, ref = model(x, ts, ctx), reference(x, ts, ctx).sample
    assert ours.shape == x.shape
    assert rel_err(ours, ref) < 1e-5


def test_per_frame_timesteps_match_per_token_reference(reference, files):
    """[B, T] timesteps (clean conditioning frames beside noisy ones) equal diffusers' per-token path."""
    model = load_dit(files["wan"], config=CFG)
    x = torch.randn(2, 16, 3, 4, 6)
    t = torch.tensor([[0.0, 500.0, 999.0], [250.0, 0.0, 0.0]])
    ctx = torch.randn(2, CFG.text_len, CFG.text_dim)
    tokens_per_frame = (4 // 2) * (6 // 2)
    with torch.no_grad():
        ours = model(x, t, ctx)
        ref = reference(x, t.repeat_interleave(tokens_per_frame, dim=1), ctx).sample
        uniform = model(x, torch.full((2,), 500.0), ctx)
    assert rel_err(ours, ref) < 1e-5
    assert rel_err(ours, uniform) > 1e-3  # the per-frame path really changes the output


def test_short_context_is_zero_padded_like_wan(files):
    model = load_dit(files["wan"], config=CFG)
    x, t = torch.randn(1, 16, 1, 4, 4), torch.tensor([300.0])
    ctx = torch.randn(1, 5, CFG.text_dim)
    padded = torch.cat([ctx, torch.zeros(1, CFG.text_len - 5, CFG.text_dim)], dim=1)
    with torch.no_grad():
        assert torch.equal(model(x, t, ctx), model(x, t, padded))


def test_frame_prompts_give_each_frame_its_own_prompt_in_cross_attention(files):
    """Storyboards: with a stack of prompts and a prompt index per latent frame, each frame's tokens
    read their own prompt; every frame reading one prompt is the plain single-prompt model."""
    model = load_dit(files["wan"], config=CFG)
    x, t = torch.randn(1, 16, 3, 4, 6), torch.tensor([[400.0, 400.0, 700.0]])
    ctx = torch.randn(1, 2, 7, CFG.text_dim)
    with torch.no_grad():
        plain = [model(x, t, ctx[:, s]) for s in (0, 1)]
        for s in (0, 1):
            torch.testing.assert_close(model(x, t, ctx, frame_prompt=torch.full((3,), s)), plain[s])
        split = model(x, t, ctx, frame_prompt=torch.tensor([0, 0, 1]))
        # one block's cross-attention: the tokens of each frame equal plain attention to their prompt
        attn = model.blocks[0].cross_attn
        tokens, per_frame = torch.randn(1, 18, CFG.dim), 6
        text = model.text_embedding(torch.nn.functional.pad(ctx, (0, 0, 0, CFG.text_len - 7)))
        groups = prompt_token_groups(torch.tensor([0, 0, 1]), per_frame, torch.device("cpu"))
        assert [(s, g.tolist()) for s, g in groups] == [(0, list(range(12))), (1, list(range(12, 18)))]
        mixed = attn(tokens, text, groups)
        torch.testing.assert_close(mixed[:, :12], attn(tokens, text[:, 0])[:, :12])
        torch.testing.assert_close(mixed[:, 12:], attn(tokens, text[:, 1])[:, 12:])
    assert rel_err(split, plain[0]) > 1e-3 and rel_err(split, plain[1]) > 1e-3
    with pytest.raises(InputError, match="one prompt index in 0..1 per latent frame"):
        model(x, t, ctx, frame_prompt=torch.tensor([0, 2, 1]))
    with pytest.raises(InputError, match=r"\[B, prompts, L, 64\]"):
        model(x, t, ctx[:, 0], frame_prompt=torch.tensor([0, 0, 1]))


def test_inferred_config_and_fp16_file(files):
    model = load_dit(files["fp16"], dtype=torch.float32)
    cfg = model.config
    assert (cfg.dim, cfg.num_heads, cfg.num_layers, cfg.ffn_dim, cfg.text_dim, cfg.freq_dim) == (256, 2, 2, 512, 64, 32)
    assert next(model.parameters()).dtype == torch.float32
    bf16 = load_dit(files["wan"], dtype=torch.bfloat16)
    assert next(bf16.parameters()).dtype == torch.bfloat16
    with torch.no_grad():
        out = bf16(torch.randn(1, 16, 1, 4, 4), torch.tensor([500.0]), torch.randn(1, 4, 64))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()


def test_full_size_key_set_matches_wan_release():
    """The 1.3B module tree has exactly the 825 keys and shapes of the released checkpoint."""
    table = SHARED / "keys_wan21_t2v_1.3B_orig_vs_diffusers.tsv"
    if not table.exists():
        pytest.skip("research key table not present")
    rows = list(csv.reader(table.open(), delimiter="\t"))[1:]
    expected = {r[0]: tuple(int(n) for n in r[2].strip("()").split(",") if n.strip()) for r in rows}
    with torch.device("meta"):
        model = WanDiT(DIT_PRESETS["wan2.1-t2v-1.3B"])
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == expected
    assert all(diffusers_key_to_wan(r[1]) == r[0] for r in rows)
    assert sum(v.numel() for v in model.parameters()) == 1_418_996_800


@pytest.mark.parametrize(
    ("shape", "t", "ctx", "message"),
    [
        ((1, 15, 1, 4, 4), (1,), (1, 4, 64), "latent must be [B, 16"),
        ((1, 16, 1, 5, 4), (1,), (1, 4, 64), "multiples of 16"),
        ((1, 16, 2, 4, 4), (1, 3), (1, 4, 64), "timesteps must be [B] or [B, 2]"),
        ((1, 16, 1, 4, 4), (1,), (1, 4, 32), "text context must be [B, L, 64]"),
        ((1, 16, 1, 4, 4), (1,), (1, 40, 64), "at most 32"),
    ],
)
def test_bad_inputs_are_named(shape, t, ctx, message):
    model = WanDiT(CFG).eval()
    with pytest.raises(InputError, match=message.replace("[", r"\[")):
        model(torch.randn(shape), torch.rand(t), torch.randn(ctx))
