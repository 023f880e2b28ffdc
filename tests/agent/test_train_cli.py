"""`onboard train` from a recipe: the recipe's values reach the run, flags override them."""

import json
import re
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


def _run(args) -> tuple[int, str]:
    r = CliRunner().invoke(app, args)
    return r.exit_code, " ".join((r.output + (r.stderr or "")).split())


def test_a_run_reports_its_plan_duration_and_smoothed_losses(tmp_path, tiny_base, workspace):
    """Issue 11, items 19 and 20: before training the planned tokens and the estimated duration; at the end
    the mean training loss of the first and last tenth of the steps and the eval loss."""
    from training.callbacks import loss_ends, read_metrics

    out = tmp_path / "run"
    code, text = _run(["train", "-w", str(workspace), "--base", str(tiny_base), "--output", str(out), "--method",
                       "lora", "--max-steps", "4", "--batch-size", "2", "--report-to", "none", "--no-check-eos"])
    assert code == 0, text
    assert re.search(r"planned: 4 steps on [\d,]+ tokens \(8 sequences x \d+ tokens\)", text), text
    assert re.search(r"estimated duration: about \d+ s \(4 steps; the first took [\d.]+ s", text), text
    losses = [r["loss"] for r in read_metrics(out / "metrics.jsonl") if "loss" in r]
    start, end = loss_ends(losses)
    evals = [r["eval_loss"] for r in read_metrics(out / "metrics.jsonl") if "eval_loss" in r]
    assert evals, "the workspace's test.jsonl is evaluated on by default"
    assert (f"train loss {start:.3f} -> {end:.3f} (mean of the first and last 10 % of logged steps); "
            f"eval loss {evals[-1]:.3f}") in text, text
    assert text.index("planned:") < text.index("estimated duration") < text.index("trained 4 steps")


def test_no_eval_trains_without_evaluating(tmp_path, tiny_base, workspace):
    """Issue 11, item 18: --no-eval, even where the workspace has eval data."""
    out = tmp_path / "run"
    code, text = _run(["train", "-w", str(workspace), "--base", str(tiny_base), "--output", str(out), "--method",
                       "lora", "--max-steps", "2", "--batch-size", "2", "--report-to", "none", "--no-check-eos",
                       "--no-eval"])
    assert code == 0, text
    assert "no evaluation" in text
    assert not any("eval_loss" in x for x in (out / "metrics.jsonl").read_text().splitlines())
    record = json.loads((out / "config.json").read_text())
    assert record["config"]["evaluate"] is False and "eval_file" not in record["config"]
