"""generate() and the command line end to end with the default model: files that open, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sora_core import videoio
from sora_core.cli import main
from sora_core.errors import GenerationCancelled, InputError
from sora_core.pipeline import generate, load_models


@pytest.fixture(scope="module")
def models():
    return load_models("default")


def test_python_m_generate_writes_an_mp4(tmp_path):
    out = tmp_path / "clip.mp4"
    proc = subprocess.run(
        [sys.executable, "-m", "sora_core", "generate", "--prompt", "a red circle moves right", "--out", str(out),
         "--frames", "9", "--width", "64", "--height", "48", "--steps", "2", "--seed", "3"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    info = videoio.probe_video(out)
    assert (info.frames, info.width, info.height) == (9, 64, 48)
    assert "wrote" in proc.stdout
    frames, fps = videoio.read_video(out)
    assert frames.shape == (9, 48, 64, 3) and fps == pytest.approx(16.0)


def test_untrained_default_is_announced(tmp_path, capsys, models):
    if models.trained:
        pytest.skip("a trained default model is installed")
    assert main(["generate", "--prompt", "a cat", "--out", str(tmp_path / "a.mp4"), "--steps", "1", "--quiet"]) == 0
    assert "randomly initialised" in capsys.readouterr().err


def test_one_frame_is_a_png_still(tmp_path, capsys):
    out = tmp_path / "still.mp4"
    assert main(["generate", "--prompt", "a blue square", "--out", str(out), "--frames", "1", "--steps", "2",
                 "--quiet"]) == 0
    png = tmp_path / "still.png"
    assert png.exists() and not out.exists()
    frames, _ = videoio.read_video(png)
    assert frames.shape == (1, 64, 64, 3)
    assert "still image" in capsys.readouterr().err


def test_same_seed_same_video_other_seed_other_video(models):
    kwargs = dict(models=models, frames=5, width=32, height=32, steps=2)
    a = generate("a green triangle", seed=7, **kwargs)
    b = generate("a green triangle", seed=7, **kwargs)
    c = generate("a green triangle", seed=8, **kwargs)
    assert torch.equal(a.frames, b.frames)
    assert not torch.equal(a.frames, c.frames)
    assert a.frames.shape == (5, 32, 32, 3) and 0 <= a.frames.min() and a.frames.max() <= 1


def test_batch_item_equals_single_run_with_its_seed(models):
    kwargs = dict(models=models, frames=5, width=32, height=32, steps=2)
    batch = generate("a bouncing ball", seed=10, batch=2, **kwargs)
    single = generate("a bouncing ball", seed=11, **kwargs)
    assert torch.allclose(batch.frames[5:], single.frames, atol=1e-5)


def test_callback_sees_every_step_and_cancel_stops(models):
    seen = []
    generate("x", models=models, frames=5, width=32, height=32, steps=3, callback=lambda info: seen.append(info))
    assert [info.step for info in seen] == [0, 1, 2]
    assert seen[-1].denoised.shape[1] == models.vae.config.z_dim
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(GenerationCancelled):
        generate("x", models=models, frames=5, width=32, height=32, steps=6, cancel=cancel)


def test_long_prompt_is_truncated_with_a_warning(models):
    with pytest.warns(UserWarning, match="dropped"):
        result = generate("a red circle " * 50, models=models, frames=1, width=32, height=32, steps=1)
    assert result.frames.shape == (1, 32, 32, 3)


@pytest.fixture(scope="module")
def default_grid() -> int:
    """Pixels per DiT token of the default model (its VAE's compression times the patch): sizes are multiples."""
    return load_models("default").spatial_factor


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--frames", "16"], "frames=16 is not 4k+1; use 13 or 17"),
        (["--width", "60"], "width=60 is not a positive multiple of {grid}; use 64"),
        (["--height", "0"], "height=0 is not a positive multiple of {grid}"),
        (["--sampler", "dpm"], "unknown sampler 'dpm'"),
        (["--steps", "0"], "steps=0; use at least 1"),
        (["--out", "clip.avi"], "unsupported file type"),
    ],
)
def test_bad_input_is_named_and_nothing_is_written(tmp_path, capsys, default_grid, args, message):
    out = tmp_path / "clip.mp4"
    argv = ["generate", "--prompt", "a cat", "--out", str(out), "--steps", "1", "--quiet", *args]
    if "--out" in args:
        argv = ["generate", "--prompt", "a cat", "--steps", "1", "--quiet", "--out", str(tmp_path / args[1])]
    assert main(argv) == 2
    assert message.format(grid=default_grid) in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_pickled_model_file_is_refused(tmp_path, capsys):
    bad = tmp_path / "model.ckpt"
    torch.save({"a": torch.ones(1)}, bad)
    assert main(["generate", "--prompt", "a cat", "--out", str(tmp_path / "x.mp4"), "--model", str(bad)]) == 2
    assert "pickled PyTorch checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "x.mp4").exists()


def test_lone_dit_needs_vae_and_text_encoder(tmp_path, capsys):
    from sora_core.config import DIT_PRESETS
    from sora_core.dit import WanDiT
    from sora_core.loading import write_safetensors

    dit = write_safetensors(tmp_path / "wan2.1_t2v_tiny.safetensors", WanDiT(DIT_PRESETS["test-tiny"]).state_dict())
    assert main(["generate", "--prompt", "a cat", "--out", str(tmp_path / "x.mp4"), "--model", str(dit)]) == 2
    assert "--vae" in capsys.readouterr().err


def test_empty_prompt(models):
    with pytest.raises(InputError, match="prompt is empty"):
        generate("   ", models=models)


def test_readme_quick_start_matches_makefile():
    """The README's two commands exist as Makefile targets and .ci/run calls the test one."""
    root = Path(__file__).resolve().parents[1]
    readme, makefile = (root / "README.md").read_text(), (root / "Makefile").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "\ndemo:" in makefile and "\ntest:" in makefile
    assert "make test" in (root / ".ci" / "run").read_text()
