"""The shipped default model: a self-describing project checkpoint that generates on a CPU."""

from __future__ import annotations

import json

import pytest
import torch

from sora_core.loading import detect_file, read_metadata
from sora_core.pipeline import DEFAULT_CHECKPOINT, generate, load_models
from sora_core.text_minilm import MiniLMTextEncoder


@pytest.fixture(scope="module")
def models():
    return load_models("default")


def test_checkpoint_is_shipped_small_and_self_describing() -> None:
    assert DEFAULT_CHECKPOINT.exists(), "sora_core/assets/default.safetensors is missing"
    assert DEFAULT_CHECKPOINT.stat().st_size < 60 * 2**20
    assert detect_file(DEFAULT_CHECKPOINT).component == "bundle"
    meta = read_metadata(DEFAULT_CHECKPOINT)
    for key in ("dit_config", "vae_config", "text_encoder_config", "sampling_defaults", "training"):
        assert key in meta, key
    assert json.loads(meta["text_encoder_config"])["kind"] == "minilm"
    assert meta["prompt_style"] == "expand_prompt"


def test_default_is_the_trained_model(models) -> None:
    assert models.trained and models.name == "default"
    assert isinstance(models.text_encoder, MiniLMTextEncoder)
    assert models.text_encoder.prompt_style == "expand_prompt"
    d = models.defaults
    assert (d.frames, d.width, d.height) == (17, 64, 64)


def test_generates_the_default_clip_and_expands_the_prompt(models) -> None:
    clip = generate("a red circle moving right", models=models, seed=0)
    assert clip.frames.shape == (17, 64, 64, 3)
    assert clip.settings["encoded_prompt"].startswith("A medium red circle moves")
    # An image, not noise (as the untrained placeholder's was): neighbouring pixels agree far more than the
    # same pixel values shuffled would. How well it follows the prompt is measured in docs/quality.md.
    f = clip.frames
    gen = torch.Generator().manual_seed(0)
    shuffled = f.flatten(1, 2)[:, torch.randperm(64 * 64, generator=gen)].view_as(f)
    def roughness(x: torch.Tensor) -> torch.Tensor:
        return (x[:, :, 1:] - x[:, :, :-1]).abs().mean()
    assert roughness(f) <= 0.5 * roughness(shuffled) + 1e-6
    raw = generate("a red circle moving right", models=models, seed=0, expand_prompt=False)
    assert raw.settings["encoded_prompt"] == "a red circle moving right"
