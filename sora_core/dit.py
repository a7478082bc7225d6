"""The spacetime-patch diffusion transformer (Wan 2.1 architecture).

A latent video [B, C, T, H, W] is cut into 1x2x2 spacetime patches, each patch becomes one token,
and a stack of transformer blocks (self-attention with 3D rotary positions, cross-attention to the
text, a GELU MLP, all modulated by the timestep) predicts the flow-matching velocity for every
patch. Module and attribute names are the keys of the original Wan / ComfyUI checkpoints, so those
files load with a plain ``load_state_dict``.

Timesteps may be given per sample ([B]) or per latent frame ([B, T]): the temporal operations
(image-to-video, extension, loops) feed clean conditioning frames (t = 0) beside noisy ones.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import DiTConfig
from .errors import InputError

# Above this many tokens the MLP runs in token chunks at inference, so its hidden activation
# (tokens x ffn_dim) never exists whole; at 480p/81 frames that is about 1 GiB saved in fp32.
FFN_CHUNK_TOKENS = 8192


def timestep_sinusoid(t: Tensor, dim: int) -> Tensor:
    """[N] timesteps on the 0..1000 scale -> [N, dim] float32 as [cos | sin] (Wan's order)."""
    half = dim // 2
    exponent = torch.arange(half, dtype=torch.float64, device=t.device) / half
    angles = t.double()[:, None] * torch.pow(10000.0, -exponent)[None]
    return torch.cat([angles.cos(), angles.sin()], dim=1).float()


class RMSNorm(nn.Module):
    """RMS normalisation over the last dim, computed in float32 (q/k norms span all heads)."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        normed = xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return (normed * self.weight.float()).to(x.dtype)


class FP32LayerNorm(nn.LayerNorm):
    """LayerNorm evaluated in float32 whatever the weights' dtype, as Wan does."""

    def forward(self, x: Tensor) -> Tensor:
        weight = self.weight.float() if self.weight is not None else None
        bias = self.bias.float() if self.bias is not None else None
        return F.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps).to(x.dtype)


class RotaryPositions:
    """3D rotary embedding: head channels split over (t, h, w), pairs interleaved.

    Each axis has its own frequency ladder theta^(-2i/axis_dim); a token at latent frame f,
    patch row h, patch column w rotates its channel pairs by the angles of f, h and w.
    """

    def __init__(self, axes_dim: tuple[int, int, int], theta: float, max_positions: int) -> None:
        self.axes_dim = axes_dim
        self.theta = theta
        self.max_positions = max_positions

    def angles(self, grid: tuple[int, int, int], device: torch.device) -> Tensor:
        """Rotation angles [T*H*W, head_dim/2] (float64) for a token grid."""
        for n in grid:
            if n > self.max_positions:
                raise InputError(
                    f"latent grid {grid} exceeds the {self.max_positions} rotary positions per axis; "
                    "generate fewer frames or a smaller size"
                )
        per_axis = []
        for axis, (n, d) in enumerate(zip(grid, self.axes_dim, strict=True)):
            freqs = torch.pow(self.theta, -torch.arange(0, d, 2, dtype=torch.float64, device=device) / d)
            a = torch.arange(n, dtype=torch.float64, device=device)[:, None] * freqs[None]
            shape = [1, 1, 1, d // 2]
            shape[axis] = n
            per_axis.append(a.view(shape).expand(*grid, d // 2))
        return torch.cat(per_axis, dim=-1).reshape(-1, sum(self.axes_dim) // 2)

    def rotations(self, grid: tuple[int, int, int], device: torch.device) -> Tensor:
        """Unit complex numbers e^(i*angle), [T*H*W, head_dim/2] complex64."""
        a = self.angles(grid, device)
        return torch.polar(torch.ones_like(a), a).to(torch.complex64)


def apply_rotary(x: Tensor, rotations: Tensor) -> Tensor:
    """Rotate interleaved channel pairs of x [B, L, heads, head_dim] as complex numbers (one multiply)."""
    pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)).contiguous())
    return torch.view_as_real(pairs * rotations[None, :, None, :]).flatten(-2).to(x.dtype)


def attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Scaled dot-product attention over [B, L, heads, head_dim] tensors."""
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    return out.transpose(1, 2).flatten(2)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, qk_norm: bool, eps: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.o = nn.Linear(dim, dim)
        self.norm_q = RMSNorm(dim, eps) if qk_norm else nn.Identity()
        self.norm_k = RMSNorm(dim, eps) if qk_norm else nn.Identity()

    def forward(self, x: Tensor, rope: Tensor) -> Tensor:
        heads = (self.num_heads, -1)
        q = self.norm_q(self.q(x)).unflatten(2, heads)
        k = self.norm_k(self.k(x)).unflatten(2, heads)
        v = self.v(x).unflatten(2, heads)
        return self.o(attention(apply_rotary(q, rope), apply_rotary(k, rope), v))


class CrossAttention(SelfAttention):
    """Attention from video tokens to text tokens; no rotary positions."""

    def forward(self, x: Tensor, context: Tensor,  # type: ignore[override]
                prompt_tokens: PromptTokens | None = None) -> Tensor:
        """context [B, L, D] read by every token, or [B, S, L, D] (S prompts) with ``prompt_tokens`` naming
        the video tokens that read each prompt (a storyboard: each shot's frames read their own)."""
        heads = (self.num_heads, -1)
        q = self.norm_q(self.q(x)).unflatten(2, heads)
        k = self.norm_k(self.k(context)).unflatten(-1, heads)
        v = self.v(context).unflatten(-1, heads)
        if prompt_tokens is None:
            return self.o(attention(q, k, v))
        out = q.new_zeros(*q.shape[:2], q.shape[2] * q.shape[3])
        for s, own in prompt_tokens:
            out[:, own] = attention(q[:, own], k[:, s], v[:, s])
        return self.o(out)


# (prompt index, positions of the video tokens that read it) for each prompt some token reads
PromptTokens = list[tuple[int, Tensor]]


def prompt_token_groups(frame_prompt: Tensor, tokens_per_frame: int, device: torch.device) -> PromptTokens:
    """Token positions per prompt from a prompt index per latent frame; tokens are frame-major. Built once
    per forward (on the CPU, then moved), so the blocks index without comparing or syncing the device."""
    per_token = frame_prompt.cpu().repeat_interleave(tokens_per_frame)
    return [(s, (per_token == s).nonzero().flatten().to(device)) for s in per_token.unique().tolist()]


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """x [B, F, N, D] (tokens grouped by latent frame) with shift/scale [B, F or 1, 1, D], in fp32.

    One fused addcmul: a single token-sized temporary instead of two.
    """
    return torch.addcmul(shift, x.float(), 1 + scale)


def gated_residual(x: Tensor, y: Tensor, gate: Tensor, by_frame: tuple[int, ...]) -> Tensor:
    """x + y * gate per latent frame, summed in fp32 and returned in x's dtype."""
    out = torch.addcmul(x.float().view(by_frame), y.float().view(by_frame), gate)
    return out.view(x.shape).to(x.dtype)


class DiTBlock(nn.Module):
    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        dim = cfg.dim
        self.norm1 = FP32LayerNorm(dim, cfg.eps, elementwise_affine=False)
        self.self_attn = SelfAttention(dim, cfg.num_heads, cfg.qk_norm, cfg.eps)
        self.norm3 = FP32LayerNorm(dim, cfg.eps, elementwise_affine=True) if cfg.cross_attn_norm else nn.Identity()
        self.cross_attn = CrossAttention(dim, cfg.num_heads, cfg.qk_norm, cfg.eps)
        self.norm2 = FP32LayerNorm(dim, cfg.eps, elementwise_affine=False)
        self.ffn = nn.Sequential(nn.Linear(dim, cfg.ffn_dim), nn.GELU(approximate="tanh"), nn.Linear(cfg.ffn_dim, dim))
        self.modulation = nn.Parameter(torch.randn(1, 6, dim) / dim**0.5)

    def _ffn(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled() or x.shape[1] <= FFN_CHUNK_TOKENS:
            return self.ffn(x)
        return torch.cat([self.ffn(part) for part in x.split(FFN_CHUNK_TOKENS, dim=1)], dim=1)

    def forward(self, x: Tensor, e: Tensor, context: Tensor, rope: Tensor, frames: int,
                prompt_tokens: PromptTokens | None = None) -> Tensor:
        """x [B, L, D]; e [B, F or 1, 6, D] float32 timestep projection; frames = latent frames F;
        context and prompt_tokens as CrossAttention takes them."""
        b, length, dim = x.shape
        mod = (self.modulation.float()[:, None] + e).unsqueeze(3)  # [B, F|1, 6, 1, D]
        shift_sa, scale_sa, gate_sa, shift_ff, scale_ff, gate_ff = mod.unbind(2)
        by_frame = (b, frames if e.shape[1] > 1 else 1, -1, dim)

        h = modulate(self.norm1(x).view(by_frame), shift_sa, scale_sa).view(b, length, dim)
        x = gated_residual(x, self.self_attn(h.to(x.dtype), rope), gate_sa, by_frame)

        x = x + self.cross_attn(self.norm3(x), context, prompt_tokens)

        h = modulate(self.norm2(x).view(by_frame), shift_ff, scale_ff).view(b, length, dim)
        return gated_residual(x, self._ffn(h.to(x.dtype)), gate_ff, by_frame)


class Head(nn.Module):
    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        self.norm = FP32LayerNorm(cfg.dim, cfg.eps, elementwise_affine=False)
        self.head = nn.Linear(cfg.dim, cfg.out_dim * math.prod(cfg.patch_size))
        self.modulation = nn.Parameter(torch.randn(1, 2, cfg.dim) / cfg.dim**0.5)

    def forward(self, x: Tensor, e: Tensor, frames: int) -> Tensor:
        """x [B, L, D]; e [B, F or 1, D] float32 timestep embedding (before the 6-way projection)."""
        b, length, dim = x.shape
        shift, scale = (self.modulation.float()[:, None] + e[:, :, None]).unsqueeze(3).unbind(2)
        h = modulate(self.norm(x).view(b, frames if e.shape[1] > 1 else 1, -1, dim), shift, scale)
        return self.head(h.view(b, length, dim).to(x.dtype))


class WanDiT(nn.Module):
    """Wan 2.1 text-to-video diffusion transformer; predicts the flow velocity of a latent video."""

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        self.config = config
        cfg = config
        self.patch_embedding = nn.Conv3d(cfg.in_dim, cfg.dim, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        self.text_embedding = nn.Sequential(
            nn.Linear(cfg.text_dim, cfg.dim), nn.GELU(approximate="tanh"), nn.Linear(cfg.dim, cfg.dim)
        )
        self.time_embedding = nn.Sequential(nn.Linear(cfg.freq_dim, cfg.dim), nn.SiLU(), nn.Linear(cfg.dim, cfg.dim))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(cfg.dim, cfg.dim * 6))
        self.blocks = nn.ModuleList(DiTBlock(cfg) for _ in range(cfg.num_layers))
        self.head = Head(cfg)
        self.rope = RotaryPositions(cfg.rope_axes_dim, cfg.rope_theta, cfg.rope_max_positions)

    @property
    def dtype(self) -> torch.dtype:
        return self.patch_embedding.weight.dtype

    def _check_inputs(self, x: Tensor, t: Tensor, context: Tensor, frame_prompt: Tensor | None) -> None:
        cfg = self.config
        if x.ndim != 5 or x.shape[1] != cfg.in_dim:
            raise InputError(f"latent must be [B, {cfg.in_dim}, T, H, W], got {tuple(x.shape)}")
        _, _, frames, height, width = x.shape
        pt, ph, pw = cfg.patch_size
        if frames % pt or height % ph or width % pw:
            raise InputError(
                f"latent size (T={frames}, H={height}, W={width}) is not divisible by the patch size "
                f"{cfg.patch_size}; pixel height/width must be multiples of {8 * ph}"
            )
        if t.ndim not in (1, 2) or t.shape[0] != x.shape[0] or (t.ndim == 2 and t.shape[1] not in (1, frames // pt)):
            raise InputError(
                f"timesteps must be [B] or [B, {frames // pt}] for latent {tuple(x.shape)}, got {tuple(t.shape)}"
            )
        if frame_prompt is None:
            if context.ndim != 3 or context.shape[0] != x.shape[0] or context.shape[2] != cfg.text_dim:
                raise InputError(f"text context must be [B, L, {cfg.text_dim}], got {tuple(context.shape)}")
        else:
            if context.ndim != 4 or context.shape[0] != x.shape[0] or context.shape[3] != cfg.text_dim:
                raise InputError(f"with frame_prompt, the text context must be [B, prompts, L, {cfg.text_dim}], "
                                 f"got {tuple(context.shape)}")
            prompts = context.shape[1]
            out_of_range = bool(((frame_prompt < 0) | (frame_prompt >= prompts)).any())
            if frame_prompt.shape != (frames // pt,) or out_of_range:
                raise InputError(f"frame_prompt must give one prompt index in 0..{prompts - 1} per latent frame "
                                 f"({frames // pt}), got {frame_prompt.tolist()}")
        if context.shape[-2] > cfg.text_len:
            raise InputError(f"text context has {context.shape[-2]} tokens; this model takes at most {cfg.text_len}")

    def embed_time(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """Timesteps [B] or [B, F] -> (e [B, F|1, D], e0 [B, F|1, 6, D]), both float32."""
        per_frame = t if t.ndim == 2 else t[:, None]
        b, f = per_frame.shape
        w = self.time_embedding[0].weight
        e = self.time_embedding(timestep_sinusoid(per_frame.flatten(), self.config.freq_dim).to(w.dtype)).float()
        e0 = self.time_projection(e.to(w.dtype)).float()
        return e.view(b, f, -1), e0.view(b, f, 6, -1)

    def forward(self, x: Tensor, t: Tensor, context: Tensor, frame_prompt: Tensor | None = None) -> Tensor:
        """x [B, C, T, H, W] noisy latent; t [B] or [B, T] on 0..1000; context [B, L<=text_len, text_dim].

        ``frame_prompt`` [T] (storyboards): context is [B, S, L, text_dim], S prompts, and the tokens of
        latent frame f read prompt ``frame_prompt[f]`` in cross-attention, while self-attention still
        spans every frame. Wan has no such input; it is an inference-time use of the same weights.
        """
        self._check_inputs(x, t, context, frame_prompt)
        cfg = self.config
        pt, ph, pw = cfg.patch_size
        tokens = self.patch_embedding(x.to(self.dtype))
        grid = tuple(tokens.shape[2:])
        tokens = tokens.flatten(2).transpose(1, 2)

        # Wan pads the text to text_len with zero rows; the padded rows still pass the MLP and
        # are attended to, so padding is part of the model's behaviour, not an optimisation.
        if context.shape[-2] < cfg.text_len:
            context = F.pad(context, (0, 0, 0, cfg.text_len - context.shape[-2]))
        context = self.text_embedding(context.to(self.dtype))
        prompt_tokens = None if frame_prompt is None else prompt_token_groups(frame_prompt, grid[1] * grid[2], x.device)

        e, e0 = self.embed_time(t.to(x.device))
        rope = self.rope.rotations(grid, x.device)  # type: ignore[arg-type]
        frames = grid[0]
        for block in self.blocks:
            tokens = block(tokens, e0, context, rope, frames, prompt_tokens)
        out = self.head(tokens, e, frames)
        return self.unpatchify(out, grid)

    def unpatchify(self, out: Tensor, grid: tuple[int, ...]) -> Tensor:
        """Tokens [B, L, pt*ph*pw*C] (features ordered pt, ph, pw, c) -> [B, C, T, H, W]."""
        pt, ph, pw = self.config.patch_size
        f, h, w = grid
        b = out.shape[0]
        out = out.view(b, f, h, w, pt, ph, pw, self.config.out_dim)
        return out.permute(0, 7, 1, 4, 2, 5, 3, 6).reshape(b, self.config.out_dim, f * pt, h * ph, w * pw)
