"""Schedules and samplers against diffusers' flow schedulers; callbacks, cancel, guidance, seeded noise."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from sora_core import sampling
from sora_core.errors import GenerationCancelled, InputError
from tests.conftest import rel_err

diffusers = pytest.importorskip("diffusers")

SHAPE = (1, 4, 3, 8, 8)


class ToyVelocity(nn.Module):
    """A fixed random conv of x whose gain, offset and mixing all depend on sigma; counts its calls."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv3d(4, 4, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=gen) * 0.15)
            self.conv.bias.copy_(torch.randn(4, generator=gen) * 0.1)
        self.offset = nn.Parameter(torch.randn(1, 4, 1, 1, 1, generator=gen))
        self.calls = 0
        self.sigmas_seen: list[Tensor] = []

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        self.calls += 1
        self.sigmas_seen.append(sigma)
        s = sigma.reshape(-1, 1, 1, 1, 1).to(x.dtype)
        return torch.tanh(self.conv(x)) * (1 + 2 * s) + (0.8 - s) * x + torch.cos(4 * s) * self.offset


def noise() -> Tensor:
    return sampling.seeded_noise(SHAPE, 1234, device="cpu", dtype=torch.float32)


def diffusers_loop(scheduler, model: nn.Module, x: Tensor) -> list[Tensor]:
    """The pipeline loop; the model gets the scheduler's sigma (not its rounded timestep) so only the
    solver arithmetic is compared."""
    scheduler.set_begin_index(0)
    xs = []
    for i, t in enumerate(scheduler.timesteps):
        v = model(x, scheduler.sigmas[i].reshape(1))
        x = scheduler.step(v, t, x, return_dict=False)[0]
        xs.append(x)
    return xs


def collect(sampler, model, x, sigmas, **kw) -> tuple[Tensor, list[sampling.StepInfo]]:
    infos: list[sampling.StepInfo] = []
    out = sampler(model, x, sigmas, callback=infos.append, **kw)
    return out, infos


def unipc_scheduler(shift: float, steps: int, order: int = 2):
    sched = diffusers.UniPCMultistepScheduler(
        prediction_type="flow_prediction",
        use_flow_sigmas=True,
        flow_shift=shift,
        solver_order=order,
        predict_x0=True,
        solver_type="bh2",
        lower_order_final=True,
        final_sigmas_type="zero",
    )
    sched.set_timesteps(steps)
    return sched


# ---------------------------------------------------------------------------------------------- schedules


@pytest.mark.parametrize("shift", [1.0, 3.0, 5.0, 16.0])
@pytest.mark.parametrize("steps", [1, 10, 25, 50])
def test_flow_sigmas_equal_diffusers_unipc(shift: float, steps: int) -> None:
    sigmas = sampling.flow_sigmas(steps, shift)
    ref = unipc_scheduler(shift, steps).sigmas
    assert sigmas.dtype == torch.float32 and sigmas.shape == (steps + 1,)
    assert torch.equal(sigmas, ref)
    assert sigmas[-1] == 0 and bool((sigmas[1:] < sigmas[:-1]).all())


@pytest.mark.parametrize("shift", [3.0, 5.0])
def test_flow_sigmas_close_to_flow_match_euler_construction(shift: float) -> None:
    # FlowMatchEuler shifts the sigmas it is given in float32 and does not nudge sigma = 1.
    steps = 20
    base = torch.linspace(1, 1 / 1000, steps + 1, dtype=torch.float64)[:-1].tolist()
    sched = diffusers.FlowMatchEulerDiscreteScheduler(shift=shift)
    sched.set_timesteps(sigmas=base)
    ours = sampling.flow_sigmas(steps, shift)
    assert sched.sigmas[0] == 1.0 and ours[0] == torch.tensor(1 - 1e-6, dtype=torch.float32)
    torch.testing.assert_close(ours[1:], sched.sigmas[1:], rtol=1e-6, atol=1e-7)


def test_shift_sigmas() -> None:
    s = torch.linspace(1, 0, 11, dtype=torch.float64)
    assert torch.equal(sampling.shift_sigmas(s, 1.0), s)
    shifted = sampling.shift_sigmas(s, 5.0)
    assert shifted[0] == 1 and shifted[-1] == 0 and bool((shifted[1:-1] > s[1:-1]).all())
    torch.testing.assert_close(sampling.shift_sigmas(shifted, 1 / 5.0), s)  # shift a then 1/a is identity
    with pytest.raises(InputError, match="shift"):
        sampling.flow_sigmas(10, 0.0)
    with pytest.raises(InputError, match="steps"):
        sampling.flow_sigmas(0, 5.0)


# ---------------------------------------------------------------------------------------------- samplers


@pytest.mark.parametrize("shift", [3.0, 5.0])
def test_euler_matches_flow_match_euler(shift: float) -> None:
    steps = 12
    sigmas = sampling.flow_sigmas(steps, shift)
    sched = diffusers.FlowMatchEulerDiscreteScheduler(shift=1.0)  # shift 1: takes our sigmas unchanged
    sched.set_timesteps(sigmas=sigmas[:-1].tolist())
    assert torch.equal(sched.sigmas, sigmas)
    model = ToyVelocity()
    x = noise()
    with torch.no_grad():
        ref = diffusers_loop(sched, model, x.clone())
        out, infos = collect(sampling.sample_euler, model, x, sigmas)
    assert len(infos) == steps
    for info, r in zip(infos, ref, strict=True):
        assert rel_err(info.x, r) < 1e-5, info.step
    assert rel_err(out, ref[-1]) < 1e-5


@pytest.mark.parametrize("shift", [3.0, 5.0])
@pytest.mark.parametrize("steps", [10, 25])
def test_unipc_matches_diffusers(shift: float, steps: int) -> None:
    sched = unipc_scheduler(shift, steps)
    sigmas = sampling.flow_sigmas(steps, shift)
    model = ToyVelocity()
    x = noise()
    with torch.no_grad():
        ref = diffusers_loop(sched, model, x.clone())
        n_ref = model.calls
        out, infos = collect(sampling.sample_unipc, model, x, sigmas)
    assert model.calls - n_ref == steps  # one model call per step, as diffusers
    for info, r in zip(infos, ref, strict=True):
        assert rel_err(info.x, r) < 1e-5, info.step
    assert rel_err(out, ref[-1]) < 1e-5
    # It is a different solver from Euler: the parity above is not trivially true.
    with torch.no_grad():
        assert rel_err(sampling.sample_euler(model, x, sigmas), out) > 1e-3


@pytest.mark.parametrize("order", [1, 3])
def test_unipc_other_orders_match_diffusers(order: int) -> None:
    steps, shift = 8, 5.0
    model = ToyVelocity(seed=3)
    x = noise()
    with torch.no_grad():
        ref = diffusers_loop(unipc_scheduler(shift, steps, order), model, x.clone())[-1]
        out = sampling.sample_unipc(model, x, sampling.flow_sigmas(steps, shift), order=order)
    assert rel_err(out, ref) < 1e-5


def test_unipc_accepts_schedule_starting_at_one() -> None:
    # ComfyUI-style schedules start at exactly 1, where lambda = log(alpha / sigma) is -inf.
    sigmas = sampling.flow_sigmas(6, 5.0)
    at_one = sigmas.clone()
    at_one[0] = 1.0
    model = ToyVelocity()
    with torch.no_grad():
        out = sampling.sample_unipc(model, noise(), at_one)
        assert torch.isfinite(out).all()
        assert torch.equal(out, sampling.sample_unipc(model, noise(), sigmas))


def test_sampler_keeps_dtype_and_inputs() -> None:
    model = ToyVelocity()
    x = noise().to(torch.bfloat16)
    x_before = x.clone()
    sigmas = sampling.flow_sigmas(4, 5.0)
    sig_before = sigmas.clone()
    with torch.no_grad():
        for sampler in sampling.SAMPLERS.values():
            out = sampler(model, x, sigmas)
            assert out.dtype == torch.bfloat16 and out.shape == x.shape
    assert torch.equal(x, x_before) and torch.equal(sigmas, sig_before)
    # The model sees [B] float32 sigmas.
    assert all(s.shape == (1,) and s.dtype == torch.float32 for s in model.sigmas_seen)


# ---------------------------------------------------------------------------------------------- hooks


@pytest.mark.parametrize("name", ["euler", "unipc"])
def test_callback_once_per_step(name: str) -> None:
    steps = 5
    sigmas = sampling.flow_sigmas(steps, 3.0)
    x = sampling.seeded_noise((2, *SHAPE[1:]), 5)
    with torch.no_grad():
        out, infos = collect(sampling.get_sampler(name), ToyVelocity(), x, sigmas)
    assert [i.step for i in infos] == list(range(steps))
    assert all(i.total == steps for i in infos)
    assert [i.sigma for i in infos] == sigmas[:-1].tolist()
    assert [i.sigma_next for i in infos] == sigmas[1:].tolist()
    assert all(i.x.shape == x.shape and i.denoised.shape == x.shape for i in infos)
    assert torch.equal(infos[-1].x, out)
    with pytest.raises(AttributeError):
        infos[0].step = 3  # frozen


@pytest.mark.parametrize("name", ["euler", "unipc"])
@pytest.mark.parametrize("stop_at", [0, 3])
def test_cancel_stops_before_model_call(name: str, stop_at: int) -> None:
    model = ToyVelocity()
    seen: list[int] = []

    def cancel() -> bool:
        return model.calls >= stop_at

    with torch.no_grad(), pytest.raises(GenerationCancelled, match=f"step {stop_at + 1} of 8") as exc:
        sampling.get_sampler(name)(
            model, noise(), sampling.flow_sigmas(8, 5.0), cancel=cancel, callback=lambda info: seen.append(info.step)
        )
    assert model.calls == stop_at
    assert seen == list(range(stop_at))
    assert exc.value.step == stop_at


def test_unknown_sampler() -> None:
    assert sampling.get_sampler("euler") is sampling.sample_euler
    assert sampling.get_sampler(" UniPC ") is sampling.sample_unipc
    with pytest.raises(InputError) as exc:
        sampling.get_sampler("dpm++")
    msg = str(exc.value)
    assert "'dpm++'" in msg and "euler" in msg and "unipc" in msg
    assert isinstance(exc.value, ValueError)


def test_bad_inputs() -> None:
    with pytest.raises(InputError, match="sigmas"):
        sampling.sample_euler(ToyVelocity(), noise(), torch.tensor([1.0]))
    with pytest.raises(InputError, match="order"):
        sampling.sample_unipc(ToyVelocity(), noise(), sampling.flow_sigmas(2, 1.0), order=0)


# ---------------------------------------------------------------------------------------------- noise


def test_seeded_noise() -> None:
    a = sampling.seeded_noise(SHAPE, 7, device="cpu", dtype=torch.float32)
    assert torch.equal(a, sampling.seeded_noise(SHAPE, 7, device="cpu", dtype=torch.float32))
    assert not torch.equal(a, sampling.seeded_noise(SHAPE, 8, device="cpu", dtype=torch.float32))
    batch = sampling.seeded_noise((3, *SHAPE[1:]), 7, device="cpu", dtype=torch.float32)
    for i in range(3):
        assert torch.equal(batch[i : i + 1], sampling.seeded_noise(SHAPE, 7 + i, device="cpu", dtype=torch.float32))
    # Drawn in float32, then cast: the bf16 noise is the rounded float32 noise.
    half = sampling.seeded_noise(SHAPE, 7, device="cpu", dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16 and torch.equal(half, a.to(torch.bfloat16))
    assert abs(a.mean().item()) < 0.2 and abs(a.std().item() - 1) < 0.2
    top = sampling.seeded_noise((2, 3), 2**64 - 1)  # wraps: item 1 uses seed 0
    assert torch.equal(top[1], sampling.seeded_noise((1, 3), 0)[0])
    with pytest.raises(InputError, match="seed"):
        sampling.seeded_noise(SHAPE, -1)


# ---------------------------------------------------------------------------------------------- guidance


def test_cfg_velocity() -> None:
    calls = {"cond": 0, "uncond": 0}

    def cond(x: Tensor, sigma: Tensor) -> Tensor:
        calls["cond"] += 1
        return x * 2 + sigma.reshape(-1, 1)

    def uncond(x: Tensor, sigma: Tensor) -> Tensor:
        calls["uncond"] += 1
        return x - 1

    x, sigma = torch.randn(2, 3), torch.tensor([0.5, 0.25])
    guided = sampling.cfg_velocity(cond, uncond, 5.0)(x, sigma)
    torch.testing.assert_close(guided, (x - 1) + 5.0 * (x * 2 + sigma[:, None] - (x - 1)))
    assert calls == {"cond": 1, "uncond": 1}
    torch.testing.assert_close(sampling.cfg_velocity(cond, uncond, 1.0)(x, sigma), cond(x, sigma))
    assert calls == {"cond": 3, "uncond": 1}  # scale 1: no unconditional call
    assert torch.equal(sampling.cfg_velocity(cond, None, 1.0)(x, sigma), cond(x, sigma))
    with pytest.raises(InputError, match="cfg"):
        sampling.cfg_velocity(cond, None, 3.0)


def test_make_cfg_model_batches_cond_and_uncond() -> None:
    batches: list[int] = []

    def model_fn(x: Tensor, sigma: Tensor, context: Tensor) -> Tensor:
        batches.append(x.shape[0])
        s = sigma.reshape(-1, 1, 1).expand(x.shape[0], 1, 1)
        return x * context.mean(dim=(1, 2)).reshape(-1, 1, 1) + s

    x, sigma = torch.randn(2, 3, 4), torch.tensor(0.3)
    cond, uncond = torch.randn(2, 5, 6), torch.randn(2, 5, 6)
    expected = model_fn(x, sigma, uncond) + 4.0 * (model_fn(x, sigma, cond) - model_fn(x, sigma, uncond))
    batches.clear()
    torch.testing.assert_close(sampling.make_cfg_model(model_fn, cond, uncond, 4.0)(x, sigma), expected)
    assert batches == [4]  # one call of batch 2B
    batches.clear()
    torch.testing.assert_close(sampling.make_cfg_model(model_fn, cond, uncond, 4.0, batch=False)(x, sigma), expected)
    assert batches == [2, 2]
    batches.clear()
    sampling.make_cfg_model(model_fn, cond, uncond[:, :3], 4.0)(x, sigma)  # shapes differ: two calls
    assert batches == [2, 2]
    plain = model_fn(x, sigma, cond)
    batches.clear()
    torch.testing.assert_close(sampling.make_cfg_model(model_fn, cond, uncond, 1.0)(x, sigma), plain)
    assert batches == [2]  # scale 1: the conditional branch only
