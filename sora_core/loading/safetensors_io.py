"""Reading and writing weights: safetensors only, checked before anything is loaded.

Pickled checkpoints (.pt/.pth/.ckpt/.bin, or any zip/pickle byte stream) can run code when
loaded, so they are refused with a message that says how to convert them. A truncated or
corrupt file is reported with the byte counts involved instead of failing deep in a loader.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from ..errors import WeightsError

PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".pkl", ".pickle")
_CONVERT_HINT = (
    "sora_core loads safetensors only, because unpickling a file can run arbitrary code. Convert it once "
    "in a trusted environment: `from safetensors.torch import save_file; "
    "save_file(torch.load(SRC, weights_only=True), DST)`"
)


def _check_safetensors_file(path: Path) -> dict:
    """Validate the container and return its parsed header (tensor entries and __metadata__)."""
    if not path.exists():
        raise WeightsError(f"weights file not found: {path}")
    if path.is_dir():
        raise WeightsError(f"{path} is a folder; give the .safetensors file inside it")
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(9)
        # A safetensors file is an 8-byte header length then JSON ("{"); only what is not gets judged by
        # pickle/zip magic, since a header length can itself start with 0x80 or "PK".
        looks_safetensors = len(head) == 9 and head[8:9] == b"{"
        pickled = head[:2] == b"PK" or head[:1] == b"\x80"
        if path.suffix.lower() in PICKLE_SUFFIXES or (pickled and not looks_safetensors):
            raise WeightsError(f"{path} is a pickled PyTorch checkpoint, not safetensors. {_CONVERT_HINT}")
        head = head[:8]
        fh.seek(8)
        if len(head) < 8:
            raise WeightsError(f"{path} is not a safetensors file: only {size} bytes long")
        (header_len,) = struct.unpack("<Q", head)
        if header_len > size - 8:
            raise WeightsError(
                f"{path} is truncated or not safetensors: its header claims {header_len} bytes "
                f"but the file has {size} bytes; download or copy it again"
            )
        try:
            header = json.loads(fh.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise WeightsError(f"{path} is not a safetensors file (unreadable header: {exc})") from None
    data_end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    available = size - 8 - header_len
    if data_end > available:
        raise WeightsError(
            f"{path} is truncated: its tensors need {data_end} bytes of data but only {available} are there; "
            "download or copy it again"
        )
    return header


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``__metadata__`` strings of a safetensors file, without loading any tensor."""
    return dict(_check_safetensors_file(Path(path)).get("__metadata__") or {})


def read_keys(path: str | os.PathLike) -> list[str]:
    return [k for k in _check_safetensors_file(Path(path)) if k != "__metadata__"]


def read_safetensors(
    path: str | os.PathLike, *, dtype: torch.dtype | None = None, device: str | torch.device = "cpu"
) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Load every tensor (floating ones cast to ``dtype`` if given) and the metadata."""
    path = Path(path)
    header = _check_safetensors_file(path)
    tensors: dict[str, Tensor] = {}
    with safe_open(str(path), framework="pt", device=str(device)) as fh:
        for key in fh.keys():
            t = fh.get_tensor(key)
            if dtype is not None and t.is_floating_point():
                t = t.to(dtype)
            tensors[key] = t
    return tensors, dict(header.get("__metadata__") or {})


def write_safetensors(
    path: str | os.PathLike, tensors: dict[str, Tensor], metadata: dict[str, str] | None = None
) -> Path:
    """Write atomically: a temporary file in the same folder is renamed into place on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
