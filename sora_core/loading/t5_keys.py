"""umT5 text-encoder key layouts as data: the original Wan names -> transformers' names.

transformers' ``UMT5EncoderModel`` naming is also ComfyUI's (``umt5_xxl_*.safetensors``), so it is
the canonical one here. The original Wan release (``models_t5_umt5-xxl-enc-bf16.pth``, converted to
safetensors) names the same tensors after its own modules; every layer has its own relative
position bias in both. Only the encoder is used: a full encoder-decoder checkpoint's decoder and
LM head are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# (original Wan regex, transformers replacement), each matched against the whole key.
WAN_TO_HF: tuple[tuple[str, str], ...] = (
    (r"token_embedding\.weight", r"shared.weight"),
    (r"blocks\.(\d+)\.norm1\.weight", r"encoder.block.\1.layer.0.layer_norm.weight"),
    (r"blocks\.(\d+)\.attn\.([qkvo])\.weight", r"encoder.block.\1.layer.0.SelfAttention.\2.weight"),
    (
        r"blocks\.(\d+)\.pos_embedding\.embedding\.weight",
        r"encoder.block.\1.layer.0.SelfAttention.relative_attention_bias.weight",
    ),
    (r"blocks\.(\d+)\.norm2\.weight", r"encoder.block.\1.layer.1.layer_norm.weight"),
    (r"blocks\.(\d+)\.ffn\.gate\.0\.weight", r"encoder.block.\1.layer.1.DenseReluDense.wi_0.weight"),
    (r"blocks\.(\d+)\.ffn\.fc1\.weight", r"encoder.block.\1.layer.1.DenseReluDense.wi_1.weight"),
    (r"blocks\.(\d+)\.ffn\.fc2\.weight", r"encoder.block.\1.layer.1.DenseReluDense.wo.weight"),
    (r"norm\.weight", r"encoder.final_layer_norm.weight"),
)

# The token embedding in each layout; finding one of these (maybe behind a prefix) identifies the layout.
HF_EMBEDDING_KEYS = ("shared.weight", "encoder.embed_tokens.weight")
WAN_EMBEDDING_KEY = "token_embedding.weight"
# transformers ties encoder.embed_tokens to shared; files hold either or both.
HF_TIED_EMBEDDING = "encoder.embed_tokens.weight"

# transformers-layout keys that are not part of the encoder and are dropped without complaint.
HF_IGNORED_PREFIXES = ("decoder.", "lm_head.")

# The sentencepiece model proto that ComfyUI stores in its umt5 files, as a uint8 tensor.
SPIECE_KEY = "spiece_model"

# ComfyUI fp8 files: per-layer scales next to ``<layer>.weight`` (legacy "scaled_fp8" files use
# scale_weight, newer ones weight_scale); the dequantised weight is weight * scale.
FP8_WEIGHT_SCALE_SUFFIXES = (".scale_weight", ".weight_scale")
FP8_DROPPED_SUFFIXES = (".scale_input", ".input_scale", ".comfy_quant")
FP8_MARKER_KEYS = ("scaled_fp8",)

# Per-layer keys read to infer the shape of a transformers-layout encoder.
HF_REL_BIAS = "encoder.block.{}.layer.0.SelfAttention.relative_attention_bias.weight"
HF_Q = "encoder.block.{}.layer.0.SelfAttention.q.weight"
HF_WI_0 = "encoder.block.{}.layer.1.DenseReluDense.wi_0.weight"
HF_WI = "encoder.block.{}.layer.1.DenseReluDense.wi.weight"  # non-gated T5 v1.0
HF_BLOCK_RE = re.compile(r"encoder\.block\.(\d+)\.")

_WAN_COMPILED = tuple((re.compile(pat), rep) for pat, rep in WAN_TO_HF)


def wan_key_to_hf(key: str) -> str | None:
    """The transformers name of an original-Wan umT5 key, or None when the key is unknown."""
    for pattern, replacement in _WAN_COMPILED:
        if pattern.fullmatch(key):
            return pattern.sub(replacement, key)
    return None


def wan_keys_to_hf(keys: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """Map many keys at once: ({wan_key: hf_key}, [keys with no counterpart])."""
    mapping: dict[str, str] = {}
    unknown: list[str] = []
    for key in keys:
        new = wan_key_to_hf(key)
        if new is None:
            unknown.append(key)
        else:
            mapping[key] = new
    return mapping, unknown


def hf_block_count(keys: Iterable[str]) -> int:
    """Number of encoder blocks in transformers-layout keys (highest index + 1)."""
    indices = [int(m.group(1)) for m in map(HF_BLOCK_RE.match, keys) if m]
    return max(indices) + 1 if indices else 0
