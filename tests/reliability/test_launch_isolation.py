"""`onboard train --num-processes N` relaunches itself without running code from the directory it was
started in (issue 11, item 14): `python -m` puts the current directory first on sys.path, so a
`torch.py` or an `agent/` folder there would be imported in place of the launcher or of Onboard.

Each test plants such modules in a working directory, each writing a marker file when imported, runs
the exact relaunch command (`launch_command`) there with a cheap payload (`train --help` in every
process: Onboard's CLI, the training config, rag's errors and torch are all imported), and checks
that no marker appeared."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from agent.cli.train import SAFE_PATH_FLAG, launch_command, relaunch_args

TRAPS = ("torch.py", "accelerate.py", "agent/__init__.py", "training/__init__.py", "rag/__init__.py")


def _booby_trap(cwd: Path) -> Path:
    markers = cwd / "markers"
    markers.mkdir()
    for rel in TRAPS:
        f = cwd / rel
        f.parent.mkdir(exist_ok=True)
        marker = markers / rel.replace("/", "-")
        f.write_text(f"open({str(marker)!r}, 'w').write('imported from the working directory')\n")
    return markers


def _env() -> dict[str, str]:
    """The test's environment without PYTHONPATH: Onboard is found where it is installed (editable)."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSAFEPATH")} | {
        "OMP_NUM_THREADS": "1"}


def _run_in_trap(cmd: list[str], cwd: Path) -> str:
    r = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300)
    markers = sorted(p.name for p in (cwd / "markers").iterdir())
    assert markers == [], f"imported from the working directory: {markers}\n{r.stderr[-3000:]}"
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return r.stdout


def test_the_relaunch_drops_num_processes_and_keeps_the_rest():
    argv = ["train", "--num-processes", "2", "--lr", "1e-3", "--num-processes=3", "--resume"]
    assert relaunch_args(argv) == ["train", "--lr", "1e-3", "--resume"]


def test_every_python_of_the_relaunch_ignores_the_working_directory(tmp_path):
    for cmd in (launch_command(2, None, ["train"]), launch_command(2, tmp_path / "a.yaml", ["train"])):
        pythons = [i for i, a in enumerate(cmd) if a == sys.executable]
        assert len(pythons) == 2, cmd  # the launcher's, and each process's (run as a program, not `python -m`)
        assert all(cmd[i + 1] == SAFE_PATH_FLAG for i in pythons), cmd
        assert "--no-python" in cmd or "--no_python" in cmd


def test_torchrun_relaunch_in_a_booby_trapped_directory_imports_nothing_from_it(tmp_path):
    _booby_trap(tmp_path)
    out = _run_in_trap(launch_command(2, None, ["train", "--help"]), tmp_path)
    assert out.count("Fine-tune") == 2, out[-2000:]  # both processes ran Onboard's own CLI


def test_accelerate_relaunch_in_a_booby_trapped_directory_imports_nothing_from_it(tmp_path):
    _booby_trap(tmp_path)
    with socket.socket() as s:  # a free port: other runs may hold the config's fixed one
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = Path(__file__).resolve().parents[2]
    config = tmp_path / "cpu-ddp.yaml"
    text = (root / "deploy" / "accelerate" / "cpu-ddp-2proc.yaml").read_text()
    config.write_text(text.replace("main_process_port: 29517", f"main_process_port: {port}"))
    out = _run_in_trap(launch_command(2, config, ["train", "--help"]), tmp_path)
    assert out.count("Fine-tune") == 2, out[-2000:]
