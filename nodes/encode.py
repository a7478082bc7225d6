"""Prompt -> CONDITIONING, and the empty video latent."""

from __future__ import annotations

import comfy.model_management as mm
import torch
from comfy_api.latest import io

from sora_core.pipeline import check_video_size
from sora_core.prompts import prepare_prompt

from .devices import ManagedModule
from .latents import WAN21_VAE, video_latent
from .types import CATEGORY, SoraTextEncoder, SoraVAE

MAX_SIZE = 4096


class SoraTextEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoraTextEncode",
            display_name="Sora Text Encode",
            category=f"{CATEGORY}/conditioning",
            description="Encodes a prompt for the Sora sampler (positive or negative).",
            inputs=[
                SoraTextEncoder.Input("text_encoder", tooltip="From a Sora checkpoint or text-encoder loader."),
                io.String.Input("prompt", multiline=True, dynamic_prompts=True,
                                tooltip="What the video shows (or, for the negative input, what to avoid)."),
                io.Boolean.Input(
                    "expand_prompt", default=True, optional=True,
                    tooltip="Rewrite a short prompt into the detailed caption style the model was trained on, as "
                    "Sora does. Only models that ask for it are affected (the bundled sora-default model does; "
                    "Wan 2.1 does not). Turn off to encode the prompt exactly as typed.",
                ),
            ],
            outputs=[io.Conditioning.Output(tooltip="The prompt's token embeddings, for SoraSampler.")],
        )

    @classmethod
    def execute(cls, text_encoder: ManagedModule, prompt: str, expand_prompt: bool = True) -> io.NodeOutput:
        encoder = text_encoder.load()
        text = prepare_prompt(encoder, prompt, expand_prompt)
        with torch.inference_mode():
            emb = encoder.encode([text])
        context = emb.context.to(mm.intermediate_device())
        return io.NodeOutput([[context, {"sora_lengths": emb.lengths.cpu()}]])


class SoraEmptyLatentVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoraEmptyLatentVideo",
            display_name="Sora Empty Latent Video",
            category=f"{CATEGORY}/latent",
            description="An empty video latent of the size and length asked for, on the grid of the connected "
            "VAE (without one: Wan 2.1's VAE, 16 channels, 4x fewer frames, 8x smaller).",
            inputs=[
                io.Int.Input("width", default=64, min=16, max=MAX_SIZE, step=16, tooltip="Pixels; a multiple of 16."),
                io.Int.Input("height", default=64, min=16, max=MAX_SIZE, step=16, tooltip="Pixels; a multiple of 16."),
                io.Int.Input("length", default=17, min=1, max=MAX_SIZE, step=4,
                             tooltip="Frames; 4k+1 (1, 5, 9, ... 81). 1 makes a still image."),
                io.Int.Input("batch_size", default=1, min=1, max=64, tooltip="Videos generated at once."),
                SoraVAE.Input("vae", optional=True,
                              tooltip="The VAE the video will be decoded with (the checkpoint's): the latent gets "
                              "its grid. Needed for VAEs that do not compress like Wan 2.1's (8x in space, 4x in "
                              "time); the sampler refuses a latent sized for another VAE than its model's."),
            ],
            outputs=[io.Latent.Output(tooltip="Feed it to SoraSampler's latent input.")],
        )

    @classmethod
    def validate_inputs(cls, width: int, height: int, length: int) -> bool | str:
        try:
            check_video_size(length, width, height, frames_name="length")
        except ValueError as exc:
            return str(exc)
        return True

    @classmethod
    def execute(cls, width: int, height: int, length: int, batch_size: int,
                vae: ManagedModule | None = None) -> io.NodeOutput:
        cfg = vae.module.config if vae is not None else WAN21_VAE  # only the config: the weights stay put
        sf, tf = cfg.spatial_factor, cfg.temporal_factor
        shape = (batch_size, cfg.z_dim, (length - 1) // tf + 1, height // sf, width // sf)
        return io.NodeOutput(video_latent(torch.zeros(shape, device=mm.intermediate_device()), sf))


ENCODE_NODES = [SoraTextEncode, SoraEmptyLatentVideo]
