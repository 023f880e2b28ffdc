"""Training as a background process, so the chat stays responsive while it runs: "how is it going?", "pause",
"stop". The process outlives the chat (its own session): a chat killed mid-training finds it again on
`onboard chat --resume` (RUN_DIR.job/job.json names it), and one that died is resumed from its last checkpoint.
The job's own files live beside the run folder, in RUN_DIR.job/, since a run folder holds only the run's.

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

from agent import procs

JOB_FILE = "job.json"
"""The job's pid, started time and planned steps, while it may be running."""
RESULT_FILE = "job-result.json"


def job_dir(run_dir: Path) -> Path:
    """Where a run's job keeps its files: RUN_DIR.job beside RUN_DIR."""
    run_dir = Path(run_dir)
    return run_dir.with_name(run_dir.name + ".job")


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
        RUN_DIR.job/job.log."""
        from rag.io import atomic_write_json

        run_dir = Path(cfg.output_dir)
        files = job_dir(run_dir)
        files.mkdir(parents=True, exist_ok=True)
        (files / RESULT_FILE).unlink(missing_ok=True)
        config = files / "config.json"
        atomic_write_json(config, cfg.summary())
        job = cls(run_dir, procs.start("agent.jobs", [str(config)], files / "job.log"), planned_steps, time.time())
        atomic_write_json(files / JOB_FILE, {"pid": job.pid, "planned_steps": planned_steps,
                                               "started": job.started})
        return job

    @classmethod
    def find(cls, run_dir: Path) -> TrainingJob | None:
        """The job training into `run_dir`, when one is still running (started by this chat or an earlier one)."""
        path = job_dir(run_dir) / JOB_FILE
        if not path.is_file():
            return None
        info = json.loads(path.read_text(encoding="utf-8"))
        job = cls(Path(run_dir), info["pid"], info.get("planned_steps"), info.get("started", time.time()))
        return job if job.running() else None

    # ---------------------------------------------------------------- state

    def running(self) -> bool:
        return procs.alive(self.pid, "agent.jobs")

    def steps_done(self) -> tuple[int, float | None]:
        """(the last logged step, its loss) from the run's metrics file; (0, None) before the first."""
        rows = self._logged()
        return (rows[-1]["step"], rows[-1]["loss"]) if rows else (0, None)

    def step_seconds(self) -> float | None:
        """Seconds per step of this job so far, from its logged steps' times (None before two are logged)."""
        rows = [r for r in self._logged() if r["step"] > 0 and "time" in r]
        for i in range(len(rows) - 1, 0, -1):  # a resumed run's clock starts again: its own rows only
            if rows[i]["time"] < rows[i - 1]["time"]:
                rows = rows[i:]
                break
        if len(rows) < 2 or rows[-1]["step"] <= rows[0]["step"]:
            return None
        return (rows[-1]["time"] - rows[0]["time"]) / (rows[-1]["step"] - rows[0]["step"])

    def _logged(self) -> list[dict]:
        metrics = self.run_dir / "metrics.jsonl"
        rows = []
        if metrics.is_file():
            for line in metrics.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:  # the line being written
                    continue
                if "loss" in row and "step" in row and row.get("time", 0) >= 0:
                    rows.append(row)
        return rows

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
        total, rate = self.planned_steps, self.step_seconds()
        left = human_duration(rate * (total - step)) if total and rate and step < total else None
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
        proc = procs.child(self.pid)
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
        path = job_dir(self.run_dir) / RESULT_FILE
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def forget(self) -> None:
        (job_dir(self.run_dir) / JOB_FILE).unlink(missing_ok=True)


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
    out = job_dir(cfg.output_dir) / RESULT_FILE
    try:
        res = pipeline.train(cfg)
    except OnboardError as e:
        atomic_write_json(out, {"ok": False, "error": str(e)})
        return 1
    atomic_write_json(out, {"ok": True, **{k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(res).items()}})
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
