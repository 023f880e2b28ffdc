"""How long a run will take, measured before it starts: a few real optimizer steps of the very run planned (same
base, data, method, batch and length) in a scratch folder, then thrown away.

A step's speed cannot be estimated honestly from the model's size (training/memory/duration.py says why), and
the first step is slower than the rest (allocations, kernel warm-up): the probe times steps 2..N, and also what
comes before the first step (loading the model, tokenizing) and after the last (saving), which a short run on a
small model spends most of its time in.

    p = probe(cfg)                 # ~1 min for the 0.5B on 2 CPU cores
    p.seconds                      # the whole run: setup + p.steps x p.step_s + teardown
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass

from training.config import TrainConfig

PROBE_STEPS = 4
"""Optimizer steps the probe runs; the first is not timed."""


@dataclass(frozen=True)
class Probe:
    steps: int
    """Optimizer steps the whole run will take (the trainer's own count for the planned run)."""
    step_s: float
    """Mean seconds of the probe's steps after the first."""
    first_step_s: float
    setup_s: float
    """From the call to the first step: loading the model and tokenizer, tokenizing the data."""
    teardown_s: float
    """From the last step to the end: saving the adapter and the record."""

    @property
    def seconds(self) -> float:
        """The whole run's estimated duration."""
        return self.setup_s + self.first_step_s + max(self.steps - 1, 0) * self.step_s + self.teardown_s

    def steps_within(self, seconds: float) -> int:
        """How many steps fit in `seconds` (at least 1)."""
        left = seconds - self.setup_s - self.teardown_s - self.first_step_s
        return max(1, 1 + int(left // self.step_s)) if self.step_s > 0 else self.steps


def probe(cfg: TrainConfig, steps: int = PROBE_STEPS) -> Probe:
    """Run `steps` optimizer steps of `cfg` in a scratch folder beside its output and time them. A run shorter
    than `steps` is timed whole. The scratch folder is removed, whatever happens.

    Raises:
        KeyboardInterrupt: a SIGTERM or Ctrl-C arrived while it ran (the training's stop watcher holds them
            until a step ends, so the caller stops as it would have outside the probe).
    """
    from transformers import TrainerCallback

    from training.runs import run_stage

    if steps < 2:
        raise ValueError("a probe needs at least 2 steps: the first is not timed")
    scratch = cfg.output_dir.parent / f".probe-{cfg.output_dir.name}"
    shutil.rmtree(scratch, ignore_errors=True)
    trial = cfg.model_copy(update={"output_dir": scratch, "resume": False, "force": True, "check_eos": False,
                                   "save_steps": 10**9, "report_to": []})
    marks: dict = {"ends": []}

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            marks["planned"] = state.max_steps

        def on_step_begin(self, args, state, control, **kwargs):
            marks.setdefault("first", time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):
            marks["ends"].append(time.perf_counter())
            if len(marks["ends"]) >= steps:
                control.should_training_stop = True

    t0 = time.perf_counter()
    try:
        result = run_stage(trial, callbacks=[Clock()])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if result.stopped_by is not None:  # the run's stop watcher took a SIGTERM or Ctrl-C meant for the caller
        raise KeyboardInterrupt(f"stopped by {result.stopped_by} while timing the training")
    t_end = time.perf_counter()
    ends = marks["ends"]
    if not ends:
        raise RuntimeError(f"the probe of {cfg.output_dir} ran no step: is {cfg.train_file} empty?")
    first = ends[0] - marks["first"]
    rest = [b - a for a, b in zip(ends, ends[1:], strict=False)]
    return Probe(steps=marks["planned"], step_s=sum(rest) / len(rest) if rest else first, first_step_s=first,
                 setup_s=marks["first"] - t0, teardown_s=t_end - ends[-1])
