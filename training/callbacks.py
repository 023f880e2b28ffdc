"""Trainer callbacks shared by the training stages: metrics on disk and progress reporting."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from transformers import TrainerCallback


class MetricsFile(TrainerCallback):
    """Append every log event (loss, lr, eval loss) to `metrics.jsonl`, one JSON object a line."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.t0 = time.perf_counter()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs:
            return
        row = {"step": state.global_step, "epoch": state.epoch, "time": round(time.perf_counter() - self.t0, 2), **logs}
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")


class Progress(TrainerCallback):
    """Report (step, total steps, last loss) to a function, e.g. a Rich progress bar in the CLI."""

    def __init__(self, fn: Callable[[int, int, float | None], None]):
        self.fn = fn
        self.loss: float | None = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.loss = float(logs["loss"])

    def on_step_end(self, args, state, control, **kwargs):
        self.fn(state.global_step, state.max_steps, self.loss)
