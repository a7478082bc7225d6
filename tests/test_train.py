"""The training code of the default model: resumable state, conditioning masks, a tiny end-to-end run."""

from __future__ import annotations

import argparse
import dataclasses
import json
import random

import pytest
import torch

from sora_core.config import DiTConfig, VAEConfig
from sora_core.dit import WanDiT
from sora_core.train import dit_stage, vae_stage
from sora_core.train.data import DIT_BUCKETS, clip_batch
from sora_core.train.state import load_state, save_state
from sora_core.vae import WanVAE

TINY_VAE = VAEConfig(base_dim=4, z_dim=16, dim_mult=(1, 2, 2, 2), num_res_blocks=1,
                     latents_mean=(0.0,) * 16, latents_std=(1.0,) * 16)
TINY_DIT = DiTConfig(dim=64, ffn_dim=128, num_heads=1, num_layers=1, text_dim=384, text_len=80, freq_dim=32)


def test_batches_depend_only_on_seed_and_step() -> None:
    a, b = clip_batch(3, 17, 2, DIT_BUCKETS), clip_batch(3, 17, 2, DIT_BUCKETS)
    assert torch.equal(a.video, b.video) and a.captions == b.captions
    c = clip_batch(3, 18, 2, DIT_BUCKETS)
    assert not (c.video.shape == a.video.shape and torch.equal(c.video, a.video))
    assert a.video.min() >= -1 and a.video.max() <= 1 and a.video.shape[:2] == (2, 3)


def test_fast_only_batches_hold_only_fast_movers_and_stay_reproducible() -> None:
    first = clip_batch(5, 2, 6, [(64, 64, 17)], captions=False, fast_only=True)
    assert {s.objects[0].speed for s in first.scenes} == {"fast"}
    again = clip_batch(5, 2, 6, [(64, 64, 17)], captions=False, fast_only=True)
    assert torch.equal(first.video, again.video)
    mixed = [clip_batch(5, step, 6, [(64, 64, 17)], captions=False) for step in range(4)]
    assert {s.objects[0].speed for b in mixed for s in b.scenes} == {"slow", "fast"}  # the default keeps both


def test_state_round_trip_resumes_the_optimizer(tmp_path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)

    def step(m, o):
        o.zero_grad()
        m(torch.ones(2, 4)).square().sum().backward()
        o.step()

    step(model, opt)
    save_state(tmp_path / "s.safetensors", model, opt, 1, {"note": "x"})
    step(model, opt)  # the uninterrupted run's second step
    model2 = torch.nn.Linear(4, 3)
    opt2 = torch.optim.AdamW(model2.parameters(), lr=0.1)
    n, info = load_state(tmp_path / "s.safetensors", model2, opt2)
    assert (n, info) == (1, {"note": "x"})
    step(model2, opt2)
    assert torch.allclose(model.weight, model2.weight, atol=1e-7)


def test_condition_masks_cover_first_last_and_spans() -> None:
    rng = random.Random(0)
    masks = [dit_stage.condition_mask(rng, 5) for _ in range(400)]
    assert 0.4 < sum(not m.any() for m in masks) / len(masks) < 0.6  # text-to-video stays the main task
    assert any(m[0] and not m[1:].any() for m in masks)
    assert any(m[-1] and not m[:-1].any() for m in masks)
    assert any(m[0] and m[-1] and not m[1:-1].any() for m in masks)
    # Runs of first frames (extending forward) and of last frames (extending backward), 2 to 4 long.
    assert {int(m.sum()) for m in masks if m[0] and not m[-1] and m.sum() > 1 and not m[m.sum():].any()} == {2, 3, 4}
    assert {int(m.sum()) for m in masks if m[-1] and not m[0] and m.sum() > 1 and not m[:-m.sum()].any()} == {2, 3, 4}
    # Runs at both ends around a span to generate (blend, re-cut), each end run 1 to 3 long.
    both_ends = [m for m in masks if m[0] and m[-1] and m[1:-1].any() and int(m.int().diff().abs().sum()) == 2]
    assert {(int(m.int().argmin()), int(m.flip(0).int().argmin())) for m in both_ends} >= {(1, 2), (2, 1), (3, 1)}
    assert all(not m.all() for m in masks)  # something is always left to generate


def test_flow_loss_ignores_clean_frames() -> None:
    torch.manual_seed(0)
    dit = WanDiT(TINY_DIT)
    x0, noise = torch.randn(2, 16, 3, 4, 4), torch.randn(2, 16, 3, 4, 4)
    ctx = torch.randn(2, 80, 384)
    sigma = torch.tensor([0.5, 0.9])
    known = torch.tensor([[True, False, False], [False, False, True]])
    base = dit_stage.flow_loss(dit, x0, ctx, sigma, noise, known)
    # The clean frames' noise never matters: they are replaced by x0 and out of the loss...
    noise2 = noise.clone()
    noise2[0, :, 0] += 5
    noise2[1, :, 2] -= 5
    assert torch.allclose(dit_stage.flow_loss(dit, x0, ctx, sigma, noise2, known), base)
    # ... but the noisy frames' noise does.
    noise2[0, :, 1] += 5
    assert not torch.allclose(dit_stage.flow_loss(dit, x0, ctx, sigma, noise2, known), base)


@pytest.mark.slow
def test_tiny_end_to_end_run_resumes_and_exports_a_loadable_model(tmp_path, monkeypatch) -> None:
    from sora_core.pipeline import bundled_defaults, generate, load_models
    from sora_core.text_minilm import MiniLMTextEncoder
    from sora_core.train.export import DEFAULT_SAMPLING, export_default, with_latent_stats

    monkeypatch.setattr(dit_stage, "DIT_BUCKETS", ((64, 64, 9),))
    run = tmp_path / "run"
    vae = vae_stage.train_vae(run, steps=2, batch=1, config=TINY_VAE, save_every=1)
    again = vae_stage.train_vae(run, steps=2, batch=1, config=TINY_VAE)  # finished: resumes at 2, no step
    assert all(torch.equal(a, b) for a, b in zip(vae.state_dict().values(), again.state_dict().values(), strict=True))
    mean, std = vae_stage.latent_stats(vae, seed=0, clips=8)
    vae = with_latent_stats(vae, mean, std)
    pool = dit_stage.build_pool(vae, seed=0, clips_per_bucket=4, batch=4)
    text = MiniLMTextEncoder()
    assert pool.objects is not None and pool.objects[(64, 64, 9)].shape == (4, 3, 8, 8)
    _, ema = dit_stage.train_dit(run, pool, text, steps=2, batch=2, config=TINY_DIT, object_weight=4.0)
    path = export_default(tmp_path / "default.safetensors", ema, vae, text, {"steps": 2})
    assert path.stat().st_size < 2**20  # MiniLM's weights are not copied in
    models = load_models(path)
    # the sampling defaults round-trip through the file, and a new export samples like the shipped model
    assert models.trained and models.defaults == DEFAULT_SAMPLING == bundled_defaults()
    clip = generate("a red circle moves right", models=models, frames=9, width=64, height=64, steps=2, seed=1)
    assert clip.frames.shape == (9, 64, 64, 3)


def test_flow_loss_weighs_object_cells_per_frame() -> None:
    torch.manual_seed(0)
    dit = WanDiT(TINY_DIT)
    x0, noise = torch.randn(1, 16, 2, 4, 4), torch.randn(1, 16, 2, 4, 4)
    ctx, sigma, known = torch.randn(1, 80, 384), torch.tensor([0.7]), torch.zeros(1, 2, dtype=torch.bool)
    plain = dit_stage.flow_loss(dit, x0, ctx, sigma, noise, known)
    assert torch.allclose(dit_stage.flow_loss(dit, x0, ctx, sigma, noise, known, torch.ones(1, 2, 4, 4)), plain)
    # The same loss by hand: squared velocity error per cell, each frame a weighted mean, frames averaged.
    with torch.no_grad():
        t = torch.full((1, 2), 700.0)
        err = (dit((1 - 0.7) * x0 + 0.7 * noise, t, ctx) - (noise - x0)).square().mean(dim=1)[0]  # [T, h, w]
    weight = torch.ones(2, 4, 4)
    weight[0, 1, 2] = weight[1, 3, 0] = 5.0
    by_hand = ((err * weight).sum(dim=(1, 2)) / weight.sum(dim=(1, 2))).mean()
    got = dit_stage.flow_loss(dit, x0, ctx, sigma, noise, known, weight[None])
    assert got.item() == pytest.approx(by_hand.item(), rel=1e-5)
    assert abs(got.item() - plain.item()) > 1e-4


def test_pool_keeps_the_latent_cells_that_show_an_object(tmp_path) -> None:
    from sora_core.train.data import object_pixels

    clips = clip_batch(0, 5, 3, [(64, 64, 9)])
    pixels = object_pixels(clips.scenes, clips.video)
    cells = dit_stage.latent_cells(pixels, temporal=4, spatial=8)
    assert cells.shape == (3, 3, 8, 8) and cells.dtype == torch.bool
    # A cell is set exactly when an object pixel lies in its 8x8 block of its frame group (every cell checked).
    for b, t, y, x in torch.cartesian_prod(*(torch.arange(n) for n in cells.shape)).tolist():
        frames = slice(0, 1) if t == 0 else slice(4 * t - 3, 4 * t + 1)
        block = pixels[b, 0, frames, 8 * y:8 * y + 8, 8 * x:8 * x + 8]
        assert bool(cells[b, t, y, x]) == bool(block.any()), (b, t, y, x)
    assert cells.flatten(2).any(-1).all()  # every frame group shows its object
    assert 0 < cells.float().mean() < 0.6  # ... on part of the frame

    pool = dit_stage.LatentPool({(64, 64, 9): torch.randn(3, 16, 3, 8, 8)}, {(64, 64, 9): clips.captions},
                                {(64, 64, 9): cells})
    dit_stage.save_pool(pool, tmp_path / "pool.safetensors")
    back = dit_stage.load_pool(tmp_path / "pool.safetensors")
    assert torch.equal(back.objects[(64, 64, 9)], cells) and torch.equal(back.latents[(64, 64, 9)],
                                                                       pool.latents[(64, 64, 9)])
    # A pool saved without its object cells cannot train with an object weight, and says how to fix it.
    old = dit_stage.LatentPool(pool.latents, pool.captions)
    dit_stage.save_pool(old, tmp_path / "old.safetensors")
    old = dit_stage.load_pool(tmp_path / "old.safetensors")
    assert old.objects is None
    with pytest.raises(ValueError, match="delete the run's latent_pool.safetensors"):
        dit_stage.train_dit(tmp_path / "run", old, None, steps=1, config=TINY_DIT, object_weight=4.0)


def test_mid_clip_windows_start_at_a_later_latent_frame() -> None:
    import random

    from sora_core.train.dit_stage import mid_clip_window

    windows = {(w.start, w.stop) for w in (mid_clip_window(random.Random(i), 9) for i in range(200))}
    assert windows == {(0, 9), *((s, s + 5) for s in range(1, 5))}  # whole clips; windows at 1..4
    assert all(mid_clip_window(random.Random(i), 5) == slice(0, 5) for i in range(20))


def test_decoder_loss_weighs_object_pixels_more() -> None:
    from dataclasses import replace

    from sora_core.train.data import object_pixels
    from sora_core.train.decoder_stage import OBJECT_WEIGHT
    from sora_core.train.vae_stage import weighted_pixel_loss
    from sora_core.world.render import render, to_model_range

    clips = clip_batch(0, 3, 2, [(64, 64, 9)])
    objects = object_pixels(clips.scenes, clips.video)
    assert objects.shape == (2, 1, 9, 64, 64)
    assert 0 < objects.float().mean() < 0.5
    # Every frame shows its object; a scene without objects has none.
    assert objects.flatten(3, 4).any(-1).all()
    bare = [replace(s, objects=()) for s in clips.scenes]
    assert not object_pixels(bare, torch.stack([to_model_range(render(s)) for s in bare])).any()
    # Off by the same amount, an object pixel costs 1 + OBJECT_WEIGHT times a background pixel.
    video = clips.video
    (b, _, t, y, x), (b2, _, t2, y2, x2) = objects.nonzero()[0].tolist(), (~objects).nonzero()[0].tolist()
    on_object, on_background = video.clone(), video.clone()
    on_object[b, :, t, y, x] += 0.5
    on_background[b2, :, t2, y2, x2] += 0.5
    ratio = (weighted_pixel_loss(on_object, video, objects, OBJECT_WEIGHT)
             / weighted_pixel_loss(on_background, video, objects, OBJECT_WEIGHT))
    assert ratio.item() == pytest.approx(1 + OBJECT_WEIGHT, rel=1e-4)


def test_a_continued_run_keeps_the_checkpoints_latent_normalisation(tmp_path) -> None:
    from sora_core.train.__main__ import run_latent_stats

    def measure_fails():
        raise AssertionError("a continued run with a frozen VAE must not re-measure the latent statistics")

    kept = run_latent_stats(tmp_path / "a.json", [[0.5, -1.0], [2.0, 3.0]], measure_fails)
    assert kept == ([0.5, -1.0], [2.0, 3.0])
    assert run_latent_stats(tmp_path / "a.json", None, measure_fails) == kept  # fixed once, then read back
    measured = run_latent_stats(tmp_path / "b.json", None, lambda: ([1.0], [4.0]))
    assert measured == ([1.0], [4.0])


def test_training_device_picks_a_gpu_when_torch_sees_one(monkeypatch) -> None:
    from sora_core.train.loop import training_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert training_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="sees no CUDA GPU; use --device cpu"):
        training_device("cuda")
    with pytest.raises(ValueError, match="'gpu0' is not a torch device"):
        training_device("gpu0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert training_device("auto") == torch.device("cuda")
    assert training_device("cuda:1") == torch.device("cuda", 1)
    assert training_device("cpu") == torch.device("cpu")


def test_decoder_only_run_exports_the_init_dit_with_the_new_decoder(tmp_path) -> None:
    from sora_core.loading import load_dit, load_vae
    from sora_core.loading.safetensors_io import read_metadata
    from sora_core.train.__main__ import main

    shipped = "sora_core/assets/default.safetensors"
    out = tmp_path / "decoder.safetensors"
    assert main(["--run", str(tmp_path / "run"), "--init-from", shipped, "--vae-steps", "0", "--decoder-only",
                 "--decoder-steps", "1", "--decoder-lr", "1e-4", "--out", str(out)]) == 0
    before_dit, after_dit = load_dit(shipped).state_dict(), load_dit(out).state_dict()
    assert all(torch.equal(before_dit[k], after_dit[k]) for k in before_dit)
    before, after = load_vae(shipped), load_vae(out)
    assert after.config == before.config  # same latent normalisation: the DiT's latents mean the same
    moved = {k for k, v in before.state_dict().items() if not torch.equal(v, after.state_dict()[k])}
    assert moved and all(k.startswith(("decoder.", "conv2.")) for k in moved)
    record = json.loads(read_metadata(out)["training"])
    assert record["decoder_finetune"]["steps"] == 1 and not record["decoder_finetune"]["fast_only"]
    assert record["dit_steps"] > 0  # the init checkpoint's record is kept


def test_decoder_only_export_without_init_checkpoint_is_refused(tmp_path, capsys) -> None:
    from sora_core.train.__main__ import main

    with pytest.raises(SystemExit):
        main(["--run", str(tmp_path), "--decoder-only", "--decoder-steps", "1", "--out", str(tmp_path / "x")])
    assert "--init-from" in capsys.readouterr().err


def test_decoder_options_without_decoder_only_are_refused(tmp_path, capsys) -> None:
    from sora_core.train.__main__ import main

    with pytest.raises(SystemExit):
        main(["--run", str(tmp_path), "--decoder-steps", "10", "--decoder-fast-only"])
    err = capsys.readouterr().err
    assert "--decoder-steps, --decoder-fast-only" in err and "--decoder-only" in err


def test_vae_object_weight_only_changes_the_loss_where_objects_are() -> None:
    from sora_core.train.data import object_pixels
    from sora_core.train.vae_stage import vae_loss

    torch.manual_seed(0)
    vae = WanVAE(TINY_VAE)
    clips = clip_batch(0, 1, 2, [(64, 64, 9)], captions=False)
    objects = object_pixels(clips.scenes, clips.video)

    def loss(**kw) -> float:
        return vae_loss(vae, clips.video, torch.Generator().manual_seed(3), **kw)[0].item()

    plain = loss()
    # No object pixels: the weighted loss is the plain one; with them it weighs the (badly drawn) objects more.
    assert loss(objects=torch.zeros_like(objects), object_weight=4.0) == pytest.approx(plain, rel=1e-5)
    assert loss(objects=objects, object_weight=4.0) != pytest.approx(plain, rel=1e-3)
    with pytest.raises(ValueError, match="object mask"):
        loss(object_weight=4.0)
    with pytest.raises(ValueError, match="object_weight=-1"):
        loss(objects=objects, object_weight=-1.0)


def test_train_vae_uses_its_object_weight(tmp_path) -> None:
    weights = [vae_stage.train_vae(tmp_path / str(w), steps=1, batch=1, config=TINY_VAE, object_weight=w).state_dict()
               for w in (0.0, 4.0)]
    assert any(not torch.equal(a, b) for a, b in zip(weights[0].values(), weights[1].values(), strict=True))


def test_a_pool_grows_to_the_pool_built_at_the_larger_size(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(dit_stage, "DIT_BUCKETS", ((64, 64, 9),))
    torch.manual_seed(0)
    vae = WanVAE(TINY_VAE).eval()
    small = dit_stage.build_pool(vae, seed=2, clips_per_bucket=5, batch=3)
    grown = dit_stage.build_pool(vae, seed=2, clips_per_bucket=11, batch=3, grow=small)
    whole = dit_stage.build_pool(vae, seed=2, clips_per_bucket=11, batch=3)
    key = (64, 64, 9)
    assert grown.captions[key] == whole.captions[key] and len(set(whole.captions[key])) == 11
    assert torch.equal(grown.latents[key][:5], small.latents[key])  # the kept clips stay as they were
    assert torch.allclose(grown.latents[key], whole.latents[key], atol=1e-5)
    assert torch.equal(grown.objects[key], whole.objects[key])
    # A pool of another seed cannot grow: its clips would not be this seed's.
    with pytest.raises(ValueError, match="not built with this seed, batch and VAE"):
        dit_stage.build_pool(vae, seed=3, clips_per_bucket=8, batch=3, grow=small)
    assert not dit_stage.pool_needs_clips(small, 5) and dit_stage.pool_needs_clips(small, 6)
    # A bucket the pool lacks is encoded (the run's command sees it is missing); the buckets it has are kept.
    monkeypatch.setattr(dit_stage, "DIT_BUCKETS", ((64, 64, 9), (64, 64, 5)))
    assert dit_stage.pool_needs_clips(small, 5)
    more = dit_stage.build_pool(vae, seed=2, clips_per_bucket=5, batch=3, grow=small)
    assert not dit_stage.pool_needs_clips(more, 5)
    assert torch.equal(more.latents[key], small.latents[key])
    assert more.latents[(64, 64, 5)].shape == (5, 16, 2, 8, 8)


def test_a_widened_decoder_decodes_exactly_as_before_and_keeps_the_encoder() -> None:
    from sora_core.train.widen import widen_decoder

    torch.manual_seed(0)
    vae = WanVAE(TINY_VAE).eval()  # its decoder has a mid attention block and temporal upsamples
    for p in vae.parameters():  # fresh convs are near zero: give every weight a say in the output
        p.data += 0.1 * torch.randn_like(p)
    wide = widen_decoder(vae, 3).eval()
    assert wide.config.decoder_base_dim == 12 and wide.config.base_dim == 4
    assert wide.decoder.conv1.out_channels == 3 * vae.decoder.conv1.out_channels
    video = torch.rand(1, 3, 9, 32, 32) * 2 - 1
    with torch.no_grad():
        z = vae.encode(video)
        assert torch.equal(wide.encode(video), z)
        before, after = vae.decode(z), wide.decode(z)
        assert before.abs().mean() > 0.05
        torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-4)
        nudged = widen_decoder(vae, 3, noise=0.02).eval().decode(z)
    change = (nudged - before).abs().mean() / before.abs().mean()
    assert 0 < change < 0.1  # the copies are parted, the function barely changed


def test_decoder_width_run_exports_a_wider_decoder_that_loads_without_its_config(tmp_path) -> None:
    from sora_core.loading import _infer_vae_config, load_dit, load_vae
    from sora_core.loading.safetensors_io import read_safetensors
    from sora_core.train.__main__ import main

    shipped = "sora_core/assets/default.safetensors"
    out = tmp_path / "wide.safetensors"
    assert main(["--run", str(tmp_path / "run"), "--init-from", shipped, "--vae-steps", "0", "--decoder-only",
                 "--decoder-width", "2", "--decoder-steps", "1", "--decoder-lr", "1e-5", "--out", str(out)]) == 0
    before, after = load_vae(shipped), load_vae(out)
    assert after.config.decoder_dim == 2 * before.config.decoder_dim
    assert after.config.latents_mean == before.config.latents_mean  # the DiT's latent space is kept
    assert all(torch.equal(v, after.state_dict()[k]) for k, v in before.state_dict().items()
               if k.startswith("encoder."))
    assert torch.equal(load_dit(out).blocks[0].ffn[0].weight, load_dit(shipped).blocks[0].ffn[0].weight)
    weights, _ = read_safetensors(out)
    vae_weights = {k.removeprefix("vae."): v for k, v in weights.items() if k.startswith("vae.")}
    assert _infer_vae_config(vae_weights, out).decoder_dim == after.config.decoder_dim
    video = torch.rand(1, 3, 5, 64, 64) * 2 - 1
    with torch.no_grad():
        z = before.encode(video)
        change = (after.decode(z) - before.decode(z)).abs().mean()
    assert change < 0.05  # one gentle step from the widened copy: still the shipped decoder's picture
    # A run from the widened checkpoint builds its VAE at that width.
    again = tmp_path / "again.safetensors"
    assert main(["--run", str(tmp_path / "run2"), "--init-from", str(out), "--vae-steps", "0", "--decoder-only",
                 "--out", str(again)]) == 0
    assert all(torch.equal(v, load_vae(again).state_dict()[k]) for k, v in after.state_dict().items())


def test_a_finer_patch_dit_computes_the_coarse_one_on_the_upsampled_latent() -> None:
    import torch.nn.functional as F

    from sora_core.train.repatch import repatch_state

    torch.manual_seed(0)
    coarse = WanDiT(TINY_DIT).eval()
    for p in coarse.parameters():  # fresh heads and gates start at zero: give every weight a say
        p.data += 0.1 * torch.randn_like(p)
    fine_config = dataclasses.replace(TINY_DIT, patch_size=(1, 1, 1))
    fine = WanDiT(fine_config).eval()
    fine.load_state_dict(repatch_state(coarse.state_dict(), TINY_DIT.patch_size, (1, 1, 1), TINY_DIT.out_dim))
    x, t = torch.randn(2, TINY_DIT.in_dim, 3, 4, 6), torch.tensor([300.0, 800.0])
    context = torch.randn(2, 5, TINY_DIT.text_dim)
    with torch.no_grad():
        want = F.avg_pool3d(coarse(x.repeat_interleave(2, 3).repeat_interleave(2, 4), t, context), (1, 2, 2))
        got = fine(x, t, context)
    assert got.shape == x.shape and want.abs().mean() > 0.05
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="divide or multiply both spatial sizes"):
        repatch_state(coarse.state_dict(), (1, 2, 2), (1, 1, 2), TINY_DIT.out_dim)


def test_a_coarser_patch_dit_computes_the_fine_one_on_the_pooled_latent() -> None:
    import torch.nn.functional as F

    from sora_core.train.repatch import repatch_state

    torch.manual_seed(0)
    fine = WanDiT(TINY_DIT).eval()
    for p in fine.parameters():  # fresh heads and gates start at zero: give every weight a say
        p.data += 0.1 * torch.randn_like(p)
    coarse = WanDiT(dataclasses.replace(TINY_DIT, patch_size=(1, 4, 4))).eval()
    coarse.load_state_dict(repatch_state(fine.state_dict(), TINY_DIT.patch_size, (1, 4, 4), TINY_DIT.out_dim))
    x, t = torch.randn(2, TINY_DIT.in_dim, 3, 8, 12), torch.tensor([300.0, 800.0])
    context = torch.randn(2, 5, TINY_DIT.text_dim)
    with torch.no_grad():
        want = fine(F.avg_pool3d(x, (1, 2, 2)), t, context).repeat_interleave(2, 3).repeat_interleave(2, 4)
        got = coarse(x, t, context)
    assert got.shape == x.shape and want.abs().mean() > 0.05
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="divide or multiply both spatial sizes"):
        repatch_state(fine.state_dict(), (1, 2, 2), (1, 4, 2), TINY_DIT.out_dim)


def test_dit_setup_converts_the_init_dit_to_finer_patches_only_when_asked() -> None:
    from sora_core.train.__main__ import dit_setup

    coarse = WanDiT(TINY_DIT)
    config, state = dit_setup(None, coarse)
    assert config == TINY_DIT and torch.equal(state["patch_embedding.weight"], coarse.patch_embedding.weight)
    config, state = dit_setup(1, coarse)
    assert config.patch_size == (1, 1, 1) and state["patch_embedding.weight"].shape[-2:] == (1, 1)
    WanDiT(config).load_state_dict(state)
    config, state = dit_setup(4, coarse)
    assert config.patch_size == (1, 4, 4) and state["patch_embedding.weight"].shape[-2:] == (4, 4)
    WanDiT(config).load_state_dict(state)
    config, state = dit_setup(1, None)
    assert config.patch_size == (1, 1, 1) and state is None


def test_resuming_a_run_with_another_patch_size_names_the_option(tmp_path, monkeypatch) -> None:
    from sora_core.text_minilm import MiniLMTextEncoder

    bucket = (64, 64, 9)
    monkeypatch.setattr(dit_stage, "DIT_BUCKETS", (bucket,))
    pool = dit_stage.LatentPool({bucket: torch.randn(2, 16, 3, 8, 8)}, {bucket: ["a red circle", "a blue square"]})
    text = MiniLMTextEncoder()
    dit_stage.train_dit(tmp_path, pool, text, steps=1, batch=1, config=TINY_DIT)
    finer = dataclasses.replace(TINY_DIT, patch_size=(1, 1, 1))
    with pytest.raises(ValueError, match="same --dit-patch"):
        dit_stage.train_dit(tmp_path, pool, text, steps=2, batch=1, config=finer)


def test_slice_buckets_cut_clips_from_longer_scenes_at_their_slower_pace() -> None:
    from sora_core.train.data import LONG_SCENE_BUCKET, object_pixels
    from sora_core.world.motion import travel_px
    from sora_core.world.render import render, to_model_range

    batch = clip_batch(4, 1, 6, [LONG_SCENE_BUCKET])
    assert batch.video.shape[2] == 33 and len(batch.starts) == 6
    lengths = {s.frames for s in batch.scenes}
    assert len(lengths) > 1 and all(41 <= n <= 81 and (n - 1) % 4 == 0 for n in lengths)
    for clip, scene, start in zip(batch.video, batch.scenes, batch.starts, strict=True):
        assert 0 <= start <= scene.frames - 33
        assert torch.equal(clip, to_model_range(render(scene)[start:start + 33]))
        o = scene.objects[0]
        if o.motion in ("left", "right", "up", "down") and o.speed == "fast":  # slower per frame than a whole clip
            whole = travel_px(o.shape, o.size, o.motion, o.speed, 64, 64, 33) / 32
            assert travel_px(o.shape, o.size, o.motion, o.speed, 64, 64, scene.frames) / (scene.frames - 1) < whole
    cells = object_pixels(batch.scenes, batch.video)
    assert cells.shape == (6, 1, 33, 64, 64) and cells.any(dim=(1, 3, 4)).all()  # the object in every frame
    assert clip_batch(4, 1, 6, [(64, 64, 17)]).starts is None


def test_context_masks_know_a_run_of_frames_at_one_end() -> None:
    rng = random.Random(1)
    masks = [dit_stage.context_mask(rng, 5) for _ in range(400)]
    for m in masks:
        k = int(m.sum())
        assert 1 <= k <= 4 and (bool(m[:k].all()) or bool(m[-k:].all()))
    assert 0.6 < sum(bool(m[0]) for m in masks) / len(masks) < 0.8  # forward extension the most
    assert {int(m.sum()) for m in masks} == {1, 2, 3, 4}


def record_known_masks(monkeypatch) -> list[tuple[int, torch.Tensor]]:
    """(latent frames, known mask [B, T]) of every batch train_dit hands the flow loss, appended as it trains."""
    seen: list[tuple[int, torch.Tensor]] = []
    real_loss = dit_stage.flow_loss

    def recording_loss(dit, x0, context, sigma, noise, known, *args):
        seen.append((x0.shape[2], known.clone()))
        return real_loss(dit, x0, context, sigma, noise, known, *args)

    monkeypatch.setattr(dit_stage, "flow_loss", recording_loss)
    return seen


def test_slices_of_longer_scenes_are_trained_only_with_known_frames(tmp_path, monkeypatch) -> None:
    from sora_core.text_minilm import MiniLMTextEncoder
    from sora_core.train.data import LONG_SCENE_BUCKET

    whole = (64, 64, 9)
    pool = dit_stage.LatentPool({whole: torch.randn(2, 16, 3, 8, 8), LONG_SCENE_BUCKET: torch.randn(2, 16, 9, 8, 8)},
                                {whole: ["a red circle"] * 2, LONG_SCENE_BUCKET: ["a blue square"] * 2})
    seen = record_known_masks(monkeypatch)
    text = MiniLMTextEncoder()
    buckets = dit_stage.training_buckets(long_scenes=6)
    assert buckets.count(LONG_SCENE_BUCKET) == 6 and buckets[:6] == DIT_BUCKETS
    dit_stage.train_dit(tmp_path, pool, text, steps=12, batch=4, config=TINY_DIT,
                        buckets=(whole, LONG_SCENE_BUCKET))
    slices = [k for t, k in seen if t != 3]  # the slice bucket's 9 latent frames, or a 5-frame window of them
    wholes = [k for t, k in seen if t == 3]
    assert slices and wholes
    assert all(bool(row.any()) and not bool(row.all()) for k in slices for row in k)
    assert any(not bool(row.any()) for k in wholes for row in k)  # whole clips keep text-to-video
    with pytest.raises(ValueError, match="lacks the buckets"):
        dit_stage.train_dit(tmp_path, pool, text, steps=1, batch=1, config=TINY_DIT, buckets=((96, 64, 17),))


def test_mid_clip_windows_are_trained_only_as_forward_extensions(tmp_path, monkeypatch) -> None:
    """A window cut from a clip's middle opens on a 4-frame group: it must come with its first frames known,
    or the DiT learns to open text-to-video clips on a group (drawn in another colour for the first frames)."""
    from sora_core.text_minilm import MiniLMTextEncoder

    long = (64, 64, 33)
    pool = dit_stage.LatentPool({long: torch.randn(2, 16, 9, 8, 8)}, {long: ["a red circle"] * 2})
    seen = record_known_masks(monkeypatch)
    dit_stage.train_dit(tmp_path, pool, MiniLMTextEncoder(), steps=16, batch=4, config=TINY_DIT, buckets=(long,))
    windows = [row for t, k in seen if t == 5 for row in k]
    wholes = [row for t, k in seen if t == 9 for row in k]
    assert windows and wholes
    for row in windows:  # a run of first frames known, at least one frame to generate
        known = int(row.sum())
        assert 1 <= known <= 4 and bool(row[:known].all())
    assert any(not bool(row.any()) for row in wholes)  # whole clips keep text-to-video


def test_buckets_are_drawn_alike_from_a_built_and_a_loaded_pool(tmp_path, monkeypatch) -> None:
    """A pool built in the run's own process and the same pool loaded on resume hold their buckets in another
    order; the buckets drawn must not depend on it, or a resumed run would not replay its data."""
    from sora_core.text_minilm import MiniLMTextEncoder

    buckets = ((64, 64, 17), (64, 64, 9), (64, 64, 33))
    pool = dit_stage.LatentPool({b: torch.randn(2, 16, (b[2] - 1) // 4 + 1, 8, 8) for b in buckets},
                                {b: ["a red circle"] * 2 for b in buckets})
    dit_stage.save_pool(pool, tmp_path / "pool.safetensors")
    loaded = dit_stage.load_pool(tmp_path / "pool.safetensors")
    assert list(loaded.latents) != list(pool.latents)  # the file keeps them by name
    drawn: list[list[int]] = []
    real_loss = dit_stage.flow_loss

    def recording_loss(dit, x0, *args, **kwargs):
        drawn[-1].append(x0.shape[2])
        return real_loss(dit, x0, *args, **kwargs)

    monkeypatch.setattr(dit_stage, "flow_loss", recording_loss)
    text = MiniLMTextEncoder()
    for i, p in enumerate((pool, loaded)):
        drawn.append([])
        (tmp_path / str(i)).mkdir()
        dit_stage.train_dit(tmp_path / str(i), p, text, steps=10, batch=1, config=TINY_DIT, buckets=buckets)
    assert drawn[0] == drawn[1] and len(set(drawn[0])) > 1


def test_a_4x_vae_keeps_4x_time_and_quarters_the_spatial_compression() -> None:
    config = vae_stage.vae_config_for(4, TINY_VAE)
    assert (config.spatial_factor, config.temporal_factor) == (4, 4)
    assert vae_stage.vae_config_for(8, TINY_VAE) == TINY_VAE
    vae = WanVAE(config).eval()
    with torch.inference_mode():
        latent = vae.encode(torch.rand(1, 3, 9, 32, 48) * 2 - 1)
        assert latent.shape == (1, config.z_dim, 3, 8, 12)
        assert vae.decode(latent).shape == (1, 3, 9, 32, 48)
    with pytest.raises(ValueError, match="spatial=2"):
        vae_stage.vae_config_for(2, TINY_VAE)


def test_resuming_a_vae_run_with_another_compression_names_the_option(tmp_path) -> None:
    vae_stage.train_vae(tmp_path, steps=1, batch=1, config=TINY_VAE)
    with pytest.raises(ValueError, match="same --vae-spatial"):
        vae_stage.train_vae(tmp_path, steps=2, batch=1, config=vae_stage.vae_config_for(4, TINY_VAE))


def test_a_4x_vae_state_scores_with_its_own_shape(tmp_path) -> None:
    """bench/vae_diagnosis.py builds a --vae-spatial 4 run's VAE from its training state, not the checkpoint's."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from vae_diagnosis import vae_for_state

    vae_stage.train_vae(tmp_path, steps=1, batch=1, config=vae_stage.vae_config_for(4, TINY_VAE))
    path = str(tmp_path / "vae_state.safetensors")
    shaped = vae_for_state(WanVAE(TINY_VAE), path)
    step, _ = load_state(path, shaped, None)  # every weight fits
    assert step == 1 and shaped.config.spatial_factor == 4


def test_periodic_clips_are_read_from_their_captions_as_their_scenes_say() -> None:
    from sora_core.world.motion import PERIODIC_MOTIONS

    batches = [clip_batch(5, step, 16, DIT_BUCKETS) for step in range(6)]
    scenes = [s for b in batches for s in b.scenes]
    truth = torch.tensor([all(o.motion in PERIODIC_MOTIONS for o in s.objects) for s in scenes])
    assert 0 < int(truth.sum()) < len(scenes)
    assert torch.equal(dit_stage.periodic_clips([c for b in batches for c in b.captions]), truth)
    # and a periodic clip does end where it starts
    assert truth[:16].any()
    video = batches[0].video[int(truth[:16].float().argmax())]
    assert torch.equal(video[:, -1], video[:, 0])


def test_motion_weights_draw_the_named_motions_clips_more_often(tmp_path, monkeypatch) -> None:
    from sora_core.text_minilm import MiniLMTextEncoder
    from sora_core.train.__main__ import motion_weight

    batches = [clip_batch(5, step, 16, DIT_BUCKETS) for step in range(4)]
    scenes = [s for b in batches for s in b.scenes]
    weights = dit_stage.motion_draw_weights([c for b in batches for c in b.captions], {"bounce": 4.0, "grow": 2.0})
    expected = [max([1.0] + [{"bounce": 4.0, "grow": 2.0}.get(o.motion, 1.0) for o in s.objects]) for s in scenes]
    assert weights == expected and 4.0 in weights and 1.0 in weights
    with pytest.raises(ValueError, match="bounces"):
        dit_stage.motion_draw_weights(["a red circle"], {"bounces": 4.0})
    assert motion_weight("bounce=4") == ("bounce", 4.0)
    for bad in ("bounce", "bounce=0", "hop=2", "bounce=x"):
        with pytest.raises(argparse.ArgumentTypeError, match="MOTION=W"):
            motion_weight(bad)

    bucket = (64, 64, 9)
    captions = ["a red circle bouncing", "a blue square moving left", "a green triangle moving up"]
    pool = dit_stage.LatentPool({bucket: torch.stack([torch.full((16, 3, 8, 8), float(i)) for i in range(3)])},
                                {bucket: captions})
    drawn: list[float] = []

    def recording_loss(dit, x0, context, sigma, noise, known, cell_weight=None, lead=None):
        drawn.extend(x0[:, 0, 0, 0, 0].tolist())
        return (dit.patch_embedding.weight * 0).sum() + x0.mean() * 0

    monkeypatch.setattr(dit_stage, "flow_loss", recording_loss)
    dit_stage.train_dit(tmp_path, pool, MiniLMTextEncoder(), steps=30, batch=8, config=TINY_DIT, buckets=(bucket,),
                        motion_weights={"bounce": 8.0})
    assert drawn.count(0.0) > 0.6 * len(drawn)  # 8 of 10 draws are the bouncing clip, against 1 of 3 unweighted


def test_a_loop_window_is_what_the_loop_sampler_shows_the_dit() -> None:
    from sora_core.conditioning import conditioned_velocity

    seen: list[torch.Tensor] = []

    class Recording(torch.nn.Module):
        dtype = torch.float32

        def forward(self, x, t, context):
            seen.append(x.clone())
            return torch.zeros_like(x)

    period = torch.randn(1, 16, 4, 4, 4)
    conditioned_velocity(Recording(), torch.zeros(1, 3, 384), None, 1.0, None, circular=True)(period, torch.tensor(0.5))
    clip = torch.cat([torch.randn(1, 16, 1, 4, 4), period], dim=2)  # the first frame alone, then the groups
    wrapped = dit_stage.loop_window(torch.cat([clip, clip]), torch.tensor([True, False]))
    assert torch.equal(wrapped[0:1], seen[0])
    assert torch.equal(wrapped[1:], clip)  # not chosen: unchanged
    # at phase k the period starts k groups later: the loop sampler's window of the period rotated by k
    later = dit_stage.loop_window(clip, torch.tensor([True]), torch.tensor([1]))
    conditioned_velocity(Recording(), torch.zeros(1, 3, 384), None, 1.0, None, circular=True)(
        period.roll(-1, dims=2), torch.tensor(0.5))
    assert torch.equal(later, seen[1])


def test_flow_loss_shows_a_loop_lead_as_the_last_frame_and_leaves_it_out_of_the_loss() -> None:
    torch.manual_seed(0)
    seen: list[torch.Tensor] = []
    dit = WanDiT(TINY_DIT)
    real_forward = dit.forward

    def recording(x, t, context):
        out = real_forward(x, t, context)
        seen.append((x.clone(), t.clone(), out.detach()))
        return out

    dit.forward = recording
    x0, noise = torch.randn(2, 16, 4, 4, 4), torch.randn(2, 16, 4, 4, 4)
    lead = torch.tensor([True, False])
    x0 = dit_stage.loop_window(x0, lead)  # sample 0's frame 0 is its last frame again
    ctx, sigma = torch.randn(2, 80, 384), torch.tensor([0.5, 0.9])
    known = torch.tensor([[False, True, False, False], [False, False, False, False]])
    base = dit_stage.flow_loss(dit, x0, ctx, sigma, noise, known, lead=lead)
    x, t, pred = seen[0]
    assert torch.equal(x[0, :, 0], x[0, :, -1]) and t[0, 0] == t[0, -1] != 0  # the same noisy frame as the last
    assert not torch.equal(x[1, :, 0], x[1, :, -1])
    noiset = noise.clone()
    noiset[0, :, 0] = noise[0, :, -1]
    err = (pred - (noiset - x0)).pow(2).mean(dim=(1, 3, 4))  # [B, T]
    counted = torch.tensor([[False, False, True, True], [True, True, True, True]])  # not the lead, not known
    assert torch.allclose(base, err[counted].mean(), rtol=1e-5)
    noiseb = noise.clone()
    noiseb[0, :, 0] -= 3  # the lead's own noise never matters ...
    assert torch.allclose(dit_stage.flow_loss(dit, x0, ctx, sigma, noiseb, known, lead=lead), base)
    noiseb[1, :, 0] -= 3  # ... a clip's first frame's does
    assert not torch.allclose(dit_stage.flow_loss(dit, x0, ctx, sigma, noiseb, known, lead=lead), base)


def test_loop_windows_wrap_only_whole_periodic_clips(tmp_path, monkeypatch) -> None:
    from sora_core.text_minilm import MiniLMTextEncoder

    long = (64, 64, 33)
    captions = ["a red circle bouncing", "a blue square moving left"]
    pool = dit_stage.LatentPool({long: torch.randn(2, 16, 9, 8, 8)}, {long: captions})
    seen: list[tuple[int, torch.Tensor | None]] = []
    real_loss = dit_stage.flow_loss

    def recording_loss(dit, x0, context, sigma, noise, known, cell_weight=None, lead=None):
        seen.append((x0.shape[2], lead))
        if lead is not None:  # the periodic clip (index 0) is shown as a loop window, the other never
            periodic = (x0 == pool.latents[long][0].unsqueeze(0)[:, :, [8, 1, 2, 3, 4, 5, 6, 7, 8]]).flatten(1).all(1)
            assert torch.equal(lead, periodic)
        return real_loss(dit, x0, context, sigma, noise, known, cell_weight, lead)

    monkeypatch.setattr(dit_stage, "flow_loss", recording_loss)
    text = MiniLMTextEncoder()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    dit_stage.train_dit(tmp_path / "a", pool, text, steps=20, batch=4, config=TINY_DIT, buckets=(long,),
                        loop_windows=1.0)
    leads = [lead for frames, lead in seen if lead is not None]
    assert leads and all(frames == 9 for frames, lead in seen if lead is not None)  # whole clips only
    assert any(bool(lead.any()) for lead in leads)
    assert all(lead is None for frames, lead in seen if frames == 5)  # mid-clip windows never wrap
    seen.clear()
    dit_stage.train_dit(tmp_path / "b", pool, text, steps=5, batch=4, config=TINY_DIT, buckets=(long,))
    assert all(lead is None for _, lead in seen)


def test_loop_phases_start_loop_windows_at_every_group(tmp_path, monkeypatch) -> None:
    from sora_core.text_minilm import MiniLMTextEncoder

    long = (64, 64, 33)
    pool = dit_stage.LatentPool({long: torch.randn(1, 16, 9, 8, 8)}, {long: ["a red circle bouncing"]})
    clip, yes = pool.latents[long], torch.tensor([True])
    rotations = [dit_stage.loop_window(clip, yes, torch.tensor([k])) for k in range(8)]
    phases: set[int] = set()
    real_loss = dit_stage.flow_loss

    def recording_loss(dit, x0, context, sigma, noise, known, cell_weight=None, lead=None):
        for row, wrapped in zip(x0, lead if lead is not None else [], strict=False):
            if wrapped:
                phases.add(next(k for k, r in enumerate(rotations) if torch.equal(row, r[0])))
        return real_loss(dit, x0, context, sigma, noise, known, cell_weight, lead)

    monkeypatch.setattr(dit_stage, "flow_loss", recording_loss)
    dit_stage.train_dit(tmp_path, pool, MiniLMTextEncoder(), steps=20, batch=4, config=TINY_DIT, buckets=(long,),
                        loop_windows=1.0, loop_phases=True)
    assert len(phases) >= 4  # not only the clip's own start


def test_loop_windows_move_the_object_cell_weights_with_their_frames(tmp_path, monkeypatch) -> None:
    from sora_core.text_minilm import MiniLMTextEncoder

    long = (64, 64, 33)
    cells = torch.zeros(1, 9, 8, 8, dtype=torch.bool)
    for t in range(9):
        cells[0, t, t % 8, 0] = True  # each frame's object in its own cell
    latents = cells.float().unsqueeze(1).expand(1, 16, 9, 8, 8).clone()  # latent frames that show their cells
    pool = dit_stage.LatentPool({long: latents}, {long: ["a red circle bouncing"]}, {long: cells})
    checked: list[bool] = []
    real_loss = dit_stage.flow_loss

    def recording_loss(dit, x0, context, sigma, noise, known, cell_weight=None, lead=None):
        if lead is not None and bool(lead.any()):
            heavy = cell_weight > 1  # [B, T, h, w]
            checked.append(bool(torch.equal(heavy[lead, 1:], x0[lead, 0, 1:] > 0)))
        return real_loss(dit, x0, context, sigma, noise, known, cell_weight, lead)

    monkeypatch.setattr(dit_stage, "flow_loss", recording_loss)
    dit_stage.train_dit(tmp_path, pool, MiniLMTextEncoder(), steps=20, batch=2, config=TINY_DIT, buckets=(long,),
                        loop_windows=1.0, loop_phases=True, object_weight=3.0)
    assert checked and all(checked)


def test_init_dit_from_starts_a_new_vaes_dit_from_the_checkpoints_dit(tmp_path, monkeypatch, capsys) -> None:
    from sora_core.loading import load_dit
    from sora_core.train.__main__ import main

    shipped = "sora_core/assets/default.safetensors"
    seen: dict = {}

    def fake_vae(run, *, config, **kwargs):
        seen["vae_spatial"] = config.spatial_factor
        return WanVAE(config)

    def fake_train_dit(run, pool, text, *, init, config, **kwargs):
        seen["init"], seen["config"] = init, config
        return None, None

    bucket = (64, 64, 9)
    monkeypatch.setattr(vae_stage, "train_vae", fake_vae)
    monkeypatch.setattr(vae_stage, "latent_stats", lambda vae, seed: ([0.0] * 16, [1.0] * 16))
    monkeypatch.setattr(dit_stage, "build_pool", lambda *a, **k: dit_stage.LatentPool(
        {bucket: torch.zeros(1, 16, 3, 16, 16)}, {bucket: ["a red circle"]}))
    monkeypatch.setattr(dit_stage, "training_buckets", lambda long_scenes: (bucket,))
    monkeypatch.setattr(dit_stage, "train_dit", fake_train_dit)
    assert main(["--run", str(tmp_path / "run"), "--vae-spatial", "4", "--init-dit-from", shipped]) == 0
    expected = load_dit(shipped)
    assert seen["vae_spatial"] == 4 and seen["config"] == expected.config
    assert all(torch.equal(v, seen["init"][k]) for k, v in expected.state_dict().items())
    with pytest.raises(SystemExit):
        main(["--run", str(tmp_path / "run2"), "--init-from", shipped, "--init-dit-from", shipped])
    assert "give one of them" in capsys.readouterr().err


def test_vae_spatial_defaults_to_the_init_from_vaes_and_a_contradiction_is_refused(tmp_path, monkeypatch,
                                                                                    capsys) -> None:
    from sora_core.loading import save_project_file
    from sora_core.train.__main__ import main

    bundle = save_project_file(tmp_path / "vae4x.safetensors", {
        "dit": WanDiT(TINY_DIT), "vae": WanVAE(vae_stage.vae_config_for(4, VAEConfig(base_dim=8)))})
    seen: list[int] = []
    monkeypatch.setattr(vae_stage, "train_vae", lambda run, *, config, **kw: seen.append(config.spatial_factor)
                        or WanVAE(config))
    bucket = (64, 64, 9)
    monkeypatch.setattr(dit_stage, "build_pool", lambda *a, **k: dit_stage.LatentPool(
        {bucket: torch.zeros(1, 16, 3, 16, 16)}, {bucket: ["a red circle"]}))
    monkeypatch.setattr(dit_stage, "training_buckets", lambda long_scenes: (bucket,))
    monkeypatch.setattr(dit_stage, "train_dit", lambda *a, **k: (None, None))
    assert main(["--run", str(tmp_path / "run"), "--init-from", str(bundle), "--vae-steps", "0"]) == 0
    assert seen == [4]  # the checkpoint's 4x VAE, not the from-scratch default of 8
    with pytest.raises(SystemExit):
        main(["--run", str(tmp_path / "run2"), "--init-from", str(bundle), "--vae-spatial", "8"])
    assert "the --init-from VAE compresses 4x; give --vae-spatial 4" in capsys.readouterr().err


def test_a_run_from_a_checkpoint_keeps_that_checkpoints_training_record_in_its_own(tmp_path, monkeypatch) -> None:
    from sora_core.loading import save_project_file
    from sora_core.loading.safetensors_io import read_metadata
    from sora_core.train.__main__ import main

    earlier = {"dit_steps": 7, "seed": 3, "decoder_finetune": {"steps": 2}}
    small_vae = vae_stage.vae_config_for(4, VAEConfig(base_dim=8))
    bundle = save_project_file(tmp_path / "earlier.safetensors", {"dit": WanDiT(TINY_DIT), "vae": WanVAE(small_vae)},
                               extra_metadata={"training": json.dumps(earlier)})
    monkeypatch.setattr(vae_stage, "train_vae", lambda run, **kw: WanVAE(small_vae))
    bucket = (64, 64, 9)
    monkeypatch.setattr(dit_stage, "build_pool", lambda *a, **k: dit_stage.LatentPool(
        {bucket: torch.zeros(1, 16, 3, 16, 16)}, {bucket: ["a red circle"]}))
    monkeypatch.setattr(dit_stage, "training_buckets", lambda long_scenes: (bucket,))
    monkeypatch.setattr(dit_stage, "train_dit", lambda *a, **k: (None, WanDiT(TINY_DIT)))
    out = tmp_path / "later.safetensors"
    assert main(["--run", str(tmp_path / "run"), "--init-from", str(bundle), "--vae-steps", "0",
                 "--dit-steps", "5", "--seed", "4", "--out", str(out)]) == 0
    record = json.loads(read_metadata(out)["training"])
    assert record["dit_steps"] == 5 and record["seed"] == 4 and record["init_from"] == str(bundle)
    assert record["init_record"] == earlier  # what the run started from stays on record


def test_bf16_training_autocasts_the_forward_and_keeps_float32_weights(tmp_path) -> None:
    from sora_core.text_minilm import MiniLMTextEncoder

    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        pytest.skip("this CPU has no native bfloat16 matmuls")
    bucket = (64, 64, 9)
    gen = torch.Generator().manual_seed(0)
    pool = dit_stage.LatentPool({bucket: torch.randn(4, 16, 3, 8, 8, generator=gen)}, {bucket: ["a red circle"] * 4})
    text = MiniLMTextEncoder()
    losses = {}
    for bf16 in (False, True):
        run = tmp_path / str(bf16)
        run.mkdir()
        model, ema = dit_stage.train_dit(run, pool, text, steps=1, batch=2, config=TINY_DIT, buckets=(bucket,),
                                         log_every=1, bf16=bf16)
        assert all(p.dtype == torch.float32 for p in [*model.parameters(), *ema.parameters()])
        losses[bf16] = float((run / "dit_log.tsv").read_text().split("\t")[2])
    # the same batch and weights: bf16 rounding moves the loss a little, and only a little
    assert losses[True] != losses[False]
    assert losses[True] == pytest.approx(losses[False], rel=0.02)


def test_bf16_training_is_refused_where_bfloat16_is_emulated(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    bucket = (64, 64, 9)
    pool = dit_stage.LatentPool({bucket: torch.randn(1, 16, 3, 8, 8)}, {bucket: ["a red circle"]})
    with pytest.raises(ValueError, match="--dit-bf16: this cpu has no native bfloat16"):
        dit_stage.train_dit(tmp_path, pool, None, steps=1, batch=1, config=TINY_DIT, buckets=(bucket,), bf16=True)
