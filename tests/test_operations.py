"""The temporal operations on small random networks: what each keeps, what it generates, and how.

Prompt following of the operations with the trained default model is measured in docs/quality.md
(bench/bench_operations.py); here the mechanics are checked exactly.
"""

from __future__ import annotations

import pytest
import torch

from sora_core import operations as ops
from sora_core.conditioning import CIRCULAR_LEAD, PromptSpan, conditioned_velocity
from sora_core.config import DIT_PRESETS, VAEConfig
from sora_core.dit import WanDiT
from sora_core.errors import InputError
from sora_core.vae import WanVAE

CFG = DIT_PRESETS["test-tiny"]
H = W = 32


@pytest.fixture(scope="module")
def nets() -> tuple[WanDiT, WanVAE]:
    torch.manual_seed(0)
    return WanDiT(CFG).eval(), WanVAE(VAEConfig(base_dim=8)).eval()


def engine(nets, **settings) -> ops.Engine:
    return ops.Engine(*nets, ops.Sampling(steps=2, cfg=2.0, **settings))


def text(seed: int) -> torch.Tensor:
    return torch.randn(1, 6, CFG.text_dim, generator=torch.Generator().manual_seed(seed))


def clip(frames: int, seed: int = 1) -> ops.Clip:
    return ops.Clip(torch.rand(frames, H, W, 3, generator=torch.Generator().manual_seed(seed)))


def test_decoding_is_causal_so_appended_latents_never_change_earlier_frames(nets) -> None:
    _, vae = nets
    z = torch.randn(1, 16, 4, H // 8, W // 8, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        assert torch.equal(vae.decode(z)[:, :, :9], vae.decode(z[:, :, :3]))


def test_keyframes_pin_their_latent_frames_and_refuse_bad_input(nets) -> None:
    e = engine(nets)
    first, last = torch.rand(H, W, 3), torch.rand(H, W, 3)
    out = ops.keyframes_to_video(e, text(0), text(1), [(0, first), (-1, last)], frames=9, width=W, height=H)
    assert out.frames.shape == (9, H, W, 3)
    assert torch.equal(out.latent[:, :, :1], e.still_latent(first, group=False))
    assert torch.equal(out.latent[:, :, 2:3], e.still_latent(last, group=True))
    with pytest.raises(InputError, match="outside the clip"):
        ops.keyframes_to_video(e, text(0), None, [(9, first)], frames=9, width=W, height=H)
    with pytest.raises(InputError, match="same 4-frame group"):
        ops.keyframes_to_video(e, text(0), None, [(5, first), (7, last)], frames=9, width=W, height=H)
    with pytest.raises(InputError, match="resize"):
        ops.keyframes_to_video(e, text(0), None, [(0, torch.rand(16, W, 3))], frames=9, width=W, height=H)


@pytest.mark.parametrize("mode", ["native", "replace"])
def test_extend_forward_appends_and_keeps_the_clip_bit_exact(nets, mode) -> None:
    e = engine(nets, mode=mode)
    source = clip(9)
    source_latent = e.latent_of(source).clone()
    out = ops.extend(e, text(0), text(1), source, new_frames=8, overlap_frames=4, times=2)
    assert out.frames.shape[0] == 9 + 2 * 8
    assert torch.equal(out.frames[:9], source.frames)
    assert torch.equal(out.latent[:, :, :3], source_latent)
    assert e.passes == 2  # one sampling pass per extension, each with its own seed
    # Each extension's frames are decoded after the 9 frames they continue (re-encoded), not with the
    # whole clip: the VAE decodes a short window however long the clip grows.
    lead = e.encode(out.frames[8:17])
    assert torch.equal(out.frames[17:], e.decode(torch.cat([lead, out.latent[:, :, 5:]], dim=2))[9:])


def test_extend_backward_puts_new_frames_before_the_unchanged_clip(nets) -> None:
    e = engine(nets)
    source = clip(9)
    decoded = []
    decode = e.decode
    e.decode = lambda latent: decoded.append(decode(latent)) or decoded[-1]
    out = ops.extend(e, text(0), None, source, direction="backward", new_frames=8, overlap_frames=4)
    assert out.frames.shape[0] == 8 + 9
    assert torch.equal(out.frames[8:], source.frames)
    # The new frames are the decode moved towards the clip's frame 0 (against the decode's own slot of it)
    # by a weight that grows from 0 at the first new frame to 1 at the join.
    new, slot = decoded[-1][:8], decoded[-1][8]
    for k, w in enumerate(torch.linspace(0, 1, 8)):
        torch.testing.assert_close(out.frames[k], (new[k] + w * (source.frames[0] - slot)).clamp(0, 1))
    assert not torch.allclose(out.frames[7], new[7], atol=1e-3)
    with pytest.raises(InputError, match="multiple of 4"):
        ops.extend(e, text(0), None, source, new_frames=6)
    with pytest.raises(InputError, match="direction"):
        ops.extend(e, text(0), None, source, direction="sideways")
    with pytest.raises(InputError, match="video: 10 frames; the video VAE needs 4k\\+1"):
        ops.extend(e, text(0), None, clip(10), direction="backward", new_frames=8, overlap_frames=4)


def test_group_latents_code_a_clips_start_as_mid_clip_groups(nets) -> None:
    e = engine(nets)
    frames = clip(9).frames
    groups = e.group_latents(frames, 2)
    lead = torch.cat([frames[:1].expand(4, -1, -1, -1), frames])
    assert torch.equal(groups, e.encode(lead)[:, :, 2:4])


def test_circular_denoising_shows_the_period_after_its_own_last_frames(nets) -> None:
    seen = []

    class Spy(torch.nn.Module):
        dtype = torch.float32

        def forward(self, x, t, context):
            seen.append(x[0, 0, :, 0, 0].clone())
            return x.clone()  # velocity = input: shows which window position each frame's velocity came from

    x = torch.arange(4.0).view(1, 1, 4, 1, 1).expand(1, 16, 4, 2, 2).contiguous()
    model = conditioned_velocity(Spy(), text(0), None, 1.0, None, circular=True)
    for _ in range(3):
        assert torch.equal(model(x, torch.tensor(0.5)), x)  # the lead's velocity is dropped
    lead = CIRCULAR_LEAD
    # every step the same window, never rotated (a bounce's phase is tied to the clip's start): a
    # stretch of the endless loop in which the period's last frames lead into its first
    expected = [float(i % 4) for i in range(4 - lead, 4 + 4)]
    assert all(s.tolist() == expected for s in seen), seen


def test_loop_from_a_clip_keeps_its_start_and_regenerates_its_end(nets) -> None:
    e = engine(nets)
    source = clip(13)
    out = ops.loop(e, text(0), None, clip=source, regenerate_frames=4)
    assert out.frames.shape[0] == 12  # the period: the clip's frames after its first
    assert torch.equal(out.frames[:8], source.frames[1:9])
    assert not torch.equal(out.frames[8:], source.frames[9:])
    with pytest.raises(InputError, match="regenerate fewer"):
        ops.loop(e, text(0), None, clip=source, regenerate_frames=12)


def test_loop_from_a_prompt_is_a_period_of_groups_decoded_with_time_wrapped_around(nets, monkeypatch) -> None:
    e = engine(nets)
    sampled = []
    real_sample = e.sample

    def spy(shape, *args, **kwargs):
        out = real_sample(shape, *args, **kwargs)
        sampled.append((shape, kwargs, out))
        return out

    monkeypatch.setattr(e, "sample", spy)
    loop = ops.loop(e, text(0), None, frames=8, width=W, height=H)
    assert loop.frames.shape == (8, H, W, 3)
    (shape, kwargs, groups), = sampled
    assert shape[2] == 2 and kwargs["circular"]  # two 4-frame groups, no first-frame latent to rotate
    # The period is decoded as a loop (the VAE's steady state for it repeated: tests/test_vae.py), not
    # as the start of a clip.
    assert torch.equal(loop.frames, e.decode_loop(groups))
    as_clip_start = e.decode(torch.cat([torch.zeros_like(groups[:, :, :1]), groups], dim=2))[1:]
    assert not torch.allclose(loop.frames, as_clip_start, atol=1e-2)
    closed = ops.close_loop(loop)
    assert closed.frames.shape[0] == 9 and torch.equal(closed.frames[-1], loop.frames[0])
    with pytest.raises(InputError, match="multiple of 4"):
        ops.loop(e, text(0), None, frames=9, width=W, height=H)


def test_blend_joins_two_clips_with_a_generated_transition(nets) -> None:
    e = engine(nets)
    a, b = clip(9, seed=1), clip(9, seed=2)
    decoded = []
    decode = e.decode
    e.decode = lambda latent: decoded.append(decode(latent)) or decoded[-1]
    out = ops.blend(e, text(0), None, a, b, transition_frames=7, overlap_frames=4)
    assert out.frames.shape[0] == 9 + 7 + 9
    assert torch.equal(out.frames[:9], a.frames) and torch.equal(out.frames[16:], b.frames)
    # The transition is handed over from its decode after A (first frame) to its decode after a still of
    # B's first frame (last frame): the decoder's memory of A's look does not reach B.
    after_a, after_b = decoded[-2][9:16], decoded[-1][5:13]  # after_b: the 7 frames, then its B frame 0
    assert not torch.allclose(after_a, after_b[:7], atol=1e-3)
    # Each decode is moved by its join's difference to the clip's own frame (A's last against the decode
    # of it after A, B's first against the transition's decode of it), then handed over from A's to B's.
    from_a = after_a + (a.frames[-1] - decoded[-2][8])
    from_b = after_b[:7] + (b.frames[0] - after_b[7])
    for k, h in enumerate(torch.linspace(0, 1, 7)):
        torch.testing.assert_close(out.frames[9 + k], (from_a[k] * (1 - h) + from_b[k] * h).clamp(0, 1))
    # so, where nothing is clipped, the joins step as the decodes do: into B's first frame as the
    # transition's decode steps into its own B frame 0, out of A's last as the decode after A does
    kept = (out.frames[15] > 0) & (out.frames[15] < 1)
    torch.testing.assert_close((b.frames[0] - out.frames[15])[kept], (after_b[7] - after_b[6])[kept])
    kept = (out.frames[9] > 0) & (out.frames[9] < 1)
    torch.testing.assert_close((out.frames[9] - a.frames[-1])[kept], (after_a[0] - decoded[-2][8])[kept])
    with pytest.raises(InputError, match="4k\\+3"):
        ops.blend(e, text(0), None, a, b, transition_frames=8)


def test_storyboard_gives_each_shot_its_prompts_velocity_on_its_own_frames() -> None:
    class ContextEcho(torch.nn.Module):  # velocity = the first value of the prompt each frame reads
        dtype = torch.float32

        def forward(self, x, t, context, frame_prompt=None):
            if frame_prompt is None:
                return context[:, 0, 0].view(-1, 1, 1, 1, 1).expand_as(x).clone()
            per_frame = context[:, frame_prompt, 0, 0]  # [B, T]
            return per_frame.view(*per_frame.shape[:1], 1, -1, 1, 1).expand_as(x).clone()

    shots = [torch.full((1, 3, CFG.text_dim), v) for v in (1.0, 2.0, 3.0)]
    frames = [torch.tensor([True, True, False, False, False]), torch.tensor([False, False, True, False, False]),
              torch.tensor([False, False, False, True, True])]
    model = conditioned_velocity(ContextEcho(), None, None, 1.0, None,
                                 spans=[PromptSpan(c, f) for c, f in zip(shots, frames, strict=True)])
    v = model(torch.zeros(1, 16, 5, 2, 2), torch.tensor(0.5))
    assert v[0, 0, :, 0, 0].tolist() == [1.0, 1.0, 2.0, 3.0, 3.0]
    with pytest.raises(InputError, match=r"latent frames \[4\] belong to no prompt span"):
        gap = [frames[0], frames[1], torch.tensor([False, False, False, True, False])]
        conditioned_velocity(ContextEcho(), None, None, 1.0, None,
                             spans=[PromptSpan(c, f) for c, f in zip(shots, gap, strict=True)])(
            torch.zeros(1, 16, 5, 2, 2), torch.tensor(0.5))


def test_storyboard_assigns_latent_frames_by_shot_start_and_checks_shots(nets) -> None:
    e = engine(nets)
    shots = [ops.Shot(text(0), 0), ops.Shot(text(1), 8)]
    out = ops.storyboard(e, shots, None, frames=17, width=W, height=H)
    assert out.frames.shape == (17, H, W, 3)
    with pytest.raises(InputError, match="start one at frame 0"):
        ops.storyboard(e, [ops.Shot(text(0), 4)], None, frames=17, width=W, height=H)
    with pytest.raises(InputError, match="gets no frames"):
        ops.storyboard(e, [ops.Shot(text(0), 0), ops.Shot(text(1), 5), ops.Shot(text(2), 6)], None,
                       frames=17, width=W, height=H)


def test_remix_strength_sets_how_far_the_result_moves(nets) -> None:
    source = clip(9)
    latent = engine(nets).latent_of(source)
    moved = {}
    for strength in (0.2, 0.9):
        out = ops.remix(engine(nets), text(0), None, ops.Clip(source.frames, latent), strength=strength)
        moved[strength] = (out.latent - latent).abs().mean().item()
    assert moved[0.2] < moved[0.9]
    full = ops.remix(engine(nets), text(0), None, ops.Clip(source.frames, latent), strength=1.0)
    fresh = engine(nets).sample(tuple(latent.shape), text(0), None)
    assert torch.equal(full.latent, fresh)  # strength 1 ignores the input: plain text-to-video
    with pytest.raises(InputError, match="strength"):
        ops.remix(engine(nets), text(0), None, source, strength=0.0)


@pytest.mark.parametrize("mode", ["native", "replace"])
def test_recut_regenerates_whole_groups_and_keeps_everything_else_bit_exact(nets, mode) -> None:
    e = engine(nets, mode=mode)
    source = clip(17)
    latent = e.latent_of(source).clone()
    out = ops.recut(e, text(0), None, source, start=6, end=8)
    p0, p1 = ops.recut_span(6, 8)
    assert (p0, p1) == (5, 8)
    assert torch.equal(out.frames[:p0], source.frames[:p0]) and torch.equal(out.frames[p1 + 1:], source.frames[p1 + 1:])
    assert not torch.equal(out.frames[p0:p1 + 1], source.frames[p0:p1 + 1])
    keep = torch.tensor([True, True, False, True, True])
    assert torch.equal(out.latent[:, :, keep], latent[:, :, keep])
    with pytest.raises(InputError, match="whole clip"):
        ops.recut(e, text(0), None, source, start=0, end=17)


def test_storyboard_text_is_one_shot_per_line() -> None:
    assert ops.parse_storyboard("0: a red circle\n\n# note\n 16 : a blue square ") == [
        (0, "a red circle"), (16, "a blue square")]
    with pytest.raises(InputError, match="line 2"):
        ops.parse_storyboard("0: a red circle\nthen a blue square")


def test_engine_for_loaded_models_takes_their_defaults_and_overrides() -> None:
    from sora_core.pipeline import placeholder_models

    models = placeholder_models()
    e = ops.Engine.for_models(models, seed=3, cfg=1.0)
    assert (e.settings.steps, e.settings.shift, e.settings.cfg, e.settings.seed) == (
        models.defaults.steps, models.defaults.shift, 1.0, 3)
    assert e.dit is models.dit and e.vae is models.vae
