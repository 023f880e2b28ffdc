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


QWEN_LAYOUT = """<|im_start|>system
S

# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call><|im_end|>
<|im_start|>user
weather in Paris?<|im_end|>
<|im_start|>assistant
<tool_call>
{"name": "get_weather", "arguments": {"city": "Paris"}}
</tool_call><|im_end|>
<|im_start|>user
<tool_response>
sunny
</tool_response><|im_end|>
<|im_start|>assistant
"""


def test_the_template_renders_tools_as_qwen_does_and_plain_chats_as_chatml(tiny_base):
    """Tools, tool calls and tool results in Qwen2.5's layout (what serving.tools parses); a chat without
    tools is the same plain ChatML as before tools were added."""
    tok = load_tokenizer(tiny_base)
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    chat = [{"role": "system", "content": "S"}, {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
            {"role": "tool", "tool_call_id": "1", "content": "sunny"}]
    assert tok.apply_chat_template(chat, tools=tools, tokenize=False, add_generation_prompt=True) == QWEN_LAYOUT
    plain = [{"role": "system", "content": "S"}, {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    assert tok.apply_chat_template(plain, tokenize=False) == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\na<|im_end|>\n")
