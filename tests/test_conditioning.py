"""Temporal conditioning: known latent frames come back exactly and the DiT sees them as each mode says."""

from __future__ import annotations

import pytest
import torch

from sora_core import sampling
from sora_core.conditioning import TemporalCondition, conditioned_velocity, pixel_to_latent_frame
from sora_core.config import DIT_PRESETS
from sora_core.dit import WanDiT
from sora_core.errors import InputError
from sora_core.pipeline import sample_latent

CFG = DIT_PRESETS["test-tiny"]
SHAPE = (2, 16, 4, 4, 4)


@pytest.fixture(scope="module")
def dit() -> WanDiT:
    torch.manual_seed(0)
    return WanDiT(CFG).eval()


def condition(mode: str) -> TemporalCondition:
    gen = torch.Generator().manual_seed(5)
    known = torch.randn(SHAPE, generator=gen)
    mask = torch.tensor([[True, False, False, True], [False, True, False, False]])
    return TemporalCondition(known, mask, mode)


def context() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(9)
    return torch.randn(2, CFG.text_len, CFG.text_dim, generator=gen), torch.randn(2, 8, CFG.text_dim, generator=gen)


@pytest.mark.parametrize("sampler", ["euler", "unipc"])
@pytest.mark.parametrize("mode", ["native", "replace"])
def test_known_frames_come_back_exactly_and_stay_on_their_noising_path(dit, sampler, mode) -> None:
    cond = condition(mode)
    pos, neg = context()
    infos: list[sampling.StepInfo] = []
    with torch.no_grad():
        out = sample_latent(dit, pos, neg, SHAPE, seed=3, steps=6, cfg=4.0, shift=3.0, sampler=sampler,
                            callback=infos.append, condition=cond)
    noise = sampling.seeded_noise(SHAPE, 3, device="cpu", dtype=torch.float32)
    m = cond.frame_mask(out)
    assert torch.allclose(torch.where(m, out, 0), torch.where(m, cond.known, 0), atol=1e-5)
    for info in infos[:-1]:  # x after each step: (1 - s) * known + s * noise on the given frames
        s = float(info.sigma_next)
        path = (1 - s) * cond.known + s * noise
        assert torch.allclose(torch.where(m, info.x, 0), torch.where(m, path, 0), atol=1e-4), info.step
    # The generated frames depend on the condition (it is not just pasted in afterwards) in native mode.
    with torch.no_grad():
        free = sample_latent(dit, pos, neg, SHAPE, seed=3, steps=6, cfg=4.0, shift=3.0, sampler=sampler)
    assert not torch.allclose(torch.where(m, 0, out), torch.where(m, 0, free), atol=1e-3)


class Spy(torch.nn.Module):
    """Records what the denoiser feeds the DiT."""

    def __init__(self, dit: WanDiT) -> None:
        super().__init__()
        self.dit, self.calls = dit, []

    @property
    def dtype(self) -> torch.dtype:
        return self.dit.dtype

    def forward(self, x, t, ctx):
        self.calls.append((x.clone(), t.clone()))
        return self.dit(x, t, ctx)


@pytest.mark.parametrize("mode", ["native", "replace"])
def test_what_the_dit_sees(dit, mode) -> None:
    cond = condition(mode)
    pos, _ = context()
    spy = Spy(dit)
    x = torch.randn(SHAPE)
    with torch.no_grad():
        conditioned_velocity(spy, pos, None, 1.0, cond)(x, torch.tensor(0.7))
    seen_x, seen_t = spy.calls[0]
    m = cond.frame_mask(x)
    if mode == "native":  # clean known frames at timestep 0 beside noisy ones at 700
        assert torch.equal(torch.where(m, seen_x, 0), torch.where(m, cond.known, 0))
        assert torch.equal(seen_t, torch.where(cond.mask, 0.0, 700.0))
    else:  # the sampler's own (re-noised) frames, one timestep for all
        assert torch.equal(seen_x, x)
        assert torch.allclose(seen_t, torch.full_like(seen_t, 700.0))


def test_bad_conditions_are_named() -> None:
    known = torch.zeros(SHAPE)
    with pytest.raises(InputError, match="mask"):
        TemporalCondition(known, torch.zeros(2, 3, dtype=torch.bool))
    with pytest.raises(InputError, match="nothing left to generate"):
        TemporalCondition(known, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(InputError, match="mode"):
        TemporalCondition(known, torch.zeros(2, 4, dtype=torch.bool), mode="paste")


def test_pixel_to_latent_frame() -> None:
    assert [pixel_to_latent_frame(f) for f in range(10)] == [0, 1, 1, 1, 1, 2, 2, 2, 2, 3]
