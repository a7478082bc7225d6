"""Shared helpers: relative error and small reference models with randomised weights."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# C2PA development certificates made by the tests (and by the test ComfyUI server, which inherits this
# environment) go to a temporary folder, never to the user's ~/.config/sora_core.
os.environ.setdefault("SORA_C2PA_DIR", tempfile.mkdtemp(prefix="sora-c2pa-test-"))
torch.set_num_threads(min(2, torch.get_num_threads()))


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b||, in float64."""
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm()).item()


def randomize_(module: torch.nn.Module, seed: int = 0, scale: float = 0.1) -> torch.nn.Module:
    """Perturb every parameter so no weight is trivially 0 or 1 (e.g. norm gains)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * scale)
    return module


@pytest.fixture
def rel() -> object:
    return rel_err
