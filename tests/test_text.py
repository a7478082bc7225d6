"""umT5 text encoder against transformers' UMT5EncoderModel: tokenisation as Wan/ComfyUI, both weight
layouts, tokenizer sources, truncation, dtype, and the files it refuses."""

from __future__ import annotations

import csv
import dataclasses
import io
import random
from pathlib import Path

import pytest
import sentencepiece
import torch
from safetensors.torch import save_file
from transformers import UMT5Config, UMT5EncoderModel

from sora_core.config import TEXT_PRESETS
from sora_core.errors import InputError, WeightsError
from sora_core.loading import t5_keys
from sora_core.text import (
    TextEmbedding,
    TextEncoder,
    UMT5TextEncoder,
    clean_prompt,
    infer_umt5_config,
    load_tokenizer,
    load_umt5,
)
from tests.conftest import randomize_, rel_err

SHARED = Path(__file__).resolve().parents[2] / "shared" / "research" / "keymaps"
SYLLABLES = "ka to ri mu se la no pe vi zu ba do fi go he ju xo qu wa ye".split()
PROMPTS = ["bavi lase qu", "  kato   rimu\n se  la ", "", "zuzu kalazu vijuri bavi"]


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    rng = random.Random(0)
    words = ["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 3))) for _ in range(400)]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) for _ in range(400)]


@pytest.fixture(scope="module")
def spiece(corpus) -> bytes:
    """A tiny sentencepiece model with umT5's special ids: pad 0, eos 1, unk 2, no bos."""
    buf = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=buf, vocab_size=200, hard_vocab_limit=False,
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, minloglevel=2,
    )
    return buf.getvalue()


@pytest.fixture(scope="module")
def sp(spiece):
    return sentencepiece.SentencePieceProcessor(model_proto=spiece)


@pytest.fixture(scope="module")
def cfg(sp):
    # The embedding has a few more rows than the tokenizer has pieces, as umT5-XXL's does.
    return dataclasses.replace(TEXT_PRESETS["test-tiny-umt5"], vocab_size=sp.get_piece_size() + 8)


@pytest.fixture(scope="module")
def reference(cfg) -> UMT5EncoderModel:
    """transformers' own UMT5 built the way umT5-XXL's config describes it (gated-gelu = gelu_new)."""
    torch.manual_seed(0)
    hf = UMT5Config(
        vocab_size=cfg.vocab_size, d_model=cfg.d_model, d_kv=cfg.d_kv, d_ff=cfg.d_ff, num_layers=cfg.num_layers,
        num_heads=cfg.num_heads, relative_attention_num_buckets=cfg.relative_attention_num_buckets,
        relative_attention_max_distance=cfg.relative_attention_max_distance, feed_forward_proj="gated-gelu",
        dropout_rate=0.0, layer_norm_epsilon=1e-6, is_encoder_decoder=False, use_cache=False,
    )
    return randomize_(UMT5EncoderModel(hf), seed=1).eval()


def hf_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict as ComfyUI stores it: only shared.weight for the tied embedding."""
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    sd.pop("encoder.embed_tokens.weight")
    return sd


def wan_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The original Wan layout, written out by hand (independent of sora_core's table)."""
    sd = hf_tensors(model)
    out = {"token_embedding.weight": sd.pop("shared.weight"), "norm.weight": sd.pop("encoder.final_layer_norm.weight")}
    n = 0
    while f"encoder.block.{n}.layer.0.layer_norm.weight" in sd:
        a, f = f"encoder.block.{n}.layer.0.", f"encoder.block.{n}.layer.1."
        out[f"blocks.{n}.norm1.weight"] = sd.pop(a + "layer_norm.weight")
        for p in "qkvo":
            out[f"blocks.{n}.attn.{p}.weight"] = sd.pop(a + f"SelfAttention.{p}.weight")
        out[f"blocks.{n}.pos_embedding.embedding.weight"] = sd.pop(a + "SelfAttention.relative_attention_bias.weight")
        out[f"blocks.{n}.norm2.weight"] = sd.pop(f + "layer_norm.weight")
        out[f"blocks.{n}.ffn.gate.0.weight"] = sd.pop(f + "DenseReluDense.wi_0.weight")
        out[f"blocks.{n}.ffn.fc1.weight"] = sd.pop(f + "DenseReluDense.wi_1.weight")
        out[f"blocks.{n}.ffn.fc2.weight"] = sd.pop(f + "DenseReluDense.wo.weight")
        n += 1
    assert not sd, sorted(sd)
    return out


def spiece_tensor(proto: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(proto), dtype=torch.uint8)


@pytest.fixture(scope="module")
def files(tmp_path_factory, reference, spiece) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("umt5")
    paths = {"hf": d / "umt5_comfy.safetensors", "wan": d / "umt5_wan.safetensors", "tok": d / "tokenizer"}
    save_file({**hf_tensors(reference), "spiece_model": spiece_tensor(spiece)}, str(paths["hf"]))
    save_file(wan_tensors(reference), str(paths["wan"]))
    paths["tok"].mkdir()
    (paths["tok"] / "spiece.model").write_bytes(spiece)
    return paths


def expected(reference, sp, prompts, max_length) -> tuple[torch.Tensor, torch.Tensor]:
    """Wan/ComfyUI semantics spelled out: cleaned text, sp ids + EOS 1, pad 0 to max_length, masked rows zero."""
    ids = torch.zeros(len(prompts), max_length, dtype=torch.long)
    lengths = torch.zeros(len(prompts), dtype=torch.long)
    for i, p in enumerate(prompts):
        tokens = sp.encode(" ".join(p.split()), out_type=int)[: max_length - 1] + [1]
        ids[i, : len(tokens)] = torch.tensor(tokens)
        lengths[i] = len(tokens)
    mask = torch.arange(max_length)[None] < lengths[:, None]
    with torch.no_grad():
        out = reference(input_ids=ids, attention_mask=mask.long()).last_hidden_state
    return out * mask[..., None], lengths


def check(emb: TextEmbedding, want: torch.Tensor, lengths: torch.Tensor, tol: float = 1e-5) -> None:
    assert emb.context.shape == want.shape
    assert emb.lengths.dtype == torch.long and emb.lengths.tolist() == lengths.tolist()
    for i, n in enumerate(lengths.tolist()):
        assert rel_err(emb.context[i, :n], want[i, :n]) < tol
        assert torch.count_nonzero(emb.context[i, n:]) == 0


# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["hf", "wan"])
def test_both_layouts_match_transformers(layout, files, reference, sp, cfg):
    kwargs = {"tokenizer_path": files["tok"]} if layout == "wan" else {}
    enc = load_umt5(files[layout], config=cfg, **kwargs)
    assert isinstance(enc, TextEncoder) and isinstance(enc, UMT5TextEncoder)
    assert enc.output_dim == cfg.d_model and enc.max_length == cfg.max_length
    want, lengths = expected(reference, sp, PROMPTS, cfg.max_length)
    emb = enc.encode(PROMPTS)
    check(emb, want, lengths)
    assert emb.lengths.tolist()[2] == 1  # the empty prompt is just EOS
    ids, lens = enc.tokenize(PROMPTS)
    assert ids.shape == (len(PROMPTS), cfg.max_length) and lens.tolist() == lengths.tolist()
    assert ids[0, : lens[0]].tolist()[-1] == 1 and ids[0, lens[0]:].eq(0).all()


def test_layouts_agree_and_config_is_inferred(files, cfg):
    a = load_umt5(files["hf"])
    b = load_umt5(files["wan"], tokenizer_path=files["tok"])
    assert a.config == b.config == dataclasses.replace(cfg, max_length=512)
    ea, eb = a.encode(PROMPTS[:2]), b.encode(PROMPTS[:2])
    assert ea.context.shape == (2, 512, cfg.d_model)  # padded to Wan's text_len
    assert torch.equal(ea.context, eb.context) and torch.equal(ea.lengths, eb.lengths)


def test_batch_and_whitespace_do_not_change_a_prompt(files, cfg):
    enc = load_umt5(files["hf"], config=cfg)
    alone = enc.encode(["kato rimu se la"])
    together = enc.encode(["zuzu kalazu vijuri bavi lase qu kato", "\tkato  rimu\n\nse la  "])
    assert clean_prompt("  a \n\t b&amp;c ") == "a b&c"
    n = int(alone.lengths[0])
    assert together.lengths[1] == n
    assert rel_err(together.context[1, :n], alone.context[0, :n]) < 1e-5


def test_long_prompt_is_truncated_with_a_warning(files, reference, sp, cfg, corpus):
    enc = load_umt5(files["hf"], config=cfg)
    long = " ".join(corpus[:6])
    n_tokens = len(sp.encode(long)) + 1
    assert n_tokens > cfg.max_length
    with pytest.warns(UserWarning, match=rf"{n_tokens} tokens.*at most {cfg.max_length}.*last {n_tokens - 16} tokens"):
        emb = enc.encode(["bavi", long])
    want, lengths = expected(reference, sp, ["bavi", long], cfg.max_length)
    assert lengths.tolist() == [2, cfg.max_length]
    check(emb, want, lengths)
    with pytest.warns(UserWarning, match="dropped"):
        ids, lens = enc.tokenize(long)
    assert lens.tolist() == [cfg.max_length] and ids[0, -1] == 1


def test_bfloat16(files, reference, sp, cfg):
    enc = load_umt5(files["hf"], config=cfg, dtype=torch.bfloat16)
    assert enc.dtype == torch.bfloat16 and enc.spiece_model.dtype == torch.uint8
    emb = enc.encode(PROMPTS)
    assert emb.context.dtype == torch.bfloat16
    want, lengths = expected(reference, sp, PROMPTS, cfg.max_length)
    check(emb, want, lengths, tol=3e-2)


def test_tokenizer_json_folder(tmp_path, files, reference, sp, cfg, corpus):
    """A tokenizer.json folder (what google/umt5-xxl also ships) loads offline through AutoTokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.Unigram([(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())], 2))
    tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tk.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="</s>", pad_token="<pad>", unk_token="<unk>") \
        .save_pretrained(str(tmp_path))
    assert not (tmp_path / "spiece.model").exists()
    tok = load_tokenizer(tmp_path)
    assert tok.eos_id == 1 and all(tok.encode(s) == sp.encode(s) for s in corpus[:50])
    enc = load_umt5(files["wan"], tokenizer_path=tmp_path, config=cfg)
    want, lengths = expected(reference, sp, PROMPTS, cfg.max_length)
    check(enc.encode(PROMPTS), want, lengths)


def test_project_file_round_trip(tmp_path, files, cfg):
    """A saved encoder keeps its tokenizer and config; the tied embedding is stored once."""
    from sora_core.loading import save_project_file

    enc = load_umt5(files["hf"], config=cfg)
    sd = enc.state_dict()
    assert "model.shared.weight" in sd and "spiece_model" in sd and "model.encoder.embed_tokens.weight" not in sd
    path = save_project_file(tmp_path / "bundle.safetensors", {"text_encoder": enc})
    again = load_umt5(path)
    assert again.config == cfg
    a, b = enc.encode(PROMPTS), again.encode(PROMPTS)
    assert torch.equal(a.context, b.context)


def test_prefixed_and_fp8_scaled_comfy_file(tmp_path, reference, spiece, sp, cfg):
    """ComfyUI's fp8 files: weight * scale_weight (legacy) or weight_scale (newer); markers dropped."""
    sd = hf_tensors(reference)
    scaled = {}
    keys = ["encoder.block.0.layer.1.DenseReluDense.wi_0.weight", "encoder.block.1.layer.0.SelfAttention.q.weight"]
    for i, key in enumerate(keys):
        w = sd[key]
        scale = w.abs().max() / 448
        q = (w / scale).to(torch.float8_e4m3fn)
        sd[key] = q
        sd[key[: -len("weight")] + ("scale_weight" if i == 0 else "weight_scale")] = scale.reshape(())
        scaled[key] = q.float() * scale
    sd["encoder.block.0.layer.1.DenseReluDense.wi_0.scale_input"] = torch.ones(())
    sd["scaled_fp8"] = torch.empty(0, dtype=torch.float8_e4m3fn)
    sd = {"text_encoders.umt5xxl.transformer." + k: v for k, v in sd.items()}
    sd["spiece_model"] = spiece_tensor(spiece)
    path = tmp_path / "umt5_xxl_fp8_e4m3fn_scaled.safetensors"
    save_file(sd, str(path))
    enc = load_umt5(path, config=cfg)

    ref = UMT5EncoderModel(reference.config).eval()
    ref.load_state_dict({**reference.state_dict(), **scaled}, strict=False)
    ref.set_input_embeddings(ref.shared)
    want, lengths = expected(ref, sp, PROMPTS, cfg.max_length)
    check(enc.encode(PROMPTS), want, lengths)


# ----------------------------------------------------------------------------------------------
# What is refused, and how


def test_pickles_are_refused(tmp_path, reference):
    sd = hf_tensors(reference)
    zipped = tmp_path / "umt5.safetensors"  # a torch.save zip under a safetensors name
    torch.save(sd, zipped)
    legacy = tmp_path / "umt5_legacy.safetensors"
    torch.save(sd, legacy, _use_new_zipfile_serialization=False)
    for path in (zipped, legacy):
        with pytest.raises(WeightsError, match=r"pickled PyTorch checkpoint.*Only \.safetensors.*save_file"):
            load_umt5(path)
    renamed = tmp_path / "pytorch_model.bin"  # even valid safetensors content: the name must say so
    save_file(sd, str(renamed))
    with pytest.raises(WeightsError, match=r"pytorch_model\.bin is not a \.safetensors file.*Convert it"):
        load_umt5(renamed)
    with pytest.raises(WeightsError, match="not found"):
        load_umt5(tmp_path / "missing.safetensors")


def test_missing_tokenizer_is_explained(tmp_path, files):
    with pytest.raises(WeightsError, match=r"umt5_wan\.safetensors holds no tokenizer.*tokenizer_path.*spiece\.model"):
        load_umt5(files["wan"])
    with pytest.raises(WeightsError, match="neither spiece.model nor tokenizer.json"):
        load_umt5(files["wan"], tokenizer_path=tmp_path)
    (tmp_path / "spiece.model").write_bytes(b"not a model")
    with pytest.raises(WeightsError, match="not a valid sentencepiece model"):
        load_tokenizer(tmp_path)


def test_wrong_files_and_configs(tmp_path, files, reference, cfg):
    sd = hf_tensors(reference)
    t5_v11 = {k: v for k, v in sd.items() if not (k.startswith("encoder.block.1.") and "relative_attention" in k)}
    save_file(t5_v11, str(tmp_path / "t5xxl.safetensors"))
    with pytest.raises(WeightsError, match=r"T5 v1\.1 encoder.*umT5"):
        load_umt5(tmp_path / "t5xxl.safetensors")
    save_file({"patch_embedding.weight": torch.zeros(2, 2)}, str(tmp_path / "dit.safetensors"))
    with pytest.raises(WeightsError, match="not a umT5 text encoder"):
        load_umt5(tmp_path / "dit.safetensors")
    with pytest.raises(WeightsError, match="d_model: file 32, config 64"):
        load_umt5(files["hf"], config=dataclasses.replace(cfg, d_model=64))
    wan = wan_tensors(reference)
    wan["blocks.0.extra.weight"] = torch.zeros(1)
    save_file(wan, str(tmp_path / "odd_wan.safetensors"))
    with pytest.raises(WeightsError, match=r"blocks\.0\.extra\.weight"):
        load_umt5(tmp_path / "odd_wan.safetensors", tokenizer_path=files["tok"])
    enc = load_umt5(files["hf"], config=cfg)
    with pytest.raises(InputError):
        enc.encode([])
    with pytest.raises(InputError, match="strings"):
        enc.encode([1])  # type: ignore[list-item]


def test_key_table_matches_research_tsv(cfg):
    tsv = SHARED / "t5_key_mapping_orig_to_hf.tsv"
    if not tsv.exists():
        pytest.skip("research key map not available")
    rows = list(csv.reader(tsv.open(), delimiter="\t"))
    assert rows
    for orig, hf, _shape in rows:
        if hf == t5_keys.HF_TIED_EMBEDDING:
            continue  # the tied alias of shared.weight
        assert t5_keys.wan_key_to_hf(orig) == hf
    assert t5_keys.wan_key_to_hf("blocks.0.attn.q.bias") is None
    shapes = {hf: tuple(int(x) for x in shape.strip("()").split(",") if x.strip()) for _, hf, shape in rows}
    found = infer_umt5_config(shapes)
    assert (found.d_model, found.d_ff, found.num_layers, found.num_heads, found.d_kv) == (32, 48, 2, 4, 8)
