"""VAE key layouts as data: diffusers' AutoencoderKLWan names -> the canonical Wan 2.1 names.

Canonical = the original ``Wan2.1_VAE.pth`` = ComfyUI's ``wan_2.1_vae.safetensors``. A diffusers key
is renamed in two table look-ups: its block prefix (``BLOCK_RULES``), then, inside residual blocks,
the layer name (``RESNET_LAYERS``: diffusers' norm1/conv1/norm2/conv2 are Wan's ``residual``
indices 0/2/3/6). diffusers nests the decoder as ``up_blocks.S.resnets.R`` / ``.upsamplers.0``;
Wan keeps one flat list ``decoder.upsamples.N`` with ``num_res_blocks + 1`` residual blocks and one
upsampler per stage, so ``N = S * (num_res_blocks + 2) + R`` (the upsampler takes the last slot).
The encoder lists (``down_blocks.N`` / ``downsamples.N``) are flat on both sides.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from torch import Tensor

from ..errors import WeightsError

# (diffusers block prefix regex, canonical prefix template, is a residual block). Templates are
# str.format()ed with the named groups; {up} is the flat decoder index S * (num_res_blocks + 2) + R,
# where R is the `slot` group, or the stage's last slot when the rule has no `slot` group.
BLOCK_RULES: tuple[tuple[str, str, bool], ...] = (
    (r"encoder\.conv_in\.", "encoder.conv1.", False),
    # residual blocks, resamples (resample.1 / time_conv) and attention (attn_scales) share the flat list
    (r"encoder\.down_blocks\.(?P<i>\d+)\.", "encoder.downsamples.{i}.", True),
    (r"(?P<side>encoder|decoder)\.mid_block\.resnets\.0\.", "{side}.middle.0.", True),
    (r"(?P<side>encoder|decoder)\.mid_block\.attentions\.0\.", "{side}.middle.1.", False),
    (r"(?P<side>encoder|decoder)\.mid_block\.resnets\.1\.", "{side}.middle.2.", True),
    (r"(?P<side>encoder|decoder)\.norm_out\.", "{side}.head.0.", False),
    (r"(?P<side>encoder|decoder)\.conv_out\.", "{side}.head.2.", False),
    (r"quant_conv\.", "conv1.", False),
    (r"post_quant_conv\.", "conv2.", False),
    (r"decoder\.conv_in\.", "decoder.conv1.", False),
    (r"decoder\.up_blocks\.(?P<stage>\d+)\.resnets\.(?P<slot>\d+)\.", "decoder.upsamples.{up}.", True),
    (r"decoder\.up_blocks\.(?P<stage>\d+)\.upsamplers\.0\.", "decoder.upsamples.{up}.", False),
)

# Inside a residual block: diffusers layer -> Wan's ResidualBlock attribute.
RESNET_LAYERS: dict[str, str] = {
    "norm1.": "residual.0.",
    "conv1.": "residual.2.",
    "norm2.": "residual.3.",
    "conv2.": "residual.6.",
    "conv_shortcut.": "shortcut.",
}

# What may follow a block prefix once renamed (parameters only; the layers have no buffers).
LEAF = re.compile(
    r"(?:(?:residual\.\d+|shortcut|resample\.1|time_conv|norm|to_qkv|proj)\.)?(?:weight|bias|gamma)"
)

# Keys of the Wan 2.2 VAE (48-channel latent, residual up/down blocks), which this engine does not run.
WAN22_MARKERS: tuple[str, ...] = (
    "decoder.upsamples.0.upsamples.0.residual.2.weight",  # original / ComfyUI layout
    "decoder.up_blocks.0.upsampler.resample.1.weight",  # diffusers, is_residual=True
)

_COMPILED = tuple((re.compile(p), template, res) for p, template, res in BLOCK_RULES)
_RESNETS_OF_STAGE0 = re.compile(r"decoder\.up_blocks\.0\.resnets\.(\d+)\.")


def infer_num_res_blocks(keys: Iterable[str]) -> int:
    """num_res_blocks of a diffusers VAE state dict (its decoder stages hold one more resnet)."""
    slots = {int(m.group(1)) for k in keys if (m := _RESNETS_OF_STAGE0.match(k))}
    return max(slots) if slots else 2


def diffusers_key_to_wan(key: str, num_res_blocks: int = 2) -> str | None:
    """Canonical name of a diffusers AutoencoderKLWan key, or None if no rule covers it."""
    for pattern, template, residual in _COMPILED:
        m = pattern.match(key)
        if m is None:
            continue
        groups = m.groupdict()
        if "stage" in groups:
            per_stage = num_res_blocks + 2
            slot = int(groups["slot"]) if "slot" in groups else per_stage - 1
            groups["up"] = str(int(groups["stage"]) * per_stage + slot)
        rest = key[m.end():]
        if residual:
            for old, new in RESNET_LAYERS.items():
                if rest.startswith(old):
                    rest = new + rest[len(old):]
                    break
        return template.format(**groups) + rest if LEAF.fullmatch(rest) else None
    return None


def vae_state_dict_from_diffusers(sd: dict[str, Tensor], num_res_blocks: int | None = None) -> dict[str, Tensor]:
    """A diffusers AutoencoderKLWan (Wan 2.1) state dict renamed to the canonical Wan layout.

    Tensors are not copied. ``num_res_blocks`` is inferred from the keys when not given.
    """
    if any(marker in sd for marker in WAN22_MARKERS):
        raise WeightsError("these are Wan 2.2 VAE weights (48-channel latent); this engine runs the Wan 2.1 VAE")
    nrb = infer_num_res_blocks(sd) if num_res_blocks is None else num_res_blocks
    out: dict[str, Tensor] = {}
    unknown = []
    for key, value in sd.items():
        new = diffusers_key_to_wan(key, nrb)
        if new is None:
            unknown.append(key)
        elif new in out:
            raise WeightsError(f"diffusers VAE keys map twice onto {new!r}; the state dict is inconsistent")
        else:
            out[new] = value
    if unknown:
        raise WeightsError(
            f"{len(unknown)} diffusers VAE keys have no Wan 2.1 counterpart, e.g. {sorted(unknown)[:3]}; "
            "is this an AutoencoderKLWan for Wan 2.1?"
        )
    return out


def looks_like_wan_vae(keys: Iterable[str]) -> bool:
    """Canonical (original / ComfyUI) Wan 2.1 VAE keys, as ComfyUI recognises them."""
    keys = set(keys)
    return "decoder.middle.0.residual.0.gamma" in keys and not any(m in keys for m in WAN22_MARKERS)


def looks_like_diffusers_vae(keys: Iterable[str]) -> bool:
    """diffusers AutoencoderKLWan keys of the Wan 2.1 flavour."""
    keys = set(keys)
    return (
        "decoder.mid_block.resnets.0.norm1.gamma" in keys
        and "post_quant_conv.weight" in keys
        and not any(m in keys for m in WAN22_MARKERS)
    )
