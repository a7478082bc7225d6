"""Run inside the ComfyUI venv (cwd = the ComfyUI folder): ComfyUI's own Wan DiT (comfy.ldm.wan) and sora_core's,
on the same small random weights saved in ComfyUI's layout, must give the same output. Prints one JSON object."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.argv = [sys.argv[0], "--cpu"]
sys.path.insert(0, str(Path.cwd()))  # ComfyUI's own modules (run from its folder)
# sora_core is not pip-installed in ComfyUI's venv: it lives in the pack folder, as in a user's install.
sys.path.insert(1, str(Path(__file__).resolve().parents[2]))

import comfy.options  # noqa: E402

comfy.options.enable_args_parsing()

import comfy.ldm.wan.model  # noqa: E402
import comfy.ops  # noqa: E402
import torch  # noqa: E402

from sora_core.config import DIT_PRESETS  # noqa: E402
from sora_core.dit import WanDiT  # noqa: E402
from sora_core.loading import load_dit, write_safetensors  # noqa: E402


def main() -> None:
    cfg = DIT_PRESETS["test-tiny"]
    torch.manual_seed(0)
    source = WanDiT(cfg)
    with torch.no_grad():
        for p in source.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    path = Path(tempfile.mkdtemp()) / "wan2.1_t2v_tiny.safetensors"
    write_safetensors(path, {"model.diffusion_model." + k: v for k, v in source.state_dict().items()})

    ours = load_dit(path, config=cfg)
    theirs = comfy.ldm.wan.model.WanModel(
        model_type="t2v", patch_size=cfg.patch_size, text_len=cfg.text_len, in_dim=cfg.in_dim, dim=cfg.dim,
        ffn_dim=cfg.ffn_dim, freq_dim=cfg.freq_dim, text_dim=cfg.text_dim, out_dim=cfg.out_dim,
        num_heads=cfg.num_heads, num_layers=cfg.num_layers, qk_norm=True, cross_attn_norm=True, eps=cfg.eps,
        operations=comfy.ops.disable_weight_init, dtype=torch.float32,
    )
    theirs.load_state_dict(source.state_dict(), strict=True)
    theirs.eval()
    results = []
    for b, t, h, w in [(1, 1, 4, 4), (2, 3, 6, 4), (1, 5, 4, 8)]:
        gen = torch.Generator().manual_seed(b * 100 + t)
        x = torch.randn(b, 16, t, h, w, generator=gen)
        ts = torch.rand(b, generator=gen) * 1000
        ctx = torch.randn(b, cfg.text_len, cfg.text_dim, generator=gen)
        with torch.no_grad():
            a, ref = ours(x, ts, ctx), theirs(x, ts, ctx)
        results.append({"shape": [b, 16, t, h, w], "rel_err": ((a - ref).norm() / ref.norm()).item()})
    print(json.dumps(results))


if __name__ == "__main__":
    main()
