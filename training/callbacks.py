"""Trainer callbacks shared by the training stages: metrics on disk, progress, the run's planned size
and duration, a quick stop on SIGTERM or Ctrl-C, and what the end of a run reports (smoothed losses,
the loss curve)."""

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


class Outlook(TrainerCallback):
    """Say before the first step what the run will train on (steps, tokens counted on the tokenized
    dataset), and after it how long the run will take (that step, timed, times the steps left); past an
    hour, what would shorten it (training/memory/duration.py). Each line goes to `report`."""

    SAMPLE = 2000
    """Sequences whose tokens are counted for the mean (a large dataset is sampled)."""

    def __init__(self, report: Callable[[str], None]):
        self.report = report
        self.size = None
        """The `training.memory.RunSize` planned (None: the dataset's length is unknown)."""
        self.seconds: float | None = None
        """The estimated duration, once the first step was timed."""
        self._facts: dict = {}
        self._t: float | None = None

    def on_train_begin(self, args, state, control, train_dataloader=None, model=None, **kwargs):
        from training.memory import RunSize, describe_size

        if not state.is_world_process_zero:
            return
        ds = getattr(train_dataloader, "dataset", None)
        mean = _mean_tokens(ds, self.SAMPLE)
        steps = state.max_steps - state.global_step
        if mean is None or steps <= 0:
            return
        n = len(ds)
        by_epochs = args.max_steps is None or args.max_steps <= 0
        per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
        sequences = round(args.num_train_epochs * n * steps / state.max_steps) if by_epochs else steps * per_step
        self.size = RunSize(steps=steps, sequences=sequences, mean_tokens=mean, examples=n,
                            epochs=args.num_train_epochs if by_epochs else None)
        self._facts = {"max_steps_given": not by_epochs, "max_length": getattr(args, "max_length", None) or 0,
                       "device": args.device.type, "parameters": model.num_parameters() if model is not None else 0}
        self.report(f"planned: {describe_size(self.size)}")

    def on_step_begin(self, args, state, control, **kwargs):
        if self.size is not None and self.seconds is None and self._t is None:
            self._t = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        from training.memory import duration_s, human_duration, suggestions

        if self._t is None or self.seconds is not None:
            return
        step_s = time.perf_counter() - self._t
        self.seconds = duration_s(self.size, step_s)
        self.report(f"estimated duration: about {human_duration(self.seconds)} ({self.size.steps:,} steps; the first "
                    f"took {step_s:.2f} s; evaluation and checkpoints add to it)")
        tips = suggestions(self.seconds, step_s=step_s, size=self.size, **self._facts)
        if tips:
            self.report("that is over an hour; to make it shorter, try: " + "; ".join(tips) + ".")


def _mean_tokens(ds, sample: int) -> float | None:
    """Mean tokens per row of a tokenized dataset (every `*input_ids` column: a DPO row's prompt, chosen
    and rejected), over its first `sample` rows; None when it is not a tokenized `datasets.Dataset`."""
    cols = [c for c in getattr(ds, "column_names", None) or [] if c.endswith("input_ids")]
    if not cols or not len(ds):
        return None
    head = ds.select(range(min(len(ds), sample)))
    total = sum(len(ids) for c in cols for ids in head[c])
    return total / len(head)


class StopOnSignal(TrainerCallback):
    """On SIGTERM (a scheduler pre-empting the job, `kill`) or Ctrl-C, finish the current step, save a
    checkpoint and stop, without the evaluation the epoch's end or an eval step would run: a stop
    should be quick, and `--resume` continues from the checkpoint with the same data order. A second
    Ctrl-C interrupts at once (no checkpoint)."""

    SIGNALS = {signal.SIGTERM: "sigterm", signal.SIGINT: "sigint"}

    def __init__(self):
        self.received: str | None = None
        """"sigterm" or "sigint" once one arrived."""
        self._previous: dict = {}
        self._saved_step: int | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        for sig in self.SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass

    def _handle(self, signum, frame):
        if self.received and signum == signal.SIGINT:  # Ctrl-C again: stop now
            signal.signal(signal.SIGINT, self._previous.get(signal.SIGINT) or signal.default_int_handler)
            raise KeyboardInterrupt
        log.warning("%s: saving a checkpoint after this step, then stopping (no evaluation)",
                    self.SIGNALS[signum].upper())
        self.received = self.received or self.SIGNALS[signum]

    def on_step_end(self, args, state, control, **kwargs):
        if self.received:
            control.should_save = True
            control.should_training_stop = True
            control.should_evaluate = False

    def on_save(self, args, state, control, **kwargs):
        self._saved_step = state.global_step

    def on_epoch_end(self, args, state, control, **kwargs):
        # the Trainer evaluates (and may save) at each epoch's end, also when a stop ends the epoch early
        if self.received:
            control.should_training_stop = True
            control.should_evaluate = False
            control.should_save = self._saved_step != state.global_step  # the signal came after the step's save

    def on_train_end(self, args, state, control, **kwargs):
        self.restore()

    def restore(self) -> None:
        """Give the signals back to their previous handlers (also when training failed)."""
        for sig, previous in self._previous.items():
            if previous is not None:
                signal.signal(sig, previous)
        self._previous = {}


def read_metrics(path: Path) -> list[dict]:
    """Every row of a run's `metrics.jsonl` (none when the run logged nothing yet)."""
    path = Path(path)
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def dedup_steps(rows: list[dict], key: str) -> list[dict]:
    """Rows holding `key`, one per step (the last written wins: a resumed run re-logs some steps)."""
    by_step = {r["step"]: r for r in rows if key in r}
    return [by_step[s] for s in sorted(by_step)]


def loss_ends(losses: list[float], fraction: float = 0.1) -> tuple[float, float] | None:
    """(mean of the first, mean of the last) `fraction` of the logged training losses, at least one loss
    each: one step's loss is one batch's and swings with it, so first-vs-last single values can read
    like divergence when the run went fine. None when nothing was logged."""
    if not losses:
        return None
    k = max(1, int(len(losses) * fraction))
    return sum(losses[:k]) / k, sum(losses[-k:]) / k


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
