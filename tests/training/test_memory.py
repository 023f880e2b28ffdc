import json

import pytest

from training.memory import PRESETS, DoesNotFit, GiB, ModelShape, estimate, needs_checkpointing, recommend

QWEN7 = ModelShape.preset("qwen2.5-7b")

# Parameter counts published on the model cards (billions).
PUBLISHED = {"qwen2.5-0.5b": 0.49, "qwen2.5-1.5b": 1.54, "qwen2.5-3b": 3.09, "qwen2.5-7b": 7.61, "qwen2.5-14b": 14.7,
             "qwen2.5-32b": 32.5, "qwen2.5-72b": 72.7, "llama-3.1-8b": 8.03, "llama-3.1-70b": 70.6,
             "llama-3.2-1b": 1.24, "llama-3.2-3b": 3.21, "mistral-7b": 7.25}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_presets_match_published_parameter_counts(name):
    assert PRESETS[name].params / 1e9 == pytest.approx(PUBLISHED[name], rel=0.01)


def test_from_config_reads_a_config_json_a_dict_and_a_transformers_config(tmp_path):
    from transformers import Qwen2Config

    cfg = dict(model_type="qwen2", num_hidden_layers=28, hidden_size=3584, intermediate_size=18944,
               num_attention_heads=28, num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    from_file = ModelShape.from_config(tmp_path, name="qwen2.5-7b")
    assert from_file.params == QWEN7.params and from_file.kv_dim == 512
    assert ModelShape.from_config(cfg).params == QWEN7.params
    hf = ModelShape.from_config(Qwen2Config(**{k: v for k, v in cfg.items() if k != "model_type"}))
    assert hf.params == QWEN7.params


def test_from_config_names_the_missing_field():
    with pytest.raises(ValueError, match="hidden_size"):
        ModelShape.from_config({"num_hidden_layers": 2, "num_attention_heads": 2})


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match="qwen2.5-7b"):
        ModelShape.preset("gpt-5")


@pytest.mark.parametrize("method", ["full", "lora", "qlora", "dora"])
@pytest.mark.parametrize("ckpt", [True, False])
def test_estimate_grows_with_batch_seq_and_rank(method, ckpt):
    def total(**kw):
        args = dict(seq_len=1024, batch=2, lora_r=16, gradient_checkpointing=ckpt) | kw
        return estimate(QWEN7, method, **args).total

    assert total(batch=1) < total(batch=2) < total(batch=4)
    assert total(seq_len=512) < total(seq_len=1024) < total(seq_len=4096)
    if method != "full":
        assert total(lora_r=8) < total(lora_r=16) < total(lora_r=64)


def test_qlora_needs_less_than_lora_less_than_full_for_7b():
    q, lo, f = (estimate(QWEN7, m, 2048, 1) for m in ("qlora", "lora", "full"))
    assert q.total < lo.total < f.total
    assert q.weights < lo.weights / 1.8, "4-bit linears: about half of bf16 even with an fp32 embedding"


def test_the_150k_vocabulary_logits_term_matters_when_logits_are_materialized():
    full = estimate(QWEN7, "qlora", 2048, 4, logits="full")
    # bf16 logits + fp32 upcast + fp32 log-softmax + fp32 gradient: 14 bytes x 8192 tokens x 152064
    assert full.logits == pytest.approx(14 * 8192 * 152064, rel=0.01)
    assert full.logits > full.weights and full.logits > full.activations
    chunked = estimate(QWEN7, "qlora", 2048, 4)
    assert chunked.logits < full.logits / 20, "TRL's fused head keeps one tile"
    small_vocab = estimate(ModelShape.preset("mistral-7b"), "qlora", 2048, 4, logits="full")
    assert small_vocab.logits < full.logits / 4


def test_checkpointing_and_dropout_change_activations_as_measured():
    on, off = (estimate(QWEN7, "lora", 2048, 1, gradient_checkpointing=c) for c in (True, False))
    assert on.activations < off.activations / 10
    no_drop = estimate(QWEN7, "lora", 2048, 1, gradient_checkpointing=False, lora_dropout=0.0)
    assert no_drop.activations < off.activations


def test_reference_points_7b_qlora_fits_24gb_and_full_bf16_does_not():
    q = estimate(QWEN7, "qlora", 2048, 1, lora_r=16, gradient_checkpointing=True)
    assert q.total_gib < 24 * 0.9
    full = estimate(QWEN7, "full", 2048, 1, gradient_checkpointing=True, dtype="bf16", optimizer="adamw")
    assert full.total_gib > 24 and full.weights + full.trainable >= 8 * QWEN7.params
    mixed = estimate(QWEN7, "full", 2048, 1, master_weights=True)
    assert mixed.weights + mixed.trainable == 16 * QWEN7.params


@pytest.mark.parametrize("name,method,seq,gpu", [
    ("qwen2.5-7b", "qlora", 2048, 24), ("qwen2.5-7b", "lora", 2048, 80), ("llama-3.1-8b", "qlora", 4096, 24),
    ("mistral-7b", "qlora", 2048, 16), ("qwen2.5-0.5b", "lora", 1024, 8), ("qwen2.5-14b", "qlora", 1024, 24),
])
@pytest.mark.parametrize("power_of_two", [True, False])
def test_recommend_never_exceeds_the_budget_and_takes_the_largest_batch(name, method, seq, gpu, power_of_two):
    shape = PRESETS[name]
    plan = recommend(shape, method, seq, gpu, target_batch=256, power_of_two=power_of_two)
    assert plan.estimate.total <= gpu * 0.9 * GiB
    assert plan.estimate.batch == plan.batch_size >= 1
    nxt = plan.batch_size * 2 if power_of_two else plan.batch_size + 1
    bigger = estimate(shape, method, seq, nxt, gradient_checkpointing=plan.gradient_checkpointing)
    assert bigger.total > gpu * 0.9 * GiB, "the next batch up would not have fitted"
    assert plan.batch_size * plan.gradient_accumulation_steps == plan.effective_batch >= 256


def test_recommend_reaches_the_target_with_accumulation_and_explains():
    plan = recommend(QWEN7, "qlora", 2048, 24, target_batch=32)
    assert plan.effective_batch >= 32 and plan.gradient_accumulation_steps == -(-32 // plan.batch_size)
    assert any("accumulation" in n for n in plan.notes)
    assert plan.recipe_values()["batch_size"] == plan.batch_size


def test_recommend_checkpoints_only_when_needed():
    assert recommend(QWEN7, "qlora", 2048, 24).gradient_checkpointing  # 7B activations at 2k tokens
    tiny = recommend(PRESETS["tiny"], "lora", 256, 80, target_batch=8)
    assert not tiny.gradient_checkpointing and tiny.batch_size == 8


def test_checkpointing_is_needed_only_when_the_given_batch_does_not_fit():
    small = ModelShape.preset("qwen2.5-0.5b")
    plain = estimate(small, "lora", 1024, 1, gradient_checkpointing=False, dtype="fp32", device="cpu").total_gib
    on, why = needs_checkpointing(small, "lora", 1024, 1, 24, device="cpu")
    assert not on and f"{plain:.1f} GiB" in why and "within the 21.6 GiB budget" in why  # 24 GiB x 0.9
    on, why = needs_checkpointing(small, "lora", 1024, 1, plain / 0.9 - 0.1, device="cpu")
    assert on and "over the" in why
    assert needs_checkpointing(QWEN7, "qlora", 2048, 8, 24)[0], "7B activations at 8 x 2k tokens need it"


def test_recommend_on_cpu_prefers_lora_on_fp32_and_says_so():
    shape = PRESETS["qwen2.5-0.5b"]
    q = recommend(shape, "qlora", 512, 16, device="cpu")
    assert any("on CPU prefer LoRA on an fp32 base" in n for n in q.notes)
    assert q.estimate.device == "cpu" and q.estimate.overhead < GiB  # no CUDA context on CPU
    lo = recommend(shape, "lora", 512, 16, device="cpu")
    assert any("QLoRA" in n and "remains available" in n for n in lo.notes)


def test_does_not_fit_names_what_would():
    with pytest.raises(DoesNotFit, match=r"--method qlora \(\d+\.\d GiB\)"):
        recommend(QWEN7, "full", 2048, 48)
    with pytest.raises(DoesNotFit, match="FSDP or ZeRO-3"):
        recommend(PRESETS["qwen2.5-72b"], "qlora", 4096, 16)


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="method"):
        estimate(QWEN7, "adapters", 1024, 1)
    with pytest.raises(ValueError, match="dtype"):
        estimate(QWEN7, "lora", 1024, 1, dtype="fp16")
