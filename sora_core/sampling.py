"""Flow-matching sampling: sigma schedules, the Euler and UniPC samplers, guidance and seeded noise.

Convention (rectified flow, as Wan is trained): ``x_sigma = (1 - sigma) * x0 + sigma * noise`` with sigma
in [0, 1]; the model predicts the velocity ``v = noise - x0``, so ``x0 = x - sigma * v``. A model is any
callable ``model(x, sigma) -> v`` where sigma is a [B] float32 tensor (the DiT wrapper turns it into
the timestep ``t = sigma * 1000``).

Samplers are pure functions ``sample(model, x, sigmas, *, callback, cancel) -> x0`` in the style of
k-diffusion: ``x`` is the noisy start at ``sigmas[0]`` and the schedule is a separate tensor, so
schedules and samplers combine freely. The sampler state is kept in float32 (or wider) whatever the
model's dtype, as diffusers and Wan do; the model gets that float32 ``x`` and casts it itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from .errors import GenerationCancelled, InputError

__all__ = [
    "SAMPLERS",
    "Model",
    "Sampler",
    "StepInfo",
    "cfg_velocity",
    "flow_sigmas",
    "get_sampler",
    "make_cfg_model",
    "sample_euler",
    "sample_unipc",
    "seeded_noise",
    "shift_sigmas",
]

NUM_TRAIN_TIMESTEPS = 1000
# UniPC works in lambda = log(alpha / sigma), which is -inf at sigma = 1. diffusers' flow UniPC moves a
# first sigma of 1 down by 1e-6; flow_sigmas does the same so the two schedules are bit-identical.
_SIGMA_ONE_NUDGE = 1e-6

Model = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True, eq=False)
class StepInfo:
    """What a sampler reports after each step (``eq=False``: the fields hold tensors)."""

    step: int  # 0-based index of the step just finished
    total: int  # number of steps (len(sigmas) - 1)
    sigma: float  # noise level the step started from
    sigma_next: float  # noise level it went to
    x: Tensor  # the sample after the step, at sigma_next
    denoised: Tensor  # the model's x0 prediction at sigma: the preview


class Sampler(Protocol):
    def __call__(
        self,
        model: Model,
        x: Tensor,
        sigmas: Tensor,
        *,
        callback: Callable[[StepInfo], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> Tensor: ...


# --------------------------------------------------------------------------------------------------
# Schedules


def shift_sigmas(sigmas: Tensor, shift: float) -> Tensor:
    """Time-shift a schedule: ``shift * s / (1 + (shift - 1) * s)``; keeps 0 and 1 fixed.

    shift > 1 spends more of the steps at high noise, which large video latents need (Wan uses 3 to 16).
    """
    if not shift > 0:
        raise InputError(f"shift={shift}; use a positive value (Wan uses 3 to 16)")
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def flow_sigmas(steps: int, shift: float, *, device: torch.device | str | None = None) -> Tensor:
    """``steps + 1`` descending float32 sigmas ending in 0.0: Wan's shifted flow schedule.

    Identical, bit for bit, to diffusers' ``UniPCMultistepScheduler(use_flow_sigmas=True, flow_shift=shift,
    final_sigmas_type="zero").set_timesteps(steps).sigmas``: the base is ``linspace(1, 1/1000, steps + 1)``
    without its last point, shifted in float64, a first sigma of 1 moved to 1 - 1e-6, then 0 appended.
    (Wan's own FlowUniPC uses the base ``linspace(0.999, 0, steps + 1)[:-1]``, i.e. every unshifted sigma
    0.001 lower; the difference is far below what a sampler can resolve.)
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InputError(f"steps={steps!r}; use a whole number of at least 1")
    # Same float64 operations in the same order as numpy's linspace (i * step + start) so the result
    # rounds to the same float32 values as diffusers'.
    start, stop = 1.0, 1.0 / NUM_TRAIN_TIMESTEPS
    base = torch.arange(steps + 1, dtype=torch.float64) * ((stop - start) / steps) + start
    sigmas = shift_sigmas(base[:-1], float(shift))
    if abs(sigmas[0].item() - 1.0) < _SIGMA_ONE_NUDGE:
        sigmas[0] -= _SIGMA_ONE_NUDGE
    sigmas = torch.cat([sigmas, sigmas.new_zeros(1)]).to(torch.float32)
    return sigmas.to(device) if device is not None else sigmas


# --------------------------------------------------------------------------------------------------
# Shared sampler plumbing


def _prepare(x: Tensor, sigmas: Tensor) -> tuple[Tensor, list[float]]:
    if sigmas.ndim != 1 or sigmas.numel() < 2:
        raise InputError(f"sigmas: need a 1-D schedule of at least 2 values, got shape {tuple(sigmas.shape)}")
    # One host sync for the whole schedule; the step coefficients are plain Python floats.
    sig = [float(s) for s in sigmas.detach().to("cpu", torch.float32).tolist()]
    return x.to(torch.promote_types(x.dtype, torch.float32)), sig


def _sigma_batch(sigma: float, x: Tensor) -> Tensor:
    return torch.full((x.shape[0],), sigma, dtype=torch.float32, device=x.device)


def _check_cancel(cancel: Callable[[], bool] | None, step: int, total: int) -> None:
    if cancel is not None and cancel():
        exc = GenerationCancelled(f"sampling cancelled before step {step + 1} of {total} (0-based index {step})")
        exc.step = step  # type: ignore[attr-defined]
        raise exc


# --------------------------------------------------------------------------------------------------
# Euler


def sample_euler(
    model: Model,
    x: Tensor,
    sigmas: Tensor,
    *,
    callback: Callable[[StepInfo], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Tensor:
    """First-order flow ODE steps ``x += (sigma_next - sigma) * v``; one model call per step.

    Equal to diffusers' ``FlowMatchEulerDiscreteScheduler`` given the same sigmas.
    """
    in_dtype = x.dtype
    x, sig = _prepare(x, sigmas)
    total = len(sig) - 1
    for i in range(total):
        s, s_next = sig[i], sig[i + 1]
        _check_cancel(cancel, i, total)
        v = model(x, _sigma_batch(s, x)).to(x.dtype)
        denoised = x - s * v
        x = x + (s_next - s) * v
        if callback is not None:
            callback(StepInfo(i, total, s, s_next, x, denoised))
    return x.to(in_dtype)


# --------------------------------------------------------------------------------------------------
# UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework"), B(h) variant bh2,
# data prediction, for the flow schedule alpha = 1 - sigma.


def _lambda(sigma: float) -> float:
    """Half log-SNR of the flow schedule: log(alpha / sigma) with alpha = 1 - sigma."""
    return math.log1p(-sigma) - math.log(sigma)


def _uni_update(
    x: Tensor,
    sigma_s: float,
    sigma_t: float,
    m_s: Tensor,
    older: Sequence[tuple[float, Tensor]],
    m_t: Tensor | None = None,
) -> Tensor:
    """One UniP step (``m_t`` None) or UniC correction (``m_t`` given) from sigma_s to sigma_t.

    ``x`` is the sample at sigma_s, ``m_s`` the x0 prediction there, ``older`` the (lambda, x0) of
    earlier points, most recent first; their count + 1 is the order. ``m_t`` is the x0 prediction
    made at the predicted sample at sigma_t, which the corrector folds back in.
    """
    alpha_t = 1.0 - sigma_t
    lam_s = _lambda(sigma_s)
    h = _lambda(sigma_t) - lam_s
    hh = -h  # data-prediction form integrates in -lambda
    h_phi_1 = math.expm1(hh)  # e^{-h} - 1
    b_h = h_phi_1  # bh2: B(h) = e^{-h} - 1 (bh1 would use -h)
    order = len(older) + 1
    rks = [(lam_k - lam_s) / h for lam_k, _ in older]

    # b_j = h*phi_{j+1}(h) * j! / B(h): the right-hand side of UniPC's order conditions.
    b: list[float] = []
    phi = h_phi_1 / hh - 1.0
    fact = 1.0
    for j in range(1, order + 1):
        b.append(phi * fact / b_h)
        fact *= j + 1
        phi = phi / hh - 1.0 / fact

    def solve(rows: int, cols: list[float]) -> list[float]:
        # R[j, k] = r_k ** j; a tiny system, solved in float64 on the CPU.
        r = torch.tensor([[rk**j for rk in cols] for j in range(rows)], dtype=torch.float64)
        return torch.linalg.solve(r, torch.tensor(b[:rows], dtype=torch.float64)).tolist()

    out = (sigma_t / sigma_s) * x - (alpha_t * h_phi_1) * m_s
    diffs = [(m_k - m_s) / rk for rk, (_, m_k) in zip(rks, older, strict=True)]
    if m_t is None:
        if not diffs:
            return out
        # Order 2 uses rho = 1/2 directly, as the UniPC reference does, instead of solving for it.
        rhos = [0.5] if order == 2 else solve(order - 1, rks)
        res = sum(rho * d for rho, d in zip(rhos, diffs, strict=True))
    else:
        rhos = [0.5] if order == 1 else solve(order, [*rks, 1.0])
        res = rhos[-1] * (m_t - m_s)
        for rho, d in zip(rhos[:-1], diffs, strict=True):
            res = res + rho * d
    return out - (alpha_t * b_h) * res


def sample_unipc(
    model: Model,
    x: Tensor,
    sigmas: Tensor,
    *,
    order: int = 2,
    callback: Callable[[StepInfo], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Tensor:
    """Multistep UniPC (bh2, predictor + corrector, data prediction); one model call per step.

    Wan's default sampler; matches diffusers' ``UniPCMultistepScheduler(prediction_type="flow_prediction",
    use_flow_sigmas=True, solver_order=order, solver_type="bh2", lower_order_final=True)`` step for step.
    The order warms up from 1 and drops back towards the end (at most ``total - i`` at step i), and the
    step into sigma = 0 is order 1, i.e. it lands on the last x0 prediction. ``StepInfo.x`` is the
    predictor's sample; the corrector refines it after the next model call.
    """
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise InputError(f"order={order!r}; UniPC needs a whole number of at least 1 (Wan uses 2)")
    in_dtype = x.dtype
    x, sig = _prepare(x, sigmas)
    # A schedule that starts at exactly 1 (ComfyUI's does) gets diffusers' nudge: lambda(1) = -inf.
    top = float(torch.tensor(1.0 - _SIGMA_ONE_NUDGE, dtype=torch.float32))  # the value flow_sigmas starts at
    sig = [top if s >= 1.0 else s for s in sig]
    total = len(sig) - 1
    history: list[tuple[float, Tensor]] = []  # (lambda, x0 prediction), most recent first
    prev: tuple[Tensor, int] | None = None  # (sample before the last predictor step, its order)
    for i in range(total):
        s, s_next = sig[i], sig[i + 1]
        _check_cancel(cancel, i, total)
        v = model(x, _sigma_batch(s, x)).to(x.dtype)
        m = x - s * v
        if prev is not None:
            # Corrector: redo the last step with the new x0 prediction (no extra model call).
            x_last, p_last = prev
            _, m_last = history[0]
            x = _uni_update(x_last, sig[i - 1], s, m_last, history[1:p_last], m_t=m)
        history.insert(0, (_lambda(s), m))
        del history[order:]
        p = min(order, total - i, i + 1)
        prev = (x, p)
        if s_next == 0.0:
            x = m  # the limit of the order-1 update as sigma_next -> 0 (lambda -> inf)
        else:
            x = _uni_update(x, s, s_next, m, history[1:p])
        if callback is not None:
            callback(StepInfo(i, total, s, s_next, x, m))
    return x.to(in_dtype)


# --------------------------------------------------------------------------------------------------
# Registry

SAMPLERS: dict[str, Sampler] = {
    "euler": sample_euler,
    "unipc": sample_unipc,
}


def get_sampler(name: str) -> Sampler:
    """The sampler called ``name`` (case-insensitive); InputError naming the valid ones otherwise."""
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in SAMPLERS:
        raise InputError(f"unknown sampler {name!r}; choose one of: {', '.join(sorted(SAMPLERS))}")
    return SAMPLERS[key]


# --------------------------------------------------------------------------------------------------
# Classifier-free guidance


def cfg_velocity(cond_fn: Model, uncond_fn: Model | None, scale: float) -> Model:
    """``v = v_uncond + scale * (v_cond - v_uncond)``; at scale 1 only the conditional model runs."""
    if uncond_fn is None and scale != 1.0:
        raise InputError(f"cfg={scale} needs a negative (unconditional) model; use cfg 1.0 without one")

    def model(x: Tensor, sigma: Tensor) -> Tensor:
        v_cond = cond_fn(x, sigma)
        if scale == 1.0:  # the guided value would equal v_cond: skip the second model call
            return v_cond
        v_uncond = uncond_fn(x, sigma)  # type: ignore[misc]
        return v_uncond + scale * (v_cond - v_uncond)

    return model


def make_cfg_model(
    model_fn: Callable[[Tensor, Tensor, Any], Tensor],
    cond: Any,
    uncond: Any,
    scale: float,
    *,
    batch: bool = True,
) -> Model:
    """Guidance around ``model_fn(x, sigma, context)`` with a positive and a negative context.

    When both contexts are tensors of the same shape with x's batch size (and ``batch`` is set), the
    two branches run as one call of batch 2B: [x, x] with [cond, uncond]; otherwise two calls.
    """
    if uncond is None and scale != 1.0:
        raise InputError(f"cfg={scale} needs a negative context; use cfg 1.0 without one")

    def model(x: Tensor, sigma: Tensor) -> Tensor:
        if scale == 1.0:
            return model_fn(x, sigma, cond)
        batched = (
            batch
            and isinstance(cond, Tensor)
            and isinstance(uncond, Tensor)
            and cond.shape == uncond.shape
            and cond.shape[0] == x.shape[0]
        )
        if batched:
            s = sigma.reshape(-1).expand(x.shape[0])
            v_cond, v_uncond = model_fn(torch.cat([x, x]), torch.cat([s, s]), torch.cat([cond, uncond])).chunk(2)
        else:
            v_cond, v_uncond = model_fn(x, sigma, cond), model_fn(x, sigma, uncond)
        return v_uncond + scale * (v_cond - v_uncond)

    return model


# --------------------------------------------------------------------------------------------------
# Noise


def seeded_noise(
    shape: Sequence[int],
    seed: int,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Standard normal noise of ``shape`` whose batch item i comes from seed ``seed + i``.

    Drawn on the CPU in float32 and only then moved and cast, so a seed gives the same noise on every
    device, and item i of a batch equals a batch-1 run with seed + i. Seeds wrap at 2**64.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"seed={seed!r}; use a whole number >= 0")
    shape = tuple(int(d) for d in shape)
    if not shape or any(d < 0 for d in shape):
        raise InputError(f"noise shape {shape}: need [batch, ...] with non-negative sizes")
    items = []
    for i in range(shape[0]):
        gen = torch.Generator(device="cpu").manual_seed((seed + i) % 2**64)
        items.append(torch.randn(shape[1:], generator=gen, dtype=torch.float32))
    noise = torch.stack(items) if items else torch.empty(shape, dtype=torch.float32)
    return noise.to(device=device, dtype=dtype)
