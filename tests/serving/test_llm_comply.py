"""llm-comply's OpenAI Chat Completions compliance tests (responses checked against OpenAI's own OpenAPI spec)
against a real Onboard server on the tiny model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from serving.app import create_app
from serving.settings import ServeSettings
from tests.serving.servers import serve_in_thread

LLM_COMPLY = Path(sys.executable).parent / "llm-comply"
PROTOCOL = ["chat-basic-response", "chat-system-prompt", "chat-multi-turn", "chat-streaming-response",
            "chat-streaming-usage", "chat-error-handling"]
RAMBLES = "finish_reason: expected 'stop', got 'length'"
"""The tiny model talks until max_tokens (and says so, finish_reason length): not the server's to fix."""


def _comply(base: str, model: str, tests: list[str], ignore: str = "") -> dict[str, str]:
    cmd = [str(LLM_COMPLY), "--format", "openai-chat", "-u", f"{base}/v1", "-m", model, "-k", "test", "--json",
           "-f", ",".join(tests)] + (["-i", ignore] if ignore else [])
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    return {r["id"]: r["status"] for r in json.loads(run.stdout)["results"]}


def test_the_openai_chat_protocol_as_llm_comply_checks_it(merged_model, no_onboard_env):
    with serve_in_thread(create_app(ServeSettings(model=merged_model, rag_k=0, max_new_tokens=64))) as base:
        assert _comply(base, merged_model.name, PROTOCOL, RAMBLES) == dict.fromkeys(PROTOCOL, "passed")
        # an image part is refused with a 400 naming it (a text-only model), never dropped: llm-comply wants a 200
        assert _comply(base, merged_model.name, ["chat-image-input"]) == {"chat-image-input": "failed"}
