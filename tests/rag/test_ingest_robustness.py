"""Ingestion that survives a real kill -9, and the same store behind a real `chroma run` server."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from rag import RagConfig, Retriever, ingest
from rag.ingest import ingest_state

ROOT = Path(__file__).resolve().parents[2]


def _many_docs(root: Path, n: int) -> Path:
    root.mkdir(parents=True)
    topics = ["returns", "shipping", "warranty", "payments", "assembly", "care", "gift cards", "stores"]
    for i in range(n):
        t = topics[i % len(topics)]
        body = "\n\n".join(
            f"## Part {j}\n\nPolicy {i}-{j} on {t}: customers in region {j} get answers within {i % 5 + 1} days. "
            f"Item {i * 7 + j} follows rule {j} of the {t} handbook." for j in range(3))
        (root / f"doc{i:03d}.md").write_text(f"# {t.title()} note {i}\n\n{body}\n")
    return root


def _snapshot(cfg: RagConfig) -> list[tuple]:
    got = Retriever(cfg).collection.get(include=["documents", "metadatas", "embeddings"])
    rows = zip(got["ids"], got["documents"], got["metadatas"], got["embeddings"], strict=True)
    return sorted((i, d, tuple(sorted(m.items())), tuple(round(float(x), 5) for x in e)) for i, d, m, e in rows)


def test_killed_ingest_then_rerun_equals_one_clean_run(tmp_path):
    docs = _many_docs(tmp_path / "docs", 120)
    script = (
        "import sys; from rag import RagConfig, ingest\n"
        "def p(phase, d, n):\n    print(f'{d}/{n}', flush=True) if phase == 'embed' and d else None\n"
        f"ingest(RagConfig(workspace=sys.argv[1], batch_size=16), {str(docs)!r}, progress=p)\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "killed")], stdout=subprocess.PIPE,
                            text=True, cwd=ROOT, env=env)
    written = 0
    for line in proc.stdout:
        written = int(line.split("/")[0])
        if written >= 64:  # several batches in, far from the end
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL and 0 < written < 360
    assert ingest_state(tmp_path / "killed").incomplete == (str(docs),)

    resumed = ingest(RagConfig(workspace=tmp_path / "killed", batch_size=16), docs)
    assert ingest_state(tmp_path / "killed").complete
    assert resumed.unchanged >= 64 and resumed.added + resumed.unchanged == resumed.chunks
    clean = ingest(RagConfig(workspace=tmp_path / "clean", batch_size=16), docs)
    assert _snapshot(RagConfig(workspace=tmp_path / "killed")) == _snapshot(RagConfig(workspace=tmp_path / "clean"))
    assert resumed.total_in_store == clean.total_in_store == clean.chunks
    hit = Retriever(RagConfig(workspace=tmp_path / "killed")).search("Item 707 rule 0", k=1, mode="bm25")[0]
    assert hit.source == "doc101.md"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def chroma_server(tmp_path):
    exe = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    port = _free_port()
    proc = subprocess.Popen([exe, "run", "--path", str(tmp_path / "server-data"), "--host", "127.0.0.1",
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, "chroma run exited"
        try:
            if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "chroma server did not start"
        time.sleep(0.3)
    yield url
    proc.terminate()
    proc.wait(timeout=20)


def test_server_mode_ingests_idempotently_and_searches(tmp_path, docs_dir, embedder, chroma_server):
    cfg = RagConfig(workspace=tmp_path / "ws", chroma_url=chroma_server)
    first = ingest(cfg, docs_dir, embedder=embedder)
    again = ingest(cfg, docs_dir, embedder=embedder)
    assert first.added > 0 and again.added == 0 and again.total_in_store == first.total_in_store
    assert not (tmp_path / "ws" / "chroma").exists(), "nothing went to the embedded store"
    hits = Retriever(cfg, embedder).search("退货运费是多少？", k=2)
    assert hits[0].source.startswith("zh/")


def test_unreachable_server_is_a_clear_error(tmp_path, embedder):
    from rag.errors import RagError

    cfg = RagConfig(workspace=tmp_path, chroma_url=f"http://127.0.0.1:{_free_port()}")
    with pytest.raises(RagError, match="chroma run"):
        Retriever(cfg, embedder).count()


def test_a_page_that_became_navigation_leaves_the_index(tmp_path, embedder):
    docs, ws = tmp_path / "docs", tmp_path / "ws"
    docs.mkdir()
    (docs / "keep.html").write_text("<html><body><h1>Returns</h1><p>Free within 30 days.</p></body></html>")
    (docs / "menu.html").write_text("<html><body><h1>Shipping</h1><p>Ships in 2 days.</p></body></html>")
    first = ingest(RagConfig(workspace=ws), docs, embedder=embedder)
    assert first.documents == 2 and not first.skipped
    links = "".join(f'<li><a href="s{i}.html">Section {i}</a></li>' for i in range(12))
    (docs / "menu.html").write_text(f"<html><body><ul>{links}</ul></body></html>")
    again = ingest(RagConfig(workspace=ws), docs, embedder=embedder)  # without --sync: still removed
    assert [s.path for s in again.skipped] == ["menu.html"] and again.removed == 1
    hits = Retriever(RagConfig(workspace=ws), embedder=embedder).search("How fast do you ship?", k=5)
    assert {h.source for h in hits} == {"keep.html"}
