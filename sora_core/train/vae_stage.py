"""Stage 1: train the small causal video VAE on rendered clips.

Loss: L1 + MSE on pixels, plus a small KL term that keeps the latent close to a unit Gaussian (so
the DiT gets well-scaled latents). With an object weight above 0 the pixels where an object is drawn
weigh more: a small fast object covers about 1% of a frame, and an unweighted loss lets the encoder
drop it (docs/vae_diagnosis.md: fast movers faded in later frames). The encoder's log-variance half
is trained as in a VAE; only the mean is used afterwards. The whole clip runs through the network at
once: the causal convolutions make that identical to the chunked inference path.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import VAEConfig
from ..vae import WanVAE
from .data import VAE_BUCKETS, clip_batch, object_pixels
from .loop import StepLog, set_lr
from .state import load_state, save_state

# Small Wan-VAE: same architecture and factors (8x space, 4x time, 16 channels), 1/8 of the width.
DEFAULT_VAE = VAEConfig(base_dim=12, z_dim=16, dim_mult=(1, 2, 4, 4), num_res_blocks=1,
                        latents_mean=(0.0,) * 16, latents_std=(1.0,) * 16)
KL_WEIGHT = 1e-4


def vae_config_for(spatial: int, base: VAEConfig = DEFAULT_VAE) -> VAEConfig:
    """``base`` with ``spatial`` x spatial compression (8 or 4): 4 drops the last down/up-sampling level, so
    a 64x64 frame becomes 16x16 latent cells instead of 8x8 (a quarter of the compression; the DiT then
    sees four times the tokens). Time stays 4x: both remaining levels also halve time."""
    if spatial == base.spatial_factor:
        return base
    if spatial == 4 and base.spatial_factor == 8:
        # the two levels left both halve time, so time keeps the base's 4x
        return replace(base, dim_mult=base.dim_mult[:3], temporal_downsample=(True,) * sum(base.temporal_downsample))
    raise ValueError(f"vae_config_for: spatial={spatial}; use 8 or 4")


def posterior(vae: WanVAE, video: Tensor) -> tuple[Tensor, Tensor]:
    stats = vae.conv1(vae.encoder(video))
    mu, logvar = stats.chunk(2, dim=1)
    return mu, logvar.clamp(-30.0, 20.0)


def reconstruct(vae: WanVAE, z: Tensor) -> Tensor:
    return vae.decoder(vae.conv2(z))


def weighted_pixel_loss(out: Tensor, video: Tensor, objects: Tensor, object_weight: float) -> Tensor:
    """L1 + MSE with the ``objects`` pixels weighted ``1 + object_weight``, normalised by the total weight."""
    weight = 1.0 + object_weight * objects.float()
    err = (out - video).abs() + (out - video).square()
    return (weight * err).sum() / (weight.sum() * video.shape[1])


def vae_loss(vae: WanVAE, video: Tensor, gen: torch.Generator, objects: Tensor | None = None,
             object_weight: float = 0.0) -> tuple[Tensor, dict[str, float]]:
    """The VAE's training loss on ``video``; ``objects`` ([B, 1, T, H, W] bool) is needed when ``object_weight`` > 0."""
    if object_weight < 0:
        raise ValueError(f"vae_loss: object_weight={object_weight}; use 0 (plain mean) or more")
    if object_weight > 0 and objects is None:
        raise ValueError("vae_loss: object_weight > 0 needs the object mask (train.data.object_pixels)")
    mu, logvar = posterior(vae, video)
    eps = torch.randn(mu.shape, generator=gen).to(mu.device)  # drawn on the CPU: the same on every device
    z = mu + eps * (0.5 * logvar).exp()
    out = reconstruct(vae, z)
    l1, mse = F.l1_loss(out, video), F.mse_loss(out, video)
    pixels = weighted_pixel_loss(out, video, objects, object_weight) if object_weight > 0 else l1 + mse
    kl = 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).mean()
    loss = pixels + KL_WEIGHT * kl
    return loss, {"loss": loss.item(), "l1": l1.item(), "mse": mse.item(), "kl": kl.item()}


def train_vae(run: Path, *, steps: int, batch: int = 8, lr: float = 1e-3, seed: int = 0,
              log_every: int = 10, save_every: int = 50, config: VAEConfig = DEFAULT_VAE,
              init: dict[str, Tensor] | None = None, device: torch.device | str = "cpu",
              object_weight: float = 0.0) -> WanVAE:
    """Train (or resume) the VAE in ``run`` on ``device``; ``init`` seeds the weights of a fresh run (fine-tuning).
    ``object_weight`` > 0 weighs object pixels ``1 + object_weight`` times a background pixel.

    ``batch`` counts 9-frame clips: a step holds about ``9 * batch`` frames of whichever bucket it draws.
    """
    run.mkdir(parents=True, exist_ok=True)
    state_path = run / "vae_state.safetensors"
    torch.manual_seed(seed)
    vae = WanVAE(config).to(device)
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0, betas=(0.9, 0.99))
    start = 0
    if state_path.exists():
        try:
            start, _ = load_state(state_path, vae, opt)
        except RuntimeError as err:  # torch lists tensors, not the option that differs
            raise ValueError(f"{state_path} holds a VAE of another shape than {config.spatial_factor}x spatial "
                             "compression: resume the run with the options it was started with (the same "
                             "--vae-spatial), or use a new --run folder") from err
        print(f"vae: resuming at step {start}")
    elif init is not None:
        vae.load_state_dict(init)
    vae.train()
    log = StepLog(run, "vae")
    for step in range(start, steps):
        set_lr(opt, step, steps, lr, warmup=50)
        clips = clip_batch(seed, step, batch, VAE_BUCKETS, captions=False, frame_budget=batch * 9)
        objects = object_pixels(clips.scenes, clips.video).to(device) if object_weight > 0 else None
        loss, parts = vae_loss(vae, clips.video.to(device), torch.Generator().manual_seed(seed * 7 + step),
                               objects, object_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        if (step + 1) % log_every == 0:
            log.write(step + 1, *parts.values())
        if (step + 1) % save_every == 0 or step + 1 == steps:
            save_state(state_path, vae, opt, step + 1, {"spatial_factor": str(config.spatial_factor)})
    log.close()
    return vae.eval()


@torch.no_grad()
def latent_stats(vae: WanVAE, seed: int, clips: int = 64) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of the raw posterior mean over training clips (DiT-bucket sizes)."""
    from .data import DIT_BUCKETS

    mus = [vae.encode_raw(clip_batch(seed + 99, i, 8, DIT_BUCKETS, captions=False).video.to(vae.device)).cpu()
           for i in range(clips // 8)]
    flat = torch.cat([m.movedim(1, -1).reshape(-1, m.shape[1]) for m in mus])
    return tuple(flat.mean(0).tolist()), tuple(flat.std(0).clamp_min(1e-3).tolist())
