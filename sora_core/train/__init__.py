"""Training of the project's default model on the synthetic world (:mod:`sora_core.world`).

Two stages, each a short script-like module (nanoGPT style):

1. :mod:`.vae_stage` - the small causal video VAE (same class as Wan's VAE, small config) learns to
   reconstruct rendered clips; its per-channel latent mean/std are measured at the end.
2. :mod:`.dit_stage` - the DiT (same class as Wan's, small config) learns flow matching on latents of
   clips in several size/length buckets, conditioned on frozen MiniLM states of detailed captions,
   with random clean conditioning frames (first, last, middle) beside noisy ones, so the temporal
   operations work natively.

``python -m sora_core.train --help`` runs them; :mod:`.export` writes the project checkpoint.
Every stage is resumable (``state.safetensors`` in the run folder) and seeded: the batch of step n
depends only on (seed, n), so a resumed run sees the same data as an uninterrupted one.
"""
