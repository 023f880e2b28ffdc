"""Bad input through the real CLI: one line naming the file (and line), exit code 1, nothing lost."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app
from rag.model_card import ModelCard

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _err(result) -> str:
    return result.output + (getattr(result, "stderr", "") or "")


def test_missing_docs_folder(tmp_path):
    r = runner.invoke(app, ["ingest", str(tmp_path / "missing"), "-w", str(tmp_path / "ws")])
    assert r.exit_code == 1
    assert "missing: no such folder" in _err(r) and "Traceback" not in _err(r)


def test_empty_docs_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    r = runner.invoke(app, ["ingest", str(tmp_path / "empty"), "-w", str(tmp_path / "ws")])
    assert r.exit_code == 1 and "no documents" in _err(r)


def test_unreadable_file_is_reported_and_the_rest_ingested_strict_touches_nothing(tmp_path):
    from rag import RagConfig, Retriever

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.md").write_text("# Good\n\nfine text\n")
    (docs / "latin1.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    ws = tmp_path / "ws"
    strict = runner.invoke(app, ["ingest", str(docs), "-w", str(ws), "--strict"])
    assert strict.exit_code == 1 and "latin1.txt:1: not valid UTF-8" in _err(strict)
    assert not (ws / "chroma").exists(), "a failed strict run writes nothing"
    r = runner.invoke(app, ["ingest", str(docs), "-w", str(ws)], env={"COLUMNS": "250"})
    assert r.exit_code == 0, _err(r)
    assert "1 file(s) skipped" in r.output and "latin1.txt" in r.output and "iconv" in r.output
    assert Retriever(RagConfig(workspace=ws)).count() == 1


def test_chinese_chunks_in_an_english_only_index_are_warned_of(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "en.md").write_text("# Returns\n\nItems can be returned within 30 days.\n")
    (docs / "zh.md").write_text("# 退货\n\n商品在收货后 30 天内可以退货。\n", encoding="utf-8")
    r = runner.invoke(app, ["ingest", str(docs), "-w", str(tmp_path / "ws")], env={"COLUMNS": "250"})
    assert r.exit_code == 0, _err(r)
    said = " ".join(_err(r).split())
    assert "embedded with all-MiniLM-L6-v2" in said
    assert "1 in zh of 2 chunks: all-MiniLM-L6-v2 is English-only" in said
    assert "--embedding-model multilingual-e5-small" in said
    (docs / "zh.md").unlink()
    r = runner.invoke(app, ["ingest", str(docs), "-w", str(tmp_path / "en-only")])
    assert r.exit_code == 0 and "English-only" not in _err(r)


def test_sync_removes_chunks_of_deleted_files(tmp_path):
    from rag import RagConfig, Retriever

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nalpha text\n")
    (docs / "b.md").write_text("# B\n\nbeta text\n")
    ws = tmp_path / "ws"
    assert runner.invoke(app, ["ingest", str(docs), "-w", str(ws)]).exit_code == 0
    (docs / "b.md").unlink()
    assert runner.invoke(app, ["ingest", str(docs), "-w", str(ws)]).exit_code == 0
    assert Retriever(RagConfig(workspace=ws)).count() == 2, "without --sync nothing is removed"
    r = runner.invoke(app, ["ingest", str(docs), "-w", str(ws), "--sync"])
    assert r.exit_code == 0 and "1 removed" in r.output
    col = Retriever(RagConfig(workspace=ws)).collection
    assert [m["source"] for m in col.get()["metadatas"]] == ["a.md"]


@pytest.mark.parametrize(
    ("line", "reason"),
    [("{not json", "broken JSON"),
     (json.dumps({"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]}), "unknown role")],
)
def test_bad_training_jsonl_names_file_and_line(tmp_path, tiny_base, line, reason):
    good = json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})
    data = tmp_path / "mine.jsonl"
    data.write_text(f"{good}\n{line}\n")
    r = runner.invoke(app, ["train", "-w", str(tmp_path), "--base", str(tiny_base), "--data", str(data)])
    assert r.exit_code == 1
    assert "mine.jsonl:2: " in _err(r) and reason in _err(r) and "Traceback" not in _err(r)
    assert not (tmp_path / "runs").exists(), "nothing is created for a run that could not start"
    assert "training (qlora)" not in _err(r), "no progress bar for a run that never started"


def test_debug_env_shows_the_traceback(tmp_path):
    env = {**os.environ, "ONBOARD_DEBUG": "1"}
    p = subprocess.run([sys.executable, "-m", "agent.cli", "ingest", str(tmp_path / "missing"), "-w", str(tmp_path)],
                       capture_output=True, text=True, env=env, cwd=ROOT)
    assert p.returncode == 1 and "Traceback" in p.stderr and "DocsNotFound" in p.stderr


def test_search_prints_hits_with_sources(workspace):
    r = runner.invoke(app, ["search", "free shipping threshold", "-w", str(workspace), "-k", "2"])
    assert r.exit_code == 0, _err(r)
    assert "shipping.md" in r.output or "faq.md" in r.output
    assert "cosine" in r.output and "bm25" in r.output and "0.016" not in r.output  # not RRF's equal scores
    rows = [ln for ln in r.output.splitlines() if ln.lstrip("│ ").startswith(("1 ", "2 "))]
    assert len(rows) == 2 and all(re.search(r"0\.\d{3}", row) for row in rows)


def test_base_build_cli_makes_a_model_and_will_not_overwrite_it(tmp_path, docs_dir):
    out = tmp_path / "tiny"
    r = runner.invoke(app, ["base", "build", "tiny", "--docs", str(docs_dir), "--out", str(out), "--steps", "2"])
    assert r.exit_code == 0, _err(r)
    assert (out / "model.safetensors").exists() and ModelCard.read(out).kind == "onboard-tiny"
    again = runner.invoke(app, ["base", "build", "tiny", "--docs", str(docs_dir), "--out", str(out), "--steps", "2"])
    assert again.exit_code == 1 and "--force" in _err(again)
    assert runner.invoke(app, ["base", "build", "huge", "--docs", str(docs_dir)]).exit_code == 1


def test_later_stages_query_the_index_the_way_it_was_built(tmp_path, docs_dir):
    ws = tmp_path / "ws"
    r = runner.invoke(app, ["ingest", str(docs_dir), "-w", str(ws), "--collection", "shop"])
    assert r.exit_code == 0, _err(r)
    found = runner.invoke(app, ["search", "退货运费", "-w", str(ws), "-k", "1"], env={"COLUMNS": "200"})
    assert found.exit_code == 0 and "zh/" in found.output, _err(found)
    from rag import RagConfig

    assert RagConfig.from_workspace(ws).collection == "shop"
    assert RagConfig.from_workspace(ws, collection="other").collection == "other"


def test_serve_without_a_model_fails_with_one_line_and_exit_1(tmp_path):
    p = subprocess.run([sys.executable, "-m", "agent.cli", "serve", "-w", str(tmp_path)], capture_output=True,
                       text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "models/merged: not a model folder" in p.stderr and "onboard merge" in p.stderr
    assert "Traceback" not in p.stderr


def test_serving_a_model_trained_with_context_without_an_index_is_refused(tmp_path, merged_model):
    p = subprocess.run([sys.executable, "-m", "agent.cli", "serve", "-w", str(tmp_path), "--model", str(merged_model)],
                       capture_output=True, text=True, cwd=ROOT, timeout=180)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "no index to retrieve from" in p.stderr and "onboard ingest" in p.stderr and "Traceback" not in p.stderr
