"""Invisible video watermark: a keyed, tiled spread-spectrum pattern in luma, read from the whole clip.

Why it is built this way (measured against imwatermark in bench/bench_watermark.py, docs/provenance.md):

- **Payload coding.** 32 payload bits + CRC-16 (error detection) + 6 tail bits go through a rate-1/2
  convolutional code of constraint length 7 (error correction, decoded with soft-decision Viterbi): 108 coded
  bits. The CRC tells a damaged payload from a good one, and a valid CRC is extra evidence of a mark.
- **One tile, repeated.** A 32x32 grid of cells, shuffled by a key: 756 cells carry the coded bits (7 cells
  each, scattered, each with its own pseudo-random sign), 268 carry a known sync pattern. A cell is ``c x c``
  pixels (``c`` from the frame size, :func:`cell_size`). The tile repeats over the frame from the top-left
  corner, and every frame carries the same pattern. So a crop only shifts the pattern (the detector searches
  all shifts), dropped or cut frames remove nothing, and evidence adds up over the clip: the detector reads
  the clip's *mean* luma, where the pattern adds up and moving content averages out.
- **Luma only.** The same change is added to R, G and B, so chroma (subsampled by every codec) is untouched.
- **Strength.** ``strength`` is the RMS change in 8-bit levels: PSNR ~= 20 log10(255 / strength), 40.4 dB at
  the default 2.4. A texture mask puts more of it where detail hides it and less on flat areas; the mask is
  normalised per frame so the mean squared change stays ``strength**2``.
- **Detection.** For each period hypothesis (the four native cell sizes, plus one period estimated from the
  autocorrelation, for videos that were resized), the high-passed mean luma is resampled so the period is
  exactly 32 cells, folded into one tile, whitened, and circularly correlated with the sync pattern. The
  score is the peak's z-score over all shifts. The payload is read at the peak's shift.
- **Threshold.** Under "no mark" the surface is close to standard normal, so the chance that the best of
  ``M`` hypotheses (shifts x periods) reaches ``z`` is at most ``M * Q(z)`` (Bonferroni), times 2**-16 when
  the CRC also checks out. A clip is marked when that bound is <= ``FALSE_POSITIVE_RATE`` (1e-6 per clip);
  ``confidence`` is ``1 - bound``. The bench checks the bound on unmarked clips.

The key is public (anyone can check a file), so this is a disclosure mark against accidental loss of
provenance (re-encoding, resizing, trimming), not a defence against someone who wants to remove it.
Everything runs in torch on the frames' device; only the 108-step Viterbi runs in numpy.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import InputError

__all__ = [
    "DEFAULT_KEY",
    "DEFAULT_STRENGTH",
    "FALSE_POSITIVE_RATE",
    "PAYLOAD_BITS",
    "WatermarkDetection",
    "cell_size",
    "detect_watermark",
    "detect_watermark_file",
    "draw_label",
    "embed_watermark",
]

PAYLOAD_BITS = 32
DEFAULT_STRENGTH = 2.4  # RMS change in 8-bit levels: PSNR ~40.4 dB
DEFAULT_KEY = 0x50_52_4F_56  # public: anyone may detect
FALSE_POSITIVE_RATE = 1e-6  # per clip, the bound `found` is held to

_CELLS = 32  # the tile is _CELLS x _CELLS cells
_CRC_BITS = 16
_TAIL = 6  # constraint length 7 -> 6 flushing zeros
_CODED_BITS = 2 * (PAYLOAD_BITS + _CRC_BITS + _TAIL)  # 108
_CELLS_PER_BIT = 7
_NATIVE_CELLS = (1, 2, 4, 8)  # cell sizes the embedder uses; each is a detection hypothesis
_LUMA = (0.299, 0.587, 0.114)
_MAX_DETECT_FRAMES = 240  # evidence saturates long before this; bounds memory and time
_DETECT_FLOATS = 250_000_000  # at most this many decoded values (1 GB of float32) when reading a file
_REFINE_STEPS = tuple(0.0025 * k for k in range(-4, 5))  # tried around an estimated period


# ----------------------------------------------------------------------------------------------------------------
# Payload coding: CRC-16 + rate-1/2 K=7 convolutional code (the NASA/Voyager polynomials 171, 133 octal)

_POLYS = (0o171, 0o133)


def _crc16(bits: list[int]) -> list[int]:
    """CRC-16/CCITT (poly 0x1021, init 0xFFFF) of a bit list, as 16 bits, most significant first."""
    reg = 0xFFFF
    for bit in bits:
        top = ((reg >> 15) & 1) ^ bit
        reg = ((reg << 1) & 0xFFFF) ^ (0x1021 if top else 0)
    return [(reg >> (15 - i)) & 1 for i in range(16)]


def _int_bits(value: int, n: int) -> list[int]:
    return [(value >> (n - 1 - i)) & 1 for i in range(n)]


def _parity(x: int) -> int:
    return bin(x).count("1") & 1


# Trellis tables: state = the last 6 input bits (newest in the lowest bit).
_NEXT = np.array([[((s << 1) | u) & 63 for u in (0, 1)] for s in range(64)])
_OUT = np.array([[[_parity(((s << 1) | u) & p) for p in _POLYS] for u in (0, 1)] for s in range(64)])


def encode_payload(payload: int) -> list[int]:
    """32-bit payload -> the 108 coded bits embedded in the tile (payload + CRC-16 + tail, convolutional code)."""
    data = _int_bits(payload, PAYLOAD_BITS)
    message = data + _crc16(data) + [0] * _TAIL
    state, coded = 0, []
    for u in message:
        coded.extend(int(b) for b in _OUT[state, u])
        state = int(_NEXT[state, u])
    return coded


def decode_payload(soft: np.ndarray) -> tuple[list[int], bool]:
    """Soft coded bits (> 0 means 1) -> (the 48 decoded message bits, whether the CRC matches).

    Maximum-likelihood (Viterbi) over the trellis, with the correlation metric: the scale of ``soft`` does not
    matter, and an unreliable bit (near 0) counts for little.
    """
    soft = np.asarray(soft, dtype=np.float64).reshape(-1, 2)
    n = soft.shape[0]
    sym = 2.0 * _OUT - 1.0  # [64 states, 2 inputs, 2 outputs] in {-1, +1}
    nxt = np.arange(64)
    u = nxt & 1  # the input bit that leads into each state
    preds = np.stack([nxt >> 1, (nxt >> 1) | 32])  # the two states that lead into each state
    metric = np.full(64, -np.inf)
    metric[0] = 0.0
    back = np.zeros((n, 64), dtype=np.int64)  # the winning predecessor of each state, per step
    for t in range(n):
        cand = metric[preds] + sym[preds, u] @ soft[t]  # [2, 64]
        pick = cand.argmax(axis=0)
        metric = cand[pick, nxt]
        if t >= n - _TAIL:
            metric[u == 1] = -np.inf  # the tail is all zeros
        back[t] = preds[pick, nxt]
    state, bits = 0, []
    for t in range(n - 1, -1, -1):
        bits.append(state & 1)
        state = int(back[t, state])
    bits.reverse()
    message = bits[: PAYLOAD_BITS + _CRC_BITS]
    return message, _crc16(message[:PAYLOAD_BITS]) == message[PAYLOAD_BITS:]


def _bits_int(bits: list[int]) -> int:
    return int("".join(map(str, bits)), 2)


# ----------------------------------------------------------------------------------------------------------------
# The keyed tile


@dataclass(frozen=True)
class _Layout:
    coded_index: Tensor  # [cells] int64: which coded bit a cell carries, -1 for a sync cell
    chips: Tensor  # [cells] +-1: each cell's pseudo-random sign


_LAYOUTS: dict[int, _Layout] = {}


def _layout(key: int) -> _Layout:
    if key not in _LAYOUTS:
        gen = torch.Generator().manual_seed(int(key) & 0xFFFF_FFFF_FFFF)
        order = torch.randperm(_CELLS * _CELLS, generator=gen)
        chips = torch.randint(0, 2, (_CELLS * _CELLS,), generator=gen).float() * 2 - 1
        coded_index = torch.full((_CELLS * _CELLS,), -1, dtype=torch.long)
        n_payload = _CODED_BITS * _CELLS_PER_BIT
        # Cells of one coded bit are scattered over the tile: local damage hits many bits a little.
        coded_index[order[:n_payload]] = torch.arange(n_payload) // _CELLS_PER_BIT
        _LAYOUTS[key] = _Layout(coded_index, chips)
    return _LAYOUTS[key]


def cell_size(height: int, width: int) -> int:
    """Pixels per cell side for a frame: larger frames get larger cells, so compression and downscaling keep them."""
    side = min(height, width)
    return 1 if side < 96 else 2 if side < 200 else 4 if side < 720 else 8


def _upsample_cells(grid: Tensor, cell: int) -> Tensor:
    """[K, K] cell values -> [K*cell, K*cell] pixels, cells softened by a cyclic blur (less blocky, lower band)."""
    tile = grid.repeat_interleave(cell, 0).repeat_interleave(cell, 1)
    if cell > 1:
        k = cell // 2 + 1  # blur across about half a cell
        tile = _cyclic_box(tile, k)
    return tile


def _cyclic_box(x: Tensor, k: int) -> Tensor:
    """Box blur of size k with wrap-around (the tile is periodic)."""
    lo, hi = k // 2, k - 1 - k // 2
    padded = F.pad(x[None, None], (lo, hi, lo, hi), mode="circular")
    return F.avg_pool2d(padded, k, stride=1)[0, 0]


@functools.lru_cache(maxsize=32)
def _sync_tile(key: int, cell: int) -> Tensor:
    return _tile(key, cell, None)


def _tile(key: int, cell: int, coded: list[int] | None) -> Tensor:
    """The pattern tile, unit RMS. ``coded=None``: the sync cells only (the detector's template)."""
    lay = _layout(key)
    values = lay.chips.clone()
    if coded is None:
        values[lay.coded_index >= 0] = 0.0
    else:
        sym = torch.tensor(coded, dtype=torch.float32) * 2 - 1
        mask = lay.coded_index >= 0
        values[mask] = values[mask] * sym[lay.coded_index[mask]]
    tile = _upsample_cells(values.view(_CELLS, _CELLS), cell)
    return tile / tile.square().mean().sqrt()


# ----------------------------------------------------------------------------------------------------------------
# Embedding


def _as_frames(frames: Tensor) -> Tensor:
    if not isinstance(frames, Tensor):
        raise InputError(f"frames must be a torch.Tensor [T, H, W, 3], got {type(frames).__name__}")
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] not in (3, 4) or min(frames.shape[:3]) < 1:
        raise InputError(f"frames must be [T, H, W, 3] (float in [0, 1] or uint8), got shape {tuple(frames.shape)}")
    if frames.dtype != torch.uint8 and not frames.is_floating_point():
        raise InputError(f"frames must be float in [0, 1] or uint8, got dtype {frames.dtype}")
    return frames


def _luma(rgb: Tensor) -> Tensor:
    """[..., 3] (any scale) -> [...] float32 luma, same scale."""
    return rgb[..., :3].float() @ torch.tensor(_LUMA, device=rgb.device)


def _box_blur(x: Tensor, k: int) -> Tensor:
    """[N, 1, H, W] -> the same, k x k local mean with edge replication.

    Running sums along each axis: a few operations a pixel whatever k is (pooling costs k a pixel and axis).
    """
    lo, hi = k // 2 + 1, k - 1 - k // 2
    for dim, pad in ((2, (0, 0, lo, hi)), (3, (lo, hi, 0, 0))):
        run = F.pad(x, pad, mode="replicate").cumsum(dim)
        n = run.shape[dim]
        x = (run.narrow(dim, k, n - k) - run.narrow(dim, 0, n - k)) / k
    return x


def _texture_gain(luma: Tensor, size: tuple[int, int]) -> Tensor:
    """Per-pixel gain ``[N, H, W]`` (``size``), mean square 1 per frame: more on texture, less on flat areas.

    ``luma`` [N, h, w] is the frames' luma (8-bit levels) at half size: the mask is a smooth field, so it is
    measured on a quarter of the pixels and its normalisation on a sixteenth.
    """
    x = luma[:, None]
    detail = (x - _box_blur(x, 3)).abs()
    activity = _box_blur(detail, 5)
    if min(activity.shape[-2:]) >= 16:
        activity = F.avg_pool2d(activity, 2, ceil_mode=True)
    # sqrt: a gentle mask; the clamp keeps flat areas marked (else a flat clip would carry nothing).
    gain = (activity + 1.0).sqrt()
    gain = (gain / gain.mean(dim=(2, 3), keepdim=True)).clamp(0.5, 2.0)
    gain = gain / gain.square().mean(dim=(2, 3), keepdim=True).sqrt()
    return F.interpolate(gain, size=size, mode="bilinear", align_corners=False)[:, 0]


def _check_payload(payload: int) -> int:
    if isinstance(payload, bool) or not isinstance(payload, int | np.integer) or not 0 <= payload < 2**PAYLOAD_BITS:
        raise InputError(f"payload must be an integer in [0, 2**{PAYLOAD_BITS}), got {payload!r}")
    return int(payload)


def embed_watermark(frames: Tensor, payload: int, *, strength: float = DEFAULT_STRENGTH, key: int = DEFAULT_KEY,
                    chunk: int = 16) -> Tensor:
    """Mark frames ``[T, H, W, 3]`` (float in [0, 1] or uint8; a single ``[H, W, 3]`` too) with a 32-bit payload.

    Returns a new tensor of the same shape, dtype and device (uint8 in, uint8 out). ``strength`` is the RMS
    change in 8-bit levels (PSNR ~= 20 log10(255 / strength)). Work is done ``chunk`` frames at a time on the
    frames' device, so memory stays flat for long clips.
    """
    payload = _check_payload(payload)
    if not (isinstance(strength, int | float) and math.isfinite(strength) and strength > 0):
        raise InputError(f"strength must be a positive number of 8-bit levels, got {strength!r}")
    single = frames.ndim == 3 if isinstance(frames, Tensor) else False
    frames = _as_frames(frames)
    t, h, w, _ = frames.shape
    cell = cell_size(h, w)
    tile = _tile(key, cell, encode_payload(payload)).to(frames.device)
    period = tile.shape[0]
    reps = (math.ceil(h / period), math.ceil(w / period))
    pattern = tile.repeat(*reps)[:h, :w]
    to_levels = 255.0 if frames.is_floating_point() else 1.0
    out = torch.empty_like(frames)
    for start in range(0, t, max(1, chunk)):
        part = frames[start : start + chunk]
        gain = _texture_gain(_luma(part[:, ::2, ::2]) * to_levels, (h, w))
        if frames.dtype == torch.uint8:
            # round(x + d) == x + round(d) for integer x: add a rounded change in int16, half the memory of float.
            delta = (gain.mul_(pattern).mul_(strength)).round_().to(torch.int16)
            marked = part[..., :3].to(torch.int16) + delta[..., None]
            out[start : start + chunk, ..., :3] = marked.clamp_(0, 255).to(torch.uint8)
        else:
            delta = gain.mul_(pattern).mul_(strength / 255.0)
            marked = (part[..., :3].float() + delta[..., None]).clamp_(0, 1)
            out[start : start + chunk, ..., :3] = marked.to(frames.dtype)
        if frames.shape[-1] == 4:
            out[start : start + chunk, ..., 3] = part[..., 3]
    return out[0] if single else out


# ----------------------------------------------------------------------------------------------------------------
# Detection


@dataclass(frozen=True)
class WatermarkDetection:
    """What :func:`detect_watermark` found.

    ``found``: the mark is there (false-positive bound <= ``FALSE_POSITIVE_RATE``). ``confidence``: 1 minus
    that bound. ``score``: the sync z-score (about 0-5 on unmarked video). ``payload``: the 32-bit payload when
    its CRC checks out, else None; ``bits`` are the decoded payload bits either way. ``period``: how many pixels
    the pattern repeats every, here (32 x the cell size when embedded; other values mean the video was resized).
    """

    found: bool
    confidence: float
    score: float
    payload: int | None
    bits: list[int] = field(repr=False)
    crc_ok: bool
    false_positive_bound: float
    frames: int
    period: float
    shift: tuple[int, int]

    @property
    def resized(self) -> bool:
        """The pattern repeats at none of the embedder's periods: the video was scaled after it was marked."""
        return self.found and all(abs(self.period / (_CELLS * c) - 1) > 0.01 for c in _NATIVE_CELLS)

    def payload_hex(self) -> str | None:
        return None if self.payload is None else f"{self.payload:08x}"


def _gauss_tail(z: float) -> float:
    """P(N(0,1) > z)."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _highpass(x: Tensor, k: int) -> Tensor:
    """[H, W] minus its k x k local mean (removes the picture's broad shapes, keeps the cell-sized pattern)."""
    return x - _box_blur(x[None, None], k)[0, 0]


def _fold(x: Tensor, period: int) -> Tensor:
    """[H, W] -> [period, period]: the mean of every position modulo the period (the tile's repetitions added up)."""
    h, w = x.shape
    ny, nx = math.ceil(h / period), math.ceil(w / period)
    total = F.pad(x, (0, nx * period - w, 0, ny * period - h)).view(ny, period, nx, period).sum(0).sum(1)
    # How many repetitions cover each tile position (the last row and column of tiles may be partial).
    rows = torch.arange(period, device=x.device)
    count_y = (h // period) + (rows < h % period).float()
    count_x = (w // period) + (rows < w % period).float()
    return total / (count_y[:, None] * count_x[None]).clamp(min=1.0)


def _whiten(folded: Tensor) -> Tensor:
    """Spectral whitening: every frequency gets the same weight, so the leftover picture cannot drown the pattern."""
    spec = torch.fft.fft2(folded - folded.mean())
    return spec / (spec.abs() + 1e-6 * spec.abs().mean() + 1e-12)


@dataclass
class _Candidate:
    z: float
    shift: tuple[int, int]
    soft: np.ndarray
    period: float
    hypotheses: int


def _try_period(luma: Tensor, period_yx: tuple[float, float], cell: int, key: int) -> _Candidate | None:
    """Score one hypothesis: the pattern repeats every ``period_yx`` pixels of ``luma`` with ``cell``-pixel cells."""
    target = _CELLS * cell
    h, w = luma.shape
    size = (round(h * target / period_yx[0]), round(w * target / period_yx[1]))
    if min(size) < 8:
        return None
    x = luma
    if size != (h, w):
        x = F.interpolate(x[None, None], size=size, mode="bilinear", align_corners=False,
                          antialias=size[0] < h or size[1] < w)[0, 0]
    x = _highpass(x.double(), 4 * cell + 1).float()  # double: running sums over a whole row stay exact
    spec = _whiten(_fold(x, target))
    sync = _sync_tile(key, cell).to(x.device)
    surface = torch.fft.ifft2(spec * torch.fft.fft2(sync).conj()).real
    flat = surface.flatten()
    std = flat.std()
    if not torch.isfinite(std) or std <= 0:
        return None
    best = int(flat.argmax())
    z = float((flat[best] - flat.mean()) / std)
    dy, dx = divmod(best, target)
    aligned = torch.roll(torch.fft.ifft2(spec).real, shifts=(-dy, -dx), dims=(0, 1))
    # Matched filter per cell: the chip-signed tile shape of each cell, summed over the cell's pixels.
    lay = _layout(key)
    shape = _upsample_cells(lay.chips.view(_CELLS, _CELLS), cell).to(x.device)
    per_cell = F.avg_pool2d((aligned * shape)[None, None], cell)[0, 0].flatten().cpu()
    mask = lay.coded_index >= 0
    soft = torch.zeros(_CODED_BITS).index_add_(0, lay.coded_index[mask], per_cell[mask]).numpy()
    return _Candidate(z=z, shift=(dy, dx), soft=soft, period=math.sqrt(period_yx[0] * period_yx[1]),
                      hypotheses=target * target)


def _estimate_period(luma: Tensor) -> tuple[float, float] | None:
    """The pattern's repeat distance (along y, along x) in a resized video, from the autocorrelation of the frame.

    A periodic pattern puts autocorrelation peaks on a lattice: every (a * py, b * px). The score of a period
    is the mean autocorrelation on its lattice minus that at the lattice cells' centres; it peaks at the true
    period, not at its multiples (whose cell centres are peaks too) nor at its fractions (mostly misses). First
    one period for both axes (resizing keeps the aspect), then each axis on its own, finely.
    """
    h, w = luma.shape
    if min(h, w) < 48:
        return None
    x = _highpass(luma.double(), 5).float()
    window = torch.hann_window(h, periodic=False, device=x.device)[:, None] * torch.hann_window(
        w, periodic=False, device=x.device)[None]
    power = torch.fft.rfft2((x - x.mean()) * window).abs().square()  # the window keeps wrap-around small
    # Flatten the picture's spectrum: the pattern's lattice of spectral lines stands out of its neighbourhood.
    power = power / (_box_blur(power[None, None], 15)[0, 0] + 1e-12)
    auto = torch.fft.irfft2(power, s=(h, w))
    # Undo the window's own autocorrelation (it falls with the lag and would pull every peak towards 0).
    envelope = torch.fft.irfft2(torch.fft.rfft2(window).abs().square(), s=(h, w))
    auto = (auto / envelope.clamp(min=1e-3 * float(envelope[0, 0]))).cpu().double()
    auto = auto / auto[0, 0].clamp(min=1e-12)
    longest = 0.6 * max(h, w)
    if longest <= 16:
        return None
    coarse = torch.exp(torch.arange(math.log(8.0), math.log(longest), 0.003, dtype=torch.float64))
    scores = _lattice_scores(auto, coarse, coarse)
    p = float(coarse[int(scores.argmax())])
    steps = p * (1 + torch.arange(-12, 13, dtype=torch.float64) * 0.0005)
    py, px = torch.meshgrid(steps, steps, indexing="ij")
    scores = _lattice_scores(auto, py.flatten(), px.flatten())
    best = int(scores.argmax())
    return float(py.flatten()[best]), float(px.flatten()[best])


def _lattice_scores(auto: Tensor, py: Tensor, px: Tensor, chunk: int = 2048) -> Tensor:
    """[N] scores of candidate periods (py[i], px[i]) on a circular autocorrelation ``auto`` [h, w]."""
    h, w = auto.shape
    lag_y, lag_x = 0.6 * h, 0.6 * w  # longer lags rest on few pixels: noisy
    # At most six repeats each way: enough for precision, and the cost stays flat for small periods.
    na, nb = min(6, int(lag_y // float(py.min()))), min(6, int(lag_x // float(px.min())))
    a = torch.arange(-na, na + 1, dtype=torch.float64)[:, None].expand(-1, nb + 1).flatten()
    b = torch.arange(0, nb + 1, dtype=torch.float64)[None, :].expand(2 * na + 1, -1).flatten()
    half_plane = (b > 0) | (a > 0)  # the autocorrelation is symmetric: one half is enough
    a, b = a[half_plane], b[half_plane]
    out = []
    for i in range(0, py.numel(), chunk):
        cy, cx = py[i : i + chunk, None], px[i : i + chunk, None]
        on_y, on_x = a * cy, b * cx
        valid = (on_y.abs() < lag_y) & (on_x < lag_x)
        on = _bilinear_circular(auto, on_y, on_x)
        off = _bilinear_circular(auto, (a - 0.5) * cy, (b - 0.5) * cx)
        count = valid.sum(dim=1)
        score = ((on - off) * valid).sum(dim=1) / count.clamp(min=1)
        score[count < 2] = -math.inf  # two repeats at least, to call it a period
        out.append(score)
    return torch.cat(out)


def _bilinear_circular(image: Tensor, y: Tensor, x: Tensor) -> Tensor:
    """``image`` sampled at fractional positions, wrapping around (an autocorrelation is circular)."""
    h, w = image.shape
    y0, x0 = y.floor(), x.floor()
    fy, fx = y - y0, x - x0
    y0, x0 = y0.long() % h, x0.long() % w
    y1, x1 = (y0 + 1) % h, (x0 + 1) % w
    top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
    bottom = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def _mean_luma(frames: Tensor, chunk: int = 16) -> Tensor:
    frames = _as_frames(frames)
    to_levels = 255.0 if frames.is_floating_point() else 1.0
    total = torch.zeros((*frames.shape[1:3], 3), dtype=torch.float32, device=frames.device)
    for start in range(0, frames.shape[0], chunk):
        total += frames[start : start + chunk, ..., :3].sum(dim=0, dtype=torch.float32)
    return _luma(total) * (to_levels / frames.shape[0])


def detect_watermark(frames: Tensor, *, key: int = DEFAULT_KEY) -> WatermarkDetection:
    """Look for the mark in frames ``[T, H, W, 3]`` (float in [0, 1] or uint8), on their device.

    All frames count together (the pattern is the same in each), so more frames give more confidence.
    """
    frames = _as_frames(frames)
    luma = _mean_luma(frames)
    h, w = luma.shape
    hypotheses: list[tuple[tuple[float, float], int]] = []  # (period along y and x in pixels, cell size)
    for cell in _NATIVE_CELLS:
        if _CELLS * cell <= 2 * max(h, w):
            hypotheses.append(((float(_CELLS * cell),) * 2, cell))
    estimate = _estimate_period(luma)
    if estimate is not None:
        p = math.sqrt(estimate[0] * estimate[1])
        cell = min(_NATIVE_CELLS, key=lambda c: abs(math.log(p / (_CELLS * c))))
        # Not a native period (those are tried anyway): try it and its neighbours, since compression can pull the
        # estimate off by a few tenths of a percent and the fold needs the period to better than that.
        if max(abs(e / (_CELLS * cell) - 1) for e in estimate) > 0.005:
            for step in _REFINE_STEPS:
                hypotheses.append(((estimate[0] * (1 + step), estimate[1] * (1 + step)), cell))
    best: _Candidate | None = None
    total = 0
    for period, cell in hypotheses:
        cand = _try_period(luma, period, cell, key)
        if cand is None:
            continue
        total += cand.hypotheses
        if best is None or cand.z > best.z:
            best = cand
    if best is None:
        return WatermarkDetection(False, 0.0, 0.0, None, [], False, 1.0, frames.shape[0], 0.0, (0, 0))
    message, crc_ok = decode_payload(best.soft)
    bound = min(1.0, total * _gauss_tail(best.z) * (2.0**-_CRC_BITS if crc_ok else 1.0))
    data = message[:PAYLOAD_BITS]
    return WatermarkDetection(
        found=bound <= FALSE_POSITIVE_RATE,
        confidence=1.0 - bound,
        score=best.z,
        payload=_bits_int(data) if crc_ok else None,
        bits=data,
        crc_ok=crc_ok,
        false_positive_bound=bound,
        frames=frames.shape[0],
        period=best.period,
        shift=best.shift,
    )


def detect_watermark_file(path: str | os.PathLike[str], *, key: int = DEFAULT_KEY,
                          max_frames: int = _MAX_DETECT_FRAMES) -> WatermarkDetection:
    """Look for the mark in a video or image file (its first ``max_frames`` frames, fewer for large frames)."""
    from .videoio import probe_video, read_video

    info = probe_video(Path(path))
    # The frames are decoded as float32: keep that under about 1 GB (40 frames of 1080p still give ample evidence).
    budget = max(1, _DETECT_FLOATS // max(1, info.width * info.height * 3))
    frames, _ = read_video(Path(path), max_frames=min(max_frames, budget))
    return detect_watermark(frames, key=key)


# ----------------------------------------------------------------------------------------------------------------
# Visible label (an optional, human-readable mark on top of the invisible one)


def draw_label(frames: Tensor, text: str, *, corner: str = "bottom-right") -> Tensor:
    """Frames ``[T, H, W, 3]`` float in [0, 1] with ``text`` (e.g. "AI-generated") in a corner, on a dark box.

    The label is drawn once with Pillow and blended into every frame on the frames' device.
    """
    from PIL import Image, ImageDraw, ImageFont

    frames = _as_frames(frames)
    if not text.strip():
        return frames
    if corner not in ("bottom-right", "bottom-left", "top-right", "top-left"):
        raise InputError(f"corner must be bottom-right, bottom-left, top-right or top-left, got {corner!r}")
    t, h, w, _ = frames.shape
    size = max(8, round(min(h, w) / 24))
    font = ImageFont.load_default(size=size)
    left, top, right, bottom = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=font)
    pad = max(2, size // 3)
    box_w, box_h = min(w, right - left + 2 * pad), min(h, bottom - top + 2 * pad)
    ink = Image.new("L", (box_w, box_h), 0)
    ImageDraw.Draw(ink).text((pad - left, pad - top), text, fill=255, font=font)
    alpha = torch.from_numpy(np.asarray(ink, dtype=np.float32) / 255.0).to(frames.device)[..., None]
    margin = max(2, size // 2)
    y0 = margin if corner.startswith("top") else max(0, h - box_h - margin)
    x0 = margin if corner.endswith("left") else max(0, w - box_w - margin)
    out = frames.clone() if frames.is_floating_point() else frames.float() / 255.0
    region = out[:, y0 : y0 + box_h, x0 : x0 + box_w, :3]
    region = region * 0.45  # darken the box so white text reads on any picture
    region = region * (1 - alpha) + alpha  # white text
    out[:, y0 : y0 + box_h, x0 : x0 + box_w, :3] = region
    return out if frames.is_floating_point() else (out * 255).round().to(torch.uint8)
