"""Argument handling of the bench scripts that choose what ships (their runs are too long for tests)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest
import torch

from sora_core.conditioning import PromptSpan, conditioned_velocity

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import quality  # noqa: E402
from bench_operations import cut_share, loopable_cases, rendered_period, seam_ratio, tally, tally_text  # noqa: E402
from bounce_pace import bounce_cases, pace  # noqa: E402
from compare_models import parse_settings, settings_label  # noqa: E402
from guidance_trials import parse_trial, skip_guided, value_passthrough, with_skip_guidance  # noqa: E402
from presence_failures import failure_kind  # noqa: E402
from quality import presence_by_size, presence_by_speed  # noqa: E402
from storyboard_trials import whole_clip_prompts  # noqa: E402


def test_settings_variants_parse_to_typed_generate_arguments() -> None:
    settings = parse_settings("shift=5, steps=30,sampler=euler")
    assert settings == {"shift": 5.0, "steps": 30, "sampler": "euler"}
    assert isinstance(settings["steps"], int) and isinstance(settings["shift"], float)
    assert settings_label(settings) == "shift 5 steps 30 sampler euler"


@pytest.mark.parametrize(("text", "names"), [("shfit=5", "steps, cfg, shift, sampler"), ("steps=3.5", "whole number"),
                                             ("cfg", "KEY=VALUE")])
def test_bad_settings_name_the_problem(text: str, names: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=names):
        parse_settings(text)


def test_presence_by_speed_counts_each_speed_apart() -> None:
    from sora_core.world.dataset import prompt_set

    cases = prompt_set(12, seed=6000, kind="short")
    results = [{"present_ok": c.scene.objects[0].speed == "fast"} for c in cases]  # only the fast ones kept
    counts = presence_by_speed(results, cases)
    fast = sum(c.scene.objects[0].speed == "fast" for c in cases)
    assert 0 < fast < len(cases)
    assert counts == {"slow": (0, len(cases) - fast), "fast": (fast, fast)}
    by_size = presence_by_size(results, cases)
    assert list(by_size) == ["small", "medium", "large"] and sum(n for _, n in by_size.values()) == len(cases)
    small_fast = sum(c.scene.objects[0].size == "small" and c.scene.objects[0].speed == "fast" for c in cases)
    assert by_size["small"][0] == small_fast


def _frames(pattern: str) -> torch.Tensor:
    return torch.tensor([c == "x" for c in pattern])


@pytest.mark.parametrize(("asked", "others", "kind"), [
    ("xxxxxxxxxxxxx....", ["............xxxxx"], "colour hand-over"),
    ("...xxxxxxxxxxxxxx", ["x................"], "late start"),  # another colour in one of three frames
    ("xxxxxxxxxxxxxx...", [], "early end"),
    ("xxxxxx..xxxxxxxxx", ["xxxxxxxxxxxxxxxxx"], "colour hand-over"),
    ("xxxxxx..xxxxxxxxx", [], "gaps"),
    (None, ["xxxxxxxxxxxxxxxxx"], "never"),
    (".................", [], "never"),
])
def test_presence_failures_are_sorted_by_what_the_frames_show(asked: str | None, others: list[str],
                                                              kind: str) -> None:
    assert failure_kind(_frames(asked) if asked else None, [_frames(o) for o in others]) == kind


def test_tally_counts_right_and_clips_per_kind() -> None:
    counts: dict[str, list[int]] = {}
    for key, ok in (("still", True), ("bounce", False), ("still", True), ("bounce", True), ("still", False)):
        tally(counts, key, ok)
    assert counts == {"still": [2, 3], "bounce": [1, 2]}
    assert tally_text(counts) == "bounce 1/2, still 2/3"


def _circling_dot(frames: int, glitch_at: int | None = None) -> torch.Tensor:
    """A dot going round a circle once per ``frames`` frames (a perfect loop at an even pace); with
    ``glitch_at``, that frame shows it on the far side of the circle."""
    video = torch.zeros(frames, 64, 64, 3, dtype=torch.uint8)  # a 20-pixel dot that moves 8 pixels a frame
    for t in range(frames):
        phase = t + (frames // 2 if t == glitch_at else 0)
        angle = torch.tensor(2 * torch.pi * phase / frames)
        y, x = int(32 + 20 * torch.sin(angle)), int(32 + 20 * torch.cos(angle))
        video[t, y - 10:y + 10, x - 10:x + 10] = 255
    return video


def test_cut_share_finds_the_seam_wherever_the_period_is_cut() -> None:
    smooth = _circling_dot(16)
    assert seam_ratio(smooth) <= 1.5 and cut_share(smooth) == 1.0
    glitchy = _circling_dot(16, glitch_at=8)  # jumps 7 -> 8 and 8 -> 9
    assert seam_ratio(glitchy.roll(-8, dims=0)) > 1.5 and seam_ratio(glitchy.roll(-9, dims=0)) > 1.5
    assert seam_ratio(glitchy) <= 1.5  # cut elsewhere, the glitch is inside the clip: the seam ratio misses it
    assert cut_share(glitchy) == pytest.approx(14 / 16)


def test_rendered_period_is_a_perfect_loop_and_refuses_one_way_motion() -> None:
    bounce = next(c for c in loopable_cases(3000, 50) if c.scene.objects[0].motion == "bounce")
    period = rendered_period(bounce)
    assert period.shape == (16, 64, 64, 3)
    assert not torch.equal(period[8], period[0])  # it moves, and comes back:
    assert seam_ratio(torch.cat([period, period[:1]])[1:]) == pytest.approx(seam_ratio(period.roll(-1, dims=0)))
    from sora_core.world.dataset import prompt_set

    one_way = next(c for c in prompt_set(50, seed=3000, kind="short") if c.scene.objects[0].motion == "right")
    with pytest.raises(ValueError, match="does not end where it starts"):
        rendered_period(one_way)


def test_bounce_pace_tells_a_fall_from_rest_from_the_old_worlds_bounce() -> None:
    from sora_core.world.render import render

    cases = bounce_cases(3, seed=8000)
    assert len(cases) == 3 and all(c.scene.objects[0].motion == "bounce" for c in cases)
    for case in cases:
        fall = render(case.scene)  # the world's bounce: at rest at the top, fastest on the floor
        assert pace(fall) < 0.6
        # the old world's bounce (height 1 - (2s - 1)^2 of the fall, fastest at the top) from the same frames:
        # at each of its times, the frame of the fall at that height ((2s')^2 = height, mirrored after the floor)
        t = fall.shape[0]
        s = torch.linspace(0, 1, t)
        when = (1 - (2 * s - 1) ** 2).sqrt() / 2
        order = torch.where(s <= 0.5, when, 1 - when).mul(t - 1).round().long()
        assert order[0] == 0 and order[t // 2] == t // 2 and order[-1] == t - 1
        assert pace(fall[order]) > 1.4


def test_skip_guidance_trials_parse_and_weaken_only_the_named_blocks() -> None:
    from sora_core.conditioning import conditioned_velocity
    from sora_core.config import DiTConfig
    from sora_core.dit import WanDiT

    assert parse_trial("0.5@1,4") == (0.5, (1, 4)) and parse_trial("0") == (0.0, ())
    for bad in ("x@3", "0.5"):
        with pytest.raises(argparse.ArgumentTypeError, match="@"):
            parse_trial(bad)
    torch.manual_seed(0)
    dit = WanDiT(DiTConfig(dim=32, ffn_dim=64, num_heads=2, num_layers=2, text_dim=8, text_len=6, freq_dim=16)).eval()
    for p in dit.parameters():
        p.data += 0.1 * torch.randn_like(p)
    x, sigma = torch.randn(1, 16, 2, 4, 4), torch.tensor([0.7])
    context, negative = torch.randn(1, 3, 8), torch.zeros(1, 5, 8)
    with torch.no_grad():
        plain = conditioned_velocity(dit, context, negative, 3.0, None)(x, sigma)
        tokens = torch.randn(1, 7, 32)
        attn = dit.blocks[1].self_attn
        t = torch.full((1, 2), 700.0)
        with value_passthrough(dit, [1]):
            torch.testing.assert_close(attn(tokens, None), attn.o(attn.v(tokens)))
            assert dit.blocks[0].self_attn.forward.__func__ is type(attn).forward  # other blocks untouched
            weak = dit(x, t, context)
        assert "forward" not in vars(attn)  # restored
        pos = dit(x, t, context)
        pushed = skip_guided(dit, context, negative, 3.0, 0.5, (1,))(x, sigma)
    assert (pos - weak).abs().mean() > 1e-3
    torch.testing.assert_close(pushed, plain + 0.5 * (pos - weak))


def test_the_skip_guidance_stand_in_guides_text_to_video_only() -> None:
    calls = []

    def plain(dit, context, negative, cfg, cond, *, spans=None, circular=False):
        calls.append((cond, spans, circular))
        return "plain"

    patched = with_skip_guidance(plain, 0.5, (1,))
    context, negative = torch.zeros(1, 3, 8), torch.zeros(1, 3, 8)
    # as sample_latent calls it for text-to-video: spans and circular passed explicitly
    assert patched(None, context, negative, 3.0, None, spans=None, circular=False) != "plain"
    assert patched(None, context, negative, 3.0, None, spans=None, circular=True) == "plain"
    assert patched(None, context, negative, 3.0, "known", spans=None, circular=False) == "plain"
    assert patched(None, context, None, 1.0, None, spans=None, circular=False) == "plain"
    assert len(calls) == 3


def test_models_are_timed_in_interleaved_rounds_after_a_warm_up_each(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(quality, "generate", lambda prompt, models, seed: calls.append((models, seed)))
    times = quality.interleaved_times(["a", "b"], runs=3)
    # one warm-up per model, then each round runs every model once, so a slow spell falls on both
    assert calls == [("a", 0), ("b", 0), ("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]
    assert [len(t) for t in times] == [3, 3]


def test_cpu_name_reads_the_model_name_and_falls_back_without_cpuinfo(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from measure import cpu_name

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13 64-Core Processor\n"
                    "processor\t: 1\nmodel name\t: AMD EPYC 7B13 64-Core Processor\n")
    assert cpu_name(info) == "AMD EPYC 7B13 64-Core Processor"
    monkeypatch.setattr("platform.processor", lambda: "")
    assert cpu_name(tmp_path / "missing") == "unknown CPU"
    info.write_text("processor\t: 0\nCPU implementer\t: 0x41\n")  # aarch64 Linux has no model name line
    assert cpu_name(info) == "unknown CPU"


def test_whole_clip_prompts_keep_each_shots_pass_on_its_frames_where_the_shipped_way_mixes_them() -> None:
    class MeanOfPrompts(torch.nn.Module):  # velocity everywhere = mean over frames of the prompt each frame reads
        dtype = torch.float32

        def forward(self, x, t, context, frame_prompt=None):
            read = context[:, 0, 0, None] if frame_prompt is None else context[:, frame_prompt, 0, 0]
            return read.mean(1).view(-1, 1, 1, 1, 1).expand_as(x).clone()

    spans = [PromptSpan(torch.full((1, 2, 8), 1.0), torch.tensor([True, True, False])),
             PromptSpan(torch.full((1, 2, 8), 4.0), torch.tensor([False, False, True]))]
    x, sigma = torch.zeros(1, 16, 3, 2, 2), torch.tensor(0.5)
    shipped = conditioned_velocity(MeanOfPrompts(), None, None, 1.0, None, spans=spans)(x, sigma)
    assert shipped[0, 0, :, 0, 0].tolist() == [2.0, 2.0, 2.0]  # frames read 1, 1, 4 in one pass
    old = whole_clip_prompts(conditioned_velocity)(MeanOfPrompts(), None, None, 1.0, None, spans=spans)(x, sigma)
    assert old[0, 0, :, 0, 0].tolist() == [1.0, 1.0, 4.0]  # each pass read one prompt everywhere
    single = whole_clip_prompts(lambda *a, **k: "plain")(None, spans[0].context, None, 1.0, None)
    assert single == "plain"
