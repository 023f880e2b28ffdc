"""Trainer callbacks shared by the training stages: metrics on disk, progress, SIGTERM checkpoints,
and the loss curve drawn at the end of a run."""

from __future__ import annotations

import json
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path

from transformers import TrainerCallback

log = logging.getLogger(__name__)


class MetricsFile(TrainerCallback):
    """Append every log event (loss, lr, eval loss, tokens) to `metrics.jsonl`, one JSON object a line.

    A resumed run appends too; readers keep the last row per step (see `dedup_steps`)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.t0 = time.perf_counter()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or not state.is_world_process_zero:
            return
        row = {"step": state.global_step, "epoch": state.epoch, "time": round(time.perf_counter() - self.t0, 2), **logs}
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")


class Progress(TrainerCallback):
    """Report (step, total steps, last loss, tokens/s) to a function, e.g. a Rich progress bar in the CLI."""

    def __init__(self, fn: Callable[..., None]):
        self.fn = fn
        self.loss: float | None = None
        self.tokens_per_s: float | None = None
        self._last: tuple[float, float] | None = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs:
            return
        if "loss" in logs:
            self.loss = float(logs["loss"])
        if "num_tokens" in logs:  # TRL counts the tokens it has trained on
            now, tokens = time.perf_counter(), float(logs["num_tokens"])
            if self._last and now > self._last[0] and tokens > self._last[1]:
                self.tokens_per_s = (tokens - self._last[1]) / (now - self._last[0])
            self._last = (now, tokens)

    def on_step_end(self, args, state, control, **kwargs):
        self.fn(state.global_step, state.max_steps, self.loss, self.tokens_per_s)


class SigtermCheckpoint(TrainerCallback):
    """On SIGTERM (a scheduler pre-empting the job, `kill`, Ctrl-C's polite cousin) save a checkpoint at
    the end of the current step and stop; `--resume` then continues from it with the same data order."""

    def __init__(self):
        self.received = False
        self._previous = None

    def on_train_begin(self, args, state, control, **kwargs):
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            self._previous = None

    def _handle(self, signum, frame):
        log.warning("SIGTERM: saving a checkpoint after this step, then stopping")
        self.received = True

    def on_step_end(self, args, state, control, **kwargs):
        if self.received:
            control.should_save = True
            control.should_training_stop = True

    def on_train_end(self, args, state, control, **kwargs):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def read_metrics(path: Path) -> list[dict]:
    """Every row of a run's `metrics.jsonl` (none when the run logged nothing yet)."""
    path = Path(path)
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def dedup_steps(rows: list[dict], key: str) -> list[dict]:
    """Rows holding `key`, one per step (the last written wins: a resumed run re-logs some steps)."""
    by_step = {r["step"]: r for r in rows if key in r}
    return [by_step[s] for s in sorted(by_step)]


def plot_losses(rows: list[dict], png: Path) -> Path | None:
    """Training (and eval) loss against step, as a PNG in the run folder."""
    train, evals = dedup_steps(rows, "loss"), dedup_steps(rows, "eval_loss")
    if not train:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot([r["step"] for r in train], [r["loss"] for r in train], label="train")
    if evals:
        ax.plot([r["step"] for r in evals], [r["eval_loss"] for r in evals], "o-", label="eval")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)
    return png
