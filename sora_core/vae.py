"""The causal 3D video VAE (Wan-VAE 2.1 architecture): 8x8 spatial and 4x temporal compression.

Pixels [B, 3, T, H, W] in [-1, 1] with T = 4k + 1 become latents [B, z_dim, k + 1, H/8, W/8]. Every
temporal operation is causal (a frame only sees itself and earlier frames), so a clip can be
processed in time chunks: each causal layer remembers the few past frames it still needs in a
per-call cache (:class:`StreamCache`), and the result does not depend on where the chunks are cut.
That keeps the working memory of a decode flat however long the clip is.

A loop is decoded with time wrapped around instead (:meth:`WanVAE.decode_periodic`): every causal
layer takes its past from the end of the period itself (:class:`WrapAround`), which is exactly what
the layers would see after the period had played many times over, so the last frame leads into the
first like any two neighbours.

The first frame is special: it is encoded on its own (the first latent frame describes exactly one
pixel frame) and the temporal down/up-sampling layers pass it through unchanged.

Module and attribute names are the keys of the original Wan release and of ComfyUI's
``wan_2.1_vae.safetensors`` (``encoder.downsamples.N.residual.{0,2,3,6}``, ``decoder.upsamples.N``,
``head.{0,2}``, top-level ``conv1``/``conv2``), so those files load with a plain
``load_state_dict(strict=True)``. diffusers files are renamed by :mod:`sora_core.loading.vae_keys`.

Only the mean of the posterior is used (``encode`` is deterministic) and decoded pixels are clamped
to [-1, 1]. The public methods run without autograd: the VAE is frozen in this engine.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import VAE_PRESETS, VAEConfig
from .errors import InputError

__all__ = ["WanVAE", "TileSpec", "StreamCache", "WrapAround", "normalize_latent", "denormalize_latent",
           "CausalConv3d", "RMSNorm", "ResidualBlock", "AttentionBlock", "Resample", "Encoder3d", "Decoder3d"]

Stats = Sequence[float] | Tensor


def _channel_stats(mean: Stats, std: Stats, like: Tensor) -> tuple[Tensor, Tensor]:
    def as_tensor(v: Stats) -> Tensor:
        return torch.as_tensor(v, dtype=torch.float32, device=like.device).view(1, -1, 1, 1, 1)

    return as_tensor(mean), as_tensor(std)


def normalize_latent(mu: Tensor, mean: Stats, std: Stats) -> Tensor:
    """(mu - mean) / std per channel of a [B, C, T, H, W] latent, in float32, returned in mu's dtype."""
    m, s = _channel_stats(mean, std, mu)
    return ((mu.float() - m) / s).to(mu.dtype)


def denormalize_latent(latent: Tensor, mean: Stats, std: Stats) -> Tensor:
    """latent * std + mean per channel: the inverse of ``normalize_latent``."""
    m, s = _channel_stats(mean, std, latent)
    return (latent.float() * s + m).to(latent.dtype)


# What each causal layer remembers between chunks (keyed by the layer module).
StreamCache = dict[nn.Module, Any]


class WrapAround(dict):
    """Passed where a :data:`StreamCache` goes: every causal layer pads time with the last frames of
    its own input (circular padding) and there is no special first frame. The input is one period of
    a sequence that repeats forever, so the result is that sequence's steady state: the same as
    decoding the period many times in a row and keeping the last repeat, without the slow start-up
    transient of the causal layers (whose history reaches back dozens of frames)."""


def _triple(v: int | tuple[int, int, int]) -> tuple[int, int, int]:
    return (v, v, v) if isinstance(v, int) else tuple(v)  # type: ignore[return-value]


class CausalConv3d(nn.Conv3d):
    """Conv3d whose time padding is all in the past, so frame t never sees frames after t.

    With a cache, the missing past frames come from the previous chunk instead of zeros (zeros
    only before the first frame), which makes chunked and whole-clip results identical.
    """

    prefer_onednn = True  # class-wide switch; bench/vae_conv_path.py turns it off to time PyTorch's own choice

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int, int],
        stride: int | tuple[int, int, int] = 1,
        padding: int | tuple[int, int, int] = 0,
    ) -> None:
        pad_t, pad_h, pad_w = _triple(padding)
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=(0, pad_h, pad_w))
        self.past_frames = 2 * pad_t  # frames of history each output frame needs

    def forward(self, x: Tensor, cache: StreamCache | None = None) -> Tensor:  # type: ignore[override]
        if self.past_frames and isinstance(cache, WrapAround):
            wrapped = torch.arange(-self.past_frames, 0, device=x.device) % x.shape[2]  # short periods repeat
            return super().forward(torch.cat([x[:, :, wrapped], x], dim=2))
        if self.past_frames:
            past = cache.get(self) if cache is not None else None
            if past is None:
                b, c, _, h, w = x.shape
                past = x.new_zeros(b, c, self.past_frames, h, w)
            x = torch.cat([past, x], dim=2)
            if cache is not None:
                cache[self] = x[:, :, -self.past_frames:].clone()  # clone: do not pin the whole chunk
        return super().forward(x)

    def _conv_forward(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        # PyTorch's CPU backend sends small 5-D inputs (a decode chunk of a few frames at 16x16) to its
        # unfold-based slow_conv3d, about 2x slower than oneDNN on the same input with the same numbers
        # to 1e-6 (bench/vae_conv_path.py). Inference only: training keeps PyTorch's choice.
        if (self.prefer_onednn and x.device.type == "cpu" and x.dtype == torch.float32
                and not torch.is_grad_enabled() and torch.backends.mkldnn.is_available()):
            return torch.ops.aten.mkldnn_convolution(x, weight, bias, self.padding, self.stride, self.dilation,
                                                     self.groups)
        return super()._conv_forward(x, weight, bias)


class RMSNorm(nn.Module):
    """Wan's RMS_norm over channels: L2-normalise, times sqrt(C) and a learned gain ``gamma``.

    ``gamma`` is (C, 1, 1, 1) for video tensors and (C, 1, 1) for per-frame images (attention), as
    in the checkpoints. Half-precision inputs are normalised in float32.
    """

    def __init__(self, dim: int, images: bool = False) -> None:
        super().__init__()
        self.scale = dim**0.5
        self.gamma = nn.Parameter(torch.ones((dim, 1, 1) if images else (dim, 1, 1, 1)))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        gain = self.gamma.to(xf.dtype) * self.scale
        return (F.normalize(xf, dim=1) * gain).to(x.dtype)


def _norm_silu(norm: nn.Module, x: Tensor) -> Tensor:
    y = norm(x)
    return F.silu(y, inplace=not torch.is_grad_enabled())


class ResidualBlock(nn.Module):
    """norm-SiLU-conv-norm-SiLU-conv plus a (1x1x1 conv when the width changes) shortcut.

    ``residual`` keeps Wan's indices (0 norm, 2 conv, 3 norm, 6 conv; 1, 4, 5 are parameter-free:
    SiLU, SiLU and the dropout slot) so the state-dict keys match the checkpoints.
    """

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            RMSNorm(in_dim), nn.SiLU(), CausalConv3d(in_dim, out_dim, 3, padding=1),
            RMSNorm(out_dim), nn.SiLU(), nn.Identity(), CausalConv3d(out_dim, out_dim, 3, padding=1),
        )
        self.shortcut = CausalConv3d(in_dim, out_dim, 1) if in_dim != out_dim else nn.Identity()

    def forward(self, x: Tensor, cache: StreamCache | None = None) -> Tensor:
        r = self.residual
        h = self.shortcut(x)
        x = r[2](_norm_silu(r[0], x), cache)
        x = r[6](_norm_silu(r[3], x), cache)
        return x + h


class AttentionBlock(nn.Module):
    """Single-head self-attention over the pixels of each frame (no mixing across time)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = RMSNorm(dim, images=True)
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: Tensor, cache: StreamCache | None = None) -> Tensor:
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)
        qkv = self.to_qkv(self.norm(frames)).view(b * t, 3, c, h * w).transpose(-1, -2)
        q, k, v = (qkv[:, i].unsqueeze(1) for i in range(3))  # [b*t, 1 head, h*w, c]
        y = F.scaled_dot_product_attention(q, k, v).squeeze(1).transpose(1, 2).reshape(b * t, c, h, w)
        y = self.proj(y).view(b, t, c, h, w).transpose(1, 2)
        return x + y


class Resample(nn.Module):
    """2x spatial down/up-sampling of every frame, and 2x in time for the ``*3d`` modes.

    downsample: ZeroPad(0,1,0,1) + stride-2 3x3 conv per frame; in 3d mode then a stride-2 time
    conv over frames (0,1,2), (2,3,4), ... while frame 0 passes through: 1 + 2m frames -> 1 + m.
    upsample: nearest x2 + 3x3 conv C -> C/2 per frame; in 3d mode first a causal time conv
    C -> 2C whose halves become two consecutive frames, for every frame but frame 0 (which
    passes through): 1 + m frames -> 1 + 2m.
    """

    MODES = ("downsample2d", "downsample3d", "upsample2d", "upsample3d")

    def __init__(self, dim: int, mode: str) -> None:
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f"Resample mode {mode!r}; use one of {self.MODES}")
        self.mode = mode
        if mode.startswith("up"):
            self.resample = nn.Sequential(
                nn.Upsample(scale_factor=2.0, mode="nearest-exact"), nn.Conv2d(dim, dim // 2, 3, padding=1)
            )
        else:
            self.resample = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(dim, dim, 3, stride=2))
        if mode == "upsample3d":
            self.time_conv: nn.Module = CausalConv3d(dim, dim * 2, (3, 1, 1), padding=(1, 0, 0))
        elif mode == "downsample3d":
            self.time_conv = nn.Conv3d(dim, dim, (3, 1, 1), stride=(2, 1, 1))

    def forward(self, x: Tensor, cache: StreamCache | None = None) -> Tensor:
        if self.mode == "upsample3d":
            x = self._double_frames(x, cache)
        b, c, t, h, w = x.shape
        y = self.resample(x.transpose(1, 2).reshape(b * t, c, h, w))
        x = y.view(b, t, *y.shape[1:]).transpose(1, 2).contiguous()
        if self.mode == "downsample3d":
            x = self._halve_frames(x, cache)
        return x

    def _double_frames(self, x: Tensor, cache: StreamCache | None) -> Tensor:
        first = cache is None or (self not in cache and not isinstance(cache, WrapAround))
        if cache is not None:
            cache[self] = True  # frame 0 has been seen
        head, rest = (x[:, :, :1], x[:, :, 1:]) if first else (None, x)
        if rest.shape[2] == 0:
            return head  # type: ignore[return-value]
        b, c, t, h, w = rest.shape
        y = self.time_conv(rest, cache)  # [b, 2c, t, h, w]; frame 0 is not in its history
        y = y.view(b, 2, c, t, h, w).permute(0, 2, 3, 1, 4, 5).reshape(b, c, 2 * t, h, w)
        return y if head is None else torch.cat([head, y], dim=2)

    def _halve_frames(self, x: Tensor, cache: StreamCache | None) -> Tensor:
        if isinstance(cache, WrapAround):
            raise NotImplementedError("wrap-around encoding is not supported (only decoding a period)")
        pending = cache.get(self) if cache is not None else None
        head = x[:, :, :1] if pending is None else None  # frame 0 passes through ...
        buf = x if pending is None else torch.cat([pending, x], dim=2)  # ... and starts the first window
        windows = (buf.shape[2] - 1) // 2
        if cache is not None:
            cache[self] = buf[:, :, 2 * windows:].clone()  # where the next window starts
        if windows == 0:
            return head if head is not None else buf[:, :, :0]
        y = self.time_conv(buf[:, :, : 2 * windows + 1])
        return y if head is None else torch.cat([head, y], dim=2)


def _run(layers: nn.Sequential, x: Tensor, cache: StreamCache | None) -> Tensor:
    for layer in layers:
        x = layer(x, cache)
        if x.shape[2] == 0:  # a temporal downsample is still waiting for frames
            break
    return x


class Encoder3d(nn.Module):
    """Pixels -> 2*z_dim channels (mean and log-variance) at 1/8 size and about 1/4 frames."""

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        dims = [cfg.base_dim * m for m in (1, *cfg.dim_mult)]
        self.conv1 = CausalConv3d(3, dims[0], 3, padding=1)
        layers: list[nn.Module] = []
        scale = 1.0
        for i, (cin, cout) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            for _ in range(cfg.num_res_blocks):
                layers.append(ResidualBlock(cin, cout))
                if scale in cfg.attn_scales:
                    layers.append(AttentionBlock(cout))
                cin = cout
            if i != len(cfg.dim_mult) - 1:
                layers.append(Resample(cout, "downsample3d" if cfg.temporal_downsample[i] else "downsample2d"))
                scale /= 2.0
        self.downsamples = nn.Sequential(*layers)
        top = dims[-1]
        self.middle = nn.Sequential(ResidualBlock(top, top), AttentionBlock(top), ResidualBlock(top, top))
        self.head = nn.Sequential(RMSNorm(top), nn.SiLU(), CausalConv3d(top, cfg.z_dim * 2, 3, padding=1))

    def forward(self, x: Tensor, cache: StreamCache | None = None) -> Tensor:
        x = self.conv1(x, cache)
        x = _run(self.downsamples, x, cache)
        if x.shape[2]:
            x = _run(self.middle, x, cache)
        if x.shape[2] == 0:
            b, _, _, h, w = x.shape
            return x.new_zeros(b, self.head[2].out_channels, 0, h, w)
        return self.head[2](_norm_silu(self.head[0], x), cache)


class Decoder3d(nn.Module):
    """z_dim channels -> RGB at 8x size; latent frame 0 gives 1 frame, every later one 4."""

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        mult = cfg.dim_mult
        dims = [cfg.decoder_dim * m for m in (mult[-1], *reversed(mult))]
        temporal_up = tuple(reversed(cfg.temporal_downsample))
        self.conv1 = CausalConv3d(cfg.z_dim, dims[0], 3, padding=1)
        self.middle = nn.Sequential(ResidualBlock(dims[0], dims[0]), AttentionBlock(dims[0]),
                                    ResidualBlock(dims[0], dims[0]))
        layers: list[nn.Module] = []
        scale = 1.0 / 2 ** (len(mult) - 2)
        for i, (cin, cout) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            if i > 0:
                cin //= 2  # the previous stage's upsample conv halved the channels
            for _ in range(cfg.num_res_blocks + 1):
                layers.append(ResidualBlock(cin, cout))
                if scale in cfg.attn_scales:
                    layers.append(AttentionBlock(cout))
                cin = cout
            if i != len(mult) - 1:
                layers.append(Resample(cout, "upsample3d" if temporal_up[i] else "upsample2d"))
                scale *= 2.0
        self.upsamples = nn.Sequential(*layers)
        self.head = nn.Sequential(RMSNorm(dims[-1]), nn.SiLU(), CausalConv3d(dims[-1], 3, 3, padding=1))

    def forward(self, x: Tensor, cache: StreamCache | None = None) -> Tensor:
        x = self.conv1(x, cache)
        x = _run(self.middle, x, cache)
        x = _run(self.upsamples, x, cache)
        return self.head[2](_norm_silu(self.head[0], x), cache)


@dataclass(frozen=True)
class TileSpec:
    """Spatial tiling of a decode, in latent pixels (x8 in output pixels).

    Tiles of ``height`` x ``width`` latent pixels overlap by ``overlap`` and are blended with
    linear ramps across the overlaps. The attention and the receptive field of the convolutions
    see only their tile, so tiled output differs slightly from untiled output near tile borders.
    """

    height: int
    width: int
    overlap: int = 4

    def __post_init__(self) -> None:
        if self.height < 1 or self.width < 1:
            raise InputError(f"tile size {self.height}x{self.width} (latent pixels); use at least 1x1")
        if not 0 <= self.overlap < min(self.height, self.width):
            raise InputError(
                f"tile overlap {self.overlap} with tiles of {self.height}x{self.width} latent pixels; "
                "use 0 <= overlap < the smaller tile side"
            )


TileArg = TileSpec | tuple[int, int, int] | None  # (height, width, overlap) in latent pixels


def _tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    if tile >= size:
        return [0]
    return [*range(0, size - tile, tile - overlap), size - tile]


def _ramp(starts: list[int], tile: int, size: int, factor: int) -> list[Tensor]:
    """Per-tile 1D blend weights (in output pixels): rise over the overlap with the previous
    tile, fall over the overlap with the next one, 1 elsewhere."""
    ramps = []
    for i, s in enumerate(starts):
        e = min(s + tile, size)
        pos = torch.arange(s * factor, e * factor, dtype=torch.float32)
        w = torch.ones_like(pos)
        if i > 0:
            prev_end = min(starts[i - 1] + tile, size) * factor
            n = prev_end - s * factor
            w = torch.minimum(w, (pos - s * factor + 1) / (n + 1))
        if i + 1 < len(starts):
            nxt = starts[i + 1] * factor
            n = e * factor - nxt
            w = torch.minimum(w, (e * factor - pos) / (n + 1))
        ramps.append(w.clamp_(max=1.0))
    return ramps


def _tile_plan(h: int, w: int, factor: int, spec: TileSpec | None, device: torch.device, dtype: torch.dtype
               ) -> list[tuple[slice, slice, Tensor | None]]:
    """(latent rows, latent cols, output-pixel blend weight) per tile; one weightless tile when untiled."""
    if spec is None or (spec.height >= h and spec.width >= w):
        return [(slice(0, h), slice(0, w), None)]
    ys, xs = _tile_starts(h, spec.height, spec.overlap), _tile_starts(w, spec.width, spec.overlap)
    ry, rx = _ramp(ys, spec.height, h, factor), _ramp(xs, spec.width, w, factor)
    boxes = [(slice(y, min(y + spec.height, h)), slice(x, min(x + spec.width, w)), ry[i][:, None] * rx[j][None, :])
             for i, y in enumerate(ys) for j, x in enumerate(xs)]
    total = torch.zeros(h * factor, w * factor)
    for rows, cols, wt in boxes:
        total[rows.start * factor:rows.stop * factor, cols.start * factor:cols.stop * factor] += wt
    # Normalised so the weights sum to exactly one at every output pixel.
    return [
        (rows, cols, (wt / total[rows.start * factor:rows.stop * factor, cols.start * factor:cols.stop * factor])
         .to(device=device, dtype=dtype))
        for rows, cols, wt in boxes
    ]


class WanVAE(nn.Module):
    """Wan-VAE 2.1: ``encode`` video -> normalised latent, ``decode`` normalised latent -> video.

    Latents are normalised per channel, ``(mu - latents_mean) / latents_std``, which is what the
    DiT works on. The ``*_raw`` methods skip that normalisation. Computation happens in the
    module's dtype and device; inputs are moved there one chunk at a time.
    """

    def __init__(self, config: VAEConfig | None = None) -> None:
        super().__init__()
        cfg = config or VAE_PRESETS["wan2.1"]
        if len(cfg.temporal_downsample) != len(cfg.dim_mult) - 1:
            raise ValueError(
                f"VAEConfig: temporal_downsample needs {len(cfg.dim_mult) - 1} entries (one per downsample), "
                f"got {len(cfg.temporal_downsample)}"
            )
        self.config = cfg
        self.encoder = Encoder3d(cfg)
        self.conv1 = CausalConv3d(cfg.z_dim * 2, cfg.z_dim * 2, 1)
        self.conv2 = CausalConv3d(cfg.z_dim, cfg.z_dim, 1)
        self.decoder = Decoder3d(cfg)

    # --- properties -------------------------------------------------------------------------

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def normalize_latent(self, mu: Tensor) -> Tensor:
        """Raw posterior mean -> the normalised latent the DiT sees (computed in float32)."""
        return normalize_latent(mu, self.config.latents_mean, self.config.latents_std)

    def denormalize_latent(self, latent: Tensor) -> Tensor:
        """Normalised latent -> raw decoder input (computed in float32)."""
        return denormalize_latent(latent, self.config.latents_mean, self.config.latents_std)

    # --- validation ---------------------------------------------------------------------------

    def latent_frames(self, frames: int) -> int:
        """Latent frames for a clip of ``frames`` (= 4k + 1) pixel frames."""
        return (frames - 1) // self.config.temporal_factor + 1

    def pixel_frames(self, latent_frames: int) -> int:
        """Pixel frames decoded from ``latent_frames`` latent frames."""
        return (latent_frames - 1) * self.config.temporal_factor + 1

    def _check_video(self, video: Tensor) -> None:
        tf, sf = self.config.temporal_factor, self.config.spatial_factor
        if video.ndim != 5 or video.shape[1] != 3:
            raise InputError(
                f"video must be [batch, 3, frames, height, width] in [-1, 1]; got shape {tuple(video.shape)}"
            )
        t, h, w = video.shape[2:]
        if t < 1 or (t - 1) % tf:
            lower = (t - 1) // tf * tf + 1 if t >= 1 else 1
            raise InputError(
                f"video has {t} frames; the VAE needs {tf}k+1 frames (1, {tf + 1}, {2 * tf + 1}, ...): "
                f"use {max(lower, 1)} or {lower + tf}"
            )
        if h < sf or w < sf or h % sf or w % sf:
            fix_h, fix_w = (max(sf, round(v / sf) * sf) for v in (h, w))
            raise InputError(
                f"video frames are {w}x{h} (width x height); both sides must be multiples of {sf}: "
                f"use {fix_w}x{fix_h}"
            )

    def _check_latent(self, latent: Tensor, chunk_frames: int) -> None:
        z = self.config.z_dim
        if latent.ndim != 5:
            raise InputError(f"latent must be [batch, {z}, frames, height, width]; got shape {tuple(latent.shape)}")
        if latent.shape[1] != z:
            raise InputError(
                f"latent has {latent.shape[1]} channels but this VAE's latent has z_dim={z}; "
                "was it made by a different VAE (e.g. Wan 2.2 uses 48)?"
            )
        if 0 in latent.shape[2:]:
            raise InputError(f"latent has an empty frame, height or width: shape {tuple(latent.shape)}")
        if chunk_frames < 1:
            raise InputError(f"chunk_frames={chunk_frames}; use at least 1 latent frame per chunk")

    # --- encode -------------------------------------------------------------------------------

    @torch.no_grad()
    def encode(self, video: Tensor, chunk_frames: int = 1) -> Tensor:
        """Video [B, 3, 4k+1, H, W] in [-1, 1] -> normalised latent [B, z, k+1, H/8, W/8].

        Runs the first frame alone, then ``4 * chunk_frames`` frames at a time with a causal
        cache, so memory does not grow with the clip length; the result does not depend on
        ``chunk_frames``.
        """
        return self._encode(video, chunk_frames, normalize=True)

    @torch.no_grad()
    def encode_raw(self, video: Tensor, chunk_frames: int = 1) -> Tensor:
        """Like :meth:`encode` but returns the raw posterior mean (Wan's ``mu``, diffusers' mean)."""
        return self._encode(video, chunk_frames, normalize=False)

    def _encode(self, video: Tensor, chunk_frames: int, normalize: bool) -> Tensor:
        self._check_video(video)
        if chunk_frames < 1:
            raise InputError(f"chunk_frames={chunk_frames}; use at least 1 latent frame per chunk")
        cfg, dtype, device = self.config, self.dtype, self.device
        b, _, t, h, w = video.shape
        sf, tf, z = cfg.spatial_factor, cfg.temporal_factor, cfg.z_dim
        out = torch.empty(b, z, self.latent_frames(t), h // sf, w // sf, dtype=dtype, device=device)
        cache: StreamCache = {}
        bounds = [0, *range(1, t, tf * chunk_frames), t]
        done = 0
        for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
            feats = self.encoder(video[:, :, start:stop].to(device=device, dtype=dtype), cache)
            mu = F.conv3d(feats, self.conv1.weight[:z], self.conv1.bias[:z])  # the log-variance half is unused
            if normalize:
                mu = self.normalize_latent(mu)
            n = mu.shape[2]
            out[:, :, done:done + n] = mu
            done += n
        if done != out.shape[2]:
            raise RuntimeError(f"encoder produced {done} latent frames, expected {out.shape[2]}")
        return out

    # --- decode -------------------------------------------------------------------------------

    @torch.no_grad()
    def decode(self, latent: Tensor, chunk_frames: int = 1, tile: TileArg = None) -> Tensor:
        """Normalised latent [B, z, k+1, h, w] -> video [B, 3, 4k+1, 8h, 8w] in [-1, 1].

        Decodes ``chunk_frames`` latent frames at a time with a causal cache and writes them into
        one preallocated output; the result is the same for any ``chunk_frames``. ``tile``
        (latent pixels: height, width, overlap) bounds the spatial working size for big frames.
        """
        return self._decode_into(latent, chunk_frames, tile, normalized=True)

    @torch.no_grad()
    def decode_raw(self, z: Tensor, chunk_frames: int = 1, tile: TileArg = None) -> Tensor:
        """Like :meth:`decode` but takes the raw (un-normalised) latent, as diffusers' ``decode``."""
        return self._decode_into(z, chunk_frames, tile, normalized=False)

    @torch.no_grad()
    def decode_periodic(self, latent: Tensor, tile: TileArg = None) -> Tensor:
        """One period of an endless loop: normalised latent [B, z, k, h, w] whose every frame is a 4-frame
        group -> video [B, 3, 4k, 8h, 8w] in [-1, 1], decoded with time wrapped around (:class:`WrapAround`),
        so playing it on repeat has no seam. The whole period is decoded at once (no time chunks)."""
        spec = self._prepare_decode(latent, latent.shape[2], tile)
        return next(self._decode_chunks(latent, latent.shape[2], spec, normalized=True, periodic=True))

    def decode_iter(self, latent: Tensor, chunk_frames: int = 1, tile: TileArg = None
                    ) -> Iterator[Tensor]:
        """Decode a normalised latent as a stream of pixel-frame chunks [B, 3, n, 8h, 8w].

        The first chunk has ``1 + 4 * (chunk_frames - 1)`` frames, later ones ``4 * chunk_frames``
        (the last may be shorter), so a writer can store frames without holding the whole clip.
        Input errors are raised here, not at the first ``next()``.
        """
        spec = self._prepare_decode(latent, chunk_frames, tile)
        return self._decode_chunks(latent, chunk_frames, spec, normalized=True)

    def _prepare_decode(self, latent: Tensor, chunk_frames: int, tile: TileArg) -> TileSpec | None:
        self._check_latent(latent, chunk_frames)
        if tile is None or isinstance(tile, TileSpec):
            return tile
        try:
            return TileSpec(*tile)
        except TypeError:
            raise InputError(f"tile={tile!r}; give (height, width, overlap) in latent pixels or a TileSpec") from None

    def _decode_into(self, latent: Tensor, chunk_frames: int, tile: TileArg, normalized: bool
                     ) -> Tensor:
        spec = self._prepare_decode(latent, chunk_frames, tile)
        b, _, t, h, w = latent.shape
        sf = self.config.spatial_factor
        out = torch.empty(b, 3, self.pixel_frames(t), h * sf, w * sf, dtype=self.dtype, device=self.device)
        done = 0
        for chunk in self._decode_chunks(latent, chunk_frames, spec, normalized):
            n = chunk.shape[2]
            out[:, :, done:done + n] = chunk
            done += n
        return out

    @torch.no_grad()
    def _decode_chunks(self, latent: Tensor, chunk_frames: int, spec: TileSpec | None, normalized: bool,
                       periodic: bool = False) -> Iterator[Tensor]:
        dtype, device = self.dtype, self.device
        b, _, t, h, w = latent.shape
        sf = self.config.spatial_factor
        tiles = _tile_plan(h, w, sf, spec, device, dtype)
        caches: list[StreamCache] = [WrapAround() if periodic else {} for _ in tiles]
        for start in range(0, t, chunk_frames):
            z = latent[:, :, start:start + chunk_frames].to(device=device)
            z = (self.denormalize_latent(z.float()) if normalized else z).to(dtype)
            z = self.conv2(z)
            if len(tiles) == 1:
                x = self.decoder(z, caches[0])
            else:
                x = None
                for (rows, cols, wt), cache in zip(tiles, caches, strict=True):
                    piece = self.decoder(z[:, :, :, rows, cols], cache)
                    if x is None:
                        x = piece.new_zeros(b, 3, piece.shape[2], h * sf, w * sf)
                    oy, ox = slice(rows.start * sf, rows.stop * sf), slice(cols.start * sf, cols.stop * sf)
                    x[:, :, :, oy, ox].add_(piece * wt)
            yield x.clamp_(-1.0, 1.0)  # type: ignore[union-attr]

    def forward(self, video: Tensor) -> Tensor:
        """Reconstruction (encode then decode), mainly for checks and round trips."""
        return self.decode(self.encode(video))
