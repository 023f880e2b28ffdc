"""The model card: the contract between training and serving, written beside every model Onboard
makes (`onboard_model.json`) and read by everything that loads one.

A base model (tiny, or converted from GGUF) carries `kind`, what it is and where it came from. A merged
model also carries the base it was merged onto (with its weights fingerprint), the run that trained it
(stage, method, dataset hash) and the RAG contract: how many retrieved chunks each training prompt held,
in which prompt layout, retrieved with which embedding model and collection. Serving reads the RAG
contract to build requests exactly as training did.

The card has a schema version; a card of an unknown version, or one missing a field, is refused with
the file named (`BadContract`), never half-read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rag.errors import BadContract
from rag.io import atomic_write_json

CARD_FILE = "onboard_model.json"
SCHEMA_VERSION = 1

DatasetKind = Literal["sft", "raft", "cpt", "dpo"]
"""What `onboard data build --kind` makes (training/data/build.py)."""
CardKind = Literal["onboard-tiny", "gguf-conversion", "onboard-merged"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RagContract(_Strict):
    """How retrieval fed the prompts a model was trained on; serving must feed it the same way."""

    context_chunks: int = Field(ge=0)
    """Retrieved chunks per prompt (RAFT: distractors + 1); 0: trained without retrieved context."""
    prompt_layout: str
    """`rag.prompt.PROMPT_LAYOUT`: the version of the system-prompt layout the chunks were put in."""
    prompt_version: str | None = None
    """`rag.prompt.Prompts.version`: the layout and the wording of the system prompt and decline (None: a card
    written before the wording was recorded)."""
    embedding_model: str | None = None
    """The embedding model that retrieved them (`Embedder.name`)."""
    embedding_languages: list[str] | None = None
    """Languages that embedding model handles (None: all)."""
    collection: str | None = None
    """The Chroma collection they came from."""


class DatasetCard(BaseModel):
    """What `onboard data build` records about a dataset (`stats.json` beside `train.jsonl`). The typed
    fields are the contract; the counts and cleaning report ride along as extra fields."""

    model_config = ConfigDict(extra="allow")

    schema_version: int = SCHEMA_VERSION
    kind: DatasetKind
    docs: str
    """The documents folder (or folders) the examples came from."""
    base_model: str | None = None
    """The tokenizer that measured lengths (and, for DPO, the model whose answers were rejected)."""
    rag: RagContract | None = None
    """None for CPT (plain text, no prompts)."""
    train: int = 0
    test: int = 0
    by_rule: dict[str, int] = {}
    by_language: dict[str, int] = {}

    @classmethod
    def read(cls, path: str | Path) -> DatasetCard | None:
        """The card at `path`, None when there is none; `BadContract` names the file when it is broken."""
        return _read(cls, Path(path), missing_ok=True)

    def write(self, path: str | Path) -> None:
        atomic_write_json(path, self.model_dump(mode="json"))


class BaseModelRef(_Strict):
    """Which weights a model was trained or merged on, so the run can be repeated on exactly those."""

    name_or_path: str
    source: Literal["folder", "hub"] = "folder"
    weights_sha256: str | None = None
    """One sha256 over the folder's weight files (training/base_model.weights_sha256)."""
    hub_revision: str | None = None
    """For a Hub id: the commit loaded."""
    card: ModelCard | None = None
    """The base folder's own model card, when it has one (tiny, GGUF conversion)."""


class RunRef(_Strict):
    """The training run behind a merged model."""

    run_dir: str
    stage: Literal["sft", "cpt", "dpo"]
    method: str
    train_sha256: str
    eval_sha256: str | None = None
    steps: int | None = None
    dataset: DatasetCard | None = None


class MergeVerification(_Strict):
    top1_agreement: float
    max_logit_diff: float
    min_logit_cosine: float
    greedy_match: float
    greedy_tokens: int
    prompts: list[str]


class ModelCard(_Strict):
    """What a model folder is. Base models fill `description`, `parameters` and `provenance`; merged
    models add `base`, `run`, `rag` and `verification`."""

    schema_version: int = SCHEMA_VERSION
    kind: CardKind
    description: str = ""
    parameters: int | None = None
    eos_token_ids: list[int] = []
    """Token ids generation stops at (the chat template's end of turn and EOS)."""
    base: BaseModelRef | None = None
    run: RunRef | None = None
    rag: RagContract | None = None
    """Merged models: the retrieval the model was trained with. None: trained without a dataset card
    (serving then uses rag.DEFAULT_K)."""
    verification: MergeVerification | None = None
    provenance: dict[str, Any] = {}
    """Kind-specific facts for people and reproducibility (the tiny model's docs hash and final loss,
    a GGUF's sha256 and tensor types, an adapter's path): informational, never read as a contract."""

    @classmethod
    def read(cls, folder: str | Path) -> ModelCard | None:
        """The card of model folder `folder`, or None when it has none (any Hugging Face folder).

        Raises:
            BadContract: the card is unreadable, of another schema version, or lacks a field.
        """
        return _read(cls, Path(folder) / CARD_FILE, missing_ok=True)

    def write(self, folder: str | Path) -> None:
        atomic_write_json(Path(folder) / CARD_FILE, self.model_dump(mode="json", exclude_none=True))


def _read(cls, path: Path, missing_ok: bool):
    if not path.exists():
        if missing_ok:
            return None
        raise BadContract(f"{path}: no such file.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise BadContract(f"{path}: not readable JSON ({e}). Rebuild it with the command that made it.") from None
    if not isinstance(data, dict):
        raise BadContract(f"{path}: expected a JSON object.")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BadContract(f"{path}: schema_version {version!r}, but this Onboard reads version {SCHEMA_VERSION}. "
                          "Rebuild it with this version's command (`onboard merge`, `onboard data build`, "
                          "`onboard base build`), or use the Onboard version that wrote it.")
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(x) for x in err['loc']) or '(top)'}: {err['msg']}" for err in e.errors())
        raise BadContract(f"{path}: {problems}. Rebuild it with the command that made it.") from None


BaseModelRef.model_rebuild()
