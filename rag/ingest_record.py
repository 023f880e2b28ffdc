"""What `onboard ingest` records in the workspace (`ingest.json`), and what later stages read from it.

    state        "complete", or "in-progress" while some folder's ingest has started and not finished
    incomplete   those folders (absolute paths)
    docs         the folder (or file) ingested last
    roots        every folder (or file) ingested into the collection, in order, without duplicates
    collection, chroma_url, embedding_model, embedding_name, embedding_url, chunk_tokens,
    chunk_overlap_sentences    how the index was built, so it is queried the same way
    started, finished          UTC times of the last run
    report       the last completed run's `IngestReport`

The record is written before the first write to the index (state "in-progress") and again when the run
completes, so a run that was killed, crashed or filled the disk leaves it saying the index is
incomplete until a run of that folder completes. The record is one per workspace: ingesting into
another collection (or Chroma server) starts a new list of roots.

A record written before roots were kept has only `docs`: it counts as complete, with `docs` as its
one root.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rag.config import RagConfig
from rag.errors import BadContract
from rag.io import atomic_write_json
from rag.workspace import Workspace

IN_PROGRESS = "in-progress"
COMPLETE = "complete"


def last_ingest(workspace: str | Path) -> dict | None:
    """What the last `ingest` into this workspace recorded, or None.

    Raises:
        BadContract: the record is not valid JSON; the message names the file.
    """
    f = Workspace(workspace).ingest_record
    if not f.exists():
        return None
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadContract(f"{f}: not a valid ingest record ({e}). Delete it and run `onboard ingest DOCS "
                          f"-w {workspace}` again.") from None


def _roots_of(rec: dict | None) -> list[str]:
    if not rec:
        return []
    return list(rec.get("roots") or ([rec["docs"]] if rec.get("docs") else []))


def ingested_roots(workspace: str | Path) -> list[Path]:
    """Every folder (or single file) ingested into the workspace's collection, in ingest order.

    A record written before roots were kept gives its one `docs`; no record gives [].
    """
    return [Path(r) for r in _roots_of(last_ingest(workspace))]


def same_index(rec: dict | None, cfg: RagConfig) -> bool:
    """Whether `rec` describes the collection `cfg` names (same name, same store)."""
    return bool(rec) and rec.get("collection") == cfg.collection and rec.get("chroma_url") == cfg.chroma_url


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _add_root(roots: list[str], docs: str) -> list[str]:
    """`roots` with `docs` appended, unless it is there already or lies in a folder that is."""
    inside = any(Path(docs).is_relative_to(r) and Path(r).is_dir() for r in roots)
    return roots if docs in roots or inside else [*roots, docs]


def mark_started(cfg: RagConfig, docs_path: str | Path, embedding_name: str, prev: dict | None) -> dict:
    """Write the record of a run that is about to write to the index: state in-progress."""
    docs = str(Path(docs_path).resolve())
    before = prev if same_index(prev, cfg) else None
    rec = {
        "state": IN_PROGRESS,
        "incomplete": sorted({*((before or {}).get("incomplete") or []), docs}),
        "docs": docs,
        "roots": _add_root(_roots_of(before), docs),
        "collection": cfg.collection,
        "chroma_url": cfg.chroma_url,
        "embedding_model": cfg.embedding_model,
        "embedding_name": embedding_name,
        "embedding_url": cfg.embedding_url,
        "chunk_tokens": cfg.chunk_tokens,
        "chunk_overlap_sentences": cfg.chunk_overlap_sentences,
        "started": _now(),
    }
    atomic_write_json(Workspace(cfg.workspace).ingest_record, rec)
    return rec


def mark_complete(cfg: RagConfig, rec: dict, report: dict) -> None:
    """Write the record of a run that completed: its folder is no longer incomplete."""
    incomplete = [r for r in rec["incomplete"] if r != rec["docs"]]
    rec = {**rec, "state": IN_PROGRESS if incomplete else COMPLETE, "incomplete": incomplete, "finished": _now(),
           "report": report}
    atomic_write_json(Workspace(cfg.workspace).ingest_record, rec)


@dataclass(frozen=True)
class IngestState:
    """Whether the workspace's index holds everything its ingests meant to write."""

    workspace: Path
    collection: str | None
    """The collection the record describes; None when nothing was ingested."""
    incomplete: tuple[str, ...] = ()
    """Folders whose ingest started and did not finish (killed, crashed, disk full)."""
    started: str | None = None

    @property
    def complete(self) -> bool:
        return not self.incomplete

    def warning(self) -> str | None:
        """One line for the user when the index is incomplete, else None."""
        if self.complete:
            return None
        folders = ", ".join(self.incomplete)
        return (f"the index in {self.workspace} is incomplete: the ingest of {folders} (started {self.started}) "
                f"did not finish, so searches may miss documents. Run `onboard ingest {self.incomplete[0]} "
                f"-w {self.workspace}` again to complete it.")


def ingest_state(workspace: str | Path) -> IngestState:
    """The state the workspace's ingest record gives (complete when there is no record or an old one)."""
    rec = last_ingest(workspace) or {}
    return IngestState(Path(workspace), rec.get("collection"), tuple(rec.get("incomplete") or ()), rec.get("started"))
