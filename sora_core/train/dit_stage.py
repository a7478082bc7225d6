"""Stage 2: train the DiT with flow matching on VAE latents of captioned clips.

- Data: a pool of training clips from every size/length bucket, encoded once by the frozen VAE
  (encoding on the fly would cost more than the DiT step on a CPU); each step takes one bucket.
- Text: frozen MiniLM token states of the detailed captions; 10% of captions are dropped to the
  empty prompt so classifier-free guidance works.
- Noise level: sigma from a logit-normal shifted like the sampling schedule (shift 3): mid and high
  noise, where layout and motion are decided, get most of the steps.
- Conditioning frames: in half of the samples some latent frames (first, last, both, a run at the
  start, at the end or at both ends, or a random span) are given clean with timestep 0 and left out of the loss; the
  model thereby learns the per-frame conditioning the temporal operations (image-to-video, extend,
  loop) use.
- Slices of longer scenes (``long_scenes``, off by default; data.LONG_SCENE_BUCKET): always with known
  first or last frames (``context_mask``), never as text-to-video, so an extension takes its pace from
  the frames it continues while text-to-video keeps the pace of whole clips.
- Mid-clip windows: 70% of the 33-frame samples are cut to 5 latent frames starting at a later
  latent frame, so the model also sees windows whose first latent frame is a 4-frame group, which is
  what extending a clip forward hands it. They are shown only as forward extensions (their first
  frames known, ``forward_context_mask``): an unknown frame 0 is then always a clip's first frame.
- Object weight (``--object-weight``, off by default): the objects cover a few latent cells of a
  mostly plain background, so an object that fades or changes colour costs the mean loss little; the
  pool keeps which latent cells show an object, and their error can weigh more.
- Loop windows (``loop_windows``, off by default): some whole clips that end where they start (bounces,
  still objects) are shown as the loop sampler shows a period, its groups after a lead of its last group
  (``loop_window``), so seamless loops are native rather than only asked of a model trained on clips.
- Motion weights (``motion_weights``, off by default): clips whose caption names a motion are drawn that
  many times as often as others (e.g. ``{"bounce": 4}``), to teach a motion anew without diluting it in
  a pool where it is one of twelve.
- An exponential moving average of the weights is what gets exported.
- bf16 (``bf16``, off by default): the forward pass runs under bfloat16 autocast while the weights, the
  optimizer and the EMA stay float32 (mixed precision as on GPUs); on a CPU with AVX512-BF16 a step takes
  0.7-0.8x the time (bench/train_step.py).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import DiTConfig
from ..dit import WanDiT
from ..vae import WanVAE
from .data import DIT_BUCKETS, LONG_SCENE_BUCKET, Bucket, clip_batch, is_slice_bucket, object_pixels, step_rng
from .loop import StepLog, set_lr
from .state import load_state, save_state

DEFAULT_DIT = DiTConfig(dim=256, ffn_dim=1024, num_heads=4, num_layers=6, text_dim=384, text_len=80, freq_dim=128)
TRAIN_SHIFT = 3.0
CAPTION_DROP = 0.1


@dataclass
class LatentPool:
    """Encoded training clips grouped by bucket: latents [N, C, T, h, w], their captions and which latent
    cells show an object ([N, T, h, w] bool; None in pools saved before they were kept)."""

    latents: dict[Bucket, Tensor]
    captions: dict[Bucket, list[str]]
    objects: dict[Bucket, Tensor] | None = None


def latent_cells(pixels: Tensor, temporal: int, spatial: int) -> Tensor:
    """[B, 1, T, H, W] bool pixel mask -> [B, T', H/s, W/s] bool: a latent cell is set when any of its pixels
    is. Latent frame 0 is pixel frame 0 alone, each later one a group of ``temporal`` frames (causal VAE)."""
    first, rest = pixels[:, :, :1], pixels[:, :, 1:]
    b, _, t, h, w = rest.shape
    groups = rest.view(b, 1, t // temporal, temporal, h, w).any(dim=3)
    cells = torch.cat([first, groups], dim=2).float()
    return F.max_pool3d(cells, (1, spatial, spatial)).squeeze(1) > 0


def training_buckets(long_scenes: int = 0) -> tuple[Bucket, ...]:
    """The DiT's buckets, each as often as it is drawn: the whole-clip ones, and the bucket of slices of
    longer scenes ``long_scenes`` times (weighted like one whole-clip entry each)."""
    return DIT_BUCKETS + (LONG_SCENE_BUCKET,) * long_scenes


@torch.no_grad()
def build_pool(vae: WanVAE, seed: int, clips_per_bucket: int, batch: int = 16,
               grow: LatentPool | None = None, buckets: tuple[Bucket, ...] | None = None) -> LatentPool:
    """Encode ``clips_per_bucket`` training clips of every bucket.

    Clip ``k`` of a bucket is the same for every pool size (batches are pure functions of seed and batch
    index), so ``grow`` (a smaller pool of the same seed, batch and VAE) keeps its clips and only the
    missing ones are encoded. The batch holding its last clips is encoded again as a check, and a pool
    that does not match is refused."""
    latents: dict = {}
    captions: dict = {}
    objects: dict = {}
    # a bucket's clips follow its index, so a new bucket goes last
    for b, bucket in enumerate(dict.fromkeys(buckets or DIT_BUCKETS)):
        have = 0 if grow is None else min(len(grow.captions.get(bucket, [])), clips_per_bucket)
        first = (have - 1) // batch if have else 0  # the batch holding the last kept clip
        chunks, texts, cells = [], [], []
        for i in range(first, math.ceil(clips_per_bucket / batch)):
            clips = clip_batch(seed + 1000 * (b + 1), i, batch, [bucket])
            chunks.append(vae.encode(clips.video.to(vae.device)).cpu())
            texts += clips.captions
            cells.append(latent_cells(object_pixels(clips.scenes, clips.video), vae.config.temporal_factor,
                                      vae.config.spatial_factor))
        new_latents, new_cells = torch.cat(chunks), torch.cat(cells)
        if have:
            new_latents, new_cells, texts = _joined(grow, bucket, have, first * batch, new_latents, new_cells,
                                                    texts)
        latents[bucket] = new_latents[:clips_per_bucket]
        captions[bucket] = texts[:clips_per_bucket]
        objects[bucket] = new_cells[:clips_per_bucket]
        print(f"pool: {bucket} {tuple(latents[bucket].shape)}" + (f" ({have} kept)" if have else ""), flush=True)
    return LatentPool(latents, captions, objects)


def pool_needs_clips(pool: LatentPool | None, clips_per_bucket: int,
                     buckets: tuple[Bucket, ...] | None = None) -> bool:
    """Whether ``build_pool(..., grow=pool)`` has clips to add: a bucket of the DiT's that the pool lacks, or
    holds fewer than ``clips_per_bucket`` clips of."""
    return pool is None or any(len(pool.captions.get(b, [])) < clips_per_bucket for b in buckets or DIT_BUCKETS)


def _joined(grow: LatentPool, bucket: Bucket, have: int, offset: int, latents: Tensor,
            cells: Tensor, texts: list[str]) -> tuple[Tensor, Tensor, list[str]]:
    """The kept clips ``[:have]`` of ``grow`` followed by the newly encoded ones (which start at clip
    ``offset``), after checking that the clips encoded twice agree."""
    if grow.objects is None:
        raise ValueError("the run's latent pool was saved before pools kept their object cells and cannot grow: "
                         "delete its latent_pool.safetensors to rebuild it")
    overlap = slice(offset, have)
    same = (grow.captions[bucket][overlap] == texts[:have - offset]
            and torch.allclose(grow.latents[bucket][overlap], latents[:have - offset], atol=1e-3))
    if not same:
        raise ValueError(f"the run's latent pool ({have} clips of {bucket}) was not built with this seed, batch "
                         "and VAE, so it cannot grow: delete its latent_pool.safetensors, or keep --pool at its size")
    skip = have - offset
    return (torch.cat([grow.latents[bucket][:have], latents[skip:]]),
            torch.cat([grow.objects[bucket][:have], cells[skip:]]),
            grow.captions[bucket][:have] + texts[skip:])


def bucket_key(bucket: Bucket) -> str:
    """A bucket's name in a saved pool: "64x64x17"."""
    return "x".join(map(str, bucket))


def save_pool(pool: LatentPool, path: Path) -> None:
    import json

    from ..loading import write_safetensors

    tensors = {bucket_key(k): v.contiguous() for k, v in pool.latents.items()}
    for k, v in (pool.objects or {}).items():
        tensors["objects_" + bucket_key(k)] = v.to(torch.uint8).contiguous()
    meta = {"captions": json.dumps({bucket_key(k): v for k, v in pool.captions.items()})}
    write_safetensors(path, tensors, meta)


def load_pool(path: Path) -> LatentPool:
    import json

    from ..loading import read_safetensors

    tensors, meta = read_safetensors(path)
    caps = json.loads(meta["captions"])

    def key(name: str) -> Bucket:
        return tuple(int(v) for v in name.split("x"))

    objects = {key(k.removeprefix("objects_")): v.bool() for k, v in tensors.items() if k.startswith("objects_")}
    latents = {key(k): v for k, v in tensors.items() if not k.startswith("objects_")}
    return LatentPool(latents, {key(k): v for k, v in caps.items()}, objects or None)


def sample_sigmas(gen: torch.Generator, n: int) -> Tensor:
    u = torch.sigmoid(torch.randn(n, generator=gen))
    return TRAIN_SHIFT * u / (1 + (TRAIN_SHIFT - 1) * u)


def condition_mask(rng, frames: int) -> Tensor:
    """Which latent frames are given clean (True).

    Half the samples get none (text-to-video). The rest follow the operations: the first frame
    (image-to-video), the last, both (keyframes), a run of first frames (extending forward), a run of
    last frames (extending backward), runs at both ends with a span between them to generate (blend,
    re-cut) or a random span.
    """
    mask = torch.zeros(frames, dtype=torch.bool)
    kind = rng.random()
    if kind < 0.5 or frames < 2:
        return mask
    if kind < 0.61:
        mask[0] = True
    elif kind < 0.65:
        mask[-1] = True
    elif kind < 0.69:
        mask[0] = mask[-1] = True
    elif kind < 0.80:
        mask = run_mask(frames, rng.randint(1, frames - 1), at_start=True)
    elif kind < 0.87:
        mask = run_mask(frames, rng.randint(1, frames - 1), at_start=False)
    elif kind < 0.93 and frames >= 3:
        gap_start = rng.randint(1, frames - 2)
        gap_end = rng.randint(gap_start + 1, frames - 1)
        mask[:gap_start] = mask[gap_end:] = True
    else:
        start = rng.randrange(frames - 1)
        mask[start:start + rng.randint(1, max(1, frames // 2))] = True
    return mask


def run_mask(frames: int, known: int, at_start: bool) -> Tensor:
    """``known`` latent frames given at the start (extending forward) or at the end (extending backward)."""
    mask = torch.zeros(frames, dtype=torch.bool)
    if at_start:
        mask[:known] = True
    else:
        mask[frames - known:] = True
    return mask


def context_mask(rng, frames: int) -> Tensor:
    """Known latent frames for a slice of a longer scene: a run of first frames (extending forward, 70%)
    or of last frames (extending backward), at least one frame known and one to generate."""
    known = rng.randint(1, frames - 1)
    return run_mask(frames, known, at_start=rng.random() < 0.7)


def forward_context_mask(rng, frames: int) -> Tensor:
    """Known latent frames for a mid-clip window: a run of first frames (extending forward), at least one.

    Such a window opens on a 4-frame group, where a clip opens on its first frame coded alone; the DiT has no
    other cue which of the two its frame 0 is. Shown as text-to-video (nothing known), these windows taught
    it to open some clips on a group, which the decoder draws in another colour for the first frames (the
    late starts and colour hand-overs of docs/presence_failures.md). Known, frame 0 tells which it is."""
    return run_mask(frames, rng.randint(1, frames - 1), at_start=True)


def mid_clip_window(rng, length: int, frames: int = 5) -> slice:
    """Latent frames to train on: 70% of the time, for clips longer than 2 windows, ``frames`` latent
    frames from a later start; otherwise the whole clip."""
    if length < 2 * frames - 1 or rng.random() < 0.3:
        return slice(0, length)
    start = rng.randrange(1, length - frames + 1)
    return slice(start, start + frames)


def flow_loss(dit: WanDiT, x0: Tensor, context: Tensor, sigma: Tensor, noise: Tensor, known: Tensor,
              cell_weight: Tensor | None = None, lead: Tensor | None = None) -> Tensor:
    """Velocity loss on the frames not given clean. x0, noise [B, C, T, h, w]; sigma [B]; known [B, T].

    ``cell_weight`` [B, T, h, w] weighs the latent cells within each frame (normalised per frame, so a
    frame's loss keeps its scale). ``lead`` [B] bool marks loop windows (``loop_window``: their frame 0 is
    their last frame again): the lead is shown as the loop sampler shows it, with the last frame's noise and
    known flag (the same input), and left out of the loss."""
    if lead is not None and bool(lead.any()):
        noise, known = noise.clone(), known.clone()
        noise[lead, :, 0] = noise[lead, :, -1]
        known[lead, 0] = known[lead, -1]
    s = sigma.view(-1, 1, 1, 1, 1)
    xt = (1 - s) * x0 + s * noise
    keep = known.view(known.shape[0], 1, known.shape[1], 1, 1)
    xt = torch.where(keep, x0, xt)
    t = torch.where(known, 0.0, sigma[:, None] * 1000)
    pred = dit(xt, t, context)
    err = F.mse_loss(pred, noise - x0, reduction="none").mean(dim=1)  # [B, T, h, w]
    if cell_weight is None:
        err = err.mean(dim=(2, 3))
    else:
        err = (err * cell_weight).sum(dim=(2, 3)) / cell_weight.sum(dim=(2, 3))  # [B, T]
    weight = (~known).float()
    if lead is not None:
        weight[:, 0] = torch.where(lead, 0.0, weight[:, 0])
    return (err * weight).sum() / weight.sum().clamp_min(1.0)


def motion_draw_weights(captions: list[str], weights: dict[str, float]) -> list[float]:
    """How often to draw each clip, relative to a clip whose motions ``weights`` does not name: the largest
    weight among its objects' motions (``caption_motions``)."""
    from ..world.scene import MOTIONS

    unknown = sorted(set(weights) - set(MOTIONS))
    if unknown:
        raise ValueError(f"motion weights name {unknown}, which are not motions of this world; use some of "
                         f"{', '.join(MOTIONS)}")
    return [max([1.0] + [weights[m] for m in caption_motions(c) or () if m in weights]) for c in captions]


def periodic_clips(captions: list[str]) -> Tensor:
    """[N] bool: which clips end where they start (every object's motion repeats: PERIODIC_MOTIONS), read
    from their captions (``caption_motions``)."""
    from ..world.motion import PERIODIC_MOTIONS

    motions = [caption_motions(c) for c in captions]
    return torch.tensor([m is not None and all(x in PERIODIC_MOTIONS for x in m) for m in motions], dtype=torch.bool)


def caption_motions(caption: str) -> tuple[str, ...] | None:
    """The motion of each object a training caption names, read back by the prompt parser (which reads the
    world's captions exactly); None for a caption it cannot read."""
    from ..world.parse import fill_defaults, parse_prompt

    spec = parse_prompt(caption)
    return None if spec is None else tuple(o.motion for o in fill_defaults(spec).objects)


def loop_window(latents: Tensor, wrap: Tensor, phase: Tensor | None = None) -> Tensor:
    """Whole periodic clips [B, C, 1 + n, h, w] (the first frame alone, then n groups; the last frame
    equals the first) turned, where ``wrap`` [B] is set, into the window ``ops.loop`` denoises: the period's
    n groups after a lead of its last group. ``phase`` [B] starts each period that many groups later (a loop
    has no first frame: a sampler that rotates the period shows it at every phase)."""
    period = latents[:, :, 1:]
    if phase is not None:
        period = torch.stack([p.roll(-int(k), dims=1) for p, k in zip(period, phase, strict=True)])
    wrapped = torch.cat([period[:, :, -1:], period], dim=2)
    return torch.where(wrap.view(-1, 1, 1, 1, 1), wrapped, latents)


def dit_optimizer(dit: WanDiT, lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(dit.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.99))


def train_step(dit: WanDiT, opt: torch.optim.Optimizer, bf16: bool, *batch: Tensor | None) -> Tensor:
    """One optimizer step on ``flow_loss(dit, *batch)`` (the forward under bfloat16 autocast with ``bf16``, the
    gradient norm clipped to 1); returns the loss."""
    device_type = next(dit.parameters()).device.type
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
        loss = flow_loss(dit, *batch)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(dit.parameters(), 1.0)
    opt.step()
    return loss


def check_bf16(device_type: str) -> None:
    """Refuse bf16 training where bfloat16 matmuls are emulated (a CPU without AVX512-BF16 or AMX, an old GPU):
    there they run many times slower than float32."""
    if device_type == "cpu":
        supported = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    elif device_type == "cuda":
        supported = torch.cuda.is_bf16_supported(including_emulation=False)
    else:
        supported = True
    if not supported:
        raise ValueError(f"--dit-bf16: this {device_type} has no native bfloat16 matmuls (on a CPU: AVX512-BF16 or "
                         "AMX), so bf16 would be slower than float32; train without --dit-bf16")


class CaptionCache:
    """MiniLM states per caption string (the encoder is frozen, captions repeat), kept on the CPU."""

    def __init__(self, encoder) -> None:
        self.encoder = encoder
        self.cache: dict[str, Tensor] = {}

    def __call__(self, captions: list[str]) -> Tensor:
        missing = [c for c in dict.fromkeys(captions) if c not in self.cache]
        if missing:
            states = self.encoder.encode(missing).context
            self.cache.update(zip(missing, states.cpu(), strict=True))
        if len(self.cache) > 50_000:
            self.cache.clear()
        return torch.stack([self.cache[c] for c in captions])


def train_dit(run: Path, pool: LatentPool, text_encoder, *, steps: int, batch: int = 16, lr: float = 4e-4,
              seed: int = 0, log_every: int = 10, save_every: int = 100, config: DiTConfig = DEFAULT_DIT,
              init: dict[str, Tensor] | None = None, object_weight: float = 1.0,
              device: torch.device | str = "cpu", buckets: tuple[Bucket, ...] | None = None,
              loop_windows: float = 0.0, loop_phases: bool = False, bf16: bool = False,
              motion_weights: dict[str, float] | None = None) -> tuple[WanDiT, WanDiT]:
    """Train (or resume) the DiT in ``run`` on ``device`` (the pool stays on the CPU; each batch moves);
    returns (model, EMA model). ``init`` seeds a fresh run. ``buckets`` lists each bucket as often as it
    is drawn (see ``training_buckets``; None: the whole-clip ones); the pool must hold them all.
    ``object_weight`` > 1 weighs the latent cells that show an object that many times a background cell.
    ``loop_windows``: the share of whole periodic clips shown as loop windows (``loop_window``), each at a random
    phase with ``loop_phases``. ``bf16`` runs the forward pass under bfloat16 autocast (``check_bf16`` first).
    ``motion_weights`` draws the clips of the named motions that many times as often (``motion_draw_weights``)."""
    if object_weight != 1.0 and pool.objects is None:
        raise ValueError("object_weight needs a latent pool that keeps its object cells; this one was saved "
                         "before they were kept: delete the run's latent_pool.safetensors to rebuild it")
    state_path, ema_path = run / "dit_state.safetensors", run / "dit_ema.safetensors"
    if bf16:
        check_bf16(torch.device(device).type)
    torch.manual_seed(seed)
    dit = WanDiT(config)
    if init is not None:
        dit.load_state_dict(init)
    dit.to(device)
    opt = dit_optimizer(dit, lr)
    ema = copy.deepcopy(dit).requires_grad_(False)
    start = 0
    if state_path.exists():
        try:
            start, _ = load_state(state_path, dit, opt)
        except RuntimeError as err:  # torch's size-mismatch list names tensors, not the option that differs
            if "size mismatch" not in str(err):
                raise
            raise ValueError(f"{state_path} holds a DiT that does not fit patch size {config.patch_size}: resume the "
                             "run with the options it was started with (the same --dit-patch), or use a new "
                             "--run folder") from err
        load_state(ema_path, ema, None)
        print(f"dit: resuming at step {start}")
    captions = CaptionCache(text_encoder)
    empty = captions([""])[0].to(device)
    buckets = buckets or DIT_BUCKETS
    missing = [b for b in dict.fromkeys(buckets) if b not in pool.latents]
    if missing:
        raise ValueError(f"the latent pool lacks the buckets {missing}: build it with the same buckets")
    # one order whether the pool was just built or loaded (a resumed run replays the same buckets): the saved
    # pool's order, by name, which every run that started from a loaded pool drew in
    drawn = sorted(dict.fromkeys(buckets), key=bucket_key)
    weights = [buckets.count(b) for b in drawn]
    periodic = {b: periodic_clips(pool.captions[b]) for b in drawn if not is_slice_bucket(b)} if loop_windows else {}
    draw = {b: motion_draw_weights(pool.captions[b], motion_weights) for b in drawn} if motion_weights else {}
    dit.train()
    log = StepLog(run, "dit")
    for step in range(start, steps):
        rng = step_rng(seed, step, salt=1)
        gen = torch.Generator().manual_seed(seed * 31 + step)
        set_lr(opt, step, steps, lr, warmup=100)
        bucket = rng.choices(drawn, weights)[0]
        if draw:
            idx = rng.choices(range(len(pool.captions[bucket])), draw[bucket], k=batch)
        else:  # the draws of every run before motion weights, so those runs resume and reproduce
            idx = [rng.randrange(len(pool.captions[bucket])) for _ in range(batch)]
        window = mid_clip_window(rng, pool.latents[bucket].shape[2])
        x0 = pool.latents[bucket][idx][:, :, window].to(device)
        cell_weight = None
        if object_weight != 1.0:
            cells = pool.objects[bucket][idx][:, window].to(device)  # type: ignore[index]
            cell_weight = 1.0 + (object_weight - 1.0) * cells.float()
        texts = [pool.captions[bucket][i] for i in idx]
        context = captions(texts).to(device)
        drop = torch.tensor([rng.random() < CAPTION_DROP for _ in idx], device=device)
        context = torch.where(drop.view(-1, 1, 1), empty.expand_as(context), context)
        if window.start:  # a window opening on a 4-frame group: only ever a forward extension's
            masks = forward_context_mask
        else:
            masks = context_mask if is_slice_bucket(bucket) else condition_mask
        known = torch.stack([masks(rng, x0.shape[2]) for _ in idx]).to(device)
        lead = None
        if bucket in periodic and window == slice(0, x0.shape[2]):  # only whole clips end where they start
            lead = periodic[bucket][idx] & torch.tensor([rng.random() < loop_windows for _ in idx])
            phase = torch.tensor([rng.randrange(x0.shape[2] - 1) for _ in idx]) if loop_phases else None
            x0, lead = loop_window(x0, lead.to(device), phase), lead.to(device)
            if cell_weight is not None:  # the weights follow their frames
                cell_weight = loop_window(cell_weight.unsqueeze(1), lead, phase).squeeze(1)
        sigma, noise = sample_sigmas(gen, batch), torch.randn(x0.shape, generator=gen)  # CPU draws: device-independent
        loss = train_step(dit, opt, bf16, x0, context, sigma.to(device), noise.to(device), known, cell_weight, lead)
        decay = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), dit.parameters(), strict=True):
                pe.lerp_(p, 1 - decay)
        if (step + 1) % log_every == 0:
            log.write(step + 1, loss.item(), bucket)
        if (step + 1) % save_every == 0 or step + 1 == steps:
            save_state(state_path, dit, opt, step + 1, {})
            save_state(ema_path, ema, torch.optim.SGD(ema.parameters(), lr=0.0), step + 1, {})
    log.close()
    return dit.eval(), ema.eval()
