"""Processes the agent runs apart from itself (training jobs, carried-out setups): started in a session of
their own so that they outlive the chat or the server, found again by pid after a restart."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_CHILDREN: dict[int, subprocess.Popen] = {}
"""The processes this one started, to reap them (and to know their state without /proc)."""


def start(module: str, args: list[str], log: Path) -> int:
    """Run `python -P -m MODULE ARGS...` with its output appended to `log`; its pid. -P: nothing is imported
    from the current directory (the user's); a new session: it outlives this process."""
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-P", "-m", module, *args], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    _CHILDREN[proc.pid] = proc
    return proc.pid


def child(pid: int) -> subprocess.Popen | None:
    """The process, when this one started it."""
    return _CHILDREN.get(pid)


def alive(pid: int, module: str) -> bool:
    """Whether `pid` still runs `module` (and is not a later process that got the same pid)."""
    proc = _CHILDREN.get(pid)
    if proc is not None:
        return proc.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        return module.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
