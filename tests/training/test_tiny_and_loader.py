import pytest

from rag.model_card import ModelCard
from training.base_model import load_model, load_tokenizer
from training.errors import ModelNotFound, OutputExists
from training.tiny import TinyConfig, run


def test_tiny_base_is_an_ordinary_hf_folder_with_a_trainable_chat_template(tiny_base):
    card = ModelCard.read(tiny_base)
    assert card.kind == "onboard-tiny" and card.parameters > 1_000_000
    tok = load_tokenizer(tiny_base)
    assert "{% generation %}" in tok.chat_template
    msgs = [{"role": "user", "content": "退款多久能到账？"}, {"role": "assistant", "content": "5 to 10 days"}]
    enc = tok.apply_chat_template(msgs, return_dict=True, return_assistant_tokens_mask=True)
    trained = [t for t, m in zip(enc["input_ids"], enc["assistant_masks"], strict=True) if m]
    assert tok.decode(trained) == "5 to 10 days<|im_end|>"  # the answer and its stop token, nothing else
    assert tok.decode(tok("退款多久能到账？")["input_ids"]) == "退款多久能到账？"  # byte-level: lossless Chinese
    model = load_model(tiny_base)
    assert model.config.model_type == "llama"


def test_pretraining_taught_the_documents(tiny_base):
    import math

    card = ModelCard.read(tiny_base)
    vocab = load_model(tiny_base).config.vocab_size
    assert card.provenance["final_loss"] < math.log(vocab) - 2  # a random init scores about ln(vocab)


def test_build_refuses_to_overwrite(tiny_base, docs_dir):
    with pytest.raises(OutputExists, match="--force"):
        run(TinyConfig(docs=docs_dir, out=tiny_base, steps=1))


def test_loader_names_a_missing_model(tmp_path):
    with pytest.raises(ModelNotFound, match="onboard base build tiny"):
        load_model(tmp_path / "no-such-model")


def test_model_info_fingerprints_the_weights(tiny_base, tmp_path, monkeypatch):
    import shutil

    from training.record import base_ref

    monkeypatch.setenv("ONBOARD_CACHE", str(tmp_path / "cache"))
    copy = tmp_path / "copy"
    shutil.copytree(tiny_base, copy)
    first = base_ref(str(copy)).weights_sha256
    assert first == base_ref(str(tiny_base)).weights_sha256, "same weights, same fingerprint"
    assert (tmp_path / "cache" / "file-sha256.json").exists(), "file hashes are remembered"
    weights = next(copy.glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one bit of one weight
    weights.write_bytes(bytes(data))
    assert base_ref(str(copy)).weights_sha256 != first
