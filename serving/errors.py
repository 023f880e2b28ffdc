"""Errors raised by serving. The API turns each into one `ErrorResponse`; the CLI into one line."""

from __future__ import annotations

from rag.errors import BadOption, OnboardError


class ServingError(OnboardError):
    """Base class: a user-facing serving failure. `status_code`, `type`, `code` and `param` are what the
    API answers with (OpenAI's error shape: `code` a string or None, `param` the request field at fault)."""

    status_code = 500
    type = "server_error"
    code: str | None = None

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


class BadSetting(ServingError, BadOption):
    """A serving setting (argument or ONBOARD_* environment variable) is invalid; the message names it."""

    status_code = 500
    type = "server_error"


class ModelNotLoaded(ServingError):
    status_code = 503
    type = "server_error"
    code = "model_not_loaded"


class BadRequest(ServingError):
    status_code = 400
    type = "invalid_request_error"


class ContextTooLong(BadRequest):
    """The prompt (retrieved context and history included) leaves no room for an answer within the
    model's context window; the engine never runs past it."""

    code = "context_length_exceeded"

    def __init__(self, message: str, param: str | None = "messages"):
        super().__init__(message, param)


class Unsupported(BadRequest):
    """An OpenAI parameter (or a value of one) this server cannot honour: refused by name, never ignored."""

    code = "unsupported_parameter"


class UnknownModel(ServingError):
    status_code = 404
    type = "invalid_request_error"
    code = "model_not_found"

    def __init__(self, message: str, param: str | None = "model"):
        super().__init__(message, param)


class NotFound(ServingError):
    status_code = 404
    type = "invalid_request_error"
    code = "not_found"


class ChatOff(ServingError):
    """POST /chat and /feedback need a place to keep conversations (a workspace, or conversations_file)."""

    status_code = 503
    type = "server_error"
    code = "chat_unavailable"


class NoIndex(ServingError):
    """Retrieval is required (the model was trained with retrieved context, or rag_k was set) but there
    is no index to retrieve from; start-up refuses rather than answer without documents."""

    status_code = 503
    type = "server_error"
    code = "no_index"


class PortInUse(ServingError):
    """The server cannot listen on its host and port (another process holds them, or the address is not
    this machine's)."""


class UpstreamError(ServingError):
    """The remote engine's upstream server failed, was unreachable, or answered out of contract."""

    status_code = 502
    type = "server_error"
    code = "upstream_error"


class TokenCountUnavailable(ServingError):
    """The engine cannot count tokens exactly (a remote upstream without a /tokenize endpoint)."""

    status_code = 501
    type = "server_error"
    code = "not_implemented"


class DeadlineExceeded(ServingError):
    """A chat request took longer than the server's request_timeout; its generation was stopped."""

    status_code = 504
    type = "server_error"
    code = "timeout"
