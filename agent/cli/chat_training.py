"""Training from `onboard chat`: a background job (agent/jobs.py) while the chat keeps answering, "how is it
going?", "pause", "continue", "stop" (agent/interview/commands.py). Closing the chat leaves the training running;
`onboard chat --resume` finds it again."""

from __future__ import annotations

import select
import sys
from collections.abc import Callable
from pathlib import Path

import typer

from agent.errors import AgentError
from agent.interview.commands import job_command
from agent.jobs import TrainingJob, job_dir
from agent.runner import PlanStopped

POLL_S = 2.0
"""How often the chat looks at the job while waiting for the user."""

_HINT = {"en": "Training runs in the background: ask \"how is it going?\", or say \"pause\" or \"stop\".",
         "zh": "训练在后台进行：可以问“进度怎么样？”，或者说“暂停”、“停止”。"}


def _line(timeout: float) -> str | None:
    """A line the user typed within `timeout` seconds, None when none; EOFError when the input is closed."""
    ready, _, _ = select.select([sys.stdin], [], [], timeout)
    if not ready:
        return None
    line = sys.stdin.readline()
    if line == "":
        raise EOFError
    return line.strip()


def trainer(say: Callable[[str], None], lang: str, ws_root: Path) -> Callable:
    """`train(cfg, planned_steps)` for `runner.Hooks.train`: the run as a background job, the chat answering
    while it runs. Returns the run's `TrainResult`."""

    def train(cfg, planned_steps: int | None):
        from training.runs import TrainResult

        job = TrainingJob.find(cfg.output_dir)
        if job is not None:
            say({"en": "the training started earlier is still running; attached to it.",
                 "zh": "之前启动的训练还在进行；已重新连上。"}[lang])
        else:
            job = TrainingJob.start(cfg, planned_steps)
        say(_HINT[lang])
        job = _converse(job, cfg, say, lang, ws_root)
        got = job.result()
        job.forget()
        if got is None:
            raise AgentError(f"the training process ended without a result (killed?); see {job_dir(cfg.output_dir) / 'job.log'}"
                             " and run `onboard chat --resume` to resume it from its last checkpoint")
        if not got.pop("ok"):
            raise AgentError(got["error"])
        if got.get("stopped_by"):
            raise PlanStopped(f"training stopped with a checkpoint in {cfg.output_dir}: `onboard chat -w {ws_root} "
                              "--resume` continues it")
        paths = {"output_dir", "adapter_dir"}
        return TrainResult(**{k: Path(v) if k in paths else v for k, v in got.items()})

    return train


def _converse(job: TrainingJob, cfg, say: Callable[[str], None], lang: str, ws_root: Path) -> TrainingJob:
    """Answer the user until the job ends; "pause" stops it at a checkpoint until "continue"."""
    paused = False
    while paused or job.running():
        try:
            line = _line(POLL_S)
        except EOFError:
            say({"en": f"training continues in the background; `onboard chat -w {ws_root} --resume` picks it up.",
                 "zh": f"训练在后台继续；用 `onboard chat -w {ws_root} --resume` 回来查看。"}[lang])
            raise typer.Exit(0) from None
        if line is None:
            continue
        command = job_command(line)
        if command == "status":
            say(job.status(lang) if not paused else {"en": "paused; say \"continue\".", "zh": "已暂停；说“继续”即可。"}[lang])
        elif command == "pause" and not paused and job.steps_done()[0] == 0:
            say({"en": "it is still loading the model: say \"pause\" again once it trains.",
                 "zh": "还在加载模型：开始训练后再说“暂停”。"}[lang])
        elif command == "pause" and not paused:
            say({"en": "pausing at the next step (a checkpoint is saved)...", "zh": "正在暂停（保存检查点）……"}[lang])
            job.stop()
            paused = True
            step, _ = job.steps_done()
            say({"en": f"paused after step {step}; say \"continue\" to go on, or \"stop\".",
                 "zh": f"已在第 {step} 步后暂停；说“继续”接着训练，或者“停止”。"}[lang])
        elif command == "resume" and paused:
            job = TrainingJob.start(cfg.model_copy(update={"resume": True}), job.planned_steps)
            paused = False
            say({"en": "continuing from the checkpoint.", "zh": "从检查点继续训练。"}[lang])
        elif command == "stop":
            if not paused:
                job.stop()
            raise PlanStopped(f"training stopped with a checkpoint in {cfg.output_dir}: `onboard chat -w {ws_root} "
                              "--resume` continues it")
        else:
            say(_HINT[lang])
    return job
