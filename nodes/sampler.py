"""SoraSampler: flow-matching sampling of a video latent, with ComfyUI progress, previews and Cancel."""

from __future__ import annotations

from collections.abc import Callable

import comfy.latent_formats
import comfy.model_management as mm
import comfy.utils
import latent_preview
import torch
from comfy_api.latest import io

from sora_core import sampling
from sora_core.pipeline import bundled_defaults, sample_latent
from sora_core.vae import denormalize_latent

from .latents import check_latent_grid, video_latent
from .loaders import LoadedDiT
from .types import CATEGORY, SoraModel


def conditioning_context(conditioning: list, name: str, batch: int) -> torch.Tensor:
    if not conditioning or not isinstance(conditioning[0][0], torch.Tensor):
        raise ValueError(f"{name}: expected conditioning from SoraTextEncode")
    context = conditioning[0][0]
    return context.expand(batch, -1, -1) if context.shape[0] == 1 else context


def progress_hooks(model: LoadedDiT, total_steps: int, channels: int
                   ) -> tuple[Callable[[sampling.StepInfo], None], Callable[[], bool]]:
    """ComfyUI's progress bar with a latent preview per step, and its Cancel button, as sampler hooks.

    ``total_steps`` counts the steps of every sampling pass a node runs (an extension run three
    times reports three passes on one bar).
    """
    pbar = comfy.utils.ProgressBar(total_steps)
    previewer = None
    if channels == 16:  # Wan's latent-to-RGB factors give a rough colour preview
        previewer = latent_preview.get_previewer(model.managed.device, comfy.latent_formats.Wan21())
    mean, std = torch.tensor(model.latent_mean), torch.tensor(model.latent_std)
    done = [0]

    def on_step(info: sampling.StepInfo) -> None:
        preview = None
        if previewer is not None:
            preview = previewer.decode_latent_to_preview_image("JPEG", denormalize_latent(info.denoised, mean, std))
        done[0] += 1
        pbar.update_absolute(done[0], total_steps, preview)

    def cancel() -> bool:
        mm.throw_exception_if_processing_interrupted()  # ComfyUI reports this as an interruption
        return False

    return on_step, cancel


def sampling_inputs() -> list:
    """The sampler settings every sampling node shares (same names, ranges and tooltips); the defaults are
    the bundled model's, which the loaders default to."""
    d = bundled_defaults()
    return [
        io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                     tooltip="Same seed and settings give the same video on the same device."),
        io.Int.Input("steps", default=d.steps, min=1, max=1000,
                     tooltip=f"Sampling steps; Wan 2.1 uses 30-50, the bundled model {d.steps} (more add little)."),
        io.Float.Input("cfg", default=d.cfg, min=1.0, max=30.0, step=0.1, round=0.01,
                       tooltip="Classifier-free guidance; 1 disables the negative prompt (twice as fast). "
                       f"The default fits the bundled model ({d.cfg:g}); Wan 2.1 uses 5 (its workflows set it)."),
        io.Float.Input("shift", default=d.shift, min=0.1, max=50.0, step=0.1, round=0.01,
                       tooltip="Sigma schedule shift; higher spends more steps at high noise. The default fits "
                       f"the bundled model ({d.shift:g}); Wan 2.1 uses 5 for text-to-video, 3 at 480p image-to-video."),
        io.Combo.Input("sampler", options=sorted(sampling.SAMPLERS), default=d.sampler,
                       tooltip="unipc (Wan's default, good in few steps) or euler."),
    ]


class SoraSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoraSampler",
            display_name="Sora Sampler",
            category=f"{CATEGORY}/sampling",
            description="Generates a video latent from noise with a Sora/Wan diffusion transformer.",
            inputs=[
                SoraModel.Input("model", tooltip="From a Sora checkpoint or diffusion-model loader."),
                io.Conditioning.Input("positive", tooltip="SoraTextEncode of what the video shows."),
                io.Conditioning.Input("negative", tooltip="SoraTextEncode of what to avoid (often empty)."),
                io.Latent.Input("latent", tooltip="SoraEmptyLatentVideo: sets size, length and batch."),
                *sampling_inputs(),
            ],
            outputs=[io.Latent.Output(tooltip="The generated latent; decode it with SoraVAEDecode.")],
        )

    @classmethod
    def execute(cls, model: LoadedDiT, positive: list, negative: list, latent: dict, seed: int, steps: int,
                cfg: float, shift: float, sampler: str) -> io.NodeOutput:
        samples = latent["samples"]
        dit = model.managed.load()
        if samples.ndim != 5 or samples.shape[1] != dit.config.in_dim:
            raise ValueError(
                f"latent: shape {tuple(samples.shape)} does not fit this model, which takes "
                f"[batch, {dit.config.in_dim}, frames, height, width]; use SoraEmptyLatentVideo"
            )
        check_latent_grid(latent, model.spatial_factor, "latent", f"the model {model.name!r}")
        batch = samples.shape[0]
        on_step, cancel = progress_hooks(model, steps, samples.shape[1])
        with torch.inference_mode():
            x = sample_latent(
                dit, conditioning_context(positive, "positive", batch),
                conditioning_context(negative, "negative", batch),
                tuple(samples.shape), seed=seed, steps=steps, cfg=cfg, shift=shift, sampler=sampler,
                callback=on_step, cancel=cancel,
            )
        mean, std = torch.tensor(model.latent_mean), torch.tensor(model.latent_std)
        raw = denormalize_latent(x, mean, std).to(mm.intermediate_device())
        return io.NodeOutput(video_latent(raw, model.spatial_factor))


SAMPLER_NODES = [SoraSampler]
