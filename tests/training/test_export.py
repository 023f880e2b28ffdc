"""`onboard export`: GGUF (llama.cpp's layout, read back by transformers) and ONNX (onnxruntime).

The fast tests build their own random tiny models (Llama with a GPT-2-style byte-level BPE like
Onboard's tiny base, Qwen2 with Qwen2's split regex, tied embeddings and attention biases), a few
hundred KB each, save them as Hugging Face folders and export those. One test exports the session's
real merged tiny model (built by the shared fixtures).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.errors import OutputExists
from training.export import ExportConfig, ExportError, ExportVerificationFailed, default_out, run

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
TEXTS = ["Refunds take 5 to 10 working days.", "退款多久能到账？五到十个工作日。", "How long do I have to return an item?",
         "The warranty covers two years.", "system user assistant"] * 4
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
               r"|\s+(?!\S)|\s+")


def _tokenizer(split: str | None):
    """A tiny byte-level BPE with ChatML specials: GPT-2's regex (split=None) or a Split regex + ByteLevel."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = (pre_tokenizers.ByteLevel(add_prefix_space=False) if split is None else pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(split), behavior="isolated"),
         pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]))
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(TEXTS, trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIALS, show_progress=False,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.add_special_tokens({"additional_special_tokens": ["<|im_start|>"]})
    fast.chat_template = CHATML
    return fast


def make_model(folder: Path, family: str) -> Path:
    """Save a random tiny `family` ("llama", "qwen2", "gpt2": unsupported) model with its tokenizer in `folder`."""
    import torch
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    tok = _tokenizer(QWEN2_SPLIT if family == "qwen2" else None)
    vocab = -(-len(tok) // 64) * 64  # padded like Onboard's tiny model: ids past the tokenizer are [PADn]
    kw = dict(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-6,
              eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None)
    torch.manual_seed(0)
    if family == "llama":
        model = LlamaForCausalLM(LlamaConfig(**kw, tie_word_embeddings=False))
    elif family == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**kw, tie_word_embeddings=True))
        with torch.no_grad():  # random biases, so a lost or misplaced bias shows in the logits
            for layer in model.model.layers:
                for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                    proj.bias.normal_(0, 0.5)
    else:
        model = GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_embd=64, n_layer=1, n_head=4))
    with torch.no_grad():  # norms away from 1, so a norm written to the wrong place shows too
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("export-src")
    return {f: make_model(root / f, f) for f in ("llama", "qwen2")}


def _gguf_fields(path: Path) -> dict:
    from gguf import GGUFReader

    reader = GGUFReader(path)
    fields = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("tokenizer.ggml.") or
              k in ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.eos_token_id",
                    "tokenizer.ggml.padding_token_id")}
    fields["tensors"] = {t.name: t.tensor_type.name for t in reader.tensors}
    return fields


@pytest.mark.parametrize("family", ["llama", "qwen2"])
@pytest.mark.parametrize("dtype", ["f32", "f16", "q8_0"])
def test_gguf_export_reads_back_with_the_same_logits(tmp_path, models, family, dtype):
    out = tmp_path / f"{family}-{dtype}.gguf"
    r = run(ExportConfig(model=models[family], out=out, format="gguf", gguf_dtype=dtype))

    assert r.out == out and out.is_file() and r.size_bytes == out.stat().st_size
    assert not list(tmp_path.glob(".*partial*"))  # the scratch file is gone
    assert r.tokenizer_match and r.positions > 20
    if dtype == "f32":
        assert r.top1_agreement == 1.0 and r.max_logit_diff < 1e-4
    elif dtype == "f16":
        assert r.top1_agreement >= 0.98 and r.max_logit_diff < 5e-3 and r.min_logit_cosine > 0.9999
    else:
        assert r.top1_agreement >= 0.9 and r.min_logit_cosine > 0.999

    f = _gguf_fields(out)
    assert f["general.architecture"] == family and f["tokenizer.ggml.model"] == "gpt2"
    assert f["tokenizer.ggml.pre"] == ("qwen2" if family == "qwen2" else "gpt-2")
    assert f[f"{family}.block_count"] == 2 and f[f"{family}.attention.head_count_kv"] == 2
    assert f[f"{family}.context_length"] == 256 and f[f"{family}.embedding_length"] == 64
    assert "<|im_start|>" in f["tokenizer.chat_template"]
    assert f["general.file_type"] == {"f32": 0, "f16": 1, "q8_0": 7}[dtype]
    types = f["tensors"]
    assert types["blk.0.attn_norm.weight"] == types["output_norm.weight"] == "F32"  # norms stay F32, as in llama.cpp
    assert types["blk.1.ffn_down.weight"] == {"f32": "F32", "f16": "F16", "q8_0": "Q8_0"}[dtype]
    assert ("output.weight" in types) == (family == "llama")  # qwen2 here ties its head to token_embd
    if family == "qwen2":
        assert types["blk.0.attn_q.bias"] == "F32"
    sidecar = json.loads(out.with_name(out.name + ".json").read_text())
    assert sidecar["verification"]["top1_agreement"] == r.top1_agreement and sidecar["dtype"] == dtype


def test_gguf_refuses_to_overwrite_without_force(tmp_path, models):
    out = tmp_path / "m.gguf"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputExists, match="--force"):
        run(ExportConfig(model=models["llama"], out=out, gguf_dtype="f32"))
    assert out.read_bytes() == b"keep me"
    run(ExportConfig(model=models["llama"], out=out, gguf_dtype="f32", force=True))
    assert out.read_bytes()[:4] == b"GGUF"


def test_unsupported_architecture_names_the_supported_ones(tmp_path):
    src = make_model(tmp_path / "gpt2", "gpt2")
    with pytest.raises(ExportError, match="LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM.*GPT2LMHeadModel"):
        run(ExportConfig(model=src, out=tmp_path / "m.gguf"))
    assert not list(tmp_path.glob("*.gguf")) and not list(tmp_path.glob(".*gguf"))


def test_a_file_that_fails_verification_is_not_kept(tmp_path, models, monkeypatch):
    import training.export.gguf as ex

    real = ex._permute
    monkeypatch.setattr(ex, "_permute", lambda w, n: real(real(w, n), n))  # the wrong rotary order
    out = tmp_path / "bad.gguf"
    with pytest.raises(ExportVerificationFailed, match="nothing was kept"):
        run(ExportConfig(model=models["llama"], out=out, gguf_dtype="f32"))
    assert list(tmp_path.iterdir()) == []


def test_a_gguf_tokenizer_that_splits_differently_is_not_kept(tmp_path, models, monkeypatch):
    import training.export.gguf as ex

    monkeypatch.setattr(ex, "_pre_tokenizer", lambda folder: "llama-bpe")  # Llama 3's regex for a GPT-2-style BPE
    with pytest.raises(ExportVerificationFailed, match="splits text differently"):
        run(ExportConfig(model=models["llama"], out=tmp_path / "m.gguf", gguf_dtype="f32"))
    assert list(tmp_path.iterdir()) == []


def test_sentencepiece_and_unknown_tokenizers_are_refused_with_the_way_out(tmp_path, models):
    import shutil

    src = tmp_path / "m"
    shutil.copytree(models["llama"], src)
    spec = json.loads((src / "tokenizer.json").read_text())
    spec["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
    (src / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(ExportError, match="SentencePiece.*convert_hf_to_gguf.py"):
        run(ExportConfig(model=src, out=tmp_path / "m.gguf"))


def test_rope_scaling_it_cannot_verify_is_refused_before_loading_weights(tmp_path, models):
    import shutil

    src = tmp_path / "m"
    shutil.copytree(models["llama"], src)
    cfg = json.loads((src / "config.json").read_text())
    cfg["rope_parameters"] = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                              "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
    (src / "config.json").write_text(json.dumps(cfg))
    (src / "model.safetensors").unlink()  # never read: the config alone decides
    with pytest.raises(ExportError, match="rope scaling 'llama3'.*convert_hf_to_gguf.py"):
        run(ExportConfig(model=src, out=tmp_path / "m.gguf"))


def test_default_out_sits_beside_the_model(tmp_path):
    assert default_out(tmp_path / "merged", "gguf", "q8_0") == tmp_path / "merged-q8_0.gguf"
    assert default_out(tmp_path / "merged", "onnx") == tmp_path / "merged-onnx"


def test_real_merged_model_exports_to_gguf_and_generates_the_same(tmp_path, merged_model):
    """The session's merged tiny model (trained, QLoRA-merged): same greedy answer from the GGUF read back."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "merged-f16.gguf"
    r = run(ExportConfig(model=merged_model, out=out, gguf_dtype="f16"))
    assert r.tokenizer_match and r.top1_agreement >= 0.98, r
    src_tok = AutoTokenizer.from_pretrained(merged_model)
    src = AutoModelForCausalLM.from_pretrained(merged_model, dtype=torch.float32)
    back = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=out.name, dtype=torch.float32)
    enc = src_tok.apply_chat_template([{"role": "user", "content": "How long do I have to return an item?"}],
                                      add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        a = src.generate(**enc, max_new_tokens=16, do_sample=False, pad_token_id=src_tok.pad_token_id)
        b = back.generate(**enc, max_new_tokens=16, do_sample=False, pad_token_id=src_tok.pad_token_id)
    assert a.tolist() == b.tolist()


def _onnx_missing() -> str | None:
    import importlib.util

    missing = [m for m in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(m) is None]
    return f"ONNX export needs the `onnx` extra ({', '.join(missing)} not installed)" if missing else None


@pytest.mark.skipif(_onnx_missing() is not None, reason=_onnx_missing() or "")
@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_onnx_export_matches_in_onnxruntime(tmp_path, models, family):
    import numpy as np
    import onnxruntime as ort
    import torch
    from transformers import AutoModelForCausalLM

    out = tmp_path / "onnx"
    r = run(ExportConfig(model=models[family], out=out, format="onnx"))
    assert r.top1_agreement == 1.0 and r.max_logit_diff < 1e-4 and r.min_logit_cosine > 0.99999
    assert (out / "model.onnx").is_file() and (out / "tokenizer.json").is_file() and (out / "onboard_export.json").is_file()
    assert not (tmp_path / "onnx.tmp").exists()
    # dynamic batch and length: two rows of 3 tokens, and one of 40, both unlike the export's example
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    src = AutoModelForCausalLM.from_pretrained(models[family], dtype=torch.float32)
    for ids in (np.array([[5, 6, 7], [8, 9, 10]]), np.arange(40)[None] + 3):
        with torch.no_grad():
            want = src(torch.from_numpy(ids)).logits.numpy()
        np.testing.assert_allclose(session.run(None, {"input_ids": ids})[0], want, atol=1e-4)


def test_onnx_without_its_packages_names_the_extra(tmp_path, models, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a))
    with pytest.raises(ExportError, match=r"onnxscript.*onboard\[onnx\].*optimum-onnx requires transformers<4.58"):
        run(ExportConfig(model=models["llama"], out=tmp_path / "onnx", format="onnx"))
    assert not (tmp_path / "onnx").exists()
