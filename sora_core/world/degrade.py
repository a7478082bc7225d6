"""Make a clean rendered clip look like a small model's output: Gaussian blur plus pixel noise.

Used to check that the evaluator still reads clips that are a bit soft and grainy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def gaussian_blur(frames: Tensor, sigma: float) -> Tensor:
    """Blur float ``[T, H, W, 3]`` frames spatially with a separable Gaussian (reflected edges)."""
    if sigma <= 0:
        return frames
    radius = max(1, int(3 * sigma + 0.5))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    t, h, w, c = frames.shape
    x = frames.permute(0, 3, 1, 2).reshape(t * c, 1, h, w)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), kernel.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), kernel.view(1, 1, -1, 1))
    return x.view(t, c, h, w).permute(0, 2, 3, 1)


def degrade(frames: Tensor, generator: torch.Generator, blur_sigma: float = 1.0, noise_std: float = 6.0) -> Tensor:
    """uint8 ``[T, H, W, 3]`` blurred by ``blur_sigma`` px, plus Gaussian noise of ``noise_std`` (0..255)."""
    x = gaussian_blur(frames.float(), blur_sigma)
    x = x + torch.randn(x.shape, generator=generator) * noise_std
    return x.round().clamp(0, 255).to(torch.uint8)
