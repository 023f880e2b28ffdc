"""Errors raised by the front door (CLI and, later, the interviewing agent)."""

from __future__ import annotations

from rag.errors import BadOption, OnboardError


class AgentError(OnboardError):
    """Base class: a user-facing failure in agent/."""


class BadChoice(AgentError, BadOption):
    """A command-line choice is not one of those offered; the message lists them."""


class DemoFailed(AgentError):
    """A demo stage failed; the message names the stage and its log."""


class PromptChanged(AgentError):
    """A dataset built with another wording of the prompt than the workspace's (rag/prompt.py)."""
