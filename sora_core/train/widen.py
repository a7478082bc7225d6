"""A wider decoder that starts as the same function as a trained one (Net2WiderNet-style growth).

The small VAE's decoder cannot draw fast objects and slow ones at once (docs/model_comparison.md), yet
the encoder's latents hold what is needed. Widening only the decoder keeps the latent space, so the
DiT trained on it stays valid: every hidden channel is copied ``factor`` times, the weights that read
copied channels are divided among the copies, and the result decodes exactly as before. A little
noise then lets the copies grow apart as the decoder is fine-tuned.

Two layouts need care: ``to_qkv`` stacks q, k and v (3 blocks of channels) and the temporal upsample
``time_conv`` stacks two frames (2 blocks), so copies are made within each block; and the attention's
dot product runs over ``factor`` times as many (copied) channels, so q is scaled by 1/sqrt(factor).
Wan's RMSNorm multiplies by sqrt(channels), which exactly undoes the copies in the L2 norm.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

from ..vae import WanVAE

WIDEN_NOISE = 0.02  # of each widened weight's std: enough for the copies to part, a small change of the output


QKV = ("to_qkv.weight", "to_qkv.bias")  # attention's q, k and v stacked along the output channels


def _blocks(name: str) -> int:
    """How many stacked blocks a decoder parameter's output channels hold."""
    if name.endswith(QKV):
        return 3
    if ".time_conv." in name:
        return 2
    return 1


def _copy_dim(t: Tensor, dim: int, blocks: int, factor: int) -> Tensor:
    """``t`` with each of the ``blocks`` blocks along ``dim`` repeated ``factor`` times in place."""
    shape = list(t.shape)
    size = shape[dim] // blocks
    split = t.reshape(*shape[:dim], blocks, 1, size, *shape[dim + 1:])
    copied = split.expand(*shape[:dim], blocks, factor, size, *shape[dim + 1:])
    return copied.reshape(*shape[:dim], blocks * factor * size, *shape[dim + 1:])


def _widened(name: str, old: Tensor, new_shape: torch.Size, factor: int) -> Tensor:
    out = old
    if new_shape[0] != old.shape[0]:  # output channels (or a norm's / bias's channels)
        out = _copy_dim(out, 0, _blocks(name), factor)
    if old.dim() >= 4 and new_shape[1] != old.shape[1]:  # a conv reading widened channels
        out = _copy_dim(out, 1, 1, factor) / factor  # inputs are copies: split their weight among them
    if tuple(out.shape) != tuple(new_shape):
        raise ValueError(f"widen_decoder: cannot map {name} {tuple(old.shape)} to {tuple(new_shape)}")
    return out


def widen_decoder(vae: WanVAE, factor: int, *, noise: float = 0.0, seed: int = 0) -> WanVAE:
    """A copy of ``vae`` whose decoder is ``factor`` times as wide and, with ``noise`` 0, decodes the same.

    ``noise`` adds Gaussian noise of that fraction of each widened weight's standard deviation, to break
    the symmetry between copies before training.
    """
    if factor < 1:
        raise ValueError(f"widen_decoder: factor={factor}; use 1 or more")
    cfg = dataclasses.replace(vae.config, decoder_base_dim=vae.config.decoder_dim * factor)
    wide = WanVAE(cfg).to(dtype=vae.dtype)
    old = vae.state_dict()
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, target in wide.state_dict().items():
        value = old[name]
        if name.startswith("decoder.") and value.shape != target.shape:
            value = _widened(name, value, target.shape, factor)
            if name.endswith(QKV):
                q = value.shape[0] // 3  # scale q: the dot product now sums factor copies of each product
                value = value.clone()
                value[:q] /= math.sqrt(factor)
            if noise and name.endswith("weight") and value.dim() >= 4:
                value = value + noise * value.std() * torch.randn(value.shape, generator=gen).to(value.dtype)
        state[name] = value
    wide.load_state_dict(state)
    return wide.to(vae.device)
