"""``generate()``: prompt -> text context -> noise -> flow-matching sampling -> VAE decode -> frames.

``SoraModels`` holds the three loaded networks so that repeated generations (the CLI's batch, the
ComfyUI nodes, a script) reuse them. Every step is a plain function call on tensors.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from . import sampling
from .conditioning import PromptSpan, TemporalCondition, conditioned_velocity
from .config import DiTConfig, VAEConfig
from .dit import WanDiT
from .errors import InputError, WeightsError
from .prompts import prepare_prompt
from .text import TextEncoder

ASSETS = Path(__file__).resolve().parent / "assets"
DEFAULT_CHECKPOINT = ASSETS / "default.safetensors"


@dataclass(frozen=True)
class SamplingDefaults:
    """What a model was made to be sampled with; the caller's arguments override them."""

    steps: int = 50
    cfg: float = 5.0
    shift: float = 5.0
    sampler: str = "unipc"
    frames: int = 81
    width: int = 832
    height: int = 480
    fps: float = 16.0
    negative_prompt: str = ""


WAN21_DEFAULTS = SamplingDefaults()


@dataclass
class SoraModels:
    """The DiT, the VAE and the text encoder of one model, ready to sample."""

    dit: WanDiT
    vae: Any  # sora_core.vae.WanVAE
    text_encoder: TextEncoder
    name: str
    trained: bool = True
    defaults: SamplingDefaults = field(default_factory=SamplingDefaults)

    @property
    def device(self) -> torch.device:
        return next(self.dit.parameters()).device

    @property
    def spatial_factor(self) -> int:
        """Pixels per latent cell times the patch size: frame sizes must be multiples of it."""
        return self.vae.config.spatial_factor * self.dit.config.patch_size[1]

    @property
    def temporal_factor(self) -> int:
        return self.vae.config.temporal_factor


@dataclass(frozen=True)
class Generation:
    """One generated clip: frames [T, H, W, 3] in [0, 1] (ComfyUI's IMAGE layout) and its latent."""

    frames: Tensor
    latent: Tensor
    seed: int
    settings: dict[str, Any]


def check_video_size(
    frames: int, width: int, height: int, *, temporal: int = 4, spatial: int = 16, frames_name: str = "frames"
) -> None:
    """Raise InputError unless frames is temporal*k+1 and width/height are positive multiples of spatial.

    ``frames_name`` is what the caller calls the frame count (the ComfyUI node says "length").
    """
    if frames < 1 or (frames - 1) % temporal:
        lower = (max(frames, 1) - 1) // temporal * temporal + 1
        raise InputError(f"{frames_name}={frames} is not {temporal}k+1; use {lower} or {lower + temporal}")
    for name, value in (("width", width), ("height", height)):
        if value < spatial or value % spatial:
            fixed = max(spatial, round(value / spatial) * spatial)
            raise InputError(f"{name}={value} is not a positive multiple of {spatial}; use {fixed}")


def latent_shape(models: SoraModels, frames: int, width: int, height: int, batch: int = 1) -> tuple[int, ...]:
    """Validate a request's size and return the latent shape [B, C, T', H', W']."""
    check_video_size(frames, width, height, temporal=models.temporal_factor, spatial=models.spatial_factor)
    vsf = models.vae.config.spatial_factor
    return (batch, models.vae.config.z_dim, (frames - 1) // models.temporal_factor + 1, height // vsf, width // vsf)


def sample_latent(
    dit: WanDiT,
    context: Tensor | None,
    negative: Tensor | None,
    shape: tuple[int, ...],
    *,
    seed: int,
    steps: int,
    cfg: float,
    shift: float,
    sampler: str,
    callback: Callable[[sampling.StepInfo], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    condition: TemporalCondition | None = None,
    spans: Sequence[PromptSpan] | None = None,
    circular: bool = False,
    init: Tensor | None = None,
    strength: float = 1.0,
) -> Tensor:
    """Sample a normalised latent of ``shape`` from seeded noise; float32, on the DiT's device.

    ``condition`` gives known latent frames (image-to-video, extension, loops ...); they come back
    bit-exact and the rest is generated around them. ``spans`` replaces ``context`` with prompts that
    each govern some frames (storyboards); ``circular`` makes the clip wrap around (loops). ``init``
    with ``strength`` < 1 starts from that latent noised to the matching level instead of from pure
    noise (video-to-video): ``steps`` steps are run over the last part of a longer schedule, as
    ComfyUI's ``denoise`` does.
    """
    if steps < 1:
        raise InputError(f"steps={steps}; use at least 1")
    if shift <= 0:
        raise InputError(f"shift={shift}; use a positive value (Wan uses 3 to 8)")
    if not 0.0 < strength <= 1.0:
        raise InputError(f"strength={strength}; use a value in (0, 1] (1 ignores the input video)")
    sample = sampling.get_sampler(sampler)
    device = next(dit.parameters()).device
    if context is not None:
        context = context.to(device=device, dtype=dit.dtype)
    if spans is not None:
        spans = [PromptSpan(sp.context.to(device=device, dtype=dit.dtype), sp.frames) for sp in spans]
    negative = negative.to(device=device, dtype=dit.dtype) if negative is not None and cfg != 1.0 else None
    noise = sampling.seeded_noise(shape, seed, device=device, dtype=torch.float32)
    if init is not None and strength < 1.0:
        total = max(steps, round(steps / strength))
        sigmas = sampling.flow_sigmas(total, shift, device=device)[-(steps + 1):]
        start = float(sigmas[0])
        x = (1.0 - start) * init.to(device, torch.float32) + start * noise
    else:
        sigmas = sampling.flow_sigmas(steps, shift, device=device)
        # Start from the noise itself, as Wan and diffusers do (sigmas[0] is 1 - 1e-6, not 1).
        x = noise
    denoiser = conditioned_velocity(dit, context, negative, cfg, condition, spans=spans, circular=circular)
    out = sample(denoiser, x, sigmas, callback=callback, cancel=cancel)
    if condition is not None:  # the path lands on the known frames to ~1e-6; make them exact
        out = torch.where(condition.frame_mask(out), condition.known.to(out.device, out.dtype), out)
    return out


@torch.inference_mode()
def generate(
    prompt: str,
    *,
    models: SoraModels | None = None,
    negative_prompt: str | None = None,
    frames: int | None = None,
    width: int | None = None,
    height: int | None = None,
    steps: int | None = None,
    cfg: float | None = None,
    shift: float | None = None,
    sampler: str | None = None,
    seed: int = 0,
    batch: int = 1,
    callback: Callable[[sampling.StepInfo], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    expand_prompt: bool = True,
) -> Generation:
    """Generate one clip (or ``batch`` clips with seeds seed..seed+batch-1) from a prompt.

    Arguments left as None take the model's defaults (``models.defaults``). ``expand_prompt``: rewrite
    a short prompt into the detailed caption style of the model's training data, for models that
    ask for it (the default model does; see :mod:`sora_core.prompts`).
    """
    models = models or load_models("default")
    d = models.defaults
    frames = d.frames if frames is None else frames
    width = d.width if width is None else width
    height = d.height if height is None else height
    steps = d.steps if steps is None else steps
    cfg = d.cfg if cfg is None else cfg
    shift = d.shift if shift is None else shift
    sampler = d.sampler if sampler is None else sampler
    negative_prompt = d.negative_prompt if negative_prompt is None else negative_prompt
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError("prompt is empty; describe the video to generate")
    sampling.get_sampler(sampler)  # fail on a bad name before any work
    shape = latent_shape(models, frames, width, height, batch)

    encoded_prompt = prepare_prompt(models.text_encoder, prompt, expand_prompt)
    context = models.text_encoder.encode([encoded_prompt] * batch).context
    negative = models.text_encoder.encode([negative_prompt] * batch).context if cfg != 1.0 else None
    x = sample_latent(models.dit, context, negative, shape, seed=seed, steps=steps, cfg=cfg, shift=shift,
                      sampler=sampler, callback=callback, cancel=cancel)
    video = models.vae.decode(x.to(dtype=next(models.vae.parameters()).dtype))
    settings = dict(
        prompt=prompt, encoded_prompt=encoded_prompt, negative_prompt=negative_prompt, frames=frames,
        width=width, height=height, steps=steps,
        cfg=cfg, shift=shift, sampler=sampler, seed=seed, model=models.name, fps=d.fps,
        dtype=str(models.dit.dtype).removeprefix("torch."),
    )
    return Generation(frames=_to_frames(video), latent=x.cpu(), seed=seed, settings=settings)


def _to_frames(video: Tensor) -> Tensor:
    """VAE output [B, 3, T, H, W] in [-1, 1] -> [B*T, H, W, 3] float32 in [0, 1]."""
    return ((video.float().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 4, 1).flatten(0, 1).cpu()


# ----------------------------------------------------------------------------------------------
# Loading models by name


PLACEHOLDER_DIT = DiTConfig(dim=128, ffn_dim=256, num_heads=1, num_layers=2, text_dim=64, text_len=32, freq_dim=64)
PLACEHOLDER_VAE = VAEConfig(base_dim=8)
PLACEHOLDER_DEFAULTS = SamplingDefaults(steps=8, cfg=3.0, shift=3.0, sampler="unipc", frames=17, width=64, height=64)


def placeholder_models(device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> SoraModels:
    """A small randomly initialised model, used until a trained default model is installed.

    It exercises the whole pipeline in well under a second on a CPU, but its videos are noise.
    """
    from .text import ByteTextEncoder
    from .vae import WanVAE

    torch.manual_seed(0)
    dit = WanDiT(PLACEHOLDER_DIT)
    vae = WanVAE(PLACEHOLDER_VAE)
    text = ByteTextEncoder(dim=PLACEHOLDER_DIT.text_dim, max_length=PLACEHOLDER_DIT.text_len)
    models = SoraModels(dit=dit, vae=vae, text_encoder=text, name="untrained-placeholder", trained=False,
                        defaults=PLACEHOLDER_DEFAULTS)
    return to_device(models, device, dtype)


def to_device(models: SoraModels, device: str | torch.device, dtype: torch.dtype) -> SoraModels:
    for module in (models.dit, models.vae, models.text_encoder):
        if isinstance(module, torch.nn.Module):
            module.to(device=device, dtype=dtype).eval().requires_grad_(False)
    return models


def load_models(
    model: str | os.PathLike = "default",
    *,
    vae: str | os.PathLike | None = None,
    text_encoder: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> SoraModels:
    """Load a model by name or path.

    - "default": the project's bundled model when it is installed, else the untrained placeholder;
    - a project-format bundle (.safetensors holding DiT, VAE and text encoder);
    - a DiT file in any supported layout (e.g. ComfyUI's wan2.1_t2v_1.3B_fp16.safetensors) together
      with ``vae`` and ``text_encoder`` files.
    """
    from .loading import detect_file, load_dit, load_text_encoder, load_vae, read_metadata

    if str(model) == "default":
        if not DEFAULT_CHECKPOINT.exists():
            return placeholder_models(device, dtype)
        model = DEFAULT_CHECKPOINT
    path = Path(model)
    det = detect_file(path)
    if det is not None and det.component == "bundle":
        dit = load_dit(path, dtype=dtype, device=device)
        vae_model = load_vae(vae or path, dtype=dtype, device=device)
        text = load_text_encoder(text_encoder or path, dtype=dtype, device=device)
        if text_encoder is None:  # the bundle's own encoder: it reads the prompts the bundle was trained on
            text.prompt_style = read_metadata(path).get("prompt_style")
        return SoraModels(dit, vae_model, text, name=path.stem, defaults=_bundle_defaults(path))
    if vae is None or text_encoder is None:
        raise WeightsError(
            f"{path.name} is not a bundled checkpoint, so the VAE and text encoder files must be given too "
            "(--vae wan_2.1_vae.safetensors --text-encoder umt5_xxl_fp16.safetensors)"
        )
    dit = load_dit(path, dtype=dtype, device=device)
    models = SoraModels(
        dit, load_vae(vae, dtype=dtype, device=device), load_text_encoder(text_encoder, dtype=dtype, device=device),
        name=path.stem, defaults=WAN21_DEFAULTS,
    )
    return models


def bundled_defaults() -> SamplingDefaults:
    """The bundled model's sampling defaults (the ComfyUI nodes' widgets start at them)."""
    return _bundle_defaults(DEFAULT_CHECKPOINT) if DEFAULT_CHECKPOINT.exists() else SamplingDefaults()


def _bundle_defaults(path: Path) -> SamplingDefaults:
    import json

    from .loading import read_metadata

    raw = read_metadata(path).get("sampling_defaults")
    return replace(SamplingDefaults(), **json.loads(raw)) if raw else SamplingDefaults()
