"""`onboard serve` that cannot start: one line, exit 1, what to do; never uvicorn's traceback or exit 3."""

from __future__ import annotations

import shutil
import socket

from typer.testing import CliRunner

from agent.cli import app
from tests.serving.servers import free_port

runner = CliRunner()


def _error_line(r) -> str:
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert lines[-1].startswith("error:"), r.output
    return " ".join(r.output.split())


def test_truncated_weights_are_one_line_naming_the_folder(merged_model, tmp_path, monkeypatch):
    for k in ("ONBOARD_WORKSPACE", "ONBOARD_MODEL", "ONBOARD_PORT"):
        monkeypatch.delenv(k, raising=False)
    model = tmp_path / "merged"
    shutil.copytree(merged_model, model)
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    r = runner.invoke(app, ["serve", "-w", str(tmp_path / "ws"), "--model", str(model), "--rag-k", "0",
                            "--port", str(free_port())])
    msg = _error_line(r)
    assert str(model) in msg and "truncated or corrupt" in msg and "onboard merge --force" in msg


def test_a_port_in_use_is_named_before_the_model_loads(merged_model, tmp_path, monkeypatch):
    import serving.app

    loaded = []
    monkeypatch.setattr(serving.app, "_load_engine", lambda s: loaded.append(s))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = runner.invoke(app, ["serve", "-w", str(tmp_path / "ws"), "--model", str(merged_model), "--rag-k", "0",
                                "--port", str(port)])
    msg = _error_line(r)
    assert f"127.0.0.1:{port}" in msg and "--port" in msg
    assert loaded == []  # refused before minutes of loading weights
