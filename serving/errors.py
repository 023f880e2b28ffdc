"""Errors raised by serving. The API turns each into one `ErrorResponse`; the CLI into one line."""

from __future__ import annotations

from rag.errors import BadOption, OnboardError


class ServingError(OnboardError):
    """Base class: a user-facing serving failure. `status_code` and `type` are what the API answers with."""

    status_code = 500
    type = "server_error"


class BadSetting(ServingError, BadOption):
    """A serving setting (argument or ONBOARD_* environment variable) is invalid; the message names it."""

    status_code = 500
    type = "server_error"


class ModelNotLoaded(ServingError):
    status_code = 503
    type = "model_not_loaded"


class BadRequest(ServingError):
    status_code = 400
    type = "invalid_request_error"


class ContextTooLong(BadRequest):
    """The prompt (retrieved context and history included) leaves no room for an answer within the
    model's context window; the engine never runs past it."""

    type = "context_length_exceeded"


class UnknownModel(ServingError):
    status_code = 404
    type = "model_not_found"


class NoIndex(ServingError):
    """Retrieval is required (the model was trained with retrieved context, or rag_k was set) but there
    is no index to retrieve from; start-up refuses rather than answer without documents."""

    status_code = 503
    type = "no_index"


class PortInUse(ServingError):
    """The server cannot listen on its host and port (another process holds them, or the address is not
    this machine's)."""


class UpstreamError(ServingError):
    """The remote engine's upstream server failed, was unreachable, or answered out of contract."""

    status_code = 502
    type = "upstream_error"


class TokenCountUnavailable(ServingError):
    """The engine cannot count tokens exactly (a remote upstream without a /tokenize endpoint)."""

    status_code = 501
    type = "not_implemented"
