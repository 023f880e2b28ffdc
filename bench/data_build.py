"""Dataset build throughput: records/s for each kind, on the example docs and on a 10 MB corpus.

    .venv/bin/python bench/data_build.py [--mb 10]

No teacher (teacher time is the endpoint's, not ours). On the example docs every kind is built
against a real index (ingest time excluded); DPO is reported with and without the base model's
generation, which dominates it. The 10 MB corpus is Python documentation: the standard library's
written as Markdown (module docstring, then one `##` section per documented function or class,
read with `ast`, nothing imported). When the standard library runs out, installed packages' docstrings follow. It is built without an index: CPT, and SFT from the rules with
`--no-rag-context` (retrieval costs per record what bench/query_latency.py measures).
"""

from __future__ import annotations

import argparse
import ast
import shutil
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "docs"


def stdlib_corpus(dest: Path, mb: float) -> int:
    """Write Markdown files from docstrings (the standard library, then installed packages) until `mb`
    megabytes; return bytes written."""
    dest.mkdir(parents=True, exist_ok=True)
    total, limit = 0, int(mb * 1_000_000)
    roots = [Path(sysconfig.get_paths()["stdlib"]), Path(sysconfig.get_paths()["purelib"])]
    files = [(root, f) for root in roots for f in sorted(root.rglob("*.py"))]
    for root, src in files:
        if "test" in src.parts or "tests" in src.parts or (root == roots[0] and "site-packages" in src.parts):
            continue
        try:
            tree = ast.parse(src.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        parts = [f"# {src.stem}\n\n{ast.get_docstring(tree) or ''}"]
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and ast.get_docstring(node):
                parts.append(f"## {node.name}\n\n{ast.get_docstring(node)}")
        if len(parts) < 2:
            continue
        text = "\n\n".join(parts) + "\n"
        rel = src.relative_to(root).with_suffix(".md")
        out = dest / str(rel).replace("/", "__")
        out.write_text(text, encoding="utf-8")
        total += len(text.encode())
        if total >= limit:
            break
    return total


def timed(label: str, cfg, progress=None) -> dict:
    from training.data.build import run

    t0 = time.perf_counter()
    r = run(cfg, progress)
    secs = time.perf_counter() - t0
    n = r.train + r.test
    return {"label": label, "records": n, "seconds": secs, "rate": n / secs}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=10.0)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    from rag import RagConfig, ingest
    from rag.embeddings import Embedder
    from rag.workspace import Workspace
    from training.data.build import DataBuildConfig
    from training.tiny import TinyConfig
    from training.tiny import run as build_tiny

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ws = tmp / "ws"
        embedder = Embedder()
        ingest(RagConfig(workspace=ws), EXAMPLES, embedder=embedder)
        build_tiny(TinyConfig(docs=EXAMPLES, out=Workspace(ws).tiny_base, steps=20))
        for kind in ("cpt", "sft", "raft"):
            rows.append(timed(f"example docs: {kind}", DataBuildConfig(workspace=ws, kind=kind)))
        rows.append(timed("example docs: dpo (with model answers)", DataBuildConfig(workspace=ws, kind="dpo")))
        from training.data import dpo

        real = dpo.model_answers
        dpo.model_answers = lambda base, prompts, **kw: ["a wrong answer"] * len(prompts)  # generation excluded
        try:
            rows.append(timed("example docs: dpo (model answers excluded)",
                              DataBuildConfig(workspace=ws, kind="dpo", force=True)))
        finally:
            dpo.model_answers = real

        corpus = tmp / "stdlib"
        size = stdlib_corpus(corpus, args.mb)
        ws2 = tmp / "ws2"
        for kind, extra in (("cpt", {}), ("sft", {"rag_context": False})):
            r = timed(f"{size / 1e6:.1f} MB Python docs: {kind}", DataBuildConfig(workspace=ws2, kind=kind, docs=corpus,
                                                                                  **extra))
            r["mb_s"] = size / 1e6 / r["seconds"]
            rows.append(r)
        shutil.rmtree(ws2, ignore_errors=True)

    print("| build | records | seconds | records/s | MB/s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        mbs = f"{r['mb_s']:.2f}" if "mb_s" in r else ""
        print(f"| {r['label']} | {r['records']} | {r['seconds']:.1f} | {r['rate']:.1f} | {mbs} |")


if __name__ == "__main__":
    main()
