"""What a training run records in its `config.json`: the resolved config, the base model's fingerprint,
the dataset's hash and card, library versions, each resume, and the result. Merge reads it back (typed)
to find the base and write the merged model's card; `--resume` reads it to refuse a run continued with
other settings (`resume_differences`). Nothing reads it by key path.

Paths are stored relative to the run folder (`./`, `../../base/tiny`), not to the directory `onboard`
ran in: a workspace moved or copied elsewhere, or read from another directory, still finds its base
and data. `read` turns them back into absolute paths. The base is also kept absolute with its weights'
fingerprint (`base_model`), for a run folder moved away from its base (`trained_on`).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from rag.errors import BadContract
from rag.io import atomic_write_json
from rag.model_card import BaseModelRef, DatasetCard, ModelCard, RunRef
from training.config import TrainConfig, field_meta, flag_of, resume_rule

RUN_RECORD_FILE = "config.json"
PATH_FIELDS = ("train_file", "eval_file", "output_dir", "init_adapter")
"""TrainConfig's path fields (stored relative to the run folder); `base_model` too when it is a path."""


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
    start_loss: float | None = None
    end_loss: float | None = None


class Resumed(BaseModel):
    """One `--resume` of the run: the checkpoint it continued from and the settings it changed (only
    those `--resume` may change: training/config.py, "free"), as flag -> [old, new]."""

    model_config = ConfigDict(extra="forbid")

    from_step: int
    changed: dict[str, list[Any]] = {}
    versions: dict[str, str] = {}
    """Library versions of the resumed process, when they differ from the run's."""


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
    init_adapter_sha256: str | None = None
    """DPO from an SFT adapter: its weights' fingerprint (a resumed run must start from the same adapter)."""
    versions: dict[str, str] = {}
    resumes: list[Resumed] = []
    result: RunOutcome | None = None
    paths_relative_to_run: bool = False
    """The config's paths and start_model are stored relative to the run folder (False: a record from
    an older Onboard, whose paths are relative to wherever it ran)."""

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
            record = cls.model_validate_json(f.read_text(encoding="utf-8"))
        except ValidationError as e:
            raise BadContract(f"{f}: not a run record this version of Onboard reads ({e.error_count()} problems, "
                              f"first: {e.errors()[0]['msg']}). Train again with `onboard train --force`.") from None
        if record.paths_relative_to_run:
            record._resolve_paths(Path(run_dir))
        return record

    def write(self, run_dir: str | Path) -> None:
        """Write `config.json` into `run_dir`, paths relative to it (see the module docstring)."""
        data = self.model_dump(mode="json", exclude_none=True)
        cfg = self.config
        for name in PATH_FIELDS:
            if getattr(cfg, name) is not None:
                data["config"][name] = _relative_to(getattr(cfg, name), run_dir)
        if _is_local(cfg.base_model):
            data["config"]["base_model"] = _relative_to(cfg.base_model, run_dir)
        if self.start_model:
            data["start_model"] = _relative_to(self.start_model, run_dir)
        data["paths_relative_to_run"] = True
        atomic_write_json(Path(run_dir) / RUN_RECORD_FILE, data)

    def _resolve_paths(self, run_dir: Path) -> None:
        cfg = self.config
        for name in PATH_FIELDS:
            if getattr(cfg, name) is not None:
                setattr(cfg, name, Path(_from(run_dir, getattr(cfg, name))))
        if cfg.base_model.startswith(("./", "../")) or cfg.base_model == ".":
            cfg.base_model = _from(run_dir, cfg.base_model)
        if self.start_model:
            self.start_model = _from(run_dir, self.start_model)

    def trained_on(self, run_dir: str | Path) -> str:
        """The model this run's adapter applies to, found from where the run folder is now: the DPO start
        model (in the run folder), else the base: at its path relative to the run folder (a moved or
        copied workspace), else at the absolute path it was trained from; a folder is taken only if its
        weights are the ones the run recorded. A Hub id is returned as recorded.

        Raises:
            ModelNotFound: the base is at none of those places (or holds other weights); the message
                names them and says to pass the base with --base.
        """
        from training.base_model import resolve, weights_sha256
        from training.errors import ModelNotFound

        if self.start_model:
            if (Path(self.start_model) / "config.json").exists():
                return self.start_model
            raise ModelNotFound(f"{self.start_model}: the model this DPO run started from is gone. Pass the SFT "
                                "model merged with its adapter with --base.")
        ref = self.base_model
        if ref.source == "hub":
            return ref.name_or_path
        tried = []
        for cand in dict.fromkeys((self.config.base_model, ref.name_or_path)):
            if not Path(cand).expanduser().exists():
                tried.append(f"{cand} (missing)")
                continue
            folder = resolve(cand)
            if ref.weights_sha256 is None or weights_sha256(Path(folder)) == ref.weights_sha256:
                return folder
            tried.append(f"{cand} (other weights than the run's)")
        raise ModelNotFound(f"{Path(run_dir)}: the base model it was trained on is not found: {'; '.join(tried)}. "
                            "Pass the base with --base.")

    def run_ref(self, run_dir: str | Path) -> RunRef:
        """This run as a merged model's card names it."""
        return RunRef(run_dir=str(Path(run_dir).resolve()), stage=self.stage, method=self.config.method,
                      train_sha256=self.train_sha256, eval_sha256=self.eval_sha256,
                      steps=self.result.steps if self.result else None, dataset=self.dataset)


def resume_differences(old: RunRecord, new: RunRecord) -> list[str]:
    """What a resumed run would change that `--resume` may not (training/config.py: "same" and
    "content"), each as "FLAG OLD -> NEW"; empty when the run may continue."""
    diffs = []
    a, b = old.config.model_dump(mode="json"), new.config.model_dump(mode="json")
    for name in TrainConfig.model_fields:
        if resume_rule(name) == "same" and a.get(name) != b.get(name):
            diffs.append(f"{_label(name)} {_show(a.get(name))} -> {_show(b.get(name))}")
    if not _same_base(old.base_model, new.base_model):
        diffs.append(f"--base {_show_base(old.base_model)} -> {_show_base(new.base_model)}")
    if old.train_sha256 != new.train_sha256:
        diffs.append(f"--data {old.config.train_file} (sha256 {old.train_sha256[:12]}) -> "
                     f"{new.config.train_file} (sha256 {new.train_sha256[:12]})")
    if old.eval_sha256 and new.eval_sha256 and old.eval_sha256 != new.eval_sha256:  # adding or dropping it is free
        diffs.append(f"--eval-data {old.config.eval_file} (sha256 {old.eval_sha256[:12]}) -> "
                     f"{new.config.eval_file} (sha256 {new.eval_sha256[:12]})")
    if old.init_adapter_sha256 != new.init_adapter_sha256:
        diffs.append(f"--init-adapter {old.config.init_adapter} (weights {_short(old.init_adapter_sha256)}) -> "
                     f"{new.config.init_adapter} (weights {_short(new.init_adapter_sha256)})")
    return diffs


def resume_changes(old: RunRecord, new: RunRecord) -> dict[str, list[Any]]:
    """The settings a resumed run changes that it may ("free" ones, not the run controls), flag -> [old, new]."""
    a, b = old.config.model_dump(mode="json"), new.config.model_dump(mode="json")
    skip = {"resume", "force", "output_dir"}
    return {_label(n): [a.get(n), b.get(n)] for n in TrainConfig.model_fields  # None: decided as before (auto)
            if resume_rule(n) == "free" and n not in skip and b.get(n) is not None and a.get(n) != b.get(n)}


def _label(name: str) -> str:
    return flag_of(name) if field_meta(name)["flag"] != "" else f"recipe key {name}"


def _show(v) -> str:
    if isinstance(v, list):
        return ",".join(map(str, v))
    return "unset" if v is None else str(v)


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "none"


def _same_base(a: BaseModelRef, b: BaseModelRef) -> bool:
    if a.weights_sha256 and b.weights_sha256:  # a moved folder holds the same weights
        return a.weights_sha256 == b.weights_sha256
    return (a.source, a.name_or_path, a.hub_revision) == (b.source, b.name_or_path, b.hub_revision)


def _show_base(ref: BaseModelRef) -> str:
    if ref.weights_sha256:
        return f"{ref.name_or_path} (weights sha256 {ref.weights_sha256[:12]})"
    return f"{ref.name_or_path} (revision {ref.hub_revision})" if ref.hub_revision else ref.name_or_path


def _is_local(name_or_path: str) -> bool:
    """A base given as a path (a folder or a .gguf file), not a Hub id."""
    return Path(name_or_path).expanduser().exists()


def _relative_to(path: str | Path, run_dir: str | Path) -> str:
    """`path` (absolute, or relative to the current directory) as seen from `run_dir`, starting with
    ./ or ../ so that a relative base never reads as a Hub id."""
    target = Path(path).expanduser().resolve()
    try:
        rel = Path(os.path.relpath(target, Path(run_dir).resolve())).as_posix()
    except ValueError:  # another drive (Windows): only the absolute path says where
        return str(target)
    return rel if rel == "." or rel.startswith("../") or rel == ".." else f"./{rel}"


def _from(run_dir: Path, stored: str | Path) -> str:
    """A stored path made absolute: relative ones are relative to the run folder."""
    p = Path(stored)
    return str(p) if p.is_absolute() else os.path.normpath(Path(run_dir).absolute() / p)


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
