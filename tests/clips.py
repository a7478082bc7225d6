"""Procedural test clips with natural-image statistics, for the watermark tests and benchmark (no downloads).

Kinds: ``pan`` (a camera pan over a 1/f "natural" texture), ``zoom`` (a slow zoom into one), ``shapes`` (soft
objects moving over a gradient, like the synthetic world's clips), ``smooth`` (a nearly flat, slowly changing
gradient: the hardest case for hiding a mark), ``noise`` (fine grain over a texture, like film grain).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

KINDS = ("pan", "zoom", "shapes", "smooth", "noise")


def natural_texture(height: int, width: int, gen: torch.Generator, slope: float = 1.0) -> torch.Tensor:
    """[3, H, W] in [0, 1]: coloured noise whose amplitude spectrum falls as 1/f**slope (about natural images)."""
    fy = torch.fft.fftfreq(height)[:, None]
    fx = torch.fft.rfftfreq(width)[None]
    radius = (fy.square() + fx.square()).sqrt().clamp(min=1.0 / max(height, width))
    amp = radius.pow(-slope)
    mix = torch.tensor([[1.0, 0.6, 0.3], [0.5, 1.0, 0.5], [0.3, 0.6, 1.0]])  # correlated channels, as in photos
    channels = []
    for _ in range(3):
        phase = torch.rand(height, width // 2 + 1, generator=gen) * 2 * math.pi
        spec = amp * torch.polar(torch.ones_like(phase), phase)
        channels.append(torch.fft.irfft2(spec, s=(height, width)))
    x = torch.einsum("ij,jhw->ihw", mix, torch.stack(channels))
    x = (x - x.mean()) / x.std()
    return (0.5 + 0.18 * x + 0.1 * (torch.rand(3, 1, 1, generator=gen) - 0.5)).clamp(0, 1)


def _crop_at(image: torch.Tensor, top: float, left: float, height: int, width: int, zoom: float = 1.0) -> torch.Tensor:
    """A bilinear crop of ``image`` [3, H, W] at a sub-pixel position (and zoom), [3, height, width]."""
    _, h, w = image.shape
    ys = (top + (torch.arange(height) + 0.5) / zoom) / h * 2 - 1
    xs = (left + (torch.arange(width) + 0.5) / zoom) / w * 2 - 1
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)[None]
    return F.grid_sample(image[None], grid, mode="bilinear", align_corners=False, padding_mode="reflection")[0]


def _gradient(height: int, width: int, gen: torch.Generator) -> torch.Tensor:
    a, b = torch.rand(3, 1, 1, generator=gen), torch.rand(3, 1, 1, generator=gen)
    angle = float(torch.rand((), generator=gen)) * 2 * math.pi
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    t = (math.cos(angle) * xx + math.sin(angle) * yy + 1) / 2
    return a * (1 - t) + b * t


def make_clip(kind: str, frames: int, height: int, width: int, seed: int) -> torch.Tensor:
    """A clip ``[T, H, W, 3]`` uint8 of the given kind; the same seed gives the same clip."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    if kind in ("pan", "noise"):
        tex = natural_texture(height + 64, width + 2 * frames + 64, gen)
        vy, vx = (torch.rand(2, generator=gen) * 2 - 1).tolist()
        for i in range(frames):
            frame = _crop_at(tex, 32 + vy * i * 0.7, 32 + 1.3 * i + vx * i * 0.5, height, width)
            if kind == "noise":
                frame = frame + 0.03 * torch.randn(1, height, width, generator=gen)
            out.append(frame)
    elif kind == "zoom":
        tex = natural_texture(height, width, gen)
        for i in range(frames):
            z = 1.0 + 0.01 * i
            out.append(_crop_at(tex, height * (1 - 1 / z) / 2, width * (1 - 1 / z) / 2, height, width, zoom=z))
    elif kind == "shapes":
        background = _gradient(height, width, gen)
        n = 4
        centres = torch.rand(n, 2, generator=gen) * torch.tensor([height, width])
        velocity = (torch.rand(n, 2, generator=gen) - 0.5) * 6
        radii = (0.08 + 0.12 * torch.rand(n, generator=gen)) * min(height, width)
        colours = torch.rand(n, 3, generator=gen)
        yy, xx = torch.meshgrid(torch.arange(height).float(), torch.arange(width).float(), indexing="ij")
        for i in range(frames):
            frame = background.clone()
            for c, v, r, col in zip(centres, velocity, radii, colours, strict=True):
                cy, cx = (c + v * i).tolist()
                d = ((yy - cy).square() + (xx - cx).square()).sqrt()
                alpha = torch.sigmoid((r - d) / 1.5)
                frame = frame * (1 - alpha) + col[:, None, None] * alpha
            out.append(frame)
    elif kind == "smooth":
        a, b = _gradient(height, width, gen), _gradient(height, width, gen)
        for i in range(frames):
            t = i / max(1, frames - 1)
            out.append(a * (1 - t) + b * t)
    else:
        raise ValueError(f"unknown clip kind {kind!r}; use one of {KINDS}")
    clip = torch.stack(out).permute(0, 2, 3, 1).clamp(0, 1)
    return (clip * 255).round().to(torch.uint8)


def media_offset(data: bytes, suffix: str) -> int:
    """A byte in the middle of the picture data, not in the C2PA manifest, so changing it must break the
    signature: MP4 mdat, PNG IDAT, WebP VP8 chunk, or the middle of a GIF."""
    if suffix == ".mp4":
        pos = 0
        while pos + 8 <= len(data):
            size, kind = int.from_bytes(data[pos : pos + 4], "big"), data[pos + 4 : pos + 8]
            if kind == b"mdat":
                return pos + size // 2
            pos += size
    if suffix == ".png":
        i = data.index(b"IDAT")
        return i + 4 + int.from_bytes(data[i - 4 : i], "big") // 2
    if suffix == ".webp":
        for tag in (b"VP8 ", b"VP8L", b"ANMF"):
            if tag in data:
                i = data.index(tag)
                return i + 8 + int.from_bytes(data[i + 4 : i + 8], "little") // 2
    if suffix == ".gif":
        return len(data) // 2
    raise ValueError(f"no picture data found in {suffix}")
