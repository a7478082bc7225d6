"""Frozen configuration dataclasses for every network, and the named presets.

A config fully describes a network's shape; weights files of the project format carry their
config as JSON in the safetensors metadata, so ``to_dict``/``from_dict`` must round-trip.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

# Wan 2.1 latent statistics (per channel); latents are normalised as (mu - mean) / std.
WAN21_LATENT_MEAN = (
    -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
    0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
)
WAN21_LATENT_STD = (
    2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
    3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160,
)


@dataclass(frozen=True)
class DiTConfig:
    """Spacetime-patch diffusion transformer (Wan 2.1 architecture)."""

    dim: int = 1536
    ffn_dim: int = 8960
    num_heads: int = 12
    num_layers: int = 30
    in_dim: int = 16
    out_dim: int = 16
    text_dim: int = 4096
    text_len: int = 512
    freq_dim: int = 256
    patch_size: tuple[int, int, int] = (1, 2, 2)
    qk_norm: bool = True
    cross_attn_norm: bool = True
    eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_max_positions: int = 1024

    def __post_init__(self) -> None:
        if self.dim % self.num_heads:
            raise ValueError(f"DiTConfig: dim={self.dim} is not divisible by num_heads={self.num_heads}")
        if self.head_dim % 2:
            raise ValueError(f"DiTConfig: head_dim={self.head_dim} must be even for rotary embeddings")

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def rope_axes_dim(self) -> tuple[int, int, int]:
        """Head channels given to the (t, h, w) rotary axes, as Wan splits them."""
        d = self.head_dim
        hw = 2 * (d // 6)
        return d - 2 * hw, hw, hw


@dataclass(frozen=True)
class VAEConfig:
    """Causal 3D video VAE (Wan-VAE 2.1 architecture): 8x spatial, 4x temporal compression."""

    base_dim: int = 96
    z_dim: int = 16
    # The decoder's own width when it differs from the encoder's (None: base_dim, as in Wan's checkpoints):
    # a wider decoder draws more from the same latent space, so the DiT trained on it stays valid.
    decoder_base_dim: int | None = None
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    attn_scales: tuple[float, ...] = ()
    temporal_downsample: tuple[bool, ...] = (False, True, True)
    latents_mean: tuple[float, ...] = WAN21_LATENT_MEAN
    latents_std: tuple[float, ...] = WAN21_LATENT_STD

    def __post_init__(self) -> None:
        if len(self.latents_mean) != self.z_dim or len(self.latents_std) != self.z_dim:
            raise ValueError(
                f"VAEConfig: latents_mean/std need z_dim={self.z_dim} values, "
                f"got {len(self.latents_mean)}/{len(self.latents_std)}"
            )

    @property
    def decoder_dim(self) -> int:
        return self.base_dim if self.decoder_base_dim is None else self.decoder_base_dim

    @property
    def spatial_factor(self) -> int:
        return 2 ** (len(self.dim_mult) - 1)

    @property
    def temporal_factor(self) -> int:
        return 2 ** sum(self.temporal_downsample)


@dataclass(frozen=True)
class TextEncoderConfig:
    """Which text encoder feeds the DiT, and its shape when it is built from weights here.

    kind "umt5": UMT5EncoderModel (Wan); the ``t5`` fields mirror transformers' UMT5Config.
    """

    kind: str = "umt5"
    vocab_size: int = 256384
    d_model: int = 4096
    d_kv: int = 64
    d_ff: int = 10240
    num_layers: int = 24
    num_heads: int = 64
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    max_length: int = 512
    extra: dict[str, Any] = field(default_factory=dict)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def config_from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build ``cls`` from a dict, turning lists back into tuples; unknown keys are an error."""
    names = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - set(names)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown config keys {sorted(unknown)}")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return cls(**kwargs)


def config_to_json(cfg: Any) -> str:
    return json.dumps(config_to_dict(cfg), sort_keys=True)


DIT_PRESETS: dict[str, DiTConfig] = {
    "wan2.1-t2v-1.3B": DiTConfig(),
    "wan2.1-t2v-14B": DiTConfig(dim=5120, ffn_dim=13824, num_heads=40, num_layers=40),
    # Small shapes for tests; head_dim 128 like the real models (rotary split 44/42/42), and
    # Wan's convention num_heads = dim / 128 lets the layout detector infer it from the weights.
    "test-tiny": DiTConfig(dim=256, ffn_dim=512, num_heads=2, num_layers=2, text_dim=64, text_len=32, freq_dim=32),
}

VAE_PRESETS: dict[str, VAEConfig] = {
    "wan2.1": VAEConfig(),
    # num_res_blocks stays 2 so every key pattern matches the real checkpoint.
    "test-tiny": VAEConfig(base_dim=8, z_dim=4, latents_mean=(0.0,) * 4, latents_std=(1.0,) * 4),
}

TEXT_PRESETS: dict[str, TextEncoderConfig] = {
    "umt5-xxl": TextEncoderConfig(),
    "test-tiny-umt5": TextEncoderConfig(
        vocab_size=256, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4, max_length=16
    ),
}
