"""Reading and writing the clips the engine makes: MP4, WebM, animated WebP, GIF and PNG.

Frames are a tensor ``[T, H, W, 3]``, float in [0, 1] (ComfyUI's IMAGE layout) or uint8. The VAE
gives ``[1, 3, T, H, W]`` in [-1, 1]; :func:`video_tensor_to_frames` turns that into frames.

Writing picks the format from the file suffix:

========  ======================================================================================
``.mp4``  H.264 (libx264), yuv420p, CRF, ``+faststart``, tagged BT.709. ``codec="av1"`` gives
          AV1 (SVT-AV1) instead.
``.webm`` VP9 (libvpx-vp9), yuv420p, constant quality (CRF). ``codec`` may be ``"av1"`` or ``"vp8"``.
``.webp`` animated WebP (Pillow, lossy quality 90). ``crf`` is ignored.
``.gif``  GIF (Pillow, one 256-colour palette for the clip, no dithering), for previews: large.
          At most 50 fps (delays are whole centiseconds). ``crf`` is ignored.
``.png``  a still image: only for one frame (Sora makes images as 1-frame videos). Exact (lossless).
========  ======================================================================================

``crf`` goes to the encoder as is: 0-51 for H.264 (19 is visually near-lossless), 0-63 for VP9,
VP8 and AV1 (where 19 is high quality and larger than needed; about 30-35 is their usual range).

Sizes: H.264 in yuv420p needs an even width and height, so an odd-sized clip written with it
is padded by one row/column that repeats the edge pixels; a read-back is then one pixel
larger on that side. VP9, AV1 and the image formats keep odd sizes as they are.

Metadata (``dict[str, str]``) is written where the format can hold it: MP4 container tags (standard
iTunes-style keys such as ``title``/``comment``; any other key switches the file to QuickTime
``mdta`` keys so it survives too), WebM (Matroska) tags, PNG text chunks (iTXt when not latin-1),
and the GIF comment (the ``comment`` value alone, else ``key: value`` lines). Animated WebP stores
none. :func:`read_metadata` reads it back.

Every write is atomic: the file is encoded under a hidden temporary name (``.NAME.XXXXXXXX.tmp``)
in the target directory and only renamed onto ``path`` (``os.replace``) once complete. On any
failure the temporary file is removed, so nothing half-written is ever left behind and an existing
file at ``path`` stays untouched.

Animated WebP and GIF merge consecutive frames that look the same into one longer frame (libwebp
within its lossy tolerance, Pillow's GIF writer when identical). Reading them back therefore turns
each frame's display time back into whole frames at the clip's base frame time, so the read-back
is a constant-frame-rate clip with the original frame count. GIF delays are whole centiseconds
and WebP delays whole milliseconds, so their read-back fps is approximate (16 fps -> about 16.0).
Still images read back as one frame with fps 0.0 (they have no frame rate).
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .errors import InputError, SoraError

__all__ = [
    "IMAGE_SUFFIXES",
    "READ_SUFFIXES",
    "WRITE_SUFFIXES",
    "VideoInfo",
    "VideoWriter",
    "default_suffix_for",
    "frames_to_uint8",
    "open_video_writer",
    "probe_video",
    "read_metadata",
    "read_video",
    "video_tensor_to_frames",
    "write_video",
]

WRITE_SUFFIXES: tuple[str, ...] = (".mp4", ".webm", ".webp", ".gif", ".png")
# Still images read through Pillow; .webp and .gif may also be animated.
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")
READ_SUFFIXES: tuple[str, ...] = (".mp4", ".webm", ".mkv", ".mov", ".avi", *IMAGE_SUFFIXES)

# suffix -> (container format, default codec, codecs allowed)
_AV_FORMATS: dict[str, tuple[str, str, dict[str, str]]] = {
    ".mp4": ("mp4", "libx264", {"libx264": "libx264", "h264": "libx264", "libsvtav1": "libsvtav1", "av1": "libsvtav1"}),
    ".webm": ("webm", "libvpx-vp9", {"libvpx-vp9": "libvpx-vp9", "vp9": "libvpx-vp9", "libvpx": "libvpx",
                                     "vp8": "libvpx", "libsvtav1": "libsvtav1", "av1": "libsvtav1"}),
}
_PIL_FORMATS: dict[str, str] = {".webp": "WEBP", ".gif": "GIF", ".png": "PNG"}
_EVEN_SIZE_CODECS = frozenset({"libx264"})
_MAX_CRF = {"libx264": 51, "libvpx-vp9": 63, "libvpx": 63, "libsvtav1": 63}
# Metadata keys the MP4 muxer writes as standard (iTunes-style) atoms; any other key needs mdta keys.
_MP4_STANDARD_KEYS = frozenset({
    "title", "artist", "album_artist", "album", "composer", "date", "comment", "genre", "copyright",
    "grouping", "lyrics", "description", "synopsis", "show", "episode_id", "network", "keywords",
})
_WEBP_QUALITY = 90
_GIF_MAX_FPS = 50.0  # GIF delays are whole centiseconds and browsers slow down delays under 2 cs


def default_suffix_for(num_frames: int) -> str:
    """The file suffix for a clip of ``num_frames`` frames: ``".png"`` for a still, else ``".mp4"``."""
    return ".png" if num_frames == 1 else ".mp4"


# ----------------------------------------------------------------------------------------------
# Tensors <-> uint8 frames


def video_tensor_to_frames(video: Tensor) -> Tensor:
    """VAE output ``[1, 3, T, H, W]`` (or ``[3, T, H, W]``) in [-1, 1] -> frames ``[T, H, W, 3]`` float32 in [0, 1].

    Values are clamped to [-1, 1]; the result is a contiguous CPU tensor.
    """
    if not isinstance(video, Tensor):
        raise InputError(f"expected a torch.Tensor [1, 3, T, H, W], got {type(video).__name__}")
    if video.ndim == 5:
        if video.shape[0] != 1:
            raise InputError(f"video batch has {video.shape[0]} clips; pass one clip [1, 3, T, H, W] at a time")
        video = video[0]
    if video.ndim != 4 or video.shape[0] != 3:
        raise InputError(f"expected a video tensor [1, 3, T, H, W] in [-1, 1], got shape {tuple(video.shape)}")
    frames = (video.detach().float().clamp(-1, 1) + 1) / 2
    return frames.permute(1, 2, 3, 0).contiguous().cpu()


def frames_to_uint8(frames: Tensor | np.ndarray) -> np.ndarray:
    """Frames ``[T, H, W, 3]`` (float in [0, 1], or uint8) -> uint8 numpy ``[T, H, W, 3]``.

    Float values are clamped to [0, 1], scaled by 255 and rounded. A single image ``[H, W, 3]`` is
    taken as one frame. NaN/inf, other layouts and other integer types raise :class:`InputError`.
    """
    if isinstance(frames, np.ndarray):
        if frames.dtype.kind not in "uif" or frames.dtype.byteorder == ">":
            raise InputError(f"frames must be float in [0, 1] or uint8, got numpy dtype {frames.dtype}")
        frames = np.ascontiguousarray(frames)
        frames = torch.from_numpy(frames if frames.flags.writeable else frames.copy())
    if not isinstance(frames, Tensor):
        raise InputError(f"frames must be a torch.Tensor or numpy array [T, H, W, 3], got {type(frames).__name__}")
    if frames.ndim == 3:
        frames = frames.unsqueeze(0)
    if frames.ndim != 4 or frames.shape[-1] != 3 or min(frames.shape[:3]) < 1:
        hint = ""
        if frames.ndim == 5 or (frames.ndim == 4 and frames.shape[0] == 3):
            hint = " (a VAE output [1, 3, T, H, W] in [-1, 1] goes through video_tensor_to_frames first)"
        raise InputError(f"frames must be [T, H, W, 3] with T, H, W >= 1, got shape {tuple(frames.shape)}{hint}")
    frames = frames.detach()
    if frames.dtype == torch.uint8:
        return frames.cpu().numpy()
    if not frames.is_floating_point():
        raise InputError(f"frames must be float in [0, 1] or uint8, got dtype {frames.dtype}")
    frames = frames.cpu()
    # One cheap reduction finds NaN/inf (it can also overflow on huge values: the exact check then decides).
    if not math.isfinite(float(frames.sum())) and not bool(torch.isfinite(frames).all()):
        raise InputError("frames contain NaN or infinite values; nothing was written")
    out = frames.to(torch.float32).clamp(0.0, 1.0).mul_(255.0).round_()
    return out.to(torch.uint8).numpy()


def _is_uint8(frames: object) -> bool:
    return getattr(frames, "dtype", None) in (torch.uint8, np.uint8)


def _uint8_to_float(frames: list[np.ndarray]) -> Tensor:
    """A list of uint8 [H, W, 3] frames -> float32 [T, H, W, 3] in [0, 1], without a second full copy."""
    h, w, _ = frames[0].shape
    out = torch.empty((len(frames), h, w, 3), dtype=torch.float32)
    view = out.numpy()
    for i in range(len(frames)):
        view[i] = frames[i]
        frames[i] = None  # type: ignore[call-overload]  # free as we go
    return out.div_(255.0)


# ----------------------------------------------------------------------------------------------
# Validation


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in WRITE_SUFFIXES:
        raise InputError(
            f"{path}: unsupported file type {suffix or '(no suffix)'!r}; supported: {', '.join(WRITE_SUFFIXES)}"
        )
    return suffix


def _check_fps(fps: float) -> float:
    try:
        fps = float(fps)
    except (TypeError, ValueError):
        raise InputError(f"fps must be a number, got {fps!r}") from None
    if not math.isfinite(fps) or fps <= 0:
        raise InputError(f"fps must be a positive number, got {fps}")
    return fps


def _check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InputError(f"metadata must be a dict of str -> str, got {type(metadata).__name__}")
    out: dict[str, str] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not key or "\0" in key:
            raise InputError(f"metadata keys must be non-empty strings, got {key!r}")
        value = value if isinstance(value, str) else str(value)
        if "\0" in value:
            raise InputError(f"metadata value for {key!r} contains a NUL character")
        out[key] = value
    return out


def _resolve_codec(suffix: str, codec: str | None, crf: int) -> str | None:
    """The encoder name for ``suffix`` (None for the Pillow formats); checks codec and crf."""
    if suffix in _AV_FORMATS:
        _, default, allowed = _AV_FORMATS[suffix]
        name = default if codec is None else allowed.get(str(codec).lower())
        if name is None:
            raise InputError(f"codec {codec!r} cannot be written to {suffix}; use one of {', '.join(sorted(allowed))}")
        if isinstance(crf, bool) or not isinstance(crf, int | np.integer) or not 0 <= crf <= _MAX_CRF[name]:
            raise InputError(f"crf must be an integer from 0 to {_MAX_CRF[name]} for {name}, got {crf!r}")
        return name
    if codec is not None and str(codec).lower() != suffix[1:]:
        raise InputError(f"{suffix} files are always written as {suffix[1:]}; codec={codec!r} is not supported")
    return None


# ----------------------------------------------------------------------------------------------
# Encoders (each writes to an already reserved temporary path)


class _AVBackend:
    """Streams frames through a PyAV encoder into an MP4/WebM container."""

    def __init__(self, tmp: Path, suffix: str, codec: str, width: int, height: int, fps: float, crf: int,
                 metadata: dict[str, str]) -> None:
        import av
        from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc

        fmt = _AV_FORMATS[suffix][0]
        self.pad_h = height % 2 if codec in _EVEN_SIZE_CODECS else 0
        self.pad_w = width % 2 if codec in _EVEN_SIZE_CODECS else 0
        options = {}
        if fmt == "mp4":
            flags = "+faststart"
            if any(k.lower() not in _MP4_STANDARD_KEYS for k in metadata):
                flags += "+use_metadata_tags"
            options["movflags"] = flags
        if codec == "libsvtav1":
            os.environ.setdefault("SVT_LOG", "1")  # otherwise SVT-AV1 prints a banner to stderr
        self.container = av.open(str(tmp), mode="w", format=fmt, options=options)
        try:
            self.container.metadata.update(metadata)
            stream = self.container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
            stream.width = width + self.pad_w
            stream.height = height + self.pad_h
            stream.pix_fmt = "yuv420p"
            opts = {"crf": str(int(crf))}
            if codec in ("libvpx-vp9", "libvpx"):
                # bit_rate 0 makes libvpx use constant quality; "good" + cpu-used 4 is ~5x faster than the default.
                stream.codec_context.bit_rate = 0
                opts.update({"deadline": "good", "cpu-used": "4", "row-mt": "1"})
            stream.options = opts
            # BT.709, tagged, so players convert back with the matrix it was made with. VP8 cannot signal a
            # colour space and decoders assume BT.601, so VP8 gets BT.601.
            if codec == "libvpx":
                matrix, primaries, trc = Colorspace.ITU601, ColorPrimaries.SMPTE170M, ColorTrc.SMPTE170M
            else:
                matrix, primaries, trc = Colorspace.ITU709, ColorPrimaries.BT709, ColorTrc.BT709
            cc = stream.codec_context
            cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc = matrix, ColorRange.MPEG, primaries, trc
            self.stream = stream
            self._reformat: dict[str, Any] = dict(
                format="yuv420p", dst_colorspace=matrix, dst_color_range=ColorRange.MPEG,
                dst_color_primaries=primaries, dst_color_trc=trc,
            )
            self._frame_cls = av.VideoFrame
        except BaseException:
            self.abort()
            raise

    def write_frame(self, frame: np.ndarray) -> None:
        if self.pad_h or self.pad_w:
            frame = np.pad(frame, ((0, self.pad_h), (0, self.pad_w), (0, 0)), mode="edge")
        vf = self._frame_cls.from_ndarray(frame, format="rgb24").reformat(**self._reformat)
        for packet in self.stream.encode(vf):
            self.container.mux(packet)

    def finish(self) -> None:
        for packet in self.stream.encode(None):
            self.container.mux(packet)
        self.container.close()

    def abort(self) -> None:
        try:
            self.container.close()
        except Exception:  # the file is removed anyway
            pass


class _PillowBackend:
    """Collects frames and saves them with Pillow on finish (WebP/GIF/PNG need the whole clip)."""

    def __init__(self, tmp: Path, suffix: str, fps: float, metadata: dict[str, str]) -> None:
        self.tmp, self.suffix, self.fps, self.metadata = tmp, suffix, fps, metadata
        self.frames: list[np.ndarray] = []

    def write_frame(self, frame: np.ndarray) -> None:
        if self.suffix == ".png" and self.frames:
            raise InputError("a .png file holds one frame; use .mp4, .webm, .webp or .gif for a clip")
        self.frames.append(frame)

    def finish(self) -> None:
        from PIL import Image, PngImagePlugin

        if not self.frames:
            raise InputError("no frames were written")
        fmt = _PIL_FORMATS[self.suffix]
        if self.suffix == ".png":
            info = PngImagePlugin.PngInfo()
            for key, value in self.metadata.items():
                info.add_text(key, value)  # tEXt, or iTXt when the value is not latin-1
            Image.fromarray(self.frames[0], "RGB").save(self.tmp, format=fmt, pnginfo=info)
            return
        images = [Image.fromarray(f, "RGB") for f in self.frames]
        kwargs: dict[str, Any] = {"save_all": True, "loop": 0}
        if self.suffix == ".webp":
            # Pillow rounds the running timestamp, so a float frame time keeps the average rate exact.
            # method 0 is ~3x faster than 4 at about the same size and quality.
            kwargs.update(duration=1000.0 / self.fps, quality=_WEBP_QUALITY, method=0)
        else:
            images = _quantize_shared_palette(self.frames)
            # GIF delays are whole centiseconds: spread the rounding so the clip keeps its length.
            stamps = [round(i * 100 / self.fps) for i in range(len(images) + 1)]
            kwargs.update(duration=[10 * (b - a) for a, b in zip(stamps, stamps[1:], strict=False)], optimize=False)
            if self.metadata:
                items = list(self.metadata.items())
                only_comment = len(items) == 1 and items[0][0].lower() == "comment"
                kwargs["comment"] = items[0][1] if only_comment else "\n".join(f"{k}: {v}" for k, v in items)
        images[0].save(self.tmp, format=fmt, append_images=images[1:], **kwargs)

    def abort(self) -> None:
        self.frames.clear()


def _quantize_shared_palette(frames: list[np.ndarray]) -> list[Any]:
    """Map every frame to one 256-colour palette (median cut over a sample of the clip), without dithering.

    One shared palette is ~50x faster than Pillow's per-frame median cut at the same PSNR, keeps
    colours from flickering between frames, and lets the GIF carry a single colour table.
    """
    from PIL import Image

    h, w, _ = frames[0].shape
    step = max(1, int(math.sqrt(h * w / 32768)))  # about 32k sample pixels per frame
    picks = np.unique(np.linspace(0, len(frames) - 1, min(len(frames), 16)).round().astype(int))
    mosaic = np.concatenate([frames[i][::step, ::step] for i in picks], axis=0)
    palette = Image.fromarray(np.ascontiguousarray(mosaic), "RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
    return [Image.fromarray(f, "RGB").quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]


# ----------------------------------------------------------------------------------------------
# Writing


def _reserve_temp(path: Path) -> Path:
    """Create an empty, hidden temporary file next to ``path`` (normal permissions, not mkstemp's 0600)."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise OSError(f"could not create a temporary file next to {path}")


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


class VideoWriter:
    """Writes a clip chunk by chunk; the file appears at ``path`` only when :meth:`close` succeeds.

    Use it as a context manager (see :func:`open_video_writer`): leaving the block normally
    finishes the file and renames it into place; leaving it with an exception removes the
    temporary file. MP4 and WebM are encoded as the chunks arrive, so the clip never has to be in
    memory at once; WebP, GIF and PNG frames are kept (as uint8) until :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike[str], *, width: int, height: int, fps: float = 16.0, crf: int = 19,
                 codec: str | None = None, metadata: Mapping[str, str] | None = None) -> None:
        self._tmp: Path | None = None
        self._backend: _AVBackend | _PillowBackend | None = None
        self._done = False  # True once the file is in place
        self.path = Path(path)
        suffix = _suffix(self.path)
        for name, value in (("width", width), ("height", height)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}")
        self.width, self.height = int(width), int(height)
        self.fps = _check_fps(fps)
        if suffix == ".gif" and self.fps > _GIF_MAX_FPS:
            raise InputError(f"GIF cannot play faster than {_GIF_MAX_FPS:g} fps (got {self.fps:g}); use .mp4 or .webp")
        self.codec = _resolve_codec(suffix, codec, crf)
        meta = _check_metadata(metadata)
        if self.path.is_dir():
            raise InputError(f"{self.path} is a directory; give a file name such as {self.path / 'clip.mp4'}")
        self.frames_written = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = _reserve_temp(self.path)
        try:
            if self.codec is not None:
                self._backend = _AVBackend(self._tmp, suffix, self.codec, self.width, self.height, self.fps, crf, meta)
            else:
                self._backend = _PillowBackend(self._tmp, suffix, self.fps, meta)
        except BaseException:
            self.abort()
            raise

    @property
    def closed(self) -> bool:
        return self._backend is None

    def write(self, frames: Tensor | np.ndarray) -> None:
        """Append frames ``[T, H, W, 3]`` (or one ``[H, W, 3]``), float in [0, 1] or uint8."""
        data = frames_to_uint8(frames)
        # uint8 input comes back as a view of the caller's memory: frames kept until close() need a copy.
        self._write(data, owned=not _is_uint8(frames))

    def _write(self, data: np.ndarray, *, owned: bool) -> None:
        if self._backend is None:
            raise SoraError(f"the writer for {self.path} is already closed")
        if not owned and isinstance(self._backend, _PillowBackend):
            data = data.copy()
        if data.shape[1:3] != (self.height, self.width):
            raise InputError(
                f"frames are {data.shape[2]}x{data.shape[1]} but the writer for {self.path} was opened for "
                f"{self.width}x{self.height}"
            )
        for frame in data:
            self._backend.write_frame(frame)
            self.frames_written += 1

    def close(self) -> Path:
        """Finish the file and move it into place; returns its path. On failure nothing is left behind."""
        if self._done:
            return self.path
        if self._backend is None:
            raise SoraError(f"the writer for {self.path} was aborted; nothing was written")
        backend, tmp = self._backend, self._tmp
        assert tmp is not None
        try:
            if self.frames_written == 0:
                raise InputError(f"no frames were written to {self.path}")
            backend.finish()
            os.replace(tmp, self.path)
        except BaseException:
            self.abort()
            raise
        self._backend = self._tmp = None
        self._done = True
        return self.path

    def abort(self) -> None:
        """Stop writing and delete the temporary file; ``path`` is left as it was. Safe to call twice."""
        backend, tmp = self._backend, self._tmp
        self._backend = self._tmp = None
        if backend is not None:
            backend.abort()
        if tmp is not None:
            _remove_quietly(tmp)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:
        # A writer dropped without close() must not leave its temporary file behind.
        if getattr(self, "_tmp", None) is not None:
            try:
                self.abort()
            except Exception:  # never raise from a finaliser
                pass


def open_video_writer(path: str | os.PathLike[str], *, width: int, height: int, fps: float = 16.0, crf: int = 19,
                      codec: str | None = None, metadata: Mapping[str, str] | None = None) -> VideoWriter:
    """A :class:`VideoWriter` for streaming chunks to ``path``: ``with open_video_writer(...) as w: w.write(chunk)``.

    ``width``/``height`` are the frame size (before any even-size padding). Same formats, options
    and atomic behaviour as :func:`write_video`.
    """
    return VideoWriter(path, width=width, height=height, fps=fps, crf=crf, codec=codec, metadata=metadata)


def write_video(path: str | os.PathLike[str], frames: Tensor | np.ndarray, *, fps: float = 16.0, crf: int = 19,
                codec: str | None = None, metadata: Mapping[str, str] | None = None) -> Path:
    """Write frames ``[T, H, W, 3]`` (float in [0, 1] or uint8) to ``path``; returns ``Path(path)``.

    The format comes from the suffix (see the module docstring); ``.png`` takes one frame only.
    ``crf`` is the constant-rate factor of the MP4/WebM encoder (lower is better and larger).
    The write is atomic and parent directories are created. Everything is checked before anything
    is written: bad frames (NaN, wrong layout), suffix, codec, fps or crf raise :class:`InputError`.
    """
    path = Path(path)
    suffix = _suffix(path)
    data = frames_to_uint8(frames)
    if suffix == ".png" and data.shape[0] != 1:
        raise InputError(
            f"{path}: a .png file holds a single frame but got {data.shape[0]} frames; "
            "use .mp4, .webm, .webp or .gif for a clip"
        )
    _, height, width, _ = data.shape
    with VideoWriter(path, width=width, height=height, fps=fps, crf=crf, codec=codec, metadata=metadata) as writer:
        writer._write(data, owned=True)  # the caller's frames cannot change during this call
    return path


# ----------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` finds: frame count (as :func:`read_video` would return), size, fps, codec.

    Still images have ``frames == 1`` and ``fps == 0.0``.
    """

    frames: int
    width: int
    height: int
    fps: float
    codec: str


def _check_readable(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, f"no such video or image file: {path}", str(path))
    if path.is_dir():
        raise InputError(f"{path} is a directory, not a video or image file")
    return path


def _uses_pillow(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def _pil_frame_to_rgb(img: Any) -> np.ndarray:
    if img.mode.startswith("I;16") or img.mode == "I":
        a = np.asarray(img).astype(np.float32)
        a = np.clip(np.round(a / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=-1)
    return np.asarray(img.convert("RGB"))


def _pil_durations(img: Any) -> list[float]:
    """Display time (ms) of every stored frame of an animated image; 0/10 ms count as 100 ms like browsers."""
    durations = []
    for i in range(img.n_frames):
        img.seek(i)
        if img.format == "WEBP":
            img.load()  # Pillow fills in a WebP frame's duration when it decodes it
        d = float(img.info.get("duration") or 0)
        durations.append(100.0 if d <= (10 if img.format == "GIF" else 0) else d)
    return durations


def _repeat_counts(durations: list[float]) -> tuple[list[int], float]:
    """How often to repeat each stored frame to get a constant frame rate, and that rate."""
    if len(durations) == 1:
        return [1], 1000.0 / durations[0]
    base = min(durations)
    counts = [max(1, round(d / base)) for d in durations]
    return counts, sum(counts) * 1000.0 / sum(durations)


def _pil_open(path: Path) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"cannot read image file {path}: {exc}") from exc
    return img


def _read_pillow(path: Path, max_frames: int | None) -> tuple[list[np.ndarray], float]:
    from PIL import ImageOps

    img = _pil_open(path)
    with img:
        n = getattr(img, "n_frames", 1)
        if n == 1 or not getattr(img, "is_animated", False):
            return [_pil_frame_to_rgb(ImageOps.exif_transpose(img))], 0.0
        try:
            counts, fps = _repeat_counts(_pil_durations(img))
            out: list[np.ndarray] = []
            for i, count in enumerate(counts):
                img.seek(i)
                frame = _pil_frame_to_rgb(img)
                for _ in range(count):
                    if max_frames is not None and len(out) >= max_frames:
                        return out, fps
                    out.append(frame)
        except (OSError, EOFError, ValueError) as exc:
            raise InputError(f"cannot read image file {path}: {exc}") from exc
    return out, fps


def _av_open(path: Path) -> Any:
    import av

    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise InputError(f"cannot read video file {path}: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise InputError(f"{path} has no video stream")
    return container


def _av_fps(stream: Any) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def _read_av(path: Path, max_frames: int | None) -> tuple[list[np.ndarray], float]:
    import av
    from av.video.reformatter import ColorRange

    container = _av_open(path)
    out: list[np.ndarray] = []
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = _av_fps(stream)
        try:
            for frame in container.decode(stream):
                if max_frames is not None and len(out) >= max_frames:
                    break
                src_range = ColorRange(frame.color_range) if frame.color_range else None
                rgb = frame.reformat(format="rgb24", src_color_range=src_range).to_ndarray()
                if out and rgb.shape != out[0].shape:
                    raise InputError(f"{path}: the frame size changes inside the video, which is not supported")
                out.append(rgb)
        except av.FFmpegError as exc:
            raise InputError(f"cannot decode video file {path}: {exc}") from exc
    if not out and max_frames != 0:
        raise InputError(f"{path} contains no decodable video frames")
    return out, fps


def read_video(path: str | os.PathLike[str], *, max_frames: int | None = None) -> tuple[Tensor, float]:
    """Read a video or image into frames ``[T, H, W, 3]`` float32 in [0, 1] and its frame rate.

    MP4/WebM/MKV/MOV through PyAV; PNG/JPEG/BMP/TIFF/WebP/GIF through Pillow. A still image gives
    ``T == 1`` and fps 0.0. Animated WebP/GIF come back at a constant frame rate (frames held
    longer are repeated). ``max_frames`` stops after that many frames. A missing file raises
    :class:`FileNotFoundError`; an unreadable one :class:`InputError`.
    """
    if max_frames is not None and (isinstance(max_frames, bool) or max_frames < 1):
        raise InputError(f"max_frames must be a positive integer or None, got {max_frames!r}")
    path = _check_readable(path)
    frames, fps = _read_pillow(path, max_frames) if _uses_pillow(path) else _read_av(path, max_frames)
    return _uint8_to_float(frames), fps


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Frame count, size, fps and codec of a video or image file, without decoding the picture data of videos."""
    path = _check_readable(path)
    if _uses_pillow(path):
        img = _pil_open(path)
        with img:
            codec = (img.format or path.suffix[1:]).lower()
            if getattr(img, "n_frames", 1) == 1 or not getattr(img, "is_animated", False):
                w, h = img.size
                if _exif_swaps_axes(img):
                    w, h = h, w
                return VideoInfo(frames=1, width=w, height=h, fps=0.0, codec=codec)
            try:
                counts, fps = _repeat_counts(_pil_durations(img))
            except (OSError, EOFError, ValueError) as exc:
                raise InputError(f"cannot read image file {path}: {exc}") from exc
            return VideoInfo(frames=sum(counts), width=img.size[0], height=img.size[1], fps=fps, codec=codec)
    import av

    container = _av_open(path)
    with container:
        stream = container.streams.video[0]
        frames = stream.frames
        if not frames:  # WebM/Matroska store no frame count: count the packets (no decoding)
            try:
                frames = sum(1 for packet in container.demux(stream) if packet.size)
            except av.FFmpegError as exc:
                raise InputError(f"cannot read video file {path}: {exc}") from exc
        cc = stream.codec_context
        return VideoInfo(frames=int(frames), width=int(cc.width), height=int(cc.height), fps=_av_fps(stream),
                         codec=str(cc.name))


def _exif_swaps_axes(img: Any) -> bool:
    """Whether a still's EXIF orientation swaps width and height (read_video applies the orientation)."""
    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception:  # a broken EXIF block just means no rotation
        return False
    return orientation in (5, 6, 7, 8)


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The text metadata of a file written by :func:`write_video` (and of most others).

    MP4/WebM container tags (keys in lower case; Matroska stores them upper-case), PNG text
    chunks (keys as written), the GIF/JPEG comment as ``{"comment": ...}``. WebP gives ``{}``.
    """
    path = _check_readable(path)
    if _uses_pillow(path):
        img = _pil_open(path)
        with img:
            out: dict[str, str] = {}
            if img.format == "PNG":
                out.update({str(k): str(v) for k, v in getattr(img, "text", {}).items()})
            comment = img.info.get("comment")
            if comment:
                out["comment"] = comment.decode("utf-8", "replace") if isinstance(comment, bytes) else str(comment)
            return out
    container = _av_open(path)
    with container:
        return {str(k).lower(): str(v) for k, v in container.metadata.items()}
