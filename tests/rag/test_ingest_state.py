"""An ingest that did not finish is never silent: the record says so from before the first write, and
every search warns until a run of that folder completes. Progress is reported for every phase."""

from __future__ import annotations

import os
import subprocess

import pytest
from typer.testing import CliRunner

from agent.cli import app
from rag import RagConfig, Retriever, ingest
from rag.ingest import ingest_state, last_ingest

runner = CliRunner()
QUERY = "Which store opens at nine?"


def _docs(folder, n: int = 6, words: int = 20):
    folder.mkdir()
    for i in range(n):
        body = " ".join(f"w{i}x{j}" for j in range(words))
        (folder / f"d{i}.md").write_text(f"# Store {i}\n\nStore {i} opens at nine. {body}\n")
    return folder


class Stop(Exception):
    pass


def _interrupted(ws, docs, embedder) -> None:
    def stop_after_first_batch(phase: str, done: int, total: int) -> None:
        if phase == "embed" and done >= 2:
            raise Stop

    with pytest.raises(Stop):
        ingest(RagConfig(workspace=ws, batch_size=2), docs, embedder=embedder, progress=stop_after_first_batch)


def test_search_warns_about_an_interrupted_ingest_until_a_run_completes(tmp_path, embedder):
    docs, ws = _docs(tmp_path / "docs"), tmp_path / "ws"
    _interrupted(ws, docs, embedder)
    state = ingest_state(ws)
    assert not state.complete and state.incomplete == (str(docs),)
    assert Retriever(RagConfig(workspace=ws), embedder).index_warning == state.warning()

    r = runner.invoke(app, ["search", QUERY, "-w", str(ws)], env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    assert "warning: the index in" in r.stderr and "is incomplete" in r.stderr
    assert f"onboard ingest {docs} -w {ws}" in r.stderr

    assert runner.invoke(app, ["ingest", str(docs), "-w", str(ws)]).exit_code == 0
    assert ingest_state(ws).complete and last_ingest(ws)["state"] == "complete"
    r = runner.invoke(app, ["search", QUERY, "-w", str(ws)])
    assert r.exit_code == 0 and "incomplete" not in r.stderr and "warning" not in r.stderr


def test_completing_another_folder_does_not_hide_an_unfinished_one(tmp_path, embedder):
    docs, other, ws = _docs(tmp_path / "docs"), _docs(tmp_path / "other", n=1), tmp_path / "ws"
    _interrupted(ws, docs, embedder)
    ingest(RagConfig(workspace=ws), other, embedder=embedder)
    assert ingest_state(ws).incomplete == (str(docs),)
    ingest(RagConfig(workspace=ws), docs, embedder=embedder)
    assert ingest_state(ws).complete and Retriever(RagConfig(workspace=ws), embedder).index_warning is None


def test_progress_reports_loading_chunking_and_embedding_per_step(tmp_path, embedder):
    docs = _docs(tmp_path / "docs", n=3)
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    events: list[tuple[str, int, int]] = []
    ingest(RagConfig(workspace=tmp_path / "ws", batch_size=2), docs, embedder=embedder,
           progress=lambda phase, done, total: events.append((phase, done, total)))
    by_phase = {p: [(d, n) for q, d, n in events if q == p] for p in ("load", "chunk", "embed")}
    assert by_phase["load"] == [(i, 4) for i in range(5)], "every file, the unreadable one too"
    assert by_phase["chunk"] == [(i, 3) for i in range(4)]
    assert by_phase["embed"] == [(0, 3), (2, 3), (3, 3)]
    assert [p for p, _, _ in events] == sorted((p for p, _, _ in events), key=["load", "chunk", "embed"].index)


def _mount_tmpfs(path, size: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    path.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True,
                       text=True)
    if p.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {p.stderr.strip()}")


def test_a_full_disk_is_one_line_naming_the_workspace_and_a_rerun_completes(tmp_path):
    docs, ws = _docs(tmp_path / "docs", n=4, words=150), tmp_path / "ws"
    _mount_tmpfs(ws, "320k")  # an empty Chroma store takes ~190 KB, each ~700-byte chunk ~20 KB with its text index
    try:
        r = runner.invoke(app, ["ingest", str(docs), "-w", str(ws)])
        assert r.exit_code == 1, r.output
        [line] = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert line.startswith(f"error: {ws}: the disk filled up") and "Free some space" in line
        assert ingest_state(ws).incomplete == (str(docs),)

        subprocess.run(["mount", "-o", "remount,size=16m", str(ws)], check=True)
        r = runner.invoke(app, ["ingest", str(docs), "-w", str(ws)])
        assert r.exit_code == 0, r.output
        assert ingest_state(ws).complete
        assert Retriever(RagConfig(workspace=ws)).count() == last_ingest(ws)["report"]["chunks"] == 12
    finally:
        from chromadb.api.client import SharedSystemClient

        SharedSystemClient.clear_system_cache()
        subprocess.run(["umount", "--lazy", str(ws)], check=False)  # Chroma's files may still be open in this process
