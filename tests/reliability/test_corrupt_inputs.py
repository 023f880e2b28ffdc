"""Damaged and unreadable files of every supported type never stop an ingest: each is listed as skipped,
with a reason naming it, and the good file beside them goes in."""

from __future__ import annotations

import builtins
import errno
import hashlib
import io
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app
from rag import RagConfig, Retriever, ingest
from rag.errors import BadDocument
from rag.loaders import SUPPORTED_SUFFIXES
from tests.rag.helpers import make_docx, make_pdf

runner = CliRunner()
GOOD = "# Store hours\n\nThe Lisbon showroom opens at nine on Sundays.\n"
QUERY = "When does the Lisbon showroom open on Sundays?"
TEXT = "# 退货政策\n\n退货运费由顾客承担。".encode()
GARBAGE = b"".join(hashlib.sha256(bytes([i])).digest() for i in range(64))


def _valid(suffix: str, scratch: Path) -> bytes:
    """A readable file of that type, ending inside a multi-byte character once its last byte is cut."""
    if suffix == ".pdf":
        return make_pdf(scratch / "valid.pdf", ["Assembly guide\nAttach the legs first."]).read_bytes()
    if suffix == ".docx":
        return make_docx(scratch / "valid.docx").read_bytes()
    if suffix == ".csv":
        return "question,answer\n退货吗?,可以。".encode()
    if suffix == ".jsonl":
        return b'{"question": "q", "answer": "a"}\n{"question": "q2", "answer": "a2"}\n'
    return b"<p>" + TEXT if suffix in (".html", ".htm") else TEXT


def make_bad_files(docs: Path, scratch: Path) -> list[str]:
    """Beside good.md: a 0-byte, a corrupt and a truncated file of every supported type. Returns their names."""
    docs.mkdir(parents=True)
    scratch.mkdir(parents=True, exist_ok=True)
    (docs / "good.md").write_text(GOOD)
    names = []
    for suffix in SUPPORTED_SUFFIXES:
        valid = _valid(suffix, scratch)
        cut = {".pdf": len(valid) // 3, ".docx": len(valid) // 2, ".jsonl": len(valid) - 8}.get(suffix, len(valid) - 1)
        magic = {".pdf": b"%PDF-1.4\n", ".docx": b"PK\x03\x04"}.get(suffix, b"")
        for stem, data in (("zero", b""), ("corrupt", magic + GARBAGE), ("truncated", valid[:cut])):
            (docs / f"{stem}{suffix}").write_bytes(data)
            names.append(f"{stem}{suffix}")
    return names


def _deny(monkeypatch, prefix: str = "locked.") -> None:
    """Opening a file whose name starts with `prefix` fails as it would without read permission (the tests run
    as root, which permissions do not stop)."""
    real = builtins.open

    def guarded(file, *args, **kwargs):
        if isinstance(file, str | Path) and Path(file).name.startswith(prefix):
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded)
    monkeypatch.setattr(io, "open", guarded)  # Path.read_bytes and zipfile open through io.open


def test_every_damaged_file_is_skipped_with_its_reason_and_the_good_one_is_searchable(tmp_path, embedder):
    docs = tmp_path / "docs"
    names = make_bad_files(docs, tmp_path / "scratch")
    cfg = RagConfig(workspace=tmp_path / "ws")
    report = ingest(cfg, docs, embedder=embedder)
    assert report.sources == ["good.md"]
    reasons = {s.path: s.reason for s in report.skipped}
    assert sorted(reasons) == sorted(names)
    for name, reason in reasons.items():
        assert str(docs / name) in reason and "\n" not in reason, reason
    assert "not a readable .docx file" in reasons["zero.docx"] and "not a readable PDF" in reasons["truncated.pdf"]
    assert Retriever(cfg, embedder).search(QUERY, k=1)[0].source == "good.md"


def test_strict_stops_at_the_first_damaged_file_naming_it_and_writes_nothing(tmp_path, embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.md").write_text(GOOD)
    (docs / "zero.docx").write_bytes(b"")
    with pytest.raises(BadDocument, match=r"zero\.docx: not a readable \.docx file"):
        ingest(RagConfig(workspace=tmp_path / "ws"), docs, embedder=embedder, strict=True)
    assert not (tmp_path / "ws").exists()


@pytest.mark.parametrize("suffix", [".md", ".pdf", ".docx", ".csv"])
def test_a_file_that_cannot_be_opened_is_skipped(tmp_path, embedder, monkeypatch, suffix):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.md").write_text(GOOD)
    (docs / f"locked{suffix}").write_bytes(_valid(suffix, tmp_path))
    _deny(monkeypatch)
    report = ingest(RagConfig(workspace=tmp_path / "ws"), docs, embedder=embedder)
    assert report.sources == ["good.md"]
    [skipped] = report.skipped
    assert skipped.path == f"locked{suffix}"
    assert f"locked{suffix}: cannot be read (Permission denied)" in skipped.reason


def test_the_cli_lists_every_skipped_file_and_ingests_the_rest(tmp_path, monkeypatch):
    docs = tmp_path / "docs"
    names = make_bad_files(docs, tmp_path / "scratch")
    (docs / "locked.txt").write_text("secret")
    _deny(monkeypatch)
    r = runner.invoke(app, ["ingest", str(docs), "-w", str(tmp_path / "ws")], env={"COLUMNS": "400"})
    assert r.exit_code == 0, r.output
    assert f"{len(names) + 1} file(s) skipped" in r.output
    for name in [*names, "locked.txt"]:
        assert name in r.output, name
    assert "Permission denied" in r.output and "1 documents" in r.output
