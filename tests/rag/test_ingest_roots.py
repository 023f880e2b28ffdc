"""Files are known by the folder ingested and their path in it: two folders' `faq.md` are two documents,
and `--sync` removes only what is gone from the folder being synced."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from agent.cli import app
from rag import RagConfig, Retriever, ingest
from rag.chunking import chunk_document
from rag.ingest import ingested_roots, last_ingest
from rag.loaders import Document, load_documents
from rag.workspace import Workspace

runner = CliRunner()
X_FAQ = "# FAQ\n\n## Returns\n\nThe Porto store accepts returns within 30 days.\n"
Y_FAQ = "# FAQ\n\n## Delivery\n\nThe Berlin warehouse ships parcels every Tuesday.\n"


def _folders(tmp_path):
    x, y = tmp_path / "X", tmp_path / "Y"
    x.mkdir()
    y.mkdir()
    (x / "faq.md").write_text(X_FAQ)
    (x / "hours.md").write_text("# Hours\n\nThe Porto store opens at nine.\n")
    (y / "faq.md").write_text(Y_FAQ)
    return x, y


def _chunks_by_root(ws) -> dict[str, list[str]]:
    got = Retriever(RagConfig(workspace=ws)).collection.get(include=["metadatas"])
    out: dict[str, list[str]] = {}
    for m in got["metadatas"]:
        out.setdefault(m.get("root", "(none)"), []).append(m["source"])
    return {k: sorted(v) for k, v in out.items()}


def test_two_folders_with_the_same_file_name_keep_both_and_sync_touches_only_its_own(tmp_path):
    x, y = _folders(tmp_path)
    ws = tmp_path / "ws"
    assert runner.invoke(app, ["ingest", str(x), "-w", str(ws)]).exit_code == 0
    before = _chunks_by_root(ws)[str(x)]
    for args in (["ingest", str(y)], ["ingest", str(y), "--sync"]):
        r = runner.invoke(app, [*args, "-w", str(ws)])
        assert r.exit_code == 0, r.output
        assert "0 removed" in r.output
    assert _chunks_by_root(ws) == {str(x): before, str(y): ["faq.md"]}
    retriever = Retriever(RagConfig(workspace=ws))
    porto = retriever.search("How long does the Porto store accept returns?", k=1)[0]
    berlin = retriever.search("When does the Berlin warehouse ship parcels?", k=1)[0]
    assert (porto.source, porto.metadata["root"]) == ("faq.md", str(x)) and "30 days" in porto.text
    assert (berlin.source, berlin.metadata["root"]) == ("faq.md", str(y))
    only_x = retriever.search("store", k=5, filters={"root": str(x)})
    assert only_x and {h.metadata["root"] for h in only_x} == {str(x)}

    (y / "faq.md").unlink()
    (y / "new.md").write_text("# New\n\nA new page.\n")
    r = runner.invoke(app, ["ingest", str(y), "-w", str(ws), "--sync"])
    assert r.exit_code == 0 and "1 removed" in r.output, r.output
    assert _chunks_by_root(ws) == {str(x): before, str(y): ["new.md"]}


def test_syncing_one_file_removes_nothing_else_of_its_folder(tmp_path, embedder):
    x, _ = _folders(tmp_path)
    cfg = RagConfig(workspace=tmp_path / "ws")
    ingest(cfg, x, embedder=embedder)
    report = ingest(cfg, x / "faq.md", embedder=embedder, sync=True)
    assert report.removed == 0 and report.added == 0
    assert _chunks_by_root(tmp_path / "ws") == {str(x): ["faq.md", "hours.md"]}


def test_the_record_remembers_every_root_in_order_without_duplicates(tmp_path, embedder):
    x, y = _folders(tmp_path)
    ws = tmp_path / "ws"
    assert ingested_roots(ws) == []
    for folder in (x, y, x, x / "faq.md"):
        ingest(RagConfig(workspace=ws), folder, embedder=embedder)
    rec = last_ingest(ws)
    assert rec["roots"] == [str(x), str(y)] and rec["docs"] == str(x / "faq.md")
    assert ingested_roots(ws) == [x, y]
    ingest(RagConfig(workspace=ws, collection="other"), y, embedder=embedder)
    assert ingested_roots(ws) == [y], "another collection starts its own list"


def test_an_old_record_gives_its_docs_as_the_one_root(tmp_path):
    Workspace(tmp_path).ingest_record.write_text(json.dumps({"docs": "/srv/docs", "collection": "onboard"}))
    assert ingested_roots(tmp_path) == [Path("/srv/docs")]


def _legacy_collection(ws, folder, embedder) -> int:
    """A collection as Onboard wrote it before roots: ids from (source, text), no `root` metadata, and a
    record with only `docs`."""
    from rag.ingest import embed_text
    from rag.store import get_collection

    cfg = RagConfig(workspace=ws)
    col = get_collection(cfg, embedder.name, create=True)
    chunks = []
    for d in load_documents(folder).documents:
        old = Document(d.id, d.source, d.title, d.text, d.language, d.page_starts, d.tags, d.kind)  # no root
        chunks += chunk_document(old, embedder.count_tokens, cfg.chunk_tokens)
    col.upsert(ids=[c.id for c in chunks], documents=[c.text for c in chunks],
               metadatas=[{k: v for k, v in c.metadata().items() if k != "root"} for c in chunks],
               embeddings=embedder.embed([embed_text(c) for c in chunks]))
    Workspace(ws).ingest_record.write_text(json.dumps({"docs": str(folder), "collection": "onboard",
                                                       "chroma_url": None, "embedding_name": embedder.name}))
    return len(chunks)


def test_a_collection_built_before_roots_is_adopted_by_its_folder_and_kept_by_others(tmp_path, embedder):
    x, y = _folders(tmp_path)
    ws = tmp_path / "ws"
    n = _legacy_collection(ws, x, embedder)
    report = ingest(RagConfig(workspace=ws), y, embedder=embedder, sync=True)
    assert report.removed == 0 and report.total_in_store == n + 1
    assert _chunks_by_root(ws) == {str(x): ["faq.md", "hours.md"], str(y): ["faq.md"]}
    assert ingested_roots(ws) == [x, y]

    again = ingest(RagConfig(workspace=ws), x, embedder=embedder)  # replaces the old-id chunks, once
    assert (again.removed, again.added, again.total_in_store) == (n, n, n + 1)
    assert ingest(RagConfig(workspace=ws), x, embedder=embedder).added == 0
