"""Recognise what a weights file holds (which network, which key layout) from its keys alone."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from ..config import DiTConfig
from ..errors import WeightsError
from . import dit_keys

PROJECT_FORMAT = "sora_core"
PROJECT_FORMAT_VERSION = "1"
COMPONENTS = ("dit", "vae", "text_encoder")


class Layout(str, Enum):
    WAN = "wan"  # the original release = ComfyUI's repackaged files
    DIFFUSERS = "diffusers"
    PROJECT = "sora_core"  # this project's files: config in the metadata, keys prefixed by component
    HF = "transformers"  # text encoders in transformers' naming (ComfyUI's umt5 files)


@dataclass(frozen=True)
class Detected:
    component: str  # "dit", "vae", "text_encoder" or "bundle"
    layout: Layout
    prefix: str = ""


def _has(keys: set[str], *names: str) -> bool:
    return all(n in keys for n in names)


def detect(keys: Iterable[str], metadata: dict[str, str] | None = None) -> Detected | None:
    """What the keys are, or None when nothing known matches."""
    keys = set(keys)
    metadata = metadata or {}
    if metadata.get("format") == PROJECT_FORMAT:
        # A component is there when it has tensors or a config (MiniLM's weights live in its package).
        parts = [c for c in COMPONENTS if any(k.startswith(c + ".") for k in keys) or f"{c}_config" in metadata]
        return Detected(parts[0] if len(parts) == 1 else "bundle", Layout.PROJECT)
    if dit_keys.looks_like_wan_dit(keys) or dit_keys.wan_prefix(keys):
        return Detected("dit", Layout.WAN, dit_keys.wan_prefix(keys))
    if dit_keys.looks_like_diffusers_dit(keys):
        return Detected("dit", Layout.DIFFUSERS)
    if _has(keys, "decoder.middle.0.residual.0.gamma"):
        return Detected("vae", Layout.WAN)
    if _has(keys, "decoder.mid_block.resnets.0.norm1.gamma"):
        return Detected("vae", Layout.DIFFUSERS)
    t5_marker = "encoder.block.0.layer.0.SelfAttention.q.weight"  # prefixes vary (ComfyUI full checkpoints)
    if _has(keys, "shared.weight") or any(k.endswith(t5_marker) for k in keys):
        return Detected("text_encoder", Layout.HF)
    if _has(keys, "token_embedding.weight", "norm.weight"):
        return Detected("text_encoder", Layout.WAN)
    return None


def describe(det: Detected | None) -> str:
    if det is None:
        return "no known network (keys match neither Wan, ComfyUI, diffusers nor sora_core layouts)"
    what = {"dit": "a diffusion transformer", "vae": "a video VAE", "text_encoder": "a text encoder",
            "bundle": "a bundled checkpoint (DiT + VAE + text encoder)"}[det.component]
    return f"{what} in the {det.layout.value} layout"


WAN_HEAD_DIM = 128  # every released Wan model; heads are not stored in the weights


def infer_dit_config(shapes: dict[str, tuple[int, ...]], *, text_len: int = 512) -> DiTConfig:
    """A DiTConfig from canonical key shapes (Wan convention: head_dim 128)."""
    try:
        dim = shapes["head.modulation"][-1]
        patch = tuple(shapes["patch_embedding.weight"][2:])
        in_dim = shapes["patch_embedding.weight"][1]
        out_dim = shapes["head.head.weight"][0] // math.prod(patch)
        ffn_dim = shapes["blocks.0.ffn.0.weight"][0]
        text_dim = shapes["text_embedding.0.weight"][1]
        freq_dim = shapes["time_embedding.0.weight"][1]
    except KeyError as exc:
        raise WeightsError(f"DiT weights lack {exc}; the file is incomplete or not a Wan 2.1 DiT") from None
    layers = len({m.group(1) for k in shapes if (m := re.fullmatch(r"blocks\.(\d+)\.modulation", k))})
    if dim % WAN_HEAD_DIM:
        raise WeightsError(
            f"DiT width {dim} is not a multiple of Wan's head size {WAN_HEAD_DIM}, so the number of heads "
            "cannot be inferred; pass an explicit DiTConfig"
        )
    return DiTConfig(
        dim=dim, ffn_dim=ffn_dim, num_heads=dim // WAN_HEAD_DIM, num_layers=layers, in_dim=in_dim,
        out_dim=out_dim, text_dim=text_dim, text_len=text_len, freq_dim=freq_dim, patch_size=patch,  # type: ignore[arg-type]
        qk_norm="blocks.0.self_attn.norm_q.weight" in shapes, cross_attn_norm="blocks.0.norm3.weight" in shapes,
    )
