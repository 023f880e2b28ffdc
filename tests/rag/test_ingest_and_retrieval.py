import shutil

import pytest

from rag import RagConfig, Retriever, ingest
from rag.embeddings import Embedder
from rag.errors import EmbeddingMismatch, EmptyIndex


@pytest.fixture()
def small_docs(tmp_path, docs_dir):
    d = tmp_path / "docs"
    d.mkdir()
    for name in ("returns.md", "shipping.md"):
        shutil.copy(docs_dir / name, d / name)
    return d


def test_reingest_adds_nothing_and_changed_file_replaces_its_chunks(tmp_path, small_docs, embedder):
    cfg = RagConfig(workspace=tmp_path / "ws")
    first = ingest(cfg, small_docs, embedder=embedder)
    assert first.added == first.chunks == first.total_in_store > 0

    again = ingest(cfg, small_docs, embedder=embedder)
    assert (again.added, again.removed, again.total_in_store) == (0, 0, first.total_in_store)

    f = small_docs / "shipping.md"
    f.write_text(f.read_text().replace("Columbus, Ohio", "Reno, Nevada"))
    changed = ingest(cfg, small_docs, embedder=embedder)
    assert changed.added == 1 and changed.removed == 1
    assert changed.total_in_store == first.total_in_store
    stored = Retriever(cfg, embedder).collection.get(where={"source": "shipping.md"})["documents"]
    assert any("Reno, Nevada" in t for t in stored) and not any("Columbus" in t for t in stored)
    hits = Retriever(cfg, embedder).search("tracking link emailed when the parcel leaves the warehouse", k=2)
    assert any("Reno, Nevada" in h.text for h in hits)


def test_search_cites_the_right_document_in_english_and_chinese(workspace, embedder):
    r = Retriever(RagConfig(workspace=workspace), embedder)
    en = r.search("How long is the warranty on lamps?", k=3)
    assert en[0].source == "warranty.md"
    assert en[0].heading_path == "Warranty > What the warranty covers"
    zh = r.search("退货运费是多少？", k=3)
    assert zh[0].source.startswith("zh/")
    assert all(h.citation()["snippet"] for h in en + zh)


def test_querying_with_another_embedding_model_is_an_error(workspace, tmp_path):
    other = tmp_path / "other-model"
    other.mkdir()
    with pytest.raises(EmbeddingMismatch, match="all-MiniLM-L6-v2"):
        Retriever(RagConfig(workspace=workspace), Embedder(other)).count()


def test_missing_index_says_to_ingest(tmp_path, embedder):
    with pytest.raises(EmptyIndex, match="onboard ingest"):
        Retriever(RagConfig(workspace=tmp_path), embedder).search("x")
