import json

import pytest
import torch
from safetensors.torch import load_file

from training.base_model import load_model
from training.errors import OutputExists
from training.sft import SFTRunConfig, run


def _losses(run_dir):
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()
            if "loss" in json.loads(line)]


def test_qlora_trains_loss_falls_and_provenance_is_kept(qlora_run):
    losses = _losses(qlora_run.output_dir)
    assert len(losses) == 12
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4
    adapter = load_file(qlora_run.adapter_dir / "adapter_model.safetensors")
    lora_b = {k: v for k, v in adapter.items() if "lora_B" in k}
    assert any("layers.0." in k for k in lora_b) and any("mlp.down_proj" in k for k in lora_b)
    assert all(v.abs().sum() > 0 for v in lora_b.values()), "every LoRA B moved away from its zero init"
    assert all(v.dtype == torch.float32 for v in adapter.values()), "fp32 adapters on CPU"
    cfg = json.loads((qlora_run.output_dir / "config.json").read_text())
    assert cfg["config"]["method"] == "qlora" and len(cfg["train_sha256"]) == 64
    assert cfg["base_model"]["card"]["kind"] == "onboard-tiny"
    assert qlora_run.eval_loss is not None


def test_qlora_layers_are_4bit(tiny_base):
    import bitsandbytes as bnb

    model = load_model(tiny_base, quantization="4bit", training=True)
    q = model.model.layers[0].self_attn.q_proj
    assert isinstance(q, bnb.nn.Linear4bit)
    assert q.weight.quant_state.quant_type == "nf4" and q.weight.quant_state.nested  # double quantization


def test_4bit_layers_keep_input_gradients_after_an_eval_pass(tiny_base):
    """Regression: bitsandbytes repacks 4-bit weights for CPU inference on an eval forward and then
    drops input gradients in training; `load_model(training=True)` must prevent that."""
    model = load_model(tiny_base, quantization="4bit", training=True)
    layer = model.model.layers[0].mlp.down_proj
    x = torch.randn(2, 3, layer.in_features)
    model.eval()
    with torch.no_grad():
        layer(x)  # what an evaluation step does
    model.train()
    x.requires_grad_(True)
    layer(x).sum().backward()
    import bitsandbytes.functional as F

    w = F.dequantize_4bit(layer.weight.data, layer.weight.quant_state)
    expected = w.sum(0).expand_as(x)
    assert x.grad is not None
    torch.testing.assert_close(x.grad, expected, rtol=1e-4, atol=1e-4)


def test_plain_lora_changes_adapters_and_leaves_base_weights_untouched(tmp_path, tiny_base, workspace):
    before = load_file(tiny_base / "model.safetensors")
    r = run(SFTRunConfig(base_model=str(tiny_base), train_file=workspace / "data" / "sft" / "train.jsonl",
                         output_dir=tmp_path / "run", method="lora", max_steps=4, learning_rate=2e-3, batch_size=4))
    after = load_file(tiny_base / "model.safetensors")
    assert all(torch.equal(before[k], after[k]) for k in before)
    adapter = load_file(r.adapter_dir / "adapter_model.safetensors")
    assert all(v.abs().sum() > 0 for k, v in adapter.items() if "lora_B" in k)


def test_existing_run_is_not_overwritten(qlora_run, tiny_base, workspace):
    with pytest.raises(OutputExists, match="--force"):
        run(SFTRunConfig(base_model=str(tiny_base), train_file=workspace / "data" / "sft" / "train.jsonl",
                         output_dir=qlora_run.output_dir, max_steps=1))
