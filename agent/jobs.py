"""Training as a background process, so the chat stays responsive while it runs: "how is it going?", "pause",
"stop". The process outlives the chat (its own session): a chat killed mid-training finds it again on
`onboard chat --resume` (RUN_DIR/job.json names it), and one that died is resumed from its last checkpoint.

    job = TrainingJob.start(cfg, planned_steps=120)
    job.status("en")     # "step 40 of 120 (33 %), loss 0.84; 2 min so far, about 4 min left"
    job.stop()           # SIGTERM: the run saves a checkpoint and exits (training.callbacks.StopOnSignal)

`python -m agent.jobs CONFIG.json` is the process itself: it trains the config and writes its result beside it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

JOB_FILE = "job.json"
"""In the run folder: the job's pid, config file and planned steps, while it may be running."""
RESULT_FILE = "job-result.json"
_CHILDREN: dict[int, subprocess.Popen] = {}
"""The jobs this process started, to reap them (and to know their state without /proc)."""


@dataclass
class TrainingJob:
    run_dir: Path
    pid: int
    planned_steps: int | None
    started: float

    # ---------------------------------------------------------------- start / find

    @classmethod
    def start(cls, cfg, planned_steps: int | None = None) -> TrainingJob:
        """Start training `cfg` (a `training.config.TrainConfig`) in a new process; its output goes to
        RUN_DIR/job.log."""
        from rag.io import atomic_write_json

        run_dir = Path(cfg.output_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / RESULT_FILE).unlink(missing_ok=True)
        config = run_dir / "job-config.json"
        atomic_write_json(config, cfg.summary())
        log = (run_dir / "job.log").open("ab")
        # -P: nothing is imported from the current directory (the user's); a new session: it outlives the chat
        proc = subprocess.Popen([sys.executable, "-P", "-m", "agent.jobs", str(config)], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log.close()
        job = cls(run_dir, proc.pid, planned_steps, time.time())
        atomic_write_json(run_dir / JOB_FILE, {"pid": proc.pid, "planned_steps": planned_steps,
                                               "started": job.started})
        _CHILDREN[proc.pid] = proc
        return job

    @classmethod
    def find(cls, run_dir: Path) -> TrainingJob | None:
        """The job training into `run_dir`, when one is still running (started by this chat or an earlier one)."""
        path = Path(run_dir) / JOB_FILE
        if not path.is_file():
            return None
        info = json.loads(path.read_text(encoding="utf-8"))
        job = cls(Path(run_dir), info["pid"], info.get("planned_steps"), info.get("started", time.time()))
        return job if job.running() else None

    # ---------------------------------------------------------------- state

    def running(self) -> bool:
        proc = _CHILDREN.get(self.pid)
        if proc is not None:
            return proc.poll() is None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return _cmdline_is_job(self.pid)

    def steps_done(self) -> tuple[int, float | None]:
        """(the last logged step, its loss) from the run's metrics file; (0, None) before the first."""
        metrics = self.run_dir / "metrics.jsonl"
        step, loss = 0, None
        if metrics.is_file():
            for line in metrics.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:  # the line being written
                    continue
                if "loss" in row and "step" in row:
                    step, loss = row["step"], row["loss"]
        return step, loss

    def status(self, lang: str = "en") -> str:
        """Where the training is, in a sentence."""
        from training.memory import human_duration

        step, loss = self.steps_done()
        elapsed = time.time() - self.started
        if not self.running():
            return "训练已结束。" if lang == "zh" else "training has finished."
        if step == 0:
            return ("正在加载模型、准备数据（已 " if lang == "zh" else "loading the model and data (") + \
                human_duration(elapsed) + ("）。" if lang == "zh" else " so far).")
        total = self.planned_steps
        left = human_duration(elapsed / step * (total - step)) if total and step < total else None
        if lang == "zh":
            where = f"第 {step} 步" + (f"，共 {total} 步（{step / total:.0%}）" if total else "")
            return (f"{where}，损失 {loss:.3f}；已用 {human_duration(elapsed)}"
                    + (f"，预计还需 {left}" if left else "") + "。")
        where = f"step {step}" + (f" of {total} ({step / total:.0%})" if total else "")
        return f"{where}, loss {loss:.3f}; {human_duration(elapsed)} so far" + (f", about {left} left" if left else "")

    # ---------------------------------------------------------------- control

    def stop(self, timeout: float = 600.0) -> int | None:
        """SIGTERM: the run finishes its step, saves a checkpoint and exits. Returns its exit code (None when
        it is not a child of this process)."""
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        return self.wait(timeout)

    def wait(self, timeout: float | None = None) -> int | None:
        proc = _CHILDREN.get(self.pid)
        if proc is not None:
            try:
                return proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return None
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.running() and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.5)
        return None

    def result(self) -> dict | None:
        """What the process wrote when it ended: {"ok": True, "steps", "seconds", "stopped_by", ...} or
        {"ok": False, "error": ...}; None when it left nothing (killed)."""
        path = self.run_dir / RESULT_FILE
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def forget(self) -> None:
        (self.run_dir / JOB_FILE).unlink(missing_ok=True)


def _cmdline_is_job(pid: int) -> bool:
    """Whether `pid` is still a training job (and not a later process that got the same pid)."""
    try:
        return b"agent.jobs" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def main(config: Path) -> int:
    """The job process: train the config, write RUN_DIR/job-result.json, exit 0 (or 1 on a user's error)."""
    from dataclasses import asdict

    from agent import pipeline
    from agent.ui import setup
    from rag.errors import OnboardError
    from rag.io import atomic_write_json
    from training.config import TrainConfig

    setup()
    cfg = TrainConfig.model_validate(json.loads(config.read_text(encoding="utf-8")))
    out = cfg.output_dir / RESULT_FILE
    try:
        res = pipeline.train(cfg)
    except OnboardError as e:
        atomic_write_json(out, {"ok": False, "error": str(e)})
        return 1
    atomic_write_json(out, {"ok": True, **{k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(res).items()}})
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
