"""A stop is quick (issue 11, item 18): SIGTERM or Ctrl-C ends the run after the current step with a
checkpoint and without the evaluation the epoch's end would run; `--no-eval` runs without any."""

import json
import os
import signal

import pytest
from transformers import TrainerCallback

from training.config import TrainConfig
from training.sft import run


class _SignalDuring(TrainerCallback):
    """Send `sig` to this process at the start of optimizer step `step`, as `kill` or Ctrl-C would."""

    def __init__(self, sig, step: int):
        self.sig, self.step, self.sent = sig, step, False

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.step - 1 and not self.sent:
            self.sent = True
            os.kill(os.getpid(), self.sig)


class _Evaluations(TrainerCallback):
    def __init__(self):
        self.count = 0

    def on_evaluate(self, args, state, control, **kwargs):
        self.count += 1


def _metrics(run_dir) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("sig,name", [(signal.SIGTERM, "sigterm"), (signal.SIGINT, "sigint")], ids=["sigterm", "sigint"])
def test_a_stop_saves_a_checkpoint_and_skips_the_evaluation(tmp_path, tiny_base, workspace, sig, name):
    data = workspace / "data" / "sft"
    cfg = TrainConfig(base_model=str(tiny_base), train_file=data / "train.jsonl", eval_file=data / "test.jsonl",
                      output_dir=tmp_path / "run", method="lora", max_steps=40, save_steps=100, batch_size=2,
                      learning_rate=2e-3, report_to=["none"], check_eos=False)
    evaluations = _Evaluations()
    before = signal.getsignal(sig)  # SIG_IGN for SIGINT when the tests run in the background (nohup ... &)
    try:
        r = run(cfg, callbacks=[_SignalDuring(sig, 2), evaluations])
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C broke off the step instead of stopping after it with a checkpoint")
    assert r.stopped_by == name and r.steps == 2
    assert evaluations.count == 0 and r.eval_loss is None, "a stop does not run the end-of-epoch evaluation"
    assert not any("eval_loss" in row for row in _metrics(cfg.output_dir))
    assert (cfg.output_dir / "checkpoints" / "checkpoint-2" / "trainer_state.json").exists()
    assert not (cfg.output_dir / "adapter").exists()
    assert signal.getsignal(sig) == before, "the signal is given back after the run, as it was"


def test_no_eval_is_a_flag_and_contradictions_are_refused():
    from training.errors import BadConfig

    base = {"base_model": "b", "train_file": "t.jsonl", "output_dir": "o"}
    assert TrainConfig.make(**base, evaluate=False).evaluate is False
    with pytest.raises(BadConfig, match="--no-eval and --eval-data e.jsonl"):
        TrainConfig.make(**base, evaluate=False, eval_file="e.jsonl")
    with pytest.raises(BadConfig, match="--early-stopping .* --no-eval"):
        TrainConfig.make(**base, evaluate=False, early_stopping_patience=2)
