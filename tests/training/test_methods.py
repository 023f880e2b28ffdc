"""Every stage x method that makes sense trains real steps on the tiny model: the trained weights
change, the base does not, and the run folder records what happened."""

import json

import pytest
import torch
from safetensors.torch import load_file

from training.config import TrainConfig
from training.data.build import DataBuildConfig
from training.data.build import run as build_data


def _cfg(base, data, out, **kw):
    kw = {"max_steps": 4, "batch_size": 2, "max_length": 1024, "learning_rate": 2e-3, "logging_steps": 1,
          "save_steps": 100, "report_to": "none", "check_eos": False} | kw
    return TrainConfig(base_model=str(base), train_file=data, output_dir=out, **kw)


@pytest.fixture(scope="module")
def dpo_file(workspace, merged_model, tmp_path_factory):
    """DPO pairs built once for this module (the merged model answers every prompt: the slow part), copied
    out of the shared workspace so other modules' rebuilds leave it alone."""
    data = build_data(DataBuildConfig(workspace=workspace, kind="dpo", base_model=str(merged_model), test_fraction=0,
                                      force=True))
    copy = tmp_path_factory.mktemp("dpo") / "train.jsonl"
    copy.write_bytes(data.train_file.read_bytes())
    return copy


def _base_weights(base):
    return load_file(str(base / "model.safetensors"))


@pytest.mark.parametrize("method", ["lora", "dora", "prefix"])
def test_sft_adapters_train_and_leave_the_base_alone(method, tiny_base, workspace, tmp_path):
    from training.sft import run

    before = _base_weights(tiny_base)
    r = run(_cfg(tiny_base, workspace / "data" / "sft" / "train.jsonl", tmp_path / method, method=method))
    adapter = load_file(str(r.adapter_dir / "adapter_model.safetensors"))
    assert adapter and all(torch.isfinite(t).all() for t in adapter.values())
    if method in ("lora", "dora"):  # B starts at zero: training must have moved it
        assert any(k.endswith("lora_B.weight") and t.abs().sum() > 0 for k, t in adapter.items())
    if method == "dora":
        assert any("lora_magnitude_vector" in k for k in adapter)
    if method == "prefix":
        assert any("prompt_embeddings" in k for k in adapter)
    after = _base_weights(tiny_base)
    assert all(torch.equal(before[k], after[k]) for k in before)
    cfg = json.loads((r.output_dir / "config.json").read_text())
    assert cfg["config"]["method"] == method and cfg["train_sha256"] and cfg["versions"]["trl"]
    assert (r.output_dir / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_full_fine_tune_changes_the_weights(tiny_base, workspace, tmp_path):
    from training.sft import run

    r = run(_cfg(tiny_base, workspace / "data" / "sft" / "train.jsonl", tmp_path / "full", method="full"))
    trained = load_file(str(r.adapter_dir / "model.safetensors"))
    base = _base_weights(tiny_base)
    assert sum(not torch.equal(base[k], trained[k]) for k in base if k in trained) > len(base) // 2


def test_cpt_loss_falls_on_packed_document_text(tiny_base, workspace, tmp_path):
    from training.cpt import run

    data = build_data(DataBuildConfig(workspace=workspace, kind="cpt", block_tokens=128, test_fraction=0,
                                      force=True))
    few = tmp_path / "few.jsonl"  # a few blocks, seen eight times: the loss must fall epoch over epoch
    few.write_text("".join(data.train_file.read_text().splitlines(keepends=True)[:3]))
    r = run(_cfg(tiny_base, few, tmp_path / "cpt", method="lora", max_steps=-1, epochs=8, max_length=128,
                 learning_rate=1e-2, lora_dropout=0.0))
    rows = [json.loads(x) for x in (r.output_dir / "metrics.jsonl").read_text().splitlines()]
    by_epoch = {}
    for x in rows:
        if "loss" in x:
            by_epoch.setdefault(int(x["epoch"] - 1e-9), []).append(x["loss"])
    first, last = min(by_epoch), max(by_epoch)
    assert sum(by_epoch[last]) / len(by_epoch[last]) < 0.93 * sum(by_epoch[first]) / len(by_epoch[first])
    assert (r.adapter_dir / "adapter_model.safetensors").exists()


def test_dpo_on_top_of_an_sft_adapter(tiny_base, qlora_run, dpo_file, tmp_path):
    from training.dpo import run

    r = run(_cfg(tiny_base, dpo_file, tmp_path / "dpo", method="lora", max_steps=3, max_length=512,
                 init_adapter=qlora_run.adapter_dir))
    rows = [json.loads(x) for x in (r.output_dir / "metrics.jsonl").read_text().splitlines()]
    assert any("rewards/margins" in x for x in rows)  # the DPO loss ran, against the SFT model as reference
    assert (r.output_dir / "start" / "config.json").exists()
    assert (r.adapter_dir / "adapter_model.safetensors").exists()


def test_prompts_longer_than_max_length_are_refused_with_what_to_do(tiny_base, workspace, tmp_path):
    from training.errors import TrainingError
    from training.sft import run

    with pytest.raises(TrainingError, match="Raise --max-length"):
        run(_cfg(tiny_base, workspace / "data" / "sft" / "train.jsonl", tmp_path / "short", method="lora",
                 max_length=16))


def test_tensorboard_logs_by_default(tiny_base, workspace, tmp_path):
    from training.sft import run

    r = run(_cfg(tiny_base, workspace / "data" / "sft" / "train.jsonl", tmp_path / "tb", method="lora",
                 max_steps=2, report_to="tensorboard"))
    assert list((r.output_dir / "tensorboard").rglob("events.out.tfevents.*"))


def test_early_stopping_with_gradient_checkpointing(tiny_base, workspace, tmp_path):
    """A learning rate far too high makes eval loss rise: training stops after `patience` bad evaluations."""
    from training.sft import run

    r = run(_cfg(tiny_base, workspace / "data" / "sft" / "train.jsonl", tmp_path / "es", method="lora",
                 eval_file=workspace / "data" / "sft" / "test.jsonl", max_steps=20, eval_steps=1, save_steps=1,
                 early_stopping_patience=2, gradient_checkpointing=True, learning_rate=0.5))
    evals = [json.loads(x) for x in (r.output_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [x["eval_loss"] for x in evals if "eval_loss" in x]
    assert r.steps < 20 and len(evals) == r.steps
    assert min(evals[-2:]) >= min(evals)  # stopped because eval loss stopped improving


@pytest.mark.parametrize("method", ["qlora", "dora", "full"])
def test_cpt_with_other_methods(method, tiny_base, workspace, tmp_path):
    from training.cpt import run

    data = build_data(DataBuildConfig(workspace=workspace, kind="cpt", block_tokens=128, test_fraction=0,
                                      force=True))
    r = run(_cfg(tiny_base, data.train_file, tmp_path / method, method=method, max_steps=2, max_length=128))
    saved = load_file(str(r.adapter_dir / ("model.safetensors" if method == "full" else "adapter_model.safetensors")))
    assert r.steps == 2 and all(torch.isfinite(t).all() for t in saved.values())
    if method == "full":
        base = _base_weights(tiny_base)
        assert any(not torch.equal(base[k], saved[k]) for k in base if k in saved)
    else:
        assert any(k.endswith("lora_B.weight") and t.abs().sum() > 0 for k, t in saved.items())


@pytest.mark.parametrize("method", ["qlora", "dora", "full"])
def test_dpo_with_other_methods(method, tiny_base, dpo_file, tmp_path):
    from training.dpo import run

    r = run(_cfg(tiny_base, dpo_file, tmp_path / method, method=method, max_steps=2))
    rows = [json.loads(x) for x in (r.output_dir / "metrics.jsonl").read_text().splitlines()]
    assert any("rewards/margins" in x for x in rows) and r.steps == 2


@pytest.mark.parametrize(("memory_gib", "method", "expected", "why"), [
    (64.0, "lora", False, "within the"), (0.01, "lora", True, "over the"), (0.01, "prefix", False, "not estimated")])
def test_auto_checkpointing_follows_the_memory_estimate(tiny_base, monkeypatch, caplog, memory_gib, method, expected,
                                                        why):
    """Unset, checkpointing is on only when the run's batch would not fit the machine without it; prefix
    tuning's memory is not modelled, so the model's size decides (the tiny model: off)."""
    from types import SimpleNamespace

    from transformers import AutoModelForCausalLM

    import training.memory as memory
    from training.runs import auto_checkpointing

    monkeypatch.setattr(memory, "machine_memory_gib", lambda: ("cpu", memory_gib))
    cfg = SimpleNamespace(method=method, max_length=1024, batch_size=4, lora_r=16, lora_dropout=0.05)
    with caplog.at_level("INFO", logger="training.runs"):
        assert auto_checkpointing(AutoModelForCausalLM.from_pretrained(tiny_base), cfg) is expected
    assert why in caplog.text
