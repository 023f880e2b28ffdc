"""The time probe: a few real steps of the planned run, in a scratch folder that is removed, with the step count
the real run then takes. (How close its estimate comes is a benchmark: bench/time_estimate.py.)"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from training.callbacks import StopOnSignal
from training.probe import probe
from training.sft import SFTRunConfig
from training.sft import run as train


def test_the_probe_counts_the_real_runs_steps_and_leaves_nothing(tmp_path, tiny_base, workspace):
    train_file = tmp_path / "train.jsonl"  # 24 examples: 2 epochs of 6 steps, so the real run is quick too
    lines = (workspace / "data" / "sft" / "train.jsonl").read_text().splitlines()[:24]
    train_file.write_text("\n".join(lines) + "\n")
    cfg = SFTRunConfig(base_model=str(tiny_base), train_file=train_file, output_dir=tmp_path / "runs" / "sft",
                       method="lora", epochs=2, batch_size=4, learning_rate=1e-3, evaluate=False, report_to=[])
    p = probe(cfg, steps=3)
    assert sorted(x.name for x in (tmp_path / "runs").iterdir()) == [] and not cfg.output_dir.exists()
    assert p.step_s > 0 and p.setup_s > 0 and p.teardown_s >= 0
    assert p.seconds > p.setup_s + (p.steps - 1) * p.step_s
    real = train(cfg)
    assert real.steps == p.steps > 3
    assert p.steps_within(p.seconds) == p.steps and p.steps_within(0) == 1


def test_a_probe_needs_two_steps(tiny_base, workspace, tmp_path):
    cfg = SFTRunConfig(base_model=str(tiny_base), train_file=workspace / "data" / "sft" / "train.jsonl",
                       output_dir=tmp_path / "run")
    with pytest.raises(ValueError, match="at least 2 steps"):
        probe(cfg, steps=1)


def test_a_sigterm_while_probing_stops_the_caller_too(tiny_base, workspace, tmp_path):
    """The training's stop watcher takes a SIGTERM while the probe trains: the probe passes it on (the chat's
    "stop" during "timing a few training steps" once went on to train the whole run)."""
    cfg = SFTRunConfig(base_model=str(tiny_base), train_file=workspace / "data" / "sft" / "train.jsonl",
                       output_dir=tmp_path / "runs" / "sft", method="lora", epochs=30, batch_size=1, evaluate=False,
                       report_to=[])
    before = signal.getsignal(signal.SIGTERM)

    def kill_once_watched():  # the watcher is installed as training begins; a signal before that would kill pytest
        while not isinstance(getattr(signal.getsignal(signal.SIGTERM), "__self__", None), StopOnSignal):
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=kill_once_watched, daemon=True)
    killer.start()
    with pytest.raises(KeyboardInterrupt, match="sigterm"):
        probe(cfg, steps=10**6)
    killer.join(5)
    assert signal.getsignal(signal.SIGTERM) == before and not (tmp_path / "runs" / ".probe-sft").exists()
