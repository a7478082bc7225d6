"""Latent <-> frames. LATENT holds the VAE's raw latent (ComfyUI's convention for Wan), IMAGE frames."""

from __future__ import annotations

import comfy.model_management as mm
import torch
from comfy_api.latest import io

from .devices import ManagedModule
from .latents import check_latent_grid, video_latent
from .types import CATEGORY, SoraVAE


class SoraVAEDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoraVAEDecode",
            display_name="Sora VAE Decode",
            category=f"{CATEGORY}/latent",
            description="Decodes a video latent into frames, a few frames at a time (memory stays flat).",
            inputs=[
                io.Latent.Input("samples", tooltip="A video latent from SoraSampler."),
                SoraVAE.Input("vae", tooltip="The VAE the model was trained with."),
            ],
            outputs=[io.Image.Output(tooltip="All frames of all videos in the batch, one after the other.")],
        )

    @classmethod
    def execute(cls, samples: dict, vae: ManagedModule) -> io.NodeOutput:
        model = vae.load()
        cfg = model.config
        z = samples["samples"]
        if z.ndim != 5 or z.shape[1] != cfg.z_dim:
            raise ValueError(f"samples: latent {tuple(z.shape)} does not fit this VAE ({cfg.z_dim} channels, video)")
        check_latent_grid(samples, cfg.spatial_factor, "samples", "this VAE")
        with torch.inference_mode():
            video = model.decode_raw(z.to(vae.device))
        frames = ((video.float().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 4, 1).flatten(0, 1)
        return io.NodeOutput(frames.to(mm.intermediate_device()))


class SoraVAEEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoraVAEEncode",
            display_name="Sora VAE Encode",
            category=f"{CATEGORY}/latent",
            description="Encodes frames (4k+1 of them, sides multiples of 8) into a video latent.",
            inputs=[
                io.Image.Input("pixels", tooltip="Frames of one video (e.g. from Load Video or Load Image)."),
                SoraVAE.Input("vae", tooltip="The VAE the model was trained with."),
            ],
            outputs=[io.Latent.Output(tooltip="The video latent.")],
        )

    @classmethod
    def execute(cls, pixels: torch.Tensor, vae: ManagedModule) -> io.NodeOutput:
        model = vae.load()
        cfg = model.config
        frames, height, width, _ = pixels.shape
        if (frames - 1) % cfg.temporal_factor or height % cfg.spatial_factor or width % cfg.spatial_factor:
            raise ValueError(
                f"pixels: {frames} frames of {width}x{height}; the VAE needs 4k+1 frames with sides that are "
                f"multiples of {cfg.spatial_factor} (trim or resize first)"
            )
        video = (pixels[..., :3].movedim(-1, 0)[None] * 2 - 1).to(vae.device)
        with torch.inference_mode():
            raw = model.encode_raw(video).float()
        return io.NodeOutput(video_latent(raw.to(mm.intermediate_device()), cfg.spatial_factor))


VAE_NODES = [SoraVAEDecode, SoraVAEEncode]
