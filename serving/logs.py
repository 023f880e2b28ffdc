"""The server's logs: plain text (default) or one JSON object per line (`log_format: json`, for a log pipeline).

In JSON, every line has time, level, logger and message, and a request's lines its `request_id` (the one sent
back as X-Request-Id); an access line per request adds route, method, status, seconds and the API key's name.
Message bodies are never logged unless `log_bodies` is on (then the chat's last user message and the answer
are, at INFO); keys and their secrets never are.
"""

from __future__ import annotations

import json
import logging
import time

ACCESS = logging.getLogger("onboard.access")
FIELDS = ("request_id", "route", "method", "status", "seconds", "key", "question", "answer")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
                "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        line.update({k: getattr(record, k) for k in FIELDS if hasattr(record, k)})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def log_config(log_format: str, level: str = "info") -> dict:
    """uvicorn's `log_config`: its own loggers and the root one, as text or JSON lines on stderr."""
    formatter = ({"()": "serving.logs.JsonFormatter"} if log_format == "json"
                 else {"format": "%(levelname)s %(name)s: %(message)s"})
    handler = {"class": "logging.StreamHandler", "formatter": "main", "stream": "ext://sys.stderr"}
    return {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"main": formatter},
        "handlers": {"main": handler},
        "root": {"handlers": ["main"], "level": level.upper()},
        "loggers": {"uvicorn": {"level": level.upper()}, "uvicorn.error": {"level": level.upper()},
                    "uvicorn.access": {"level": level.upper()}},
    }


def access(scope: dict, route: str, status: int, seconds: float) -> None:
    """The access line of a request (JSON logs; plain text keeps uvicorn's own access log)."""
    state = scope.get("state", {})
    key = state.get("api_key")
    ACCESS.info("%s %s %d", scope["method"], route, status,
                extra={"request_id": state.get("request_id"), "route": route, "method": scope["method"],
                       "status": status, "seconds": round(seconds, 4), **({"key": key.name} if key else {})})
