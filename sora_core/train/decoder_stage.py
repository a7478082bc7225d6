"""Stage 1b: keep training the VAE's decoder with its encoder frozen.

The DiT learns the encoder's latent space, so once the DiT's latent pool exists the encoder must not
change - but the decoder can go on learning to draw sharper frames from the same latents, in parallel
with the DiT stage. Latents get a little noise, as the DiT's samples are never exactly the encoder's.
The objects are small beside their background, so their pixels weigh more in the loss: an object that
fades costs the decoder as much as a background that is slightly off.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..vae import WanVAE
from .data import VAE_BUCKETS, clip_batch, object_pixels
from .loop import StepLog, set_lr
from .state import load_state, save_state
from .vae_stage import weighted_pixel_loss

LATENT_NOISE = 0.05  # relative to each channel's latent std
OBJECT_WEIGHT = 4.0  # extra loss weight of the pixels where an object is drawn
LONG_BUCKETS = tuple(b for b in VAE_BUCKETS if b[2] >= 17)  # where fast movers drift: later latent frames


def train_decoder(run: Path, vae: WanVAE, *, steps: int, batch: int = 6, lr: float = 5e-4, seed: int = 0,
                  log_every: int = 10, save_every: int = 50, fast_only: bool = False) -> WanVAE:
    """Fine-tune ``vae``'s decoder (conv2 + decoder) in place, on the device ``vae`` is on; resumable from
    decoder_state.safetensors. ``fast_only``: train on fast movers in clips of 17 frames or more only."""
    state_path = run / "decoder_state.safetensors"
    vae.requires_grad_(False)
    params = [*vae.conv2.parameters(), *vae.decoder.parameters()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0, betas=(0.9, 0.99))
    start = 0
    if state_path.exists():
        start, _ = load_state(state_path, vae, opt)
        print(f"decoder: resuming at step {start}")
    device = vae.device
    std = torch.tensor(vae.config.latents_std, device=device).view(1, -1, 1, 1, 1)
    log = StepLog(run, "decoder")
    for step in range(start, steps):
        set_lr(opt, step, steps, lr, warmup=20)
        clips = clip_batch(seed + 500, step, batch, LONG_BUCKETS if fast_only else VAE_BUCKETS, captions=False,
                           frame_budget=batch * 9, fast_only=fast_only)
        video = clips.video.to(device)
        with torch.no_grad():
            mu = vae.conv1(vae.encoder(video))[:, : vae.config.z_dim]
        gen = torch.Generator().manual_seed(seed * 13 + step)
        z = mu + LATENT_NOISE * std * torch.randn(mu.shape, generator=gen).to(device)
        out = vae.decoder(vae.conv2(z))
        loss = weighted_pixel_loss(out, video, object_pixels(clips.scenes, clips.video).to(device), OBJECT_WEIGHT)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if (step + 1) % log_every == 0:
            log.write(step + 1, loss.item())
        if (step + 1) % save_every == 0 or step + 1 == steps:
            save_state(state_path, vae, opt, step + 1, {})
    log.close()
    return vae.requires_grad_(False).eval()
