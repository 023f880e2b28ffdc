"""What a training run records in its `config.json`: the resolved config, the base model's fingerprint,
the dataset's hash and card, library versions, and the result. Merge reads it back (typed) to write
the merged model's card; nothing reads it by key path.
"""

from __future__ import annotations

import platform
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from rag.errors import BadContract
from rag.io import atomic_write_json
from rag.model_card import BaseModelRef, DatasetCard, ModelCard, RunRef
from training.config import TrainConfig

RUN_RECORD_FILE = "config.json"


class RunOutcome(BaseModel):
    """How the run ended (see `training.runs.TrainResult`)."""

    adapter_dir: str
    train_loss: float | None = None
    first_loss: float | None = None
    last_loss: float | None = None
    eval_loss: float | None = None
    steps: int = 0
    seconds: float = 0.0
    stopped_by: str | None = None
    eos_ok: bool | None = None


class RunRecord(BaseModel):
    """A run folder's `config.json`."""

    model_config = ConfigDict(extra="forbid")

    stage: str
    config: TrainConfig
    base_model: BaseModelRef
    train_sha256: str
    train_examples: int
    eval_sha256: str | None = None
    dataset: DatasetCard | None = None
    """The card `onboard data build` wrote beside the training file (None for a hand-made file)."""
    start_model: str | None = None
    """DPO from an SFT adapter: the merged SFT model the run started from (and its reference)."""
    versions: dict[str, str] = {}
    result: RunOutcome | None = None

    @classmethod
    def read(cls, run_dir: str | Path) -> RunRecord:
        """The record of run folder `run_dir`.

        Raises:
            BadContract: no record there, or one this version cannot read (the file is named).
        """
        f = Path(run_dir) / RUN_RECORD_FILE
        if not f.exists():
            raise BadContract(f"{f}: no run record. Pass a run folder made by `onboard train`.")
        try:
            return cls.model_validate_json(f.read_text(encoding="utf-8"))
        except ValidationError as e:
            raise BadContract(f"{f}: not a run record this version of Onboard reads ({e.error_count()} problems, "
                              f"first: {e.errors()[0]['msg']}). Train again with `onboard train --force`.") from None

    def write(self, run_dir: str | Path) -> None:
        atomic_write_json(Path(run_dir) / RUN_RECORD_FILE, self.model_dump(mode="json", exclude_none=True))

    def run_ref(self, run_dir: str | Path) -> RunRef:
        """This run as a merged model's card names it."""
        return RunRef(run_dir=str(Path(run_dir).resolve()), stage=self.stage, method=self.config.method,
                      train_sha256=self.train_sha256, eval_sha256=self.eval_sha256,
                      steps=self.result.steps if self.result else None, dataset=self.dataset)


def base_ref(path: str) -> BaseModelRef:
    """What a base model is, so a run can be repeated on exactly those weights: for a folder, its own
    model card if any and `weights_sha256`; for a Hub id, the commit it was loaded at."""
    from training.base_model import hub_snapshot, weights_sha256

    p = Path(path)
    if not p.is_dir():
        snapshot = hub_snapshot(path)
        return BaseModelRef(name_or_path=path, source="hub", hub_revision=snapshot.name if snapshot else None)
    return BaseModelRef(name_or_path=path, source="folder", weights_sha256=weights_sha256(p), card=ModelCard.read(p))


def versions() -> dict[str, str]:
    import bitsandbytes
    import peft
    import torch
    import transformers
    import trl

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__, "trl": trl.__version__, "bitsandbytes": bitsandbytes.__version__}
