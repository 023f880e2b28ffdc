"""Errors raised by the front door (CLI and, later, the interviewing agent)."""

from __future__ import annotations

from rag.errors import BadOption, OnboardError


class AgentError(OnboardError):
    """Base class: a user-facing failure in agent/."""


class BadChoice(AgentError, BadOption):
    """A command-line choice is not one of those offered; the message lists them."""


class DemoFailed(AgentError):
    """A demo stage failed; the message names the stage and its log."""


class AgentLlmError(AgentError):
    """The interview's LLM (ONBOARD_AGENT_BASE_URL) is misconfigured, cannot be reached or refuses the
    request; the message names the variable to check."""


class PromptChanged(AgentError):
    """A dataset built with another wording of the prompt than the workspace's (rag/prompt.py)."""


class DeployError(AgentError):
    """`onboard deploy` cannot write the deploy files as asked; the message says what to do."""
