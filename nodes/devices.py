"""Placing sora_core models on ComfyUI's devices the way ComfyUI's own models are placed.

Each loaded network is wrapped in a ModelPatcher, so ComfyUI's memory manager can count it,
evict other models to make room (and evict it for others), and honour --cpu / --lowvram /
--highvram. Our modules are plain torch modules, so they are always loaded whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import comfy.model_management as mm
import comfy.model_patcher
import torch


@dataclass
class ManagedModule:
    """A sora_core network with the ModelPatcher that moves it between load and offload devices."""

    module: torch.nn.Module
    patcher: Any
    kind: str  # "dit", "vae" or "text_encoder"

    def load(self) -> torch.nn.Module:
        """Move the weights to the compute device (freeing memory for them) and return the module."""
        mm.load_models_gpu([self.patcher], force_full_load=True)
        return self.module

    @property
    def device(self) -> torch.device:
        return self.patcher.load_device


class _Holder(torch.nn.Module):
    """What the ModelPatcher manages: it sets bookkeeping attributes (device, lowvram flags) on its model,
    which must not land on (or clash with properties of) the sora_core module itself."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.inner = module


_DEVICES = {
    "dit": (mm.get_torch_device, mm.unet_offload_device),
    "vae": (mm.vae_device, mm.vae_offload_device),
    "text_encoder": (mm.text_encoder_device, mm.text_encoder_offload_device),
}


def manage(module: torch.nn.Module, kind: str) -> ManagedModule:
    load_device, offload_device = (f() for f in _DEVICES[kind])
    module = module.to(offload_device)
    patcher = comfy.model_patcher.ModelPatcher(_Holder(module), load_device=load_device, offload_device=offload_device)
    return ManagedModule(module=module, patcher=patcher, kind=kind)


def compute_dtype(kind: str, choice: str) -> torch.dtype:
    """'default' asks ComfyUI for the dtype it would use on this device; otherwise the user's choice."""
    named = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if choice in named:
        return named[choice]
    if kind == "vae":
        return mm.vae_dtype(mm.vae_device(), allowed_dtypes=[torch.bfloat16, torch.float32])
    device = mm.get_torch_device() if kind == "dit" else mm.text_encoder_device()
    if device.type == "cpu":
        return torch.float32  # CPUs without AVX512-BF16 run bf16 matmuls many times slower
    return mm.unet_dtype(device, supported_dtypes=[torch.bfloat16, torch.float16, torch.float32])
