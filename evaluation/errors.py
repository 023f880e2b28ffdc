"""Errors raised by evaluation. The CLI turns each into one line (exit 1); `serve` and `deploy` print the
gate's refusal the same way."""

from __future__ import annotations

from rag.errors import BadOption, OnboardError


class EvaluationError(OnboardError):
    """Base class: a user-facing evaluation failure; the message says what to do next."""


class BadGateRule(EvaluationError, BadOption):
    """A gate rule file or override is unreadable or invalid, or asks for something the report cannot
    answer (a metric it did not measure); the message names the file, key or metric."""


class MissingSystem(BadGateRule):
    """The gate rule names a system the evaluation report does not hold; the message names it and the
    systems the report has."""


class NotAModel(EvaluationError):
    """A folder given as a model holds no `*.safetensors` weights, so it cannot be fingerprinted."""


class NoQuestions(EvaluationError):
    """No held-out questions to evaluate on: the test split is missing, empty or unreadable (the file and
    line are named)."""


class GateFailed(EvaluationError):
    """The model's last evaluation failed its gate; serving it needs --force."""
