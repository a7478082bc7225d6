"""Provenance nodes: save a video that says it is AI-made (watermark + C2PA), and check any file for both.

ComfyUI's own Save Video keeps only the workflow JSON in the container, which the first re-encode loses.
SoraSaveVideo adds an invisible watermark that survives re-encoding, resizing and trimming, and a signed
C2PA manifest; both are on by default. Certificates come from sora_core's config folder (see
sora_core.provenance), never from a node input.
"""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path

import folder_paths
import torch
from comfy.cli_args import args
from comfy_api.latest import io, ui

from sora_core import provenance, verify
from sora_core.watermark import draw_label

from .types import CATEGORY

FORMATS = ["auto", "mp4", "webp", "webm", "gif", "png"]


def _frames_and_fps(video: object, fps: float) -> tuple[torch.Tensor, float]:
    """IMAGE frames [T, H, W, C] (with the node's fps) or a VIDEO (with its own frame rate)."""
    if isinstance(video, torch.Tensor):
        if video.ndim != 4:
            raise ValueError(f"video: expected IMAGE frames [T, H, W, C], got shape {tuple(video.shape)}")
        return video[..., :3], fps
    components = video.get_components()
    return components.images[..., :3], float(Fraction(components.frame_rate))


def _suffix(format: str, frames: int) -> str:
    if format == "auto":
        return ".png" if frames == 1 else ".mp4"
    if format == "png" and frames != 1:
        raise ValueError(f"format: png holds one frame but the video has {frames}; use mp4, webp, webm or gif")
    return "." + format


class SoraSaveVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoraSaveVideo",
            display_name="Save Video (Sora, with provenance)",
            category=f"{CATEGORY}/provenance",
            description="Saves frames or a video to the output folder, marked as AI-generated: an invisible "
            "watermark (survives re-encoding, resizing, cropping, trimming) and a signed C2PA manifest, plus "
            "ComfyUI's workflow metadata. Each can be switched off.",
            inputs=[
                io.MultiType.Input("video", types=[io.Image, io.Video],
                                   tooltip="IMAGE frames (e.g. from Sora VAE Decode) or a VIDEO."),
                io.String.Input("filename_prefix", default="sora/video",
                                tooltip="File name prefix inside the output folder; may contain subfolders."),
                io.Float.Input("fps", default=16.0, min=1.0, max=120.0, step=1.0,
                               tooltip="Frames per second for IMAGE input (a VIDEO keeps its own rate)."),
                io.Combo.Input("format", options=FORMATS, default="auto",
                               tooltip="auto: mp4 (H.264) for clips, png for a single frame. webm cannot carry "
                               "C2PA (it gets the watermark only)."),
                io.Int.Input("crf", default=19, min=0, max=51,
                             tooltip="Quality of mp4/webm (lower: better and larger; 19 is near-lossless)."),
                io.Boolean.Input("watermark", default=True,
                                 tooltip="Embed the invisible watermark (PSNR ~40 dB; check with Sora Verify Video)."),
                io.Boolean.Input("c2pa", default=True,
                                 tooltip="Sign with a C2PA manifest: created by a trained algorithm, generator, "
                                 "hashes of the prompt and workflow. Uses cert.pem/key.pem from sora_core's "
                                 "config folder, else a local development certificate (untrusted)."),
                io.Boolean.Input("workflow_metadata", default=True,
                                 tooltip="Store ComfyUI's prompt and workflow JSON in the file, like Save Video."),
                io.String.Input("label", default="",
                                tooltip="Optional visible text drawn in the bottom-right corner, e.g. "
                                "'AI-generated'. Empty: none."),
            ],
            outputs=[io.String.Output(display_name="filename", tooltip="Full path of the saved file.")],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, video: object, filename_prefix: str, fps: float, format: str, crf: int, watermark: bool,
                c2pa: bool, workflow_metadata: bool, label: str) -> io.NodeOutput:
        frames, fps = _frames_and_fps(video, fps)
        t, h, w, _ = frames.shape
        suffix = _suffix(format, t)
        folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(
            filename_prefix, folder_paths.get_output_directory(), w, h)
        file = f"{name}_{counter:05}_{suffix}"
        path = Path(folder) / file

        prompt, extra = cls.hidden.prompt, cls.hidden.extra_pnginfo or {}
        metadata: dict[str, str] = {}
        if workflow_metadata and not args.disable_metadata:
            if prompt is not None:
                metadata["prompt"] = json.dumps(prompt)
            for key, value in extra.items():
                metadata[key] = json.dumps(value)
        if label.strip():
            frames = draw_label(frames.float(), label)
        written = provenance.write_with_provenance(
            path, frames, fps=fps, watermark=watermark, c2pa=c2pa, crf=crf,
            prompt_sha256=provenance.sha256_json(prompt) if prompt is not None else None,
            workflow_sha256=provenance.sha256_json(extra["workflow"]) if "workflow" in extra else None,
            metadata=metadata,
        )
        for note in written.notes:
            print(f"[SoraSaveVideo] {note}")
        result = ui.SavedResult(file, subfolder, io.FolderType.output)
        shown = ui.PreviewVideo([result]) if suffix in (".mp4", ".webm") else ui.SavedImages([result], t > 1)
        return io.NodeOutput(str(written.path), ui=shown)


class SoraVerifyVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        input_dir = folder_paths.get_input_directory()
        files = [f for f in os.listdir(input_dir) if os.path.isfile(os.path.join(input_dir, f))]
        files = folder_paths.filter_files_content_types(files, ["video", "image"])
        return io.Schema(
            node_id="SoraVerifyVideo",
            display_name="Verify Video Provenance (Sora)",
            category=f"{CATEGORY}/provenance",
            description="Checks a video or image for the invisible watermark (with a confidence and its payload) "
            "and for a C2PA manifest (trusted / valid / invalid / absent, and what it says).",
            inputs=[
                io.Combo.Input("file", options=sorted(files), upload=io.UploadType.video,
                               tooltip="A file in ComfyUI's input folder (upload one here)."),
                io.String.Input("path", optional=True, force_input=True,
                                tooltip="Instead of `file`: a full path, e.g. the filename output of Save Video "
                                "(Sora). Relative paths are taken inside the output folder."),
            ],
            outputs=[
                io.String.Output(display_name="report", tooltip="The report as text."),
                io.Boolean.Output(display_name="watermark_found", tooltip="Whether the watermark was found."),
                io.String.Output(display_name="c2pa_state", tooltip="trusted, valid, invalid or absent."),
                io.String.Output(display_name="json", tooltip="The report as JSON, as `python -m sora_core "
                                 "verify --json` prints it."),
            ],
            is_output_node=True,
        )

    @classmethod
    def validate_inputs(cls, file: str, path: str | None = None) -> bool | str:
        if path:  # linked: known only at run time
            return True
        if not folder_paths.exists_annotated_filepath(file):
            return f"{file} is not in ComfyUI's input folder; upload it with the node's button"
        return True

    @classmethod
    def fingerprint_inputs(cls, file: str, path: str | None = None) -> float:
        target = cls._target(file, path)
        return target.stat().st_mtime if target.exists() else 0.0

    @staticmethod
    def _target(file: str, path: str | None) -> Path:
        if path:
            p = Path(path)
            return p if p.is_absolute() else Path(folder_paths.get_output_directory()) / p
        return Path(folder_paths.get_annotated_filepath(file))

    @classmethod
    def execute(cls, file: str, path: str | None = None) -> io.NodeOutput:
        target = cls._target(file, path)
        if not target.is_file():
            raise ValueError(f"no such file: {target}")
        report = verify.verify_file(target)
        text = report.to_text()
        data = report.to_dict()
        return io.NodeOutput(text, data["watermark"]["found"], data["c2pa"]["state"], json.dumps(data),
                             ui=ui.PreviewText(text))


PROVENANCE_NODES = [SoraSaveVideo, SoraVerifyVideo]
