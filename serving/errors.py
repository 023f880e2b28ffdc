"""Errors raised by serving. The API turns each into one `ErrorResponse`; the CLI into one line."""

from __future__ import annotations


class ServingError(Exception):
    """Base class: a user-facing serving failure."""

    status_code = 500
    type = "server_error"


class ModelNotLoaded(ServingError):
    status_code = 503
    type = "model_not_loaded"


class BadRequest(ServingError):
    status_code = 400
    type = "invalid_request_error"


class UnknownModel(ServingError):
    status_code = 404
    type = "model_not_found"
