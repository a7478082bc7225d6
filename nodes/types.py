"""The pack's own ComfyUI types: only for the loaded networks, where nothing native fits.

ComfyUI's MODEL, CLIP and VAE are ComfyUI's own wrapper classes; sora_core's networks are not, so
they travel as SORA_* types (a wrong connection is refused at validation). Latents, images and
conditioning use ComfyUI's native LATENT, IMAGE and CONDITIONING.
"""

from __future__ import annotations

from comfy_api.latest import io

SoraModel = io.Custom("SORA_MODEL")
SoraTextEncoder = io.Custom("SORA_TEXT_ENCODER")
SoraVAE = io.Custom("SORA_VAE")

CATEGORY = "Sora"
DTYPE_CHOICES = ["default", "fp32", "bf16", "fp16"]
DTYPE_TOOLTIP = "Precision of the weights and compute. 'default' lets ComfyUI choose for the device (fp32 on CPU)."
