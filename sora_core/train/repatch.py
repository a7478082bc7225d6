"""Start a DiT with other spatial patches from a trained one.

A DiT whose patches are r times finer (e.g. 1x1 latent cells instead of 2x2) sees r*r times the tokens,
so a small object spans more than one token. Training one from scratch costs hours on a CPU; this
conversion gives it a start that is exact in one sense: the converted model on a latent computes what
the trained model computes on that latent upsampled r times (nearest), averaged back over each r x r
block. Every finer token then sits where one coarse token sat on the upsampled latent, so the token
grid, the rotary positions and all blocks carry over unchanged; only the patch embedding (summed over
the cells an upsampled cell repeats) and the output head (averaged over them) change shape.
"""

from __future__ import annotations

from torch import Tensor


def finer_patch_state(state: dict[str, Tensor], old_patch: tuple[int, int, int],
                      new_patch: tuple[int, int, int], out_dim: int) -> dict[str, Tensor]:
    """``state`` of a WanDiT with ``old_patch`` -> the state of one with ``new_patch`` (same frames per
    patch; each spatial size a divisor of the old one, by the same factor)."""
    (pt, ph, pw), (nt, nh, nw) = old_patch, new_patch
    if nt != pt or ph % nh or pw % nw or ph // nh != pw // nw:
        raise ValueError(f"cannot refine patch {old_patch} to {new_patch}: keep the frames per patch and divide "
                         "both spatial sizes by the same factor")
    r = ph // nh
    out = dict(state)
    embed = state["patch_embedding.weight"]  # [D, C, pt, ph, pw]; old kernel row a lands on new row a // r
    d, c = embed.shape[:2]
    out["patch_embedding.weight"] = embed.reshape(d, c, pt, nh, r, nw, r).sum(dim=(4, 6)).contiguous()
    weight, bias = state["head.head.weight"], state["head.head.bias"]  # rows ordered (pt, ph, pw, c)
    out["head.head.weight"] = weight.reshape(pt, nh, r, nw, r, out_dim, -1).mean(dim=(2, 4)).reshape(
        pt * nh * nw * out_dim, -1).contiguous()
    out["head.head.bias"] = bias.reshape(pt, nh, r, nw, r, out_dim).mean(dim=(2, 4)).reshape(-1).contiguous()
    return out


def coarser_patch_state(state: dict[str, Tensor], old_patch: tuple[int, int, int],
                        new_patch: tuple[int, int, int], out_dim: int) -> dict[str, Tensor]:
    """``state`` of a WanDiT with ``old_patch`` -> one with patches r times coarser (e.g. 4x4 latent cells
    instead of 2x2, for a VAE with half the spatial compression: the same tokens per pixel). The converted
    model on a latent computes what the trained one computes on that latent averaged over r x r blocks,
    its output repeated over each block: the embedding averages the cells a coarse cell covers, the head
    repeats its rows; the token grid, the rotary positions and all blocks carry over unchanged."""
    (pt, ph, pw), (nt, nh, nw) = old_patch, new_patch
    if nt != pt or nh % ph or nw % pw or nh // ph != nw // pw:
        raise ValueError(f"cannot coarsen patch {old_patch} to {new_patch}: keep the frames per patch and multiply "
                         "both spatial sizes by the same factor")
    r = nh // ph
    out = dict(state)
    embed = state["patch_embedding.weight"]  # [D, C, pt, ph, pw]: new kernel row a reads old row a // r
    out["patch_embedding.weight"] = (embed.repeat_interleave(r, 3).repeat_interleave(r, 4) / (r * r)).contiguous()
    weight, bias = state["head.head.weight"], state["head.head.bias"]  # rows ordered (pt, ph, pw, c)
    rows = weight.reshape(pt, ph, pw, out_dim, -1).repeat_interleave(r, 1).repeat_interleave(r, 2)
    out["head.head.weight"] = rows.reshape(pt * nh * nw * out_dim, -1).contiguous()
    out["head.head.bias"] = bias.reshape(pt, ph, pw, out_dim).repeat_interleave(r, 1).repeat_interleave(
        r, 2).reshape(-1).contiguous()
    return out
