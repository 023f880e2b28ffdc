"""Schemathesis (property-based API testing from the OpenAPI document) against a real Onboard server on the tiny
model, the interview mounted as `onboard serve` mounts it: every operation, requests generated from the schema
(valid, invalid, unexpected methods, then stateful sequences), and every check it has: no 5xx, only status codes
and content types the document lists, responses (server-sent events too) that match their documented schemas,
4xx for what the schema forbids, 405 with an Allow header for a method a path does not take.

One check is left out by name: positive_data_acceptance, which expects every schema-valid request to be
accepted; the server refuses some by rules the schema cannot state (a tool message without tool_call_id, a
model it does not serve), with a 400 or 404 naming the field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from serving.app import create_app
from serving.settings import ServeSettings
from tests.serving.servers import serve_in_thread

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


def test_every_operation_keeps_its_documented_contract(merged_model, tmp_path, no_onboard_env):
    from agent.http import mount
    from agent.setups import Setup

    setups = tmp_path / "setups"
    app = create_app(ServeSettings(model=merged_model, rag_k=0, max_new_tokens=16),
                     extend=lambda a: mount(a, tmp_path / "chat.sqlite", setups))
    try:
        with serve_in_thread(app) as base:
            run = subprocess.run([str(SCHEMATHESIS), "run", f"{base}/openapi.json", "--checks", "all",
                                  "--exclude-checks", "positive_data_acceptance", "--max-examples", "25",
                                  "--seed", "1", "--no-color"], capture_output=True, text=True, timeout=600,
                                 cwd=tmp_path)  # its cache and report folders go there, not into the checkout
    finally:
        for thread in setups.iterdir() if setups.is_dir() else []:  # a run a generated answer confirmed
            found = Setup.find(thread)
            if found is not None:
                found.stop()
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "Test cases:" in run.stdout and " passed" in run.stdout
