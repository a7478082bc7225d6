"""An analytic evaluator: which objects a clip shows, and whether they match the scene asked for.

No learning, so it is the same judge for every model. Steps, all vectorised over frames:

1. Background. Backgrounds are dark and smooth (plain or linear gradients), and a still object
   spoils a per-pixel median over time, so the background is a plane per channel,
   ``a + b*x + c*y``, fitted by least squares to the pixels that look like background, starting
   from the median of the border and refitted three times with the outliers dropped.
2. Colour layers. Each pixel is explained as background mixed with one palette colour,
   ``pixel = bg + alpha * (colour - bg)``; it belongs to the colour with the smallest residual
   among those with ``alpha >= 0.5`` (at least half covered). Blurred edges keep their colour,
   and a colour far from every palette entry belongs to none.
3. Frames that are mostly not background (noise, a flash) are rejected: nothing is found there.
4. Per colour and frame: small specks are opened away, the largest connected blob is kept,
   and it counts as present if it is big enough and compact (it fills >= 30 % of its box).
5. Per colour present in enough frames (medians over them): shape from the box fill ratio
   (triangle ~0.5, circle ~0.79, square ~1; the area is the summed coverage, so blur does not
   change it), how far down the centroid sits in the box (a triangle's is low) and whether the
   box's corners are covered (a square's are, a disc's never); motion from the centroid track
   (linear fit: direction; quadratic fit: a bounce reverses vertically) and the trend of the
   log-area (grow/shrink).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .scene import COLOURS, ObjectSpec, Scene

PALETTE = torch.tensor(list(COLOURS.values()), dtype=torch.float32)  # [K, 3]
PALETTE_NAMES = tuple(COLOURS)

BACKGROUND_TOLERANCE = 40.0  # a pixel this far (RGB distance) from the background fit is foreground
MAX_FOREGROUND = 0.7  # a frame with more foreground than this is noise, not a scene
MIN_AREA = 0.006  # smallest object, as a fraction of min(H, W)^2 (the smallest drawn is ~0.012)
MIN_FILL = 0.3  # a blob filling less of its bounding box is not an object
MIN_PRESENCE = 0.3  # a colour must be present in this fraction of the valid frames to count
PRESENT_OK = 0.9  # present_ok: the object is found in this fraction of all frames
MOVE = 0.07  # displacement over the clip, as a fraction of min(H, W), below which it is still
SCALE = 0.25  # |log area change| over the clip above which it grows or shrinks


@dataclass(frozen=True)
class DetectedObject:
    """One object found in a clip."""

    colour: str
    shape: str
    motion: str
    presence: Tensor  # [T] bool: found in this frame
    area: float  # median area in pixels over the frames it is in
    fill: float  # median bounding-box fill ratio
    drop: float  # median centroid height in its box, 0 top .. 1 bottom
    corners: float  # median share of the box's corners covered


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """Dot product over a last dimension of 3 (RGB), written out: much faster than norm/sum(-1)."""
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


def fit_background(frames: Tensor) -> Tensor:
    """A smooth background estimate ``[H, W, 3]`` (float, 0..255) for float frames ``[T, H, W, 3]``."""
    # the background is static: nine frames spread over the clip are plenty to fit it
    frames = frames[torch.linspace(0, frames.shape[0] - 1, min(frames.shape[0], 9)).round().long().unique()]
    t, h, w, _ = frames.shape
    border = torch.ones(h, w, dtype=torch.bool)
    border[2:-2, 2:-2] = False
    background = frames[:, border].reshape(-1, 3).median(dim=0).values.expand(h, w, 3)
    v, u = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    design = torch.stack([torch.ones_like(u), u, v], dim=-1).reshape(-1, 3)  # [HW, 3]
    for threshold in (60.0, BACKGROUND_TOLERANCE, BACKGROUND_TOLERANCE):
        inlier = (_dot(frames - background, frames - background) < threshold**2).float()  # [T, H, W]
        count = inlier.sum(0).reshape(-1)  # per position, over time
        if count.sum() < 0.05 * t * h * w:
            break  # hardly anything looks like background: keep the previous estimate
        mean = ((frames * inlier.unsqueeze(-1)).sum(0).reshape(-1, 3)) / count.clamp(min=1).unsqueeze(-1)
        weighted = design * count.unsqueeze(-1)
        normal = design.T @ weighted + 1e-3 * torch.eye(3)
        coeffs = torch.linalg.solve(normal, weighted.T @ mean)  # [3 terms, 3 channels]
        background = (design @ coeffs).reshape(h, w, 3)
    return background


def colour_labels(diff: Tensor, background: Tensor) -> tuple[Tensor, Tensor]:
    """Palette index per pixel (-1: none) and the foreground mask, both ``[T, H, W]``.

    ``diff`` is frames minus background ``[T, H, W, 3]``. Only foreground pixels are unmixed.
    """
    foreground = _dot(diff, diff) > BACKGROUND_TOLERANCE**2
    labels = torch.full(foreground.shape, -1, dtype=torch.long)
    where = foreground.nonzero(as_tuple=True)
    if where[0].numel() == 0:
        return labels, foreground
    d = diff[where]  # [P, 3]
    direction = PALETTE.view(-1, 1, 3) - background[where[1], where[2]]  # [K, P, 3]
    norm2 = _dot(direction, direction).clamp(min=1.0)
    dot = _dot(direction, d)
    alpha = dot / norm2
    # |d - alpha * direction|^2 = |d|^2 - dot^2 / |direction|^2
    residual = (_dot(d, d) - dot * alpha).clamp(min=0).sqrt()
    fits = (alpha >= 0.5) & (residual < (0.35 * norm2.sqrt()).clamp(min=BACKGROUND_TOLERANCE))
    best = residual.masked_fill(~fits, float("inf")).min(0)
    labels[where] = torch.where(best.values.isfinite(), best.indices, -1)
    return labels, foreground


def soft_area(diff: Tensor, background: Tensor, colours: Tensor, frames: Tensor, masks: Tensor) -> Tensor:
    """Summed coverage of colour ``colours[i]`` over mask ``masks[i]`` in frame ``frames[i]``: ``[N]`` pixels.

    Coverage is the mixing weight of the colour over the background, so a blurred edge counts by
    how much of the pixel the object covers and the sum stays the object's area.
    """
    which, ys, xs = masks.nonzero(as_tuple=True)
    direction = PALETTE[colours[which]] - background[ys, xs]  # [P, 3]
    alpha = _dot(diff[frames[which], ys, xs], direction) / _dot(direction, direction).clamp(min=1.0)
    return torch.zeros(masks.shape[0]).index_add_(0, which, alpha.clamp(0, 1))


def _max3(x: Tensor) -> Tensor:
    """3x3 maximum filter of ``[N, H, W]`` (zero outside), as shifted maxima: faster than max_pool2d here."""
    p = F.pad(x, (1, 1, 1, 1))
    rows = torch.maximum(torch.maximum(p[:, :-2], p[:, 1:-1]), p[:, 2:])
    return torch.maximum(torch.maximum(rows[:, :, :-2], rows[:, :, 1:-1]), rows[:, :, 2:])


def _dilate(mask: Tensor, steps: int = 1) -> Tensor:
    x = mask.to(torch.uint8)
    for _ in range(steps):
        x = _max3(x)
    return x > 0


def _erode(mask: Tensor) -> Tensor:
    return _max3((~mask).to(torch.uint8)) == 0


def largest_component(mask: Tensor) -> Tensor:
    """The largest blob of each mask in ``[N, H, W]``, blobs closer than about 2 pixels counting as one.

    Connectivity is found on a 2x2-pooled grid (four times fewer pixels, half the rounds): a blob
    with a one-pixel crack or a speck at its edge stays one object, which is what the evaluator wants.
    """
    n, h, w = mask.shape
    if n == 0:
        return mask
    pooled = F.max_pool2d(mask.unsqueeze(1).float(), 2, ceil_mode=True).squeeze(1) > 0
    keep = _largest_connected(pooled).repeat_interleave(2, 1).repeat_interleave(2, 2)
    return mask & keep[:, :h, :w]


def _largest_connected(mask: Tensor) -> Tensor:
    """The largest 8-connected blob of each mask in ``[N, H, W]``.

    Every pixel starts labelled with its own index; each round takes the neighbourhood maximum and
    then jumps through the labels (a pixel takes the label of the pixel its label names), so the
    largest index of each blob spreads in a few rounds rather than one pixel per round.
    """
    n, h, w = mask.shape
    ids = torch.arange(1, h * w + 1).view(1, h, w)
    labels = torch.where(mask, ids, torch.zeros((), dtype=torch.long))
    zero = torch.zeros(n, 1, dtype=torch.long)
    for _ in range(h + w):
        # flat[:, p] is the label of pixel id p; id 0 is the background and stays 0
        flat = torch.cat([zero, (_max3(labels) * mask).reshape(n, -1)], dim=1)
        flat = flat.gather(1, flat.gather(1, flat))
        grown = flat[:, 1:].view(n, h, w)
        if torch.equal(grown, labels):
            break
        labels = grown
    keys = torch.arange(n).view(n, 1, 1) * (h * w + 1) + labels
    counts = torch.bincount(keys.reshape(-1), minlength=n * (h * w + 1)).view(n, h * w + 1)
    counts[:, 0] = 0
    best = counts.argmax(1).view(n, 1, 1)
    return mask & (labels == best)


def _blob_features(region: Tensor) -> dict[str, Tensor]:
    """Pixel count, box fill ratio, centroid and centroid height in the box of ``[N, H, W]`` masks."""
    n, h, w = region.shape
    count = region.sum((1, 2)).float()
    rows, cols = region.any(2), region.any(1)
    ar_h, ar_w = torch.arange(h), torch.arange(w)
    top = torch.where(rows, ar_h, h).min(1).values
    bottom = torch.where(rows, ar_h, -1).max(1).values
    left = torch.where(cols, ar_w, w).min(1).values
    right = torch.where(cols, ar_w, -1).max(1).values
    box_h = (bottom - top + 1).clamp(min=1).float()
    box_w = (right - left + 1).clamp(min=1).float()
    safe = count.clamp(min=1)
    cy = (region.float() * (ar_h.view(1, h, 1) + 0.5)).sum((1, 2)) / safe
    cx = (region.float() * (ar_w.view(1, 1, w) + 0.5)).sum((1, 2)) / safe
    # corners: box pixels with |u| + |v| > 1.5 in box coordinates u, v in [-1, 1]; a disc never reaches
    # them (its max |u| + |v| is 1.41), a square fills them, even with its corners rounded by blur
    u = ((ar_w.view(1, 1, w) + 0.5) - (left + right + 1).view(n, 1, 1) / 2) / (box_w.view(n, 1, 1) / 2)
    v = ((ar_h.view(1, h, 1) + 0.5) - (top + bottom + 1).view(n, 1, 1) / 2) / (box_h.view(n, 1, 1) / 2)
    zone = (u.abs() + v.abs() > 1.5) & (u.abs() <= 1) & (v.abs() <= 1)
    corners = (zone & region).sum((1, 2)) / zone.sum((1, 2)).clamp(min=1)
    return {"count": count, "box": box_h * box_w, "fill": count / (box_h * box_w), "corners": corners,
            "cx": cx, "cy": cy, "drop": (cy - top.float()) / box_h}


def classify_shape(fill: float, drop: float, corners: float) -> str:
    """Triangle (half-filled box, low centroid), square (full box, filled corners) or circle (pi/4)."""
    if fill < 0.64 or (drop > 0.58 and fill < 0.72):
        return "triangle"
    return "square" if corners + (fill - 0.785) > 0.25 else "circle"


def _fit(s: Tensor, y: Tensor, degree: int) -> Tensor:
    design = torch.stack([s**p for p in range(degree + 1)], dim=1).double()
    return torch.linalg.lstsq(design, y.double().unsqueeze(1)).solution.squeeze(1)


def classify_motion(s: Tensor, cx: Tensor, cy: Tensor, area: Tensor, size: float) -> str:
    """Motion class from a centroid track and areas at clip times ``s`` in [0, 1]; ``size`` = min(H, W)."""
    if s.numel() < 3:
        return "still"
    dx = _fit(s, cx, 1)[1].item()  # displacement over the whole clip
    dy = _fit(s, cy, 1)[1].item()
    _, b, c = _fit(s, cy, 2).tolist()
    height = -c / 4  # a bounce y = top + A(1 - (2s - 1)^2) has c = -4A and ends where it started
    if height > MOVE * size and abs(b + c) < height and abs(dx) < MOVE * size:
        return "bounce"
    moved = math.hypot(dx, dy) > MOVE * size
    growth = _fit(s, area.clamp(min=1).log(), 1)[1].item()
    if not moved:
        return "grow" if growth > SCALE else "shrink" if growth < -SCALE else "still"
    sector = round(math.degrees(math.atan2(-dy, dx)) / 45) % 8  # counter-clockwise from "right"
    return ("right", "up-right", "up", "up-left", "left", "down-left", "down", "down-right")[sector]


def detect_objects(frames: Tensor) -> list[DetectedObject]:
    """Every palette-coloured object in a uint8 ``[T, H, W, 3]`` clip, most prominent first."""
    x = frames.float()
    t, h, w, _ = x.shape
    size = min(h, w)
    k = PALETTE.shape[0]
    background = fit_background(x)
    diff = x - background
    labels, foreground = colour_labels(diff, background)
    valid = foreground.float().mean((1, 2)) <= MAX_FOREGROUND  # [T]
    labels = torch.where(valid.view(t, 1, 1), labels, torch.full_like(labels, -1))
    # work only on the (colour, frame) pairs that have pixels of that colour
    keys = (torch.arange(t).view(t, 1, 1) * (k + 1) + labels + 1).reshape(-1)
    used = torch.bincount(keys, minlength=t * (k + 1)).view(t, k + 1)[:, 1:].T > 0  # [K, T]
    ks, ts = used.nonzero(as_tuple=True)
    raw = labels[ts] == ks.view(-1, 1, 1)  # [N, H, W]
    cores = _dilate(_erode(raw))  # specks opened away
    region = torch.zeros_like(raw)
    alive = cores.flatten(1).any(1)
    if alive.any():
        blobs = largest_component(cores[alive])
        region[alive] = raw[alive] & _dilate(blobs, 2)  # the blob's own thin tips and edges back
    feats = _blob_features(region)
    area = soft_area(diff, background, ks, ts, _dilate(region))
    ok = (feats["count"] >= MIN_AREA * size * size) & (feats["fill"] >= MIN_FILL)
    needed = max(1, math.ceil(MIN_PRESENCE * int(valid.sum())))
    s = torch.linspace(0, 1, t) if t > 1 else torch.zeros(1)
    found = []
    for i in range(k):
        sel = ((ks == i) & ok).nonzero(as_tuple=True)[0]  # in frame order
        if sel.numel() < needed:
            continue
        keep = torch.zeros(t, dtype=torch.bool)
        keep[ts[sel]] = True
        # coverage summed over the blob is its true area even when blurred; the box (from the
        # half-coverage edge) is not moved by blur either, so this ratio is blur-proof
        fill = (area[sel] / feats["box"][sel]).median().item()
        drop = feats["drop"][sel].median().item()
        corners = feats["corners"][sel].median().item()
        motion = classify_motion(s[ts[sel]], feats["cx"][sel], feats["cy"][sel], area[sel], size)
        found.append(DetectedObject(PALETTE_NAMES[i], classify_shape(fill, drop, corners), motion, keep,
                                    feats["count"][sel].median().item(), fill, drop, corners))
    found.sort(key=lambda d: -d.area * d.presence.float().mean().item())
    return found


def _judge(obj: ObjectSpec, det: DetectedObject | None, frames: int) -> dict:
    if det is None:
        return {"colour_ok": False, "shape_ok": False, "motion_ok": False, "present_ok": False, "all_ok": False,
                "detected": None}
    result = {
        "colour_ok": det.colour == obj.colour,
        "shape_ok": det.shape == obj.shape,
        "motion_ok": det.motion == obj.motion or frames < 3,  # a still image shows no motion to judge
        "present_ok": det.presence.float().sum().item() >= PRESENT_OK * frames,
    }
    result["all_ok"] = all(result.values())
    result["detected"] = {"colour": det.colour, "shape": det.shape, "motion": det.motion}
    return result


def score_clip(scene: Scene, frames: Tensor) -> dict:
    """Judge a uint8 ``[T, H, W, 3]`` clip against its scene.

    Each scene object is matched to the detection of its colour; objects whose colour is missing
    take the most prominent unmatched detection, so a wrong colour still gets its shape and motion
    judged. Clips under 3 frames (images) cannot show motion: their ``motion_ok`` is always True.
    Returns the main (first) object's ``colour_ok``, ``shape_ok``, ``motion_ok``,
    ``present_ok``, ``all_ok`` and ``detected`` attributes, ``objects`` (the same per scene object)
    and ``n_detected``.
    """
    detections = detect_objects(frames)
    unmatched = list(detections)
    matches: list[DetectedObject | None] = []
    for obj in scene.objects:
        det = next((d for d in unmatched if d.colour == obj.colour), None)
        if det is not None:
            unmatched.remove(det)
        matches.append(det)
    for i, det in enumerate(matches):
        if det is None and unmatched:
            matches[i] = unmatched.pop(0)
    t = frames.shape[0]
    per_object = [_judge(obj, det, t) for obj, det in zip(scene.objects, matches, strict=True)]
    return {**per_object[0], "objects": per_object, "n_detected": len(detections)}
