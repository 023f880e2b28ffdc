"""Errors raised by dataset building, training and merging. Each says what to do next."""

from __future__ import annotations


class TrainingError(Exception):
    """Base class: a user-facing failure in training/."""


class BadDataset(TrainingError):
    """A dataset file is malformed; the message names file:line and the fix."""


class NoExamples(TrainingError):
    pass


class ModelNotFound(TrainingError):
    pass


class OutputExists(TrainingError):
    pass


class MergeVerificationFailed(TrainingError):
    pass


class TeacherError(TrainingError):
    """The teacher LLM endpoint is unreachable, refuses us, or keeps failing; the message names the URL and what to check."""


class FetchError(TrainingError):
    """A model could not be downloaded, verified or converted; the message names the package or file and what to do."""
