"""A plan confirmed over HTTP, carried out in the background: the interview's "Set up a fine-tune" mode
(agent/http.py) starts `onboard run`'s steps in a process of its own, and streams what it says.

Each thread's run has a workspace of its own, SERVER_WORKSPACE/setups/THREAD/ (plan.yaml, index, data, runs,
models, reports), so a run started from the chat page never re-ingests, retrains or replaces what the server
it was started from is serving. The process writes its events as JSON lines to events.jsonl there:

    {"say": "ingested 12 documents ..."}
    {"progress": "train", "done": 30, "total": 60}
    {"end": {"ok": true, "model": "...", "report": "...", "gate_passed": true, "serve": "onboard serve -w ..."}}

    setup = Setup.start(plan, folder)      # refuses while another setup is running on this server
    setup.events(after=0)                   # the events so far
    setup.stop()                            # SIGTERM: training saves a checkpoint; start again to resume

`python -P -m agent.setups FOLDER` is the process itself.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from agent import procs
from agent.errors import AgentError
from agent.interview.plan import Plan

EVENTS = "events.jsonl"
PID_FILE = "setup.json"
PROGRESS_EVERY_S = 2.0
"""A stage's progress is written at most this often (and always at its first and last step)."""


class SetupBusy(AgentError):
    """Another setup is running on this server: one training at a time per machine."""


@dataclass
class Setup:
    folder: Path
    pid: int

    @classmethod
    def start(cls, plan: Plan, folder: Path, lang: str = "en", busy: list[Path] = ()) -> Setup:
        """Save `plan` to FOLDER/plan.yaml and carry it out in a new process that speaks `lang` (a run that
        stopped resumes: the runner skips finished steps and training continues from its checkpoint).

        Raises:
            SetupBusy: a setup in `busy` (or in `folder`) is running.
        """
        from agent.interview.plan import save

        for other in [folder, *busy]:
            running = cls.find(other)
            if running is not None and running.running() and not running.ending(30.0):
                raise SetupBusy(f"a setup is already running in {other} (pid {running.pid}): wait for it to end, "
                                "or stop it first (POST .../run/stop)")
        folder.mkdir(parents=True, exist_ok=True)
        save(plan, folder / "plan.yaml")
        pid = procs.start("agent.setups", [str(folder), lang], folder / "setup.log")  # a server restart keeps it
        from rag.io import atomic_write_json

        atomic_write_json(folder / PID_FILE, {"pid": pid, "started": time.time(), "lang": lang})
        return cls(folder, pid)

    @classmethod
    def find(cls, folder: Path) -> Setup | None:
        """The setup last started in `folder` (running or not); None when none was."""
        path = folder / PID_FILE
        if not path.is_file():
            return None
        return cls(folder, json.loads(path.read_text(encoding="utf-8"))["pid"])

    def running(self) -> bool:
        return procs.alive(self.pid, "agent.setups")

    def events(self, after: int = 0) -> list[dict]:
        """The events from the `after`-th on (0: all), complete lines only. When the process is gone without
        an end event (killed), a last end event says so."""
        path = self.folder / EVENTS
        lines = path.read_text(encoding="utf-8").split("\n")[:-1] if path.is_file() else []
        out = [json.loads(line) for line in lines[after:]]
        ended = any("end" in e for e in out) or (lines and '"end"' in lines[-1])
        if not ended and not self.running() and not self._writing_last(path, lines):
            out.append({"end": {"ok": False, "error": "the setup stopped before it finished (stopped or killed): "
                                                      "start it again to resume (POST .../run)"}})
        return out

    def _writing_last(self, path: Path, lines: list[str]) -> bool:
        """The process ended between reading the file and checking it: read once more."""
        if not path.is_file():
            return False
        return any('"end"' in line for line in path.read_text(encoding="utf-8").split("\n")[len(lines):])

    def stop(self, timeout: float = 600.0) -> bool:
        """SIGTERM to the whole process group: the training saves a checkpoint and everything exits. Waits
        up to `timeout` seconds; returns whether the process has ended (its events then end too)."""
        import subprocess

        try:
            os.killpg(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return True
        proc = procs.child(self.pid)
        if proc is not None:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
        deadline = time.monotonic() + timeout
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.5)
        return not self.running()

    def ending(self, timeout: float) -> bool:
        """Whether a process that has written its end event exits within `timeout` seconds (a stopped run
        finishing its exit); False at once when it has not ended its events."""
        if not any("end" in e for e in self.events()):
            return False
        deadline = time.monotonic() + timeout
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.2)
        return not self.running()


class _Writer:
    """The process's side: one JSON line per event, flushed at once (the endpoint tails the file)."""

    def __init__(self, path: Path):
        self._f = path.open("a", encoding="utf-8")
        self._last: dict[str, float] = {}

    def write(self, event: dict) -> None:
        self._f.write(json.dumps(event, ensure_ascii=False) + "\n")
        self._f.flush()

    def say(self, text: str) -> None:
        _Stop.check()
        self.write({"say": text})

    def progress(self, stage: str, done: int, total: int | None = None) -> None:
        _Stop.check()
        now = time.monotonic()
        first, last = stage not in self._last, total is not None and done >= total
        if first or last or now - self._last[stage] >= PROGRESS_EVERY_S:
            self._last[stage] = now
            self.write({"progress": stage, "done": done, "total": total})


class _Stop:
    """SIGTERM outside training (during it, training.callbacks.StopOnSignal saves a checkpoint and the runner
    stops). The handler raises KeyboardInterrupt where the process is; when that lands in a finalizer (a
    `__del__` run by the garbage collector), Python prints it and carries on, so the flag stays set and the
    next event the run writes raises it again."""

    requested = False

    @classmethod
    def handle(cls, signum, frame):
        cls.requested = True
        raise KeyboardInterrupt

    @classmethod
    def check(cls) -> None:
        if cls.requested:
            raise KeyboardInterrupt


def main(folder: Path, lang: str = "en") -> int:
    """Carry out FOLDER/plan.yaml in the workspace FOLDER; the last event is its end (ok, or the error)."""
    from agent import runner
    from agent.interview.plan import load
    from agent.ui import setup
    from rag.errors import OnboardError
    from rag.workspace import Workspace

    setup()
    out = _Writer(folder / EVENTS)
    signal.signal(signal.SIGTERM, _Stop.handle)

    def ask(question: str) -> bool:  # every step was agreed to with the plan ("Start with this plan?")
        out.say(f"{question} {'好的（计划已确认）' if lang == 'zh' else 'yes (the plan was confirmed)'}")
        return True

    try:
        result = runner.run(load(folder / "plan.yaml"), Workspace(folder),
                            runner.Hooks(say=out.say, ask=ask, progress=out.progress, lang=lang))
    except (OnboardError, KeyboardInterrupt) as e:
        error = str(e) if isinstance(e, OnboardError) else "stopped: start it again to resume (POST .../run)"
        out.write({"end": {"ok": False, "error": error}})
        return 1
    except Exception as e:
        out.write({"end": {"ok": False, "error": f"{type(e).__name__}: {e} (the traceback is in "
                                                 f"{folder / 'setup.log'})"}})
        raise
    out.write({"end": {"ok": True, "model": str(result.model), "report": str(result.report or ""),
                       "gate_passed": result.gate_passed, "serve": f"onboard serve -w {folder}"}})
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), *sys.argv[2:3]))
