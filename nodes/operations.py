"""The Sora operations as nodes: image-to-video/keyframes, extend, loop, blend, storyboard, remix, re-cut.

Each node samples, decodes and returns the finished frames (IMAGE, ready for CreateVideo/SaveVideo)
and the clip's LATENT. Frames the operation keeps are the input frames bit for bit, which is why the
nodes decode themselves instead of leaving it to a VAE Decode node.
"""

from __future__ import annotations

from typing import Any

import comfy.model_management as mm
import torch
from comfy_api.latest import io

from sora_core import operations as ops
from sora_core.prompts import prepare_prompt

from .devices import ManagedModule
from .latents import check_latent_grid, video_latent
from .loaders import LoadedDiT
from .sampler import conditioning_context, progress_hooks, sampling_inputs
from .types import CATEGORY, SoraModel, SoraTextEncoder, SoraVAE

NATIVE_NOTE = (" Runs natively on models trained with clean conditioning frames (the bundled sora-default); "
               "on Wan 2.1 text-to-video weights use mode = replace.")
MODE_TOOLTIP = (
    "How the frames that are kept reach the model. native: given clean, at timestep 0 - for models trained "
    "that way (the bundled sora-default). replace: re-noised to the current step - works with any flow model, "
    "e.g. Wan 2.1 text-to-video, with weaker transitions."
)


def common_inputs(positive: bool = True) -> list:
    inputs = [
        SoraModel.Input("model", tooltip="From a Sora checkpoint or diffusion-model loader."),
        SoraVAE.Input("vae", tooltip="The VAE the model was trained with."),
    ]
    if positive:
        inputs.append(io.Conditioning.Input("positive", tooltip="SoraTextEncode of what the video shows."))
    inputs.append(io.Conditioning.Input("negative", tooltip="SoraTextEncode of what to avoid (often empty)."))
    return inputs


def mode_input() -> io.Combo.Input:
    return io.Combo.Input("mode", options=["native", "replace"], default="native", tooltip=MODE_TOOLTIP)


def source_inputs(what: str) -> list:
    return [
        io.Image.Input("video", optional=True, tooltip=f"The frames of the clip to {what} (4k+1 of them). "
                       "Give this or latent."),
        io.Latent.Input("latent", optional=True, tooltip=f"The latent of the clip to {what} (e.g. from a Sora "
                        "sampler or another operation); used when no frames are given."),
    ]


def size_inputs(length: Any = None) -> list:
    """width, height and length inputs; ``length`` replaces the default 4k+1 frame count input."""
    return [
        io.Int.Input("width", default=64, min=16, max=4096, step=16, tooltip="Pixels; a multiple of 16."),
        io.Int.Input("height", default=64, min=16, max=4096, step=16, tooltip="Pixels; a multiple of 16."),
        length or io.Int.Input("length", default=17, min=1, max=1025, step=4,
                               tooltip="Frames; 4k+1 (17, 33, 81 ...)."),
    ]


OUTPUTS = [
    io.Image.Output(display_name="frames", tooltip="The finished clip's frames (kept frames are the input's, "
                    "unchanged)."),
    io.Latent.Output(display_name="latent", tooltip="The finished clip's latent, for further operations."),
]


def engine(model: LoadedDiT, vae: ManagedModule, seed: int, steps: int, cfg: float, shift: float, sampler: str,
           mode: str = "native", passes: int = 1) -> ops.Engine:
    dit, vae_module = model.managed.load(), vae.load()
    on_step, cancel = progress_hooks(model, steps * passes, dit.config.in_dim)
    settings = ops.Sampling(seed=seed, steps=steps, cfg=cfg, shift=shift, sampler=sampler, mode=mode,
                            callback=on_step, cancel=cancel)
    return ops.Engine(dit, vae_module, settings)


def source_clip(e: ops.Engine, video: torch.Tensor | None, latent: dict | None, name: str = "video") -> ops.Clip:
    if video is not None:
        return ops.Clip(frames=video.float().cpu())
    if latent is None:
        raise ValueError(f"{name}: connect the clip's frames (IMAGE) or its latent (LATENT)")
    samples = latent["samples"]
    if samples.ndim != 5 or samples.shape[0] != 1 or samples.shape[1] != e.vae.config.z_dim:
        raise ValueError(f"latent: {tuple(samples.shape)} is not one video latent of this VAE "
                         f"[1, {e.vae.config.z_dim}, frames, height, width]; operations take one clip at a time")
    check_latent_grid(latent, e.vae.config.spatial_factor, "latent", "this VAE")
    return ops.Clip(latent=e.vae.normalize_latent(samples.float().cpu()))


def finish(e: ops.Engine, clip: ops.Clip, latent: torch.Tensor | None = None) -> io.NodeOutput:
    """The clip's frames (IMAGE) and ``latent`` (LATENT; by default the clip's own)."""
    if latent is None:
        latent = clip.latent if clip.latent is not None else e.encode(clip.frames)
    raw = e.vae.denormalize_latent(latent)
    device = mm.intermediate_device()
    return io.NodeOutput(clip.frames.to(device), video_latent(raw.to(device), e.vae.config.spatial_factor))


def contexts(positive: list, negative: list) -> tuple[torch.Tensor, torch.Tensor]:
    pos = conditioning_context(positive, "positive", 1)[:1].cpu()
    return pos, conditioning_context(negative, "negative", 1)[:1].cpu()


class SoraImageToVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoraImageToVideo",
            display_name="Sora Image to Video (Keyframes)",
            category=f"{CATEGORY}/operations",
            description="Generates a clip through images pinned at chosen frames: a start image (image-to-video), "
            "an end image, or keyframes anywhere." + NATIVE_NOTE,
            inputs=[
                *common_inputs(),
                io.Image.Input("images", tooltip="The images to pin, in the order of frame_indices (one image for "
                               "image-to-video). Same size as the video."),
                io.String.Input("frame_indices", default="0", tooltip="Comma-separated frame of each image: 0 is "
                                "the first frame, -1 the last (e.g. '0, -1' for first and last frame). Keyframes "
                                "need to be at least 4 frames apart."),
                *size_inputs(),
                *sampling_inputs(),
                mode_input(),
            ],
            outputs=OUTPUTS,
        )

    @classmethod
    def execute(cls, model, vae, positive, negative, images, frame_indices, width, height, length, seed, steps,
                cfg, shift, sampler, mode) -> io.NodeOutput:
        try:
            indices = [int(v) for v in frame_indices.replace(" ", "").split(",") if v]
        except ValueError:
            raise ValueError(f"frame_indices {frame_indices!r}: write whole numbers separated by commas, "
                             "e.g. '0, -1'") from None
        if len(indices) != images.shape[0]:
            raise ValueError(f"frame_indices lists {len(indices)} frames but {images.shape[0]} images are "
                             "connected; give one index per image")
        e = engine(model, vae, seed, steps, cfg, shift, sampler, mode)
        keyframes = list(zip(indices, images.float().cpu(), strict=True))
        clip = ops.keyframes_to_video(e, *contexts(positive, negative), keyframes, frames=length, width=width,
                                      height=height)
        return finish(e, clip)


class SoraExtendVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoraExtendVideo",
            display_name="Sora Extend Video",
            category=f"{CATEGORY}/operations",
            description="Continues a clip after its end or before its start, conditioned on its frames in latent "
            "space; repeat to go on and on." + NATIVE_NOTE,
            inputs=[
                *common_inputs(),
                io.Combo.Input("direction", options=["forward", "backward"], default="forward",
                               tooltip="forward: new frames after the end. backward: new frames before the start."),
                io.Int.Input("new_frames", default=12, min=4, max=1024, step=4,
                             tooltip="Frames added per extension (a multiple of 4)."),
                io.Int.Input("overlap_frames", default=8, min=4, max=1024, step=4,
                             tooltip="Frames of the clip the model sees to continue from (a multiple of 4)."),
                io.Int.Input("times", default=1, min=1, max=64, tooltip="How many extensions to chain."),
                *sampling_inputs(),
                mode_input(),
                *source_inputs("extend"),
            ],
            outputs=OUTPUTS,
        )

    @classmethod
    def execute(cls, model, vae, positive, negative, direction, new_frames, overlap_frames, times, seed, steps,
                cfg, shift, sampler, mode, video=None, latent=None) -> io.NodeOutput:
        e = engine(model, vae, seed, steps, cfg, shift, sampler, mode, passes=times)
        clip = ops.extend(e, *contexts(positive, negative), source_clip(e, video, latent), direction=direction,
                          new_frames=new_frames, overlap_frames=overlap_frames, times=times)
        return finish(e, clip)


class SoraLoopVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoraLoopVideo",
            display_name="Sora Seamless Loop",
            category=f"{CATEGORY}/operations",
            description="A clip that plays seamlessly on repeat, its last frame leading back into its first, by "
            "wrap-around denoising (not a cross-fade): from the prompt alone, or by regenerating the end of a given "
            "clip. From a prompt it works with any model; from a clip, natively on models trained with clean "
            "conditioning frames (the bundled sora-default), and on Wan 2.1 text-to-video weights with mode = "
            "replace.",
            inputs=[
                *common_inputs(),
                *size_inputs(io.Int.Input("length", default=16, min=4, max=1024, step=4,
                                          tooltip="Frames in one period of the loop; a multiple of 4 (the VAE "
                                          "codes frames in groups of 4). With a clip, its frames after the first "
                                          "are the period.")),
                io.Int.Input("regenerate_frames", default=8, min=4, max=1024, step=4,
                             tooltip="With a clip: how many of its last frames are regenerated to close the loop."),
                *sampling_inputs(),
                mode_input(),
                *source_inputs("loop (leave both empty to loop from the prompt)"),
            ],
            outputs=[
                io.Image.Output(display_name="frames", tooltip="One period of the loop (frames kept from an input "
                                "clip are its own, unchanged); play it on repeat."),
                io.Latent.Output(display_name="latent", tooltip="The loop closed by its first frame (one frame "
                                 "more than the period, 4k+1), for further operations: extending it forward "
                                 "continues the loop from its start."),
            ],
        )

    @classmethod
    def execute(cls, model, vae, positive, negative, width, height, length, regenerate_frames, seed, steps, cfg,
                shift, sampler, mode, video=None, latent=None) -> io.NodeOutput:
        e = engine(model, vae, seed, steps, cfg, shift, sampler, mode)
        source = source_clip(e, video, latent) if video is not None or latent is not None else None
        clip = ops.loop(e, *contexts(positive, negative), frames=length, width=width, height=height, clip=source,
                        regenerate_frames=regenerate_frames)
        return finish(e, clip, latent=e.latent_of(ops.close_loop(clip)))


class SoraBlendVideos(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoraBlendVideos",
            display_name="Sora Blend Videos",
            category=f"{CATEGORY}/operations",
            description="Generates a transition that starts where clip A ends and ends where clip B begins, and "
            "returns A + transition + B." + NATIVE_NOTE,
            inputs=[
                *common_inputs(),
                io.Image.Input("video_a", tooltip="The clip to start from (4k+1 frames)."),
                io.Image.Input("video_b", tooltip="The clip to arrive at (4k+1 frames, same size as A)."),
                io.Int.Input("transition_frames", default=11, min=3, max=1023, step=4,
                             tooltip="Frames between A and B: 4k+3 (3, 7, 11, ...), so the joined clip is 4k+1."),
                io.Int.Input("overlap_frames", default=8, min=4, max=1024, step=4,
                             tooltip="Frames of each clip the model sees (a multiple of 4)."),
                *sampling_inputs(),
                mode_input(),
            ],
            outputs=OUTPUTS,
        )

    @classmethod
    def execute(cls, model, vae, positive, negative, video_a, video_b, transition_frames, overlap_frames, seed,
                steps, cfg, shift, sampler, mode) -> io.NodeOutput:
        e = engine(model, vae, seed, steps, cfg, shift, sampler, mode)
        clip = ops.blend(e, *contexts(positive, negative), ops.Clip(video_a.float().cpu()),
                         ops.Clip(video_b.float().cpu()), transition_frames=transition_frames,
                         overlap_frames=overlap_frames)
        return finish(e, clip)


class SoraStoryboard(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoraStoryboard",
            display_name="Sora Storyboard",
            category=f"{CATEGORY}/operations",
            description="Several prompts on one timeline, generated together in one pass: each shot's frames "
            "read their own prompt (cross-attention) while every frame attends to the others (self-attention), "
            "which keeps the subject across shots. Works with any model, natively, at about the cost per step of "
            "one text-to-video clip of that length.",
            inputs=[
                *common_inputs(positive=False),
                SoraTextEncoder.Input("text_encoder", tooltip="Encodes each shot's prompt."),
                io.String.Input("storyboard", multiline=True,
                                default="0: a red circle moves to the right\n8: the red circle moves up",
                                tooltip="One shot per line: its first frame, a colon, its prompt. The first shot "
                                "starts at frame 0; each lasts until the next one starts (at least 4 frames)."),
                *size_inputs(),
                io.Boolean.Input("expand_prompt", default=True,
                                 tooltip="Rewrite each shot's prompt into the model's caption style, as "
                                 "SoraTextEncode does."),
                *sampling_inputs(),
            ],
            outputs=OUTPUTS,
        )

    @classmethod
    def execute(cls, model, vae, negative, text_encoder, storyboard, width, height, length, expand_prompt, seed,
                steps, cfg, shift, sampler) -> io.NodeOutput:
        lines = ops.parse_storyboard(storyboard)
        encoder = text_encoder.load()
        with torch.inference_mode():
            shots = [ops.Shot(encoder.encode([prepare_prompt(encoder, prompt, expand_prompt)]).context.cpu(), start)
                     for start, prompt in lines]
        e = engine(model, vae, seed, steps, cfg, shift, sampler)
        neg = conditioning_context(negative, "negative", 1)[:1].cpu()
        clip = ops.storyboard(e, shots, neg, frames=length, width=width, height=height)
        return finish(e, clip)


class SoraRemixVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoraRemixVideo",
            display_name="Sora Remix Video",
            category=f"{CATEGORY}/operations",
            description="Video-to-video: redraws a clip under a new prompt, keeping as much of it as the strength "
            "leaves. Works with any model.",
            inputs=[
                *common_inputs(),
                io.Float.Input("strength", default=0.6, min=0.01, max=1.0, step=0.01,
                               tooltip="How much is redrawn: low keeps layout and motion, 1 ignores the clip."),
                *sampling_inputs(),
                *source_inputs("remix"),
            ],
            outputs=OUTPUTS,
        )

    @classmethod
    def execute(cls, model, vae, positive, negative, strength, seed, steps, cfg, shift, sampler, video=None,
                latent=None) -> io.NodeOutput:
        e = engine(model, vae, seed, steps, cfg, shift, sampler)
        clip = ops.remix(e, *contexts(positive, negative), source_clip(e, video, latent), strength=strength)
        return finish(e, clip)


class SoraRecutVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoraRecutVideo",
            display_name="Sora Re-cut Video",
            category=f"{CATEGORY}/operations",
            description="Regenerates only a span of frames of a clip under the prompt; every other frame stays "
            "exactly as it was." + NATIVE_NOTE,
            inputs=[
                *common_inputs(),
                io.Int.Input("start", default=4, min=0, max=100000,
                             tooltip="First frame to regenerate (widened to its 4-frame group)."),
                io.Int.Input("end", default=12, min=1, max=100000,
                             tooltip="Frame after the last one to regenerate (widened to its 4-frame group)."),
                *sampling_inputs(),
                mode_input(),
                *source_inputs("re-cut"),
            ],
            outputs=OUTPUTS,
        )

    @classmethod
    def execute(cls, model, vae, positive, negative, start, end, seed, steps, cfg, shift, sampler, mode,
                video=None, latent=None) -> io.NodeOutput:
        e = engine(model, vae, seed, steps, cfg, shift, sampler, mode)
        clip = ops.recut(e, *contexts(positive, negative), source_clip(e, video, latent), start=start, end=end)
        return finish(e, clip)


OPERATION_NODES: list[Any] = [SoraImageToVideo, SoraExtendVideo, SoraLoopVideo, SoraBlendVideos, SoraStoryboard,
                              SoraRemixVideo, SoraRecutVideo]
