"""Small random weights written under real file names, for tests that load files as a user would."""

from __future__ import annotations

import dataclasses
import io
import random
from pathlib import Path

import sentencepiece
import torch

from sora_core.config import DIT_PRESETS, TEXT_PRESETS, VAEConfig
from sora_core.dit import WanDiT
from sora_core.loading import write_safetensors
from sora_core.text import build_umt5_model
from sora_core.vae import WanVAE

SYLLABLES = "ka to ri mu se la no pe vi zu ba do fi go he ju xo qu wa ye".split()
WAN_FILE_NAMES = {
    "diffusion_models": "wan2.1_t2v_1.3B_fp16.safetensors",
    "vae": "wan_2.1_vae.safetensors",
    "text_encoders": "umt5_xxl_fp16.safetensors",
}


def train_spiece(vocab_size: int = 200, seed: int = 0) -> bytes:
    """A tiny sentencepiece model with umT5's special ids: pad 0, eos 1, unk 2, no bos."""
    rng = random.Random(seed)
    words = ["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 3))) for _ in range(400)]
    corpus = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) for _ in range(400)]
    buf = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=buf, vocab_size=vocab_size, hard_vocab_limit=False,
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, minloglevel=2,
    )
    return buf.getvalue()


def _randomize(module: torch.nn.Module, seed: int, scale: float = 0.05) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.is_floating_point():
                p.add_(torch.randn(p.shape, generator=gen) * scale)
    return module


def write_tiny_wan_files(models_dir: Path) -> dict[str, Path]:
    """A tiny Wan 2.1 T2V set in ComfyUI's layouts and dtypes, saved under ComfyUI's real file names.

    The DiT is fp16 with the `model.diffusion_model.` prefix some exports carry; the umT5 file holds its
    tokenizer as the `spiece_model` byte tensor, as ComfyUI's does; the VAE is 16-channel like Wan's.
    """
    torch.manual_seed(0)
    dit_cfg = DIT_PRESETS["test-tiny"]
    proto = train_spiece()
    sp = sentencepiece.SentencePieceProcessor(model_proto=proto)
    text_cfg = dataclasses.replace(TEXT_PRESETS["test-tiny-umt5"], vocab_size=sp.get_piece_size() + 8,
                                   d_model=dit_cfg.text_dim)
    t5 = _randomize(build_umt5_model(text_cfg, device="cpu"), 1)
    t5_sd = {k: v for k, v in t5.state_dict().items() if k != "encoder.embed_tokens.weight"}
    t5_sd["spiece_model"] = torch.frombuffer(bytearray(proto), dtype=torch.uint8)
    dit = _randomize(WanDiT(dit_cfg), 2)
    vae = _randomize(WanVAE(VAEConfig(base_dim=8)), 3, scale=0.02)
    paths = {kind: models_dir / kind / name for kind, name in WAN_FILE_NAMES.items()}
    write_safetensors(paths["diffusion_models"],
                      {"model.diffusion_model." + k: v.half() for k, v in dit.state_dict().items()})
    write_safetensors(paths["vae"], {k: v.half() for k, v in vae.state_dict().items()})
    write_safetensors(paths["text_encoders"], {k: v if k == "spiece_model" else v.half() for k, v in t5_sd.items()})
    return paths
