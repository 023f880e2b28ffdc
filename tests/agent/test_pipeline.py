"""The pipeline's rules live in library functions the CLI and the agent share."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent import pipeline
from agent.cli import app
from rag.workspace import Workspace
from training.memory import PRESETS

ROOT = Path(__file__).resolve().parents[2]


def test_train_config_fills_the_workspace_defaults_and_lets_values_beat_the_recipe(tmp_path):
    ws = Workspace(tmp_path)
    recipe = ROOT / "training" / "recipes" / "tiny" / "lora-cpu.yaml"
    cfg = pipeline.train_config(ws, {"stage": "cpt", "lora_r": 4, "learning_rate": None}, recipe=recipe, plan=False)
    assert cfg.train_file == ws.train_file("cpt") and cfg.output_dir == ws.run_dir("cpt")
    assert cfg.base_model == str(ws.tiny_base) and cfg.eval_file is None
    assert cfg.method == "lora" and cfg.lora_r == 4 and cfg.learning_rate == 2e-3  # recipe, then values


def _shape_folder(tmp_path, preset: str) -> Path:
    s = PRESETS[preset]
    folder = tmp_path / preset
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "qwen2", "num_hidden_layers": s.layers, "hidden_size": s.hidden,
        "intermediate_size": s.intermediate, "num_attention_heads": s.heads, "num_key_value_heads": s.kv_heads,
        "vocab_size": s.vocab, "tie_word_embeddings": s.tied_embeddings}))
    return folder


def test_the_batch_is_planned_for_the_memory_when_none_was_given(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "machine_memory_gib", lambda: ("cpu", 8.0))
    small = _shape_folder(tmp_path, "qwen2.5-0.5b")
    base = {"base_model": str(small), "train_file": tmp_path / "t.jsonl", "method": "lora", "max_length": 1024}
    cfg = pipeline.train_config(Workspace(tmp_path), base)
    assert cfg.batch_size < 4 and cfg.batch_size * cfg.gradient_accumulation_steps == 4, "effective batch kept"
    assert cfg.gradient_checkpointing is True, "8 GiB needs checkpointing (training.memory)"
    given = pipeline.train_config(Workspace(tmp_path), {**base, "batch_size": 4})
    assert given.batch_size == 4 and given.gradient_accumulation_steps == 1, "what the user gave is kept"


def test_a_model_that_cannot_fit_is_refused_with_what_would(tmp_path, monkeypatch):
    from training.errors import DoesNotFit

    monkeypatch.setattr(pipeline, "machine_memory_gib", lambda: ("cpu", 4.0))
    big = _shape_folder(tmp_path, "qwen2.5-7b")
    with pytest.raises(DoesNotFit):
        pipeline.train_config(Workspace(tmp_path), {"base_model": str(big), "train_file": "t", "method": "full"})


def test_a_bug_is_one_line_that_says_so_with_exit_2(tmp_path, monkeypatch):
    def broken(*a, **k):
        raise KeyError("context_chunks")

    monkeypatch.setattr(pipeline, "search", broken)
    r = CliRunner().invoke(app, ["search", "q", "-w", str(tmp_path)])
    assert r.exit_code == 2
    out = r.output + (r.stderr if r.stderr_bytes is not None else "")
    assert "bug: KeyError" in out and "ONBOARD_DEBUG=1" in out and "Traceback" not in out


def test_python_m_agent_cli_runs_the_same_cli():
    p = subprocess.run([sys.executable, "-m", "agent.cli", "train", "--help"], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert p.returncode == 0 and "--gradient-accumulation-steps" in p.stdout


def test_a_dataset_built_with_another_prompt_is_refused_until_rebuilt(tmp_path, workspace):
    """Issue 13: a changed prompt (WORKSPACE/prompt.yaml) invalidates the dataset, and says how to rebuild."""
    import shutil

    from agent.errors import PromptChanged

    ws = Workspace(tmp_path / "ws")
    shutil.copytree(workspace / "data" / "sft", ws.data_dir("sft"))
    values = {"base_model": str(tmp_path), "method": "lora"}
    assert pipeline.train_config(ws, values, plan=False).train_file == ws.train_file("sft")  # same prompt
    ws.prompt_file.write_text("system:\n  en: Answer like a pirate, from the numbered context.\n")
    with pytest.raises(PromptChanged, match=r"built with prompt system-context-v2:\w+.*prompt is now "
                                            r"system-context-v2:\w+ \(.*prompt.yaml\).*onboard data build --kind sft "
                                            r"--force"):
        pipeline.train_config(ws, values, plan=False)
