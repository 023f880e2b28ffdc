"""The workspace: one folder holding everything a project makes, and the one place that knows where.

    .onboard/
      ingest.json              what `onboard ingest` recorded: every folder ingested, and whether the
                               last run of each finished (rag/ingest_record.py)
      chroma/  bm25/<coll>/    the index
      base/tiny/               the tiny default base model (`onboard base build tiny`)
      data/<kind>/             train.jsonl, test.jsonl, stats.json (the dataset card)
      data/teacher/cache.jsonl the teacher's resumable answers (answers.jsonl: its short answers to rule-made questions)
      data/paraphrases/cache.jsonl  the LLM paraphraser's resumable replies (training/data/rewording.py)
      prompt.yaml              your wording of the system prompt and the decline (optional; rag/prompt.py)
      feedback/feedback.jsonl  the server's feedback, turned into DPO pairs
      runs/<stage>/            a training run (config.json, metrics.jsonl, adapter/, checkpoints/)
      models/merged/           the merged model and its model card
      server.log               the demo server's log

Every package asks a `Workspace` for a path; no other module spells these names.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, field_validator

DEFAULT_WORKSPACE = Path(".onboard")
DATASET_CARD_FILE = "stats.json"
"""Written by `onboard data build` beside `train.jsonl`; read by training through `DatasetCard`."""


class Workspace(BaseModel):
    """Paths inside one workspace folder."""

    model_config = ConfigDict(frozen=True)

    root: Path
    """The workspace folder (`--workspace`, env ONBOARD_WORKSPACE, default `.onboard`)."""

    def __init__(self, root: str | Path = DEFAULT_WORKSPACE, **kw) -> None:
        super().__init__(root=root, **kw)

    @field_validator("root", mode="before")
    @classmethod
    def _path(cls, v):
        return Path(v)

    # ---- the index
    @property
    def chroma(self) -> Path:
        return self.root / "chroma"

    def bm25(self, collection: str) -> Path:
        return self.root / "bm25" / collection

    @property
    def ingest_record(self) -> Path:
        return self.root / "ingest.json"

    @property
    def has_index(self) -> bool:
        return self.chroma.is_dir()

    # ---- base models
    @property
    def tiny_base(self) -> Path:
        return self.root / "base" / "tiny"

    def default_base(self) -> str | None:
        """The tiny base when it has been built here, else None."""
        return str(self.tiny_base) if (self.tiny_base / "config.json").exists() else None

    # ---- datasets
    def data_dir(self, kind: str = "sft") -> Path:
        return self.root / "data" / kind

    def train_file(self, kind: str = "sft") -> Path:
        return self.data_dir(kind) / "train.jsonl"

    def test_file(self, kind: str = "sft") -> Path:
        return self.data_dir(kind) / "test.jsonl"

    def dataset_card(self, kind: str = "sft") -> Path:
        return self.data_dir(kind) / DATASET_CARD_FILE

    @property
    def teacher_cache(self) -> Path:
        return self.root / "data" / "teacher" / "cache.jsonl"

    @property
    def teacher_answers_cache(self) -> Path:
        return self.root / "data" / "teacher" / "answers.jsonl"

    @property
    def paraphrase_cache(self) -> Path:
        return self.root / "data" / "paraphrases" / "cache.jsonl"

    @property
    def keys_file(self) -> Path:
        """The served API's keys (hashed; `onboard keys`)."""
        return self.root / "serving" / "keys.sqlite"

    @property
    def conversations_file(self) -> Path:
        """The served bot's conversations (POST /chat) and the answers feedback refers to."""
        return self.root / "serving" / "conversations.sqlite"

    @property
    def feedback_file(self) -> Path:
        return self.root / "feedback" / "feedback.jsonl"

    @property
    def prompt_file(self) -> Path:
        """The workspace's wording of the system prompt and decline (rag/prompt.py), when it has its own."""
        from rag.prompt import PROMPT_FILE

        return self.root / PROMPT_FILE

    # ---- runs and models
    def run_dir(self, stage: str = "sft") -> Path:
        return self.root / "runs" / stage

    @property
    def merged_model(self) -> Path:
        return self.root / "models" / "merged"

    @property
    def server_log(self) -> Path:
        return self.root / "server.log"


def dataset_card_beside(train_file: str | Path) -> Path:
    """Where `onboard data build` put the dataset card of `train_file` (the same folder)."""
    return Path(train_file).parent / DATASET_CARD_FILE
