"""Loader nodes: the bundled model, project checkpoints, and separate Wan 2.1 files."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import folder_paths
from comfy_api.latest import io

from sora_core import loading, pipeline
from sora_core.config import WAN21_LATENT_MEAN, WAN21_LATENT_STD

from .devices import ManagedModule, compute_dtype, manage
from .latents import WAN21_VAE
from .types import CATEGORY, DTYPE_CHOICES, DTYPE_TOOLTIP, SoraModel, SoraTextEncoder, SoraVAE

BUNDLED = "sora-default (bundled with the node pack)"


@dataclass
class LoadedDiT:
    """What travels on a SORA_MODEL wire: the managed DiT, its latent statistics, its defaults."""

    managed: ManagedModule
    latent_mean: tuple[float, ...]
    latent_std: tuple[float, ...]
    defaults: pipeline.SamplingDefaults
    name: str
    spatial_factor: int  # pixels per latent cell of the VAE it was trained with: the grid its latents need


def missing_file_message(folder: str, name: str) -> bool | str:
    """True when ``name`` is in ComfyUI's ``folder``; otherwise what to do about it (shown as a node error)."""
    if folder_paths.get_full_path(folder, name) is not None:
        return True
    return (f"{name} is not in ComfyUI's models/{folder} folder; put the .safetensors file there and press "
            "Refresh (R) in the browser")


def _wrap_models(models: pipeline.SoraModels) -> tuple[LoadedDiT, ManagedModule, ManagedModule]:
    vae_cfg = models.vae.config
    dit = LoadedDiT(manage(models.dit, "dit"), vae_cfg.latents_mean, vae_cfg.latents_std, models.defaults, models.name,
                    vae_cfg.spatial_factor)
    return dit, manage(models.text_encoder, "text_encoder"), manage(models.vae, "vae")


class SoraCheckpointLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoraCheckpointLoader",
            display_name="Load Sora Checkpoint",
            category=f"{CATEGORY}/loaders",
            description="Loads a model whose DiT, text encoder and VAE are bundled in one file.",
            inputs=[
                io.Combo.Input(
                    "ckpt_name", options=[BUNDLED, *folder_paths.get_filename_list("checkpoints")], default=BUNDLED,
                    tooltip="The pack's own default model, or a project-format checkpoint from models/checkpoints.",
                ),
                io.Combo.Input("dtype", options=DTYPE_CHOICES, default="default", tooltip=DTYPE_TOOLTIP),
            ],
            outputs=[
                SoraModel.Output(display_name="model", tooltip="The diffusion transformer."),
                SoraTextEncoder.Output(display_name="text_encoder", tooltip="Turns prompts into conditioning."),
                SoraVAE.Output(display_name="vae", tooltip="Turns latents into frames and back."),
            ],
        )

    @classmethod
    def validate_inputs(cls, ckpt_name: str) -> bool | str:
        return True if ckpt_name == BUNDLED else missing_file_message("checkpoints", ckpt_name)

    @classmethod
    def execute(cls, ckpt_name: str, dtype: str) -> io.NodeOutput:
        path: Any = "default" if ckpt_name == BUNDLED else folder_paths.get_full_path_or_raise("checkpoints", ckpt_name)
        models = pipeline.load_models(path, dtype=compute_dtype("dit", dtype))
        return io.NodeOutput(*_wrap_models(models))


class SoraModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoraModelLoader",
            display_name="Load Sora Diffusion Model",
            category=f"{CATEGORY}/loaders",
            description="Loads a Wan 2.1 text-to-video DiT (original, ComfyUI or diffusers layout) from "
            "models/diffusion_models, e.g. wan2.1_t2v_1.3B_fp16.safetensors.",
            inputs=[
                io.Combo.Input("model_name", options=folder_paths.get_filename_list("diffusion_models"),
                               tooltip="A .safetensors file in models/diffusion_models."),
                io.Combo.Input("dtype", options=DTYPE_CHOICES, default="default", tooltip=DTYPE_TOOLTIP),
            ],
            outputs=[SoraModel.Output(display_name="model", tooltip="The diffusion transformer.")],
        )

    @classmethod
    def validate_inputs(cls, model_name: str) -> bool | str:
        return missing_file_message("diffusion_models", model_name)

    @classmethod
    def execute(cls, model_name: str, dtype: str) -> io.NodeOutput:
        path = folder_paths.get_full_path_or_raise("diffusion_models", model_name)
        dit = loading.load_dit(path, dtype=compute_dtype("dit", dtype))
        # Released Wan DiTs were trained on the Wan 2.1 VAE's normalised latents.
        loaded = LoadedDiT(manage(dit, "dit"), WAN21_LATENT_MEAN, WAN21_LATENT_STD, pipeline.WAN21_DEFAULTS,
                           model_name, WAN21_VAE.spatial_factor)
        return io.NodeOutput(loaded)


class SoraTextEncoderLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoraTextEncoderLoader",
            display_name="Load Sora Text Encoder",
            category=f"{CATEGORY}/loaders",
            description="Loads a umT5 text encoder from models/text_encoders, e.g. umt5_xxl_fp16.safetensors "
            "(its tokenizer is read from the file).",
            inputs=[
                io.Combo.Input("text_encoder_name", options=folder_paths.get_filename_list("text_encoders"),
                               tooltip="A .safetensors file in models/text_encoders."),
                io.Combo.Input("dtype", options=DTYPE_CHOICES, default="default", tooltip=DTYPE_TOOLTIP),
            ],
            outputs=[SoraTextEncoder.Output(display_name="text_encoder", tooltip="Turns prompts into conditioning.")],
        )

    @classmethod
    def validate_inputs(cls, text_encoder_name: str) -> bool | str:
        return missing_file_message("text_encoders", text_encoder_name)

    @classmethod
    def execute(cls, text_encoder_name: str, dtype: str) -> io.NodeOutput:
        path = folder_paths.get_full_path_or_raise("text_encoders", text_encoder_name)
        encoder = loading.load_text_encoder(path, dtype=compute_dtype("text_encoder", dtype))
        return io.NodeOutput(manage(encoder, "text_encoder"))


class SoraVAELoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoraVAELoader",
            display_name="Load Sora VAE",
            category=f"{CATEGORY}/loaders",
            description="Loads a Wan 2.1 video VAE from models/vae, e.g. wan_2.1_vae.safetensors.",
            inputs=[
                io.Combo.Input("vae_name", options=folder_paths.get_filename_list("vae"),
                               tooltip="A .safetensors file in models/vae."),
                io.Combo.Input("dtype", options=DTYPE_CHOICES, default="default", tooltip=DTYPE_TOOLTIP),
            ],
            outputs=[SoraVAE.Output(display_name="vae", tooltip="Turns latents into frames and back.")],
        )

    @classmethod
    def validate_inputs(cls, vae_name: str) -> bool | str:
        return missing_file_message("vae", vae_name)

    @classmethod
    def execute(cls, vae_name: str, dtype: str) -> io.NodeOutput:
        path = folder_paths.get_full_path_or_raise("vae", vae_name)
        return io.NodeOutput(manage(loading.load_vae(path, dtype=compute_dtype("vae", dtype)), "vae"))


LOADER_NODES = [SoraCheckpointLoader, SoraModelLoader, SoraTextEncoderLoader, SoraVAELoader]
