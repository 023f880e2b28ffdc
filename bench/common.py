"""Helpers shared by the benchmarks: the Debian FAQ corpus (a real QA corpus nobody here wrote) and
the Debian Reference manual (real documentation that is not a FAQ)."""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
import time
from pathlib import Path

CACHE = Path(__file__).resolve().parent / ".cache"
FAQ_DIR = "usr/share/doc/debian/FAQ"
REFERENCE_DIR = "usr/share/debian-reference"
_HEAD = re.compile(r"^\W?(\d+)\.(\d+)\.\s+(\S.*)$")


def _apt_unpacked(name: str, packages: list[str], folder: str, marker: str) -> Path:
    """`apt-get download` the Debian `packages` into the bench cache and unpack them (cached): the
    unpacked `folder`, already there when it holds `marker`."""
    out = CACHE / name
    if (out / folder / marker).exists():
        return out / folder
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", *packages], cwd=out, check=True, capture_output=True)
    for deb in out.glob("*.deb"):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(out)], check=True)
    return out / folder


def fetch_debian_faq() -> Path:
    """The English and Chinese Debian FAQ packages, unpacked (cached)."""
    return _apt_unpacked("debian-faq", ["debian-faq", "debian-faq-zh-cn"], FAQ_DIR, "debian-faq.zh-cn.txt.gz")


def fetch_debian_reference() -> Path:
    """The English and Chinese Debian Reference (a long manual, not a FAQ), unpacked (cached); the folder
    holds `chNN.en.html` and `chNN.zh-cn.html` side by side."""
    return _apt_unpacked("debian-reference", ["debian-reference-en", "debian-reference-zh-cn"], REFERENCE_DIR,
                         "index.zh-cn.html")


def faq_sections(txt_gz: Path) -> list[tuple[str, str, str]]:
    """(number, question, answer) for each numbered section of the plain-text FAQ.

    The table of contents is indented; the body's section headings start at column 0 (a heading may
    wrap onto following unindented lines) and their answers are indented.
    """
    lines = gzip.open(txt_gz, "rt", encoding="utf-8").read().splitlines()
    sections, cur, i = [], None, 0
    while i < len(lines):
        m = _HEAD.match(lines[i])
        if m and not lines[i].startswith(" "):
            if cur:
                sections.append(cur)
            q = m.group(3)
            while i + 1 < len(lines) and lines[i + 1].strip() and not lines[i + 1].startswith(" "):
                i += 1
                q += " " + lines[i].strip()
            cur = (f"{m.group(1)}.{m.group(2)}", q.strip(), [])
        elif lines[i].startswith("Chapter ") or lines[i].startswith("第"):
            if cur:
                sections.append(cur)
            cur = None
        elif cur is not None:
            cur[2].append(lines[i])
        i += 1
    if cur:
        sections.append(cur)
    return [(n, q, "\n".join(a).strip()) for n, q, a in sections if "\n".join(a).strip()]


def write_corpus(dest: Path) -> list[dict]:
    """Write one file per answer (without its question) for both languages; return the queries."""
    src = fetch_debian_faq()
    queries = []
    for lang, name in (("en", "debian-faq.en.txt.gz"), ("zh", "debian-faq.zh-cn.txt.gz")):
        for num, question, answer in faq_sections(src / name):
            rel = f"{lang}/{num}.txt"
            (dest / lang).mkdir(parents=True, exist_ok=True)
            # dedent, keep paragraphs
            body = "\n".join(line[4:] if line.startswith("    ") else line for line in answer.splitlines())
            (dest / rel).write_text(body + "\n", encoding="utf-8")
            queries.append({"query": question, "target": rel, "language": lang})
    return queries


def faq_index(tmp: Path, embedding_model: str | None = None):
    """The Debian FAQ benchmark ingested under `tmp` (both languages, one collection): (its RagConfig, the queries,
    the ingest report, the seconds it took). `embedding_model` as `onboard ingest --embedding-model`."""
    import torch

    from rag import RagConfig, ingest

    torch.set_num_threads(2)
    queries = write_corpus(tmp / "docs")
    cfg = RagConfig(workspace=tmp / "ws", embedding_model=embedding_model)
    t0 = time.perf_counter()
    report = ingest(cfg, tmp / "docs")
    return cfg, queries, report, time.perf_counter() - t0


def recall(search, queries: list[dict]) -> tuple[float, float, float]:
    """Section-level recall@1, recall@5 and MRR@10 of `search(question) -> hits` over `queries` (write_corpus's)."""
    r1 = r5 = mrr = 0.0
    for q in queries:
        rank = next((i for i, h in enumerate(search(q["query"])[:10], 1) if h.source == q["target"]), None)
        r1 += rank == 1
        r5 += rank is not None and rank <= 5
        mrr += 1 / rank if rank else 0
    n = len(queries)
    return r1 / n, r5 / n, mrr / n


def serve_self(script: str, args: list[str], timeout: float = 120) -> tuple[subprocess.Popen, str]:
    """A bench's own server mode, `script --serve PORT ARGS`, in a process of its own on a free loopback port
    (ONBOARD_* variables left out): (the process, its base URL) once /healthz answers."""
    import socket

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONBOARD_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    proc = subprocess.Popen([sys.executable, script, "--serve", str(port), *args], env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited ({proc.returncode})")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.terminate()
    raise SystemExit(f"the server did not answer /healthz within {timeout:.0f} s")
