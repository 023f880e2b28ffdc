"""Errors raised by dataset building, training, merging and export. Each says what to do next.

All derive from `TrainingError`, itself an `rag.errors.OnboardError`: the CLI prints them as one line.
"""

from __future__ import annotations

from rag.errors import BadOption as _BadOption
from rag.errors import OnboardError


class TrainingError(OnboardError):
    """Base class: a user-facing failure in training/."""


class BadConfig(TrainingError, _BadOption):
    """A training, dataset or export option has a bad value; the message names the flag or key."""


class BadRecipe(BadConfig):
    """A recipe file is unreadable or holds an unknown key or a bad value; the message names the file."""


class BadDataset(TrainingError):
    """A dataset file is malformed; the message names file:line and the fix."""


class BadRecord(BadDataset):
    """One record is malformed; `code` names the kind of defect and `reason` says what to fix."""

    def __init__(self, where: str, code: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.code = code
        self.reason = reason


class NoExamples(TrainingError):
    pass


class ModelNotFound(TrainingError):
    """No model where one was named (a folder without config.json, an uncached Hub id)."""


class AdapterNotFound(ModelNotFound):
    """A folder given as an adapter holds no `adapter_config.json`."""


class OutputExists(TrainingError):
    pass


class MergeVerificationFailed(TrainingError):
    pass


class UnfinishedRun(TrainingError):
    """A run was stopped or killed before it finished; its adapter is not the trained model."""


class CannotMerge(TrainingError):
    """The adapter type cannot be folded into the base weights (prefix tuning); the message says what to do."""


class TeacherError(TrainingError):
    """The teacher LLM endpoint is unreachable, refuses us, or keeps failing; the message names the URL and what to check."""


class FetchError(TrainingError):
    """A model could not be downloaded, verified or converted; the message names the package or file and what to do."""


class DoesNotFit(TrainingError):
    """Even batch 1 with gradient checkpointing exceeds the memory; the message lists what would fit."""


class ExportError(TrainingError):
    """The model cannot be exported in this format; the message says which models can, or what to install."""


class ExportVerificationFailed(ExportError):
    """The exported file does not reproduce the source model; nothing was kept."""
