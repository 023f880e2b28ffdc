"""A run folder stays usable where its workspace goes (issue 11, item 15): its config.json stores paths
relative to the run folder, so a workspace moved elsewhere and used from another directory still finds
the base it trained on (`onboard merge`) and its data."""

import shutil

from typer.testing import CliRunner

from agent.cli import app
from rag.model_card import ModelCard
from training.record import RunRecord

runner = CliRunner()


def _out(r) -> str:
    return " ".join((r.output + (r.stderr or "")).split())


def test_a_moved_workspace_merges_from_another_directory(tmp_path, tiny_base, workspace, monkeypatch):
    a = tmp_path / "here" / "A"
    shutil.copytree(tiny_base, a / "base" / "tiny")
    (a / "data" / "sft").mkdir(parents=True)
    for f in ("train.jsonl", "stats.json"):
        shutil.copy(workspace / "data" / "sft" / f, a / "data" / "sft" / f)
    monkeypatch.chdir(tmp_path / "here")
    r = runner.invoke(app, ["train", "-w", "A", "--method", "lora", "--max-steps", "2", "--batch-size", "2",
                            "--report-to", "none", "--no-check-eos"])  # the workspace's own base, data, run folder
    assert r.exit_code == 0, _out(r)

    b = tmp_path / "there" / "B"
    b.parent.mkdir()
    shutil.move(a, b)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    record = RunRecord.read(b / "runs" / "sft")
    assert record.config.train_file == b / "data" / "sft" / "train.jsonl"
    assert record.trained_on(b / "runs" / "sft") == str(b / "base" / "tiny")

    r = runner.invoke(app, ["merge", "-w", str(b)])
    assert r.exit_code == 0, _out(r)
    card = ModelCard.read(b / "models" / "merged")
    assert card.base.weights_sha256 == record.base_model.weights_sha256
    assert card.base.name_or_path == str(b / "base" / "tiny")
