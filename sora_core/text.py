"""Text encoders: prompts -> a ``[B, L, D]`` context for the DiT's cross-attention.

Every encoder returns a :class:`TextEmbedding` and follows the :class:`TextEncoder` protocol, so the
pipeline does not care which one a model uses. :class:`UMT5TextEncoder` is Wan's: transformers'
``UMT5EncoderModel`` plus umT5's sentencepiece tokenizer, tokenised as Wan and ComfyUI do (whitespace
cleaned, no BOS, EOS appended, padded with id 0 to ``max_length``), run with the attention mask, and
with the rows past each prompt's length set to exactly zero.

:func:`load_umt5` reads the weights from safetensors in either layout: transformers/ComfyUI
(``shared.weight``, ``encoder.block.N...``) or the original Wan release (``token_embedding.weight``,
``blocks.N...``). The tokenizer comes from the ``spiece_model`` tensor that ComfyUI keeps in its umt5
files, or from ``tokenizer_path``; nothing is ever downloaded.
"""

from __future__ import annotations

import html
import json
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from .config import TextEncoderConfig, config_from_dict
from .errors import InputError, WeightsError
from .loading import t5_keys

__all__ = [
    "TextEmbedding", "TextEncoder", "Tokenizer", "SentencePieceTokenizer", "UMT5TextEncoder",
    "clean_prompt", "load_tokenizer", "infer_umt5_config", "build_umt5_model", "load_umt5",
]

PAD_ID = 0  # umT5's <pad>; ComfyUI and Wan pad with it
EOS_ID = 1  # umT5's </s>, used when a tokenizer does not name its own
LAYER_NORM_EPS = 1e-6
DEFAULT_MAX_LENGTH = 512  # Wan's text_len
TOKENIZER_HELP = (
    "give tokenizer_path: a folder holding umT5's spiece.model (or its tokenizer.json), e.g. a local copy of "
    "the google/umt5-xxl tokenizer files, or use ComfyUI's umt5_xxl_*.safetensors, which embeds the tokenizer"
)
PICKLE_HELP = (
    "Only .safetensors files are loaded, because unpickling a file can run arbitrary code. Convert it once, "
    "in a trusted environment: `import torch; from safetensors.torch import save_file; "
    "save_file(torch.load('model.pth', weights_only=True), 'model.safetensors')`"
)


# ----------------------------------------------------------------------------------------------
# The interface every text encoder implements


@dataclass(frozen=True)
class TextEmbedding:
    """What every text encoder returns.

    context: ``[B, L, D]`` float; rows past each prompt's length are exactly zero.
    lengths: ``[B]`` long, number of real tokens (including EOS), on the same device as ``context``.
    """

    context: Tensor
    lengths: Tensor


@runtime_checkable
class TextEncoder(Protocol):
    output_dim: int
    max_length: int

    def encode(self, prompts: Sequence[str]) -> TextEmbedding: ...


# ----------------------------------------------------------------------------------------------
# Tokenizers


def clean_prompt(text: str) -> str:
    """Wan's ``clean='whitespace'``: undo HTML escapes, collapse runs of whitespace, strip.

    Wan also runs ``ftfy.fix_text`` first; that is not done here (ftfy is not a dependency), and
    sentencepiece's own NFKC normalisation already covers most of what it would change.
    """
    text = html.unescape(html.unescape(text))
    return re.sub(r"\s+", " ", text).strip()


@runtime_checkable
class Tokenizer(Protocol):
    eos_id: int
    vocab_size: int

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, with no BOS/EOS added."""
        ...


class SentencePieceTokenizer:
    """umT5's tokenizer from a sentencepiece model proto (the bytes of ``spiece.model``)."""

    def __init__(self, model_proto: bytes) -> None:
        import sentencepiece

        self.model_proto = bytes(model_proto)
        self._sp = sentencepiece.SentencePieceProcessor(model_proto=self.model_proto)
        eos = self._sp.eos_id()
        self.eos_id = eos if eos >= 0 else EOS_ID
        self.vocab_size = self._sp.get_piece_size()

    def encode(self, text: str) -> list[int]:
        return list(self._sp.encode(text, out_type=int))


class _TransformersTokenizer:
    """A tokenizer that transformers' AutoTokenizer loads from a local folder."""

    def __init__(self, tokenizer: Any) -> None:
        self._tok = tokenizer
        self._tok.model_max_length = 1 << 30  # truncation is done (and reported) by the encoder
        eos = tokenizer.eos_token_id
        self.eos_id = int(eos) if eos is not None else EOS_ID
        self.vocab_size = len(tokenizer)

    def encode(self, text: str) -> list[int]:
        return list(self._tok(text, add_special_tokens=False)["input_ids"])


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """umT5's tokenizer from ``spiece.model`` (file or folder), or a folder with ``tokenizer.json``.

    A folder holding both uses ``spiece.model``, which is exactly what ComfyUI runs.
    """
    p = Path(path)
    if p.is_file() and p.suffix == ".model":
        return _sentencepiece_from_bytes(p.read_bytes(), p)
    if p.is_file() and p.name in ("tokenizer.json", "tokenizer_config.json"):
        p = p.parent
    if not p.is_dir():
        raise WeightsError(f"tokenizer not found at {p}; {TOKENIZER_HELP}")
    if (p / "spiece.model").is_file():
        return _sentencepiece_from_bytes((p / "spiece.model").read_bytes(), p / "spiece.model")
    if not any((p / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")):
        raise WeightsError(f"{p} holds neither spiece.model nor tokenizer.json; {TOKENIZER_HELP}")
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(p), local_files_only=True)
    except Exception as exc:  # transformers raises many kinds; all mean "unusable tokenizer folder"
        raise WeightsError(f"could not load the tokenizer in {p}: {exc}") from exc
    return _TransformersTokenizer(tok)


def _sentencepiece_from_bytes(proto: bytes, source: Path | str) -> SentencePieceTokenizer:
    try:
        return SentencePieceTokenizer(proto)
    except Exception as exc:  # sentencepiece raises RuntimeError/OSError on a bad proto
        raise WeightsError(f"{source}: not a valid sentencepiece model ({exc})") from exc


# ----------------------------------------------------------------------------------------------
# The umT5 encoder


def _hf_config(config: TextEncoderConfig) -> Any:
    from transformers import UMT5Config

    return UMT5Config(
        vocab_size=config.vocab_size,
        d_model=config.d_model,
        d_kv=config.d_kv,
        d_ff=config.d_ff,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
        relative_attention_num_buckets=config.relative_attention_num_buckets,
        relative_attention_max_distance=config.relative_attention_max_distance,
        # umT5-XXL: gated GELU with the tanh approximation (= transformers' "gelu_new", computed by torch)
        feed_forward_proj="gated-gelu_pytorch_tanh",
        layer_norm_epsilon=LAYER_NORM_EPS,
        dropout_rate=0.0,
        is_encoder_decoder=False,
        use_cache=False,
        pad_token_id=PAD_ID,
        eos_token_id=EOS_ID,
    )


def build_umt5_model(config: TextEncoderConfig, *, device: str | torch.device = "meta") -> nn.Module:
    """A ``UMT5EncoderModel`` of this shape; on the meta device (no memory) unless told otherwise."""
    from transformers import UMT5EncoderModel

    if config.kind != "umt5":
        raise InputError(f"text encoder kind {config.kind!r} is not umT5")
    with torch.device(device):
        model = UMT5EncoderModel(_hf_config(config))
    return model.eval()


def _drop_tied_embedding(module: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: Any) -> None:
    # encoder.embed_tokens is shared.weight itself; saving both would store it twice (and
    # safetensors refuses tensors that share memory). ComfyUI's files also hold only shared.weight.
    state_dict.pop(f"{prefix}model.{t5_keys.HF_TIED_EMBEDDING}", None)


class UMT5TextEncoder(nn.Module):
    """umT5 (Wan's text encoder): prompts -> ``[B, max_length, d_model]`` context, padded rows zero.

    The state dict is transformers' layout under ``model.``, plus the ``spiece_model`` tokenizer
    bytes when the tokenizer is a sentencepiece one, so a saved encoder carries its tokenizer.
    """

    def __init__(self, model: nn.Module, tokenizer: Tokenizer, config: TextEncoderConfig) -> None:
        super().__init__()
        if config.max_length < 1:
            raise InputError(f"text encoder max_length must be at least 1, got {config.max_length}")
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.output_dim = config.d_model
        self.max_length = config.max_length
        proto = getattr(tokenizer, "model_proto", None)
        if proto is not None:
            self.register_buffer(t5_keys.SPIECE_KEY, torch.frombuffer(bytearray(proto), dtype=torch.uint8))
        register = getattr(self, "register_state_dict_post_hook", None) or self._register_state_dict_hook
        register(_drop_tied_embedding)

    @property
    def device(self) -> torch.device:
        return self.model.shared.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.shared.weight.dtype

    def tokenize(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """``(ids [B, max_length] long padded with 0, lengths [B] long)``; too long prompts are cut, with a warning."""
        return self._tokenize(prompts, stacklevel=3)

    def _tokenize(self, prompts: Sequence[str], *, stacklevel: int) -> tuple[Tensor, Tensor]:
        if isinstance(prompts, str):
            prompts = [prompts]
        prompts = list(prompts)
        if not prompts:
            raise InputError("no prompts given to the text encoder")
        bad = [type(p).__name__ for p in prompts if not isinstance(p, str)]
        if bad:
            raise InputError(f"prompts must be strings, got {', '.join(sorted(set(bad)))}")
        limit = self.max_length
        ids = torch.full((len(prompts), limit), PAD_ID, dtype=torch.long)
        lengths = torch.empty(len(prompts), dtype=torch.long)
        for i, prompt in enumerate(prompts):
            tokens = self.tokenizer.encode(clean_prompt(prompt))
            total = len(tokens) + 1  # + EOS
            if total > limit:
                which = f"prompt {i + 1} of {len(prompts)}" if len(prompts) > 1 else "the prompt"
                warnings.warn(
                    f"Text encoder: {which} is {total} tokens long (with the end token), but at most {limit} are "
                    f"used; the last {total - limit} tokens were dropped. Shorten the prompt to keep all of it.",
                    UserWarning,
                    stacklevel=stacklevel,
                )
                tokens = tokens[: limit - 1]
            tokens.append(self.tokenizer.eos_id)
            ids[i, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
            lengths[i] = len(tokens)
        return ids, lengths

    @torch.no_grad()
    def encode(self, prompts: Sequence[str]) -> TextEmbedding:
        ids, lengths = self._tokenize(prompts, stacklevel=4)
        device = self.device
        # Run only up to the longest prompt: with the attention mask and relative positions the real
        # rows do not depend on how much padding follows them; the rest is zero anyway.
        n = int(lengths.max())
        mask = (torch.arange(n)[None, :] < lengths[:, None]).to(device)
        hidden = self.model(input_ids=ids[:, :n].to(device), attention_mask=mask.long()).last_hidden_state
        context = hidden.new_zeros(len(lengths), self.max_length, hidden.shape[-1])
        context[:, :n] = hidden.masked_fill(~mask[..., None], 0.0)
        return TextEmbedding(context=context, lengths=lengths.to(device))


# ----------------------------------------------------------------------------------------------
# Loading


def _read_weights(path: Path, dtype: torch.dtype) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Every tensor (floating ones cast to ``dtype``) and the metadata; pickles are refused unread."""
    from .loading.safetensors_io import read_safetensors

    if not path.exists():
        raise WeightsError(f"text encoder file not found: {path}")
    if path.is_file():
        with path.open("rb") as fh:
            head = fh.read(2)
        if head[:2] == b"PK" or head[:1] == b"\x80":
            raise WeightsError(f"{path.name} is a pickled PyTorch checkpoint, not safetensors. {PICKLE_HELP}")
    if path.suffix.lower() != ".safetensors":
        raise WeightsError(f"{path.name} is not a .safetensors file. {PICKLE_HELP}")
    return read_safetensors(path, dtype=dtype)


def _find_layout(keys: Sequence[str], path: Path) -> tuple[str, str]:
    """("hf" or "wan", key prefix) from where the token embedding is."""
    found: set[tuple[str, str]] = set()
    candidates = [("hf", k) for k in t5_keys.HF_EMBEDDING_KEYS] + [("wan", t5_keys.WAN_EMBEDDING_KEY)]
    for key in keys:
        for layout, emb in candidates:
            if key == emb or key.endswith("." + emb):
                found.add((layout, key[: len(key) - len(emb)]))
    if not found:
        sample = ", ".join(sorted(keys)[:4])
        raise WeightsError(
            f"{path.name} is not a umT5 text encoder: it has no token embedding (shared.weight or "
            f"token_embedding.weight); its keys start {sample}"
        )
    if len(found) > 1:
        raise WeightsError(
            f"{path.name} holds several text encoders (key prefixes {sorted(p for _, p in found)}); "
            "give a file with one"
        )
    return found.pop()


def _find_spiece(sd: dict[str, Tensor], prefix: str) -> Tensor | None:
    key = t5_keys.SPIECE_KEY
    for k in (prefix + key, key):
        if k in sd:
            return sd[k]
    nested = sorted((k for k in sd if k.endswith("." + key)), key=lambda k: -len(os.path.commonprefix([k, prefix])))
    return sd[nested[0]] if nested else None


def _dequantize_fp8(sd: dict[str, Tensor], dtype: torch.dtype, path: Path) -> dict[str, Tensor]:
    """ComfyUI's fp8 files: weight (already cast to ``dtype``) * per-layer scale; markers dropped."""
    out = {k: v for k, v in sd.items() if k not in t5_keys.FP8_MARKER_KEYS}
    for key in list(out):
        if key.endswith(".weight_scale_2"):
            raise WeightsError(f"{path.name} is NVFP4-quantised, which is not supported; use an fp16/bf16/fp8 file")
        if key.endswith(t5_keys.FP8_DROPPED_SUFFIXES):
            del out[key]
            continue
        for suffix in t5_keys.FP8_WEIGHT_SCALE_SUFFIXES:
            if key.endswith(suffix):
                weight_key = key[: -len(suffix)] + ".weight"
                scale = out.pop(key)
                if weight_key in out:
                    out[weight_key] = (out[weight_key].float() * scale.float()).to(dtype)
    return out


def _encoder_tensors(
    raw: dict[str, Tensor], layout: str, prefix: str, dtype: torch.dtype, path: Path
) -> dict[str, Tensor]:
    """The encoder's tensors in transformers' names, from either layout, with the prefix removed."""
    sd = {k[len(prefix):]: v for k, v in raw.items() if k.startswith(prefix) and k != prefix + t5_keys.SPIECE_KEY}
    sd = _dequantize_fp8(sd, dtype, path)
    if layout == "wan":
        mapping, unknown = t5_keys.wan_keys_to_hf(sd)
        if unknown:
            raise WeightsError(
                f"{path.name}: {len(unknown)} keys of the original Wan T5 layout are not part of umT5's encoder, "
                f"e.g. {unknown[:3]}"
            )
        return {mapping[k]: v for k, v in sd.items()}
    sd = {k: v for k, v in sd.items() if not k.startswith(t5_keys.HF_IGNORED_PREFIXES)}
    tied = sd.pop(t5_keys.HF_TIED_EMBEDDING, None)
    if "shared.weight" not in sd and tied is not None:
        sd["shared.weight"] = tied
    return sd


def infer_umt5_config(
    shapes: dict[str, tuple[int, ...]], *, max_length: int = DEFAULT_MAX_LENGTH, source: str = "the weights"
) -> TextEncoderConfig:
    """The encoder's shape from its tensor shapes (transformers names); max_length is not stored in weights."""
    k = t5_keys
    layers = k.hf_block_count(shapes)
    if k.HF_WI.format(0) in shapes:
        raise WeightsError(f"{source}: a non-gated T5 (v1.0) encoder; Wan needs umT5-XXL (umt5_xxl_*.safetensors)")
    try:
        vocab, d_model = shapes["shared.weight"]
        buckets, heads = shapes[k.HF_REL_BIAS.format(0)]
        inner = shapes[k.HF_Q.format(0)][0]
        d_ff = shapes[k.HF_WI_0.format(0)][0]
    except KeyError as exc:
        raise WeightsError(f"{source}: umT5 weights lack {exc.args[0]}; the file is incomplete") from None
    if layers > 1 and k.HF_REL_BIAS.format(1) not in shapes:
        raise WeightsError(
            f"{source} is a T5 v1.1 encoder (e.g. Flux's t5xxl): only its first layer has a position bias. "
            "Wan uses umT5-XXL; load umt5_xxl_fp16.safetensors (or another umT5 file) instead"
        )
    if inner % heads:
        raise WeightsError(f"{source}: attention width {inner} is not a multiple of the {heads} heads")
    return TextEncoderConfig(
        kind="umt5", vocab_size=vocab, d_model=d_model, d_kv=inner // heads, d_ff=d_ff, num_layers=layers,
        num_heads=heads, relative_attention_num_buckets=buckets, max_length=max_length,
    )


_SHAPE_FIELDS = ("vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_heads", "relative_attention_num_buckets")


def _load_into(model: nn.Module, sd: dict[str, Tensor], path: Path, cfg: TextEncoderConfig) -> None:
    expected = {k: v for k, v in model.state_dict().items() if k != t5_keys.HF_TIED_EMBEDDING}
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    wrong = [
        f"{k}: file {tuple(sd[k].shape)}, model {tuple(v.shape)}"
        for k, v in expected.items() if k in sd and sd[k].shape != v.shape
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys, e.g. {missing[:3]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys, e.g. {unexpected[:3]}")
        if wrong:
            parts.append(f"{len(wrong)} shape mismatches, e.g. {wrong[:3]}")
        raise WeightsError(
            f"{path.name} does not fit a umT5 encoder with d_model={cfg.d_model}, layers={cfg.num_layers}: "
            + "; ".join(parts)
        )
    model.load_state_dict(sd, strict=False, assign=True)
    model.set_input_embeddings(model.shared)  # re-tie encoder.embed_tokens to the loaded embedding
    still_meta = [n for n, p in model.named_parameters() if p.is_meta]
    if still_meta:
        raise WeightsError(f"{path.name}: no weights for {still_meta[:3]}")


def load_umt5(
    weights_path: str | os.PathLike,
    *,
    tokenizer_path: str | os.PathLike | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    config: TextEncoderConfig | None = None,
) -> UMT5TextEncoder:
    """Load umT5 from safetensors (transformers/ComfyUI or original Wan layout) with its tokenizer.

    The shape is inferred from the tensors unless ``config`` is given (its ``max_length``, default
    512, is the padded output length). The tokenizer is the ``spiece_model`` tensor inside the file
    when present, else ``tokenizer_path`` (a folder with ``spiece.model`` or ``tokenizer.json``).
    """
    path = Path(weights_path)
    raw, meta = _read_weights(path, dtype)
    layout, prefix = _find_layout(list(raw), path)
    spiece = _find_spiece(raw, prefix)
    sd = _encoder_tensors(raw, layout, prefix, dtype, path)
    del raw

    stored = None
    if meta.get("text_encoder_config"):  # project-format files describe themselves
        try:
            stored = config_from_dict(TextEncoderConfig, json.loads(meta["text_encoder_config"]))
        except (ValueError, TypeError) as exc:
            raise WeightsError(f"{path.name}: unreadable text_encoder_config metadata ({exc})") from None
    found = infer_umt5_config(
        {k: tuple(v.shape) for k, v in sd.items()},
        max_length=stored.max_length if stored else DEFAULT_MAX_LENGTH,
        source=path.name,
    )
    cfg = config or stored or found
    diff = [f"{f}: file {getattr(found, f)}, config {getattr(cfg, f)}" for f in _SHAPE_FIELDS
            if getattr(found, f) != getattr(cfg, f)]
    if diff:
        raise WeightsError(f"{path.name} does not match the given text encoder config: " + "; ".join(diff))

    if spiece is not None:
        tokenizer: Tokenizer = _sentencepiece_from_bytes(spiece.cpu().numpy().tobytes(), f"{path.name} (spiece_model)")
    elif tokenizer_path is not None:
        tokenizer = load_tokenizer(tokenizer_path)
    else:
        raise WeightsError(f"{path.name} holds no tokenizer (no 'spiece_model' tensor); {TOKENIZER_HELP}")
    if tokenizer.vocab_size > cfg.vocab_size:
        raise WeightsError(
            f"the tokenizer has {tokenizer.vocab_size} tokens but {path.name} embeds only {cfg.vocab_size}; "
            "it is not umT5's tokenizer"
        )

    model = build_umt5_model(cfg)
    _load_into(model, sd, path, cfg)
    encoder = UMT5TextEncoder(model, tokenizer, cfg)
    return encoder.to(device=device, dtype=dtype).eval().requires_grad_(False)


class ByteTextEncoder(nn.Module):
    """A tokenizer-free encoder: one learned vector per UTF-8 byte plus a learned position.

    It needs no vocabulary file, so a small model can be built from nothing (the untrained
    placeholder default, tests). Ids: 0 pad, 1 EOS, byte b -> b + 2; no BOS, as in umT5.
    """

    def __init__(self, dim: int, max_length: int) -> None:
        super().__init__()
        self.config = TextEncoderConfig(kind="bytes", vocab_size=258, d_model=dim, max_length=max_length)
        self.output_dim = dim
        self.max_length = max_length
        self.token_embedding = nn.Embedding(258, dim)
        self.position_embedding = nn.Parameter(torch.randn(max_length, dim) * 0.02)

    def tokenize(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """Ids [B, max_length] (0-padded, EOS-terminated, truncated with a warning) and lengths [B]."""
        if isinstance(prompts, str):
            prompts = [prompts]
        ids = torch.zeros(len(prompts), self.max_length, dtype=torch.long)
        lengths = torch.zeros(len(prompts), dtype=torch.long)
        for i, prompt in enumerate(prompts):
            if not isinstance(prompt, str):
                raise InputError(f"prompt {i + 1} is {type(prompt).__name__}, not text")
            tokens = [b + 2 for b in clean_prompt(prompt).encode("utf-8")]
            if len(tokens) + 1 > self.max_length:
                dropped = len(tokens) + 1 - self.max_length
                warnings.warn(
                    f"prompt {i + 1} of {len(prompts)} is {len(tokens) + 1} tokens long; this encoder reads at most "
                    f"{self.max_length}, so the last {dropped} were dropped",
                    UserWarning,
                    stacklevel=3,
                )
                tokens = tokens[: self.max_length - 1]
            tokens.append(EOS_ID)
            ids[i, : len(tokens)] = torch.tensor(tokens)
            lengths[i] = len(tokens)
        return ids, lengths

    def encode(self, prompts: Sequence[str]) -> TextEmbedding:
        ids, lengths = self.tokenize(prompts)
        device = self.token_embedding.weight.device
        ids, lengths = ids.to(device), lengths.to(device)
        context = self.token_embedding(ids) + self.position_embedding[None]
        keep = torch.arange(self.max_length, device=device)[None, :, None] < lengths[:, None, None]
        return TextEmbedding(context=context * keep, lengths=lengths)
