"""`onboard train` from a recipe: the recipe's values reach the run, flags override them."""

import json
from pathlib import Path

from typer.testing import CliRunner

from agent.cli import app

ROOT = Path(__file__).resolve().parents[2]


def test_a_recipe_drives_the_run_and_flags_override_it(tmp_path, tiny_base, workspace):
    recipe = ROOT / "training" / "recipes" / "tiny" / "lora-cpu.yaml"
    r = CliRunner().invoke(app, ["train", "-w", str(tmp_path), "--recipe", str(recipe), "--base", str(tiny_base),
                                 "--data", str(workspace / "data" / "sft" / "train.jsonl"), "--max-steps", "2",
                                 "--batch-size", "2", "--report-to", "none", "--output", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert cfg["method"] == "lora" and cfg["learning_rate"] == 2e-3 and cfg["lora_r"] == 16  # from the recipe
    assert cfg["batch_size"] == 2 and cfg["max_steps"] == 2  # from the flags
    assert "loss.png" in r.output


def test_an_unknown_recipe_key_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("# onboard train --recipe bad.yaml\nmethod: lora\nlearning_rat: 1e-4\n")
    r = CliRunner().invoke(app, ["train", "-w", str(tmp_path), "--recipe", str(bad)])
    assert r.exit_code == 1 and "bad.yaml" in r.output and "learning_rat" in r.output
