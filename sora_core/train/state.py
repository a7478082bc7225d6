"""Resumable training state in safetensors (never pickle): model, AdamW moments, step and config."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..loading import read_safetensors, write_safetensors


def save_state(path: str | os.PathLike, model: nn.Module, opt: torch.optim.Optimizer, step: int,
               info: dict[str, Any]) -> Path:
    """model.<key>, opt.<param index>.<moment> tensors; step, optimizer scalars and ``info`` in the metadata."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    scalars: dict[str, dict[str, float]] = {}
    params = [p for group in opt.param_groups for p in group["params"]]
    for i, p in enumerate(params):
        for name, value in opt.state.get(p, {}).items():
            if torch.is_tensor(value) and value.ndim > 0:
                tensors[f"opt.{i}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(i), {})[name] = float(value)
    meta = {"step": str(step), "opt_scalars": json.dumps(scalars), "info": json.dumps(info)}
    return write_safetensors(path, tensors, meta)


def load_state(path: str | os.PathLike, model: nn.Module, opt: torch.optim.Optimizer | None) -> tuple[int, dict]:
    """Restore what :func:`save_state` wrote; returns (step, info)."""
    tensors, meta = read_safetensors(path)
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    if opt is not None:
        params = [p for group in opt.param_groups for p in group["params"]]
        scalars = json.loads(meta.get("opt_scalars", "{}"))
        for i, p in enumerate(params):
            state = {k.split(".", 2)[2]: v.to(p.device) for k, v in tensors.items() if k.startswith(f"opt.{i}.")}
            for name, value in scalars.get(str(i), {}).items():
                state[name] = torch.tensor(value)
            if state:
                opt.state[p] = state
    return int(meta["step"]), json.loads(meta.get("info", "{}"))
