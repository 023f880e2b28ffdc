"""What the OpenAPI document (/openapi.json, /docs) says each route answers, so that it is the contract clients
and schemathesis check: every error has the one `ErrorResponse` shape, with the statuses a route really
returns; a request that fails validation is a 400 (OpenAI's way), never FastAPI's 422; server-sent events are
documented as `text/event-stream`.

    @router.post("/v1/chat/completions", responses={**sse("chat.completion.chunk objects"), **errors(400, 404)})
"""

from __future__ import annotations

from fastapi import FastAPI

from serving.protocol import ErrorResponse

WHY = {
    400: "Invalid request: `error.param` names the field at fault (a body or parameter that fails validation too).",
    404: "Not found (`error.code` model_not_found for a model this server does not serve).",
    409: "Conflicts with what is running.",
    401: "No API key, or an unknown or revoked one (only once the server has keys: `onboard keys create`).",
    429: "The API key is over its requests or tokens per minute; Retry-After says when to try again.",
    413: "The request body is over the server's limit (ONBOARD_MAX_REQUEST_BYTES).",
    501: "The engine cannot do it (a remote upstream without the endpoint).",
    502: "The remote engine's upstream failed or answered out of contract.",
    504: "The answer took longer than the server's request_timeout (ONBOARD_REQUEST_TIMEOUT); it was stopped.",
    503: "Not now: too many requests in the server (`server_overloaded`, with Retry-After), or no model or index.",
}


def errors(*codes: int) -> dict:
    """`responses=` entries for these error statuses, each an ErrorResponse."""
    return {code: {"model": ErrorResponse, "description": WHY[code]} for code in codes}


def sse(what: str, status: int = 200) -> dict:
    """A `responses=` entry for a status answered as server-sent events carrying `what`."""
    return {status: {"description": f"Server-sent events: {what}.",
                     "content": {"text/event-stream": {"schema": {}}}}}  # each event's data: JSON (or [DONE])


def openapi_without_422(app: FastAPI, open_paths: set[str] = frozenset()) -> None:
    """Drop the 422 FastAPI documents for every route with parameters: validation errors are answered as 400
    (serving.app's handler), which each route documents with `errors(400, ...)`. Every path but `open_paths`
    documents bearer authentication and its 401 and 429 (serving.auth: asked for once the server has keys)."""
    plain = app.openapi

    def document() -> dict:
        if app.openapi_schema is None:
            doc = plain()
            schemes = doc.setdefault("components", {}).setdefault("securitySchemes", {})
            schemes["apiKey"] = {"type": "http", "scheme": "bearer",
                                 "description": "An `onboard keys create` key, once the server has any."}
            for where, path in doc.get("paths", {}).items():
                for op in path.values():
                    op.get("responses", {}).pop("422", None)
                    if where not in open_paths:
                        op["security"] = [{"apiKey": []}, {}]  # {}: no key, while the server has none
                        for code in (401, 429):
                            op.setdefault("responses", {})[str(code)] = {
                                "description": WHY[code],
                                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}
            for name in ("HTTPValidationError", "ValidationError"):
                doc.get("components", {}).get("schemas", {}).pop(name, None)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = document
