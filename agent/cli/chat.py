"""`onboard chat`: set up a fine-tune by answering questions, in English or Chinese, in the terminal.

The conversation is saved after every answer in WORKSPACE/chat.sqlite: a chat closed or killed midway
continues with `--resume`. When every question is answered the plan is written to WORKSPACE/plan.yaml.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from agent.cli.common import DEFAULT_WS, WorkspaceOpt
from agent.errors import AgentError
from agent.ui import console, handle_errors
from rag.workspace import Workspace


@handle_errors
def chat(
    workspace: WorkspaceOpt = DEFAULT_WS,
    resume: Annotated[bool, typer.Option(help="Continue the saved conversation.")] = False,
    new: Annotated[bool, typer.Option(help="Forget the saved conversation and start again.")] = False,
    thread: Annotated[str, typer.Option(help="Which conversation (several can be kept apart).")] = "default",
    lang: Annotated[str, typer.Option(help="Language of the first question: en or zh (then the user's).")] = "en",
    force: Annotated[bool, typer.Option(help="Write over an existing WORKSPACE/plan.yaml.")] = False,
    run: Annotated[bool, typer.Option(help="Carry out the plan once it is agreed (asking before each expensive "
                                           "step); --no-run only writes plan.yaml.")] = True,
):
    """Set up a fine-tune by answering a few questions; the plan is saved to WORKSPACE/plan.yaml."""
    from agent.interview.graph import Interview
    from agent.interview.plan import save

    if lang not in ("en", "zh"):
        raise AgentError(f"--lang {lang!r}: choose en or zh")
    if resume and new:
        raise AgentError("--resume continues the saved conversation and --new forgets it: pass one of them")
    ws = Workspace(workspace)
    db = ws.root / "chat.sqlite"
    if new:
        Interview.forget(db, thread)
    elif Interview.started(db, thread) and not resume:
        raise AgentError(f"a conversation is saved in {db} (thread {thread!r}): pass --resume to continue it, "
                         "or --new to start again")
    from agent.interview.llm import LlmReader

    reader = LlmReader.from_env()  # ONBOARD_AGENT_BASE_URL: answers read by that model
    if reader is not None:
        console.print(f"answers are read by the model at {os.environ['ONBOARD_AGENT_BASE_URL']}", highlight=False,
                      soft_wrap=True)
    with Interview.open(db, thread, lang, reader=reader) as talk:
        reply = talk.state()
        console.print(reply.say, highlight=False, markup=False, soft_wrap=True)
        while not reply.done:
            try:
                answer = console.input("> ")
            except EOFError:
                console.print(f"\nsaved; `onboard chat -w {ws.root} --resume` continues", highlight=False, soft_wrap=True)
                raise typer.Exit(0) from None
            reply = talk.send(answer)
            console.print(reply.say, highlight=False, markup=False, soft_wrap=True)
    out = ws.root / "plan.yaml"
    if out.exists() and not force and not _same_plan(out, reply.plan):
        raise AgentError(f"{out} exists: pass --resume --force to write this plan over it "
                         "(the conversation stays saved)")
    save(reply.plan, out)
    console.print(f"plan saved: {out}", highlight=False, soft_wrap=True)
    if run:
        _carry_out(reply.plan, ws, reply.lang)


def _same_plan(path, plan) -> bool:
    """Whether the plan file holds this very plan (a resumed chat saves it again)."""
    from agent.interview.plan import BadPlan, load

    try:
        return load(path) == plan
    except BadPlan:
        return False


def _carry_out(plan, ws: Workspace, lang: str) -> None:
    """The plan's steps (agent/runner.py), asking in the terminal before each expensive one; training runs in
    the background while the chat answers (agent/cli/chat_training.py)."""
    from rich.text import Text

    from agent import runner
    from agent.cli.chat_training import trainer
    from agent.interview import understand as u
    from agent.ui import PausableBars, setup

    bars = PausableBars()

    def say(text: str) -> None:
        bars.pause()
        console.print(text, highlight=False, markup=False, soft_wrap=True)

    def ask(question: str) -> bool:
        bars.pause()
        while True:
            try:
                said = u.yes_no(console.input(Text(f"{question} ")))  # Text: not highlighted, not markup
            except EOFError:
                return False
            if said is not None:
                return said
            console.print("要还是不要？" if lang == "zh" else "Yes or no?", highlight=False)

    setup()
    hooks = runner.Hooks(say=say, ask=ask, progress=bars.update, lang=lang, train=trainer(say, lang, ws.root))
    try:
        result = runner.run(plan, ws, hooks)
    except runner.PlanStopped as e:
        say(str(e))
        return
    finally:
        bars.pause()
    say(("模型：" if lang == "zh" else "model: ") + str(result.model))
    runner.offer_serving(plan, ws, result.gate_passed, hooks)
