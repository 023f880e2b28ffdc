"""What a run says about itself (issue 11, items 19 and 20): the loss summary is smoothed over the
first and last tenth of the logged steps, and a run too long for an hour says what would shorten it."""

import pytest

from agent.cli.train import summary_line
from training.callbacks import loss_ends
from training.memory import RunSize, describe_size, duration_s, human_duration, suggestions
from training.runs import TrainResult


def test_the_loss_summary_is_the_mean_of_the_first_and_last_tenth():
    # one lucky first batch and one bad last batch: single values read "0.050 -> 3.205", a divergence
    losses = [0.05] + [2.5] * 9 + [1.5] * 80 + [1.0] * 9 + [3.205]
    start, end = loss_ends(losses)
    assert start == pytest.approx(2.255) and end == pytest.approx(1.2205)
    assert loss_ends([2.0, 1.0]) == (2.0, 1.0), "at least one loss each"
    assert loss_ends([4.0] * 2 + [1.0] * 21 + [0.5] * 2) == (4.0, 0.5), "25 losses: 2 each"
    assert loss_ends([]) is None


def test_the_summary_line_reports_smoothed_train_loss_and_eval_loss(tmp_path):
    r = TrainResult(output_dir=tmp_path, adapter_dir=tmp_path / "adapter", train_loss=1.6, first_loss=0.05,
                    last_loss=3.205, eval_loss=1.4, steps=100, seconds=42, start_loss=2.255, end_loss=1.2205)
    line = summary_line(r)
    assert "train loss 2.255 -> 1.220" in line and "eval loss 1.400" in line and "0.050" not in line
    r.eval_loss = None
    assert "no evaluation" in summary_line(r)


def _size(**kw) -> RunSize:
    return RunSize(**{"steps": 5000, "sequences": 20000, "mean_tokens": 600.0, "examples": 10000, "epochs": 2.0,
                      **kw})


def test_a_long_run_is_told_what_would_shorten_it():
    size = _size()
    seconds = duration_s(size, step_s=4.0)
    assert seconds == 20000 and human_duration(seconds) == "5.6 h"
    tips = suggestions(seconds, step_s=4.0, size=size, max_steps_given=False, max_length=1024, device="cpu",
                       parameters=494_000_000)
    text = " | ".join(tips)
    assert tips[0].startswith("fewer --epochs (now 2), or --max-steps 900")
    assert "tiny model" in text and "a GPU" in text and "--max-length (now 1024; sequences average 600" in text


def test_a_long_run_on_a_gpu_with_short_examples_is_told_only_what_applies():
    size = _size(mean_tokens=120.0, epochs=None, sequences=80000)
    tips = suggestions(duration_s(size, 2.0), step_s=2.0, size=size, max_steps_given=True, max_length=1024,
                       device="cuda", parameters=3_000_000)
    assert tips == ["--max-steps 1800 (about 60 min at this speed)"]
    assert suggestions(3000, step_s=0.6, size=size, max_steps_given=True, max_length=1024, device="cpu",
                       parameters=494_000_000) == [], "under an hour: nothing to suggest"


def test_the_planned_size_names_steps_tokens_and_where_they_come_from():
    assert describe_size(_size()) == "5,000 steps on 12,000,000 tokens (10,000 sequences x 2 epochs x 600 tokens)"
    assert describe_size(_size(epochs=None)) == "5,000 steps on 12,000,000 tokens (20,000 sequences x 600 tokens)"
