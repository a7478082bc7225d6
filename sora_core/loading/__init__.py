"""Weight loading: one entry point per network, whatever layout the file uses.

Supported layouts: the original Wan release and ComfyUI's repackaged files (canonical names,
maybe prefixed by ``model.diffusion_model.``), diffusers, and the project's own files (component
prefixes, config as JSON in the safetensors metadata, so a file describes itself).
Models are built on the meta device and take the loaded tensors directly, so loading a 1.3B DiT
never holds a second, randomly initialised copy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..config import DiTConfig, VAEConfig, config_from_dict, config_to_json
from ..errors import WeightsError
from . import dit_keys
from .layouts import PROJECT_FORMAT, PROJECT_FORMAT_VERSION, Detected, Layout, describe, detect, infer_dit_config
from .safetensors_io import read_keys, read_metadata, read_safetensors, write_safetensors

__all__ = [
    "Detected", "Layout", "detect_file", "load_dit", "load_vae", "load_text_encoder", "save_project_file",
    "read_safetensors", "write_safetensors",
]


def detect_file(path: str | os.PathLike) -> Detected | None:
    """What a safetensors file holds, from its header only (no tensor is read)."""
    return detect(read_keys(path), read_metadata(path))


def _expect(path: Path, component: str, det: Detected | None) -> Detected:
    wanted = {"dit": "a diffusion transformer (DiT)", "vae": "a video VAE", "text_encoder": "a text encoder"}
    wanted = wanted[component]
    if det is None or (det.component != component and det.component != "bundle"):
        folders = {"dit": "diffusion_models", "vae": "vae", "text_encoder": "text_encoders"}
        folder = folders.get(det.component) if det else None
        hint = f"; it belongs in ComfyUI's models/{folder} folder" if folder else ""
        raise WeightsError(f"{path.name}: expected {wanted}, but the file holds {describe(det)}{hint}")
    return det


def _component_tensors(sd: dict[str, Tensor], component: str, det: Detected) -> dict[str, Tensor]:
    if det.layout is Layout.PROJECT:
        prefix = component + "."
        return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    if det.prefix:
        return {k[len(det.prefix):]: v for k, v in sd.items() if k.startswith(det.prefix)}
    return sd


def _project_config(meta: dict[str, str], component: str, cls: type) -> Any:
    raw = meta.get(f"{component}_config")
    return config_from_dict(cls, json.loads(raw)) if raw else None


def _assign_weights(model: nn.Module, sd: dict[str, Tensor], path: Path, what: str) -> None:
    """Load ``sd`` into a meta-device model, turning key or shape problems into one clear error."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    wrong = [
        f"{k}: file {tuple(sd[k].shape)}, model {tuple(expected[k].shape)}"
        for k in expected if k in sd and sd[k].shape != expected[k].shape
    ]
    if missing or unexpected or wrong:
        lines = []
        if missing:
            lines.append(f"missing {len(missing)} keys, e.g. {missing[:3]}")
        if unexpected:
            lines.append(f"{len(unexpected)} unexpected keys, e.g. {unexpected[:3]}")
        if wrong:
            lines.append(f"{len(wrong)} shape mismatches, e.g. {wrong[:3]}")
        raise WeightsError(f"{path.name} does not fit the {what} it was loaded as: " + "; ".join(lines))
    model.load_state_dict(sd, strict=True, assign=True)


def _finish(model: nn.Module, dtype: torch.dtype, device: str | torch.device) -> nn.Module:
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


def load_dit(
    path: str | os.PathLike,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    config: DiTConfig | None = None,
) -> nn.Module:
    """Load a Wan 2.1 DiT from Wan/ComfyUI, diffusers or project-format safetensors."""
    from ..dit import WanDiT

    path = Path(path)
    det = _expect(path, "dit", detect_file(path))
    raw, meta = read_safetensors(path)
    sd = _component_tensors(raw, "dit", det)
    if det.layout is Layout.DIFFUSERS:
        converted = {}
        for key, value in sd.items():
            new = dit_keys.diffusers_key_to_wan(key)
            if new is None:
                raise WeightsError(f"{path.name}: diffusers key {key!r} has no counterpart in this engine's DiT")
            converted[new] = value
        sd = converted
    for marker, variant in dit_keys.UNSUPPORTED_MARKERS.items():
        if marker in sd:
            raise WeightsError(f"{path.name} is a {variant} model, which this engine does not run yet; use a T2V model")

    found = _project_config(meta, "dit", DiTConfig) or infer_dit_config(
        {k: tuple(v.shape) for k, v in sd.items()}, text_len=config.text_len if config else 512
    )
    cfg = config or found
    if config is not None and config != found and det.layout is Layout.PROJECT:
        raise WeightsError(f"{path.name} holds DiT config {found}, not the requested {config}")
    with torch.device("meta"):
        model = WanDiT(cfg)
    _assign_weights(model, sd, path, f"DiT {describe(det)} with dim={cfg.dim}, layers={cfg.num_layers}")
    return _finish(model, dtype, device)


def load_vae(
    path: str | os.PathLike,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    config: VAEConfig | None = None,
) -> nn.Module:
    """Load a Wan 2.1 VAE from Wan/ComfyUI, diffusers or project-format safetensors."""
    from ..vae import WanVAE
    from .vae_keys import vae_state_dict_from_diffusers

    path = Path(path)
    det = _expect(path, "vae", detect_file(path))
    raw, meta = read_safetensors(path)
    sd = _component_tensors(raw, "vae", det)
    if det.layout is Layout.DIFFUSERS:
        sd = vae_state_dict_from_diffusers(sd)
    cfg = config or _project_config(meta, "vae", VAEConfig) or _infer_vae_config(sd, path)
    with torch.device("meta"):
        model = WanVAE(cfg)
    _assign_weights(model, sd, path,
                    f"VAE with base_dim={cfg.base_dim}, decoder width {cfg.decoder_dim}, z_dim={cfg.z_dim}")
    return _finish(model, dtype, device)


def _infer_vae_config(sd: dict[str, Tensor], path: Path) -> VAEConfig:
    try:
        base_dim = sd["encoder.conv1.weight"].shape[0]
        z_dim = sd["conv2.weight"].shape[0]
        top = sd["decoder.conv1.weight"].shape[0]  # the decoder's widest stage: base_dim * dim_mult[-1]
    except KeyError as exc:
        raise WeightsError(f"{path.name}: VAE weights lack {exc}; the file is incomplete") from None
    decoder_dim = top // VAEConfig().dim_mult[-1]
    wider = None if decoder_dim == base_dim else decoder_dim
    if z_dim == 16:
        return VAEConfig(base_dim=base_dim, decoder_base_dim=wider)
    # Only the statistics of Wan's 16-channel latent are known; others come from project metadata.
    return VAEConfig(base_dim=base_dim, z_dim=z_dim, decoder_base_dim=wider, latents_mean=(0.0,) * z_dim,
                     latents_std=(1.0,) * z_dim)


def load_text_encoder(
    path: str | os.PathLike,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    tokenizer_path: str | os.PathLike | None = None,
) -> Any:
    """Load a text encoder: umT5 (ComfyUI/transformers or original Wan layout) or a project-format one."""
    from ..config import TextEncoderConfig
    from ..text import ByteTextEncoder, load_umt5

    path = Path(path)
    det = _expect(path, "text_encoder", detect_file(path))
    cfg = None
    if det.layout is Layout.PROJECT:
        cfg = _project_config(read_metadata(path), "text_encoder", TextEncoderConfig)
    if cfg is not None and cfg.kind == "minilm":
        from ..text_minilm import MiniLMTextEncoder

        return _finish(MiniLMTextEncoder(cfg), dtype, device)
    if cfg is not None and cfg.kind == "bytes":
        raw, _ = read_safetensors(path)
        with torch.device("meta"):
            encoder = ByteTextEncoder(cfg.d_model, cfg.max_length)
        _assign_weights(encoder, _component_tensors(raw, "text_encoder", det), path, "byte-level text encoder")
        return _finish(encoder, dtype, device)
    return load_umt5(path, tokenizer_path=tokenizer_path, dtype=dtype, device=device)


def save_project_file(
    path: str | os.PathLike,
    components: dict[str, nn.Module],
    *,
    extra_metadata: dict[str, str] | None = None,
) -> Path:
    """Write models in the project format: keys prefixed by component, configs in the metadata."""
    tensors: dict[str, Tensor] = {}
    meta = {"format": PROJECT_FORMAT, "format_version": PROJECT_FORMAT_VERSION}
    for name, module in components.items():
        if name not in ("dit", "vae", "text_encoder"):
            raise ValueError(f"unknown component {name!r}; use dit, vae or text_encoder")
        external = getattr(module, "weights_external", False)  # e.g. MiniLM: weights come from its package
        for key, value in ({} if external else module.state_dict()).items():
            tensors[f"{name}.{key}"] = value.detach().cpu()
        cfg = getattr(module, "config", None)
        if cfg is not None and hasattr(cfg, "__dataclass_fields__"):
            meta[f"{name}_config"] = config_to_json(cfg)
    meta.update(extra_metadata or {})
    return write_safetensors(path, tensors, meta)
