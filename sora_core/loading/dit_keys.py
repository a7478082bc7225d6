"""DiT key layouts as data: diffusers' WanTransformer3DModel names -> the canonical Wan names.

Canonical = the original Wan release = ComfyUI's repackaged files (optionally prefixed with
``model.diffusion_model.``). Note the swapped norms: diffusers' affine ``norm2`` is Wan's ``norm3``
(the cross-attention pre-norm); the parameter-free norms have no keys on either side.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# (diffusers regex, canonical replacement), each matched against the whole key.
DIFFUSERS_TO_WAN: tuple[tuple[str, str], ...] = (
    (r"patch_embedding\.(weight|bias)", r"patch_embedding.\1"),
    (r"condition_embedder\.text_embedder\.linear_1\.(weight|bias)", r"text_embedding.0.\1"),
    (r"condition_embedder\.text_embedder\.linear_2\.(weight|bias)", r"text_embedding.2.\1"),
    (r"condition_embedder\.time_embedder\.linear_1\.(weight|bias)", r"time_embedding.0.\1"),
    (r"condition_embedder\.time_embedder\.linear_2\.(weight|bias)", r"time_embedding.2.\1"),
    (r"condition_embedder\.time_proj\.(weight|bias)", r"time_projection.1.\1"),
    (r"blocks\.(\d+)\.scale_shift_table", r"blocks.\1.modulation"),
    (r"blocks\.(\d+)\.attn1\.to_q\.(weight|bias)", r"blocks.\1.self_attn.q.\2"),
    (r"blocks\.(\d+)\.attn1\.to_k\.(weight|bias)", r"blocks.\1.self_attn.k.\2"),
    (r"blocks\.(\d+)\.attn1\.to_v\.(weight|bias)", r"blocks.\1.self_attn.v.\2"),
    (r"blocks\.(\d+)\.attn1\.to_out\.0\.(weight|bias)", r"blocks.\1.self_attn.o.\2"),
    (r"blocks\.(\d+)\.attn1\.norm_([qk])\.weight", r"blocks.\1.self_attn.norm_\2.weight"),
    (r"blocks\.(\d+)\.attn2\.to_q\.(weight|bias)", r"blocks.\1.cross_attn.q.\2"),
    (r"blocks\.(\d+)\.attn2\.to_k\.(weight|bias)", r"blocks.\1.cross_attn.k.\2"),
    (r"blocks\.(\d+)\.attn2\.to_v\.(weight|bias)", r"blocks.\1.cross_attn.v.\2"),
    (r"blocks\.(\d+)\.attn2\.to_out\.0\.(weight|bias)", r"blocks.\1.cross_attn.o.\2"),
    (r"blocks\.(\d+)\.attn2\.norm_([qk])\.weight", r"blocks.\1.cross_attn.norm_\2.weight"),
    (r"blocks\.(\d+)\.norm2\.(weight|bias)", r"blocks.\1.norm3.\2"),
    (r"blocks\.(\d+)\.ffn\.net\.0\.proj\.(weight|bias)", r"blocks.\1.ffn.0.\2"),
    (r"blocks\.(\d+)\.ffn\.net\.2\.(weight|bias)", r"blocks.\1.ffn.2.\2"),
    (r"scale_shift_table", r"head.modulation"),
    (r"proj_out\.(weight|bias)", r"head.head.\1"),
)

# Prefixes found in the wild in front of canonical DiT keys (ComfyUI full checkpoints, SwarmUI).
WAN_PREFIXES: tuple[str, ...] = ("model.diffusion_model.", "diffusion_model.", "model.")

# Markers of weights this engine has no module for yet (image-to-video and VACE variants).
UNSUPPORTED_MARKERS: dict[str, str] = {
    "img_emb.proj.0.weight": "Wan 2.1 image-to-video (CLIP image branch)",
    "condition_embedder.image_embedder.norm1.weight": "Wan 2.1 image-to-video (CLIP image branch)",
    "vace_patch_embedding.weight": "Wan VACE",
}

_COMPILED = tuple((re.compile(pattern), repl) for pattern, repl in DIFFUSERS_TO_WAN)


def diffusers_key_to_wan(key: str) -> str | None:
    """Canonical name of a diffusers key, or None if the table has no rule for it."""
    for pattern, repl in _COMPILED:
        if pattern.fullmatch(key):
            return pattern.sub(repl, key)
    return None


def looks_like_wan_dit(keys: Iterable[str]) -> bool:
    keys = set(keys)
    return "head.modulation" in keys and "patch_embedding.weight" in keys


def looks_like_diffusers_dit(keys: Iterable[str]) -> bool:
    keys = set(keys)
    return "condition_embedder.time_proj.weight" in keys and "proj_out.weight" in keys


def wan_prefix(keys: Iterable[str]) -> str:
    """The prefix in front of canonical DiT keys ('' when there is none)."""
    keys = set(keys)
    for prefix in WAN_PREFIXES:
        if prefix + "head.modulation" in keys:
            return prefix
    return ""
