"""Start a DiT with other spatial patches from a trained one.

A DiT whose patches are r times finer (e.g. 1x1 latent cells instead of 2x2) sees r*r times the tokens,
so a small object spans more than one token; one whose patches are r times coarser (4x4 instead of 2x2)
sees as many tokens per pixel on a VAE that compresses r times less. Training either from scratch costs
hours on a CPU; this conversion gives it a start that is exact in one sense:

- finer: the converted model on a latent computes what the trained model computes on that latent
  upsampled r times (nearest), averaged back over each r x r block;
- coarser: the converted model on a latent computes what the trained model computes on that latent
  averaged over r x r blocks, its output repeated over each block.

Every new token sits where one old token sat on the resampled latent, so the token grid, the rotary
positions and all blocks carry over unchanged; only the patch embedding and the output head change shape.
"""

from __future__ import annotations

from torch import Tensor


def repatch_state(state: dict[str, Tensor], old_patch: tuple[int, int, int],
                  new_patch: tuple[int, int, int], out_dim: int) -> dict[str, Tensor]:
    """``state`` of a WanDiT with ``old_patch`` -> the state of one with ``new_patch``: the same frames per
    patch, both spatial sizes divided (finer) or multiplied (coarser) by the same whole factor."""
    (pt, ph, pw), (nt, nh, nw) = old_patch, new_patch
    finer = nh < ph
    small, large = (new_patch, old_patch) if finer else (old_patch, new_patch)
    if nt != pt or large[1] % small[1] or large[2] % small[2] or large[1] // small[1] != large[2] // small[2]:
        raise ValueError(f"cannot convert patch {old_patch} to {new_patch}: keep the frames per patch and divide or "
                         "multiply both spatial sizes by the same whole factor")
    r = large[1] // small[1]
    out = dict(state)
    embed = state["patch_embedding.weight"]  # [D, C, pt, ph, pw]
    weight, bias = state["head.head.weight"], state["head.head.bias"]  # rows ordered (pt, ph, pw, c)
    if finer:  # old kernel row a lands on new row a // r: sum the embedding, average the head
        d, c = embed.shape[:2]
        out["patch_embedding.weight"] = embed.reshape(d, c, pt, nh, r, nw, r).sum(dim=(4, 6))
        rows = weight.reshape(pt, nh, r, nw, r, out_dim, -1).mean(dim=(2, 4))
        out["head.head.bias"] = bias.reshape(pt, nh, r, nw, r, out_dim).mean(dim=(2, 4)).reshape(-1)
    else:  # new kernel row a reads old row a // r: average the embedding, repeat the head
        out["patch_embedding.weight"] = embed.repeat_interleave(r, 3).repeat_interleave(r, 4) / (r * r)
        rows = weight.reshape(pt, ph, pw, out_dim, -1).repeat_interleave(r, 1).repeat_interleave(r, 2)
        out["head.head.bias"] = bias.reshape(pt, ph, pw, out_dim).repeat_interleave(r, 1).repeat_interleave(
            r, 2).reshape(-1)
    out["head.head.weight"] = rows.reshape(pt * nh * nw * out_dim, -1)
    return {k: v.contiguous() for k, v in out.items()}
