"""`onboard demo`: the whole pipeline on the bundled example shop, end to end and for real.

Builds the tiny base model, ingests the documents, builds the dataset, trains a QLoRA adapter,
merges it, starts the API server on a free loopback port, asks three questions with the official
`openai` client (one in Chinese), prints the answers with their sources, and stops the server.
The demo owns its workspace: each run rebuilds it from scratch.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.panel import Panel
from rich.table import Table

from agent.errors import DemoFailed
from agent.ui import console, progress_bar
from rag.workspace import Workspace

if TYPE_CHECKING:
    from agent.interview.plan import Plan

EXAMPLE_DOCS = Path(__file__).resolve().parent.parent / "examples" / "docs"
QUESTIONS = ["How long do I have to return an item?", "Which payment methods do you accept?", "退款多久能到账？"]


@dataclass
class DemoConfig:
    workspace: Path = Path(".onboard-demo")
    """Folder the demo (re)builds; everything it makes lives here."""
    docs: Path | None = None
    """Documents; default: the bundled example shop."""
    questions: list[str] = field(default_factory=lambda: list(QUESTIONS))
    base_steps: int = 300
    """Pre-training steps of the tiny base model."""
    epochs: float = 30.0
    """SFT epochs: the tiny model needs many passes to learn the answers."""
    learning_rate: float = 3e-3
    base: str | None = None
    """A real base model (folder, Hub id or .gguf) instead of building the tiny one; trained with LoRA on
    its fp32 weights (the fast choice on CPU) for `base_epochs` at `base_learning_rate`."""
    base_epochs: float = 2.0
    base_learning_rate: float = 2e-4
    server_timeout: float = 180.0

    def __post_init__(self) -> None:
        self.workspace = Path(self.workspace)
        self.docs = Path(self.docs) if self.docs else EXAMPLE_DOCS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _timed(timings: dict, name: str, fn: Callable):
    t0 = time.perf_counter()
    out = fn()
    timings[name] = time.perf_counter() - t0
    return out


def run(cfg: DemoConfig) -> dict:
    """Run every stage; return the answers and stage timings."""
    from agent import pipeline
    from training.callbacks import Progress
    from training.data.build import DataBuildConfig
    from training.data.rules import RULES
    from training.tiny import TinyConfig
    from training.tiny import run as build_tiny

    ws, timings = Workspace(cfg.workspace), {}
    shutil.rmtree(ws.root, ignore_errors=True)
    console.rule(f"Onboard demo: {cfg.docs} -> {ws.root}")
    agreed = _timed(timings, "interview", lambda: interview(ws, cfg))

    if cfg.base:
        from training.base_model import resolve

        base = _timed(timings, "base model", lambda: resolve(cfg.base))
        console.print(f"1/6 base model: {base}")
        method, epochs, lr = "lora", cfg.base_epochs, cfg.base_learning_rate
    else:
        with progress_bar("1/6 base model: pre-training tiny Llama", cfg.base_steps, show_loss=True) as up:
            tiny = _timed(timings, "base model", lambda: build_tiny(
                TinyConfig(docs=cfg.docs, out=ws.tiny_base, steps=cfg.base_steps), lambda s, n, loss: up(s, n, loss)))
        console.print(f"   {tiny.parameters:,} parameters, pre-training loss {tiny.final_loss}")
        base, method, epochs, lr = str(ws.tiny_base), "qlora", cfg.epochs, cfg.learning_rate

    with progress_bar("2/6 ingest: embedding chunks") as up:
        rep = _timed(timings, "ingest", lambda: pipeline.ingest(
            ws, cfg.docs, languages=agreed.languages, progress=lambda phase, d, n: up(d, n) if phase == "embed" else None))
    console.print(f"   {rep.documents} documents -> {rep.chunks} chunks in Chroma, embedded with {rep.embedding_model}")

    # The tiny model learns answers by heart and cannot read its context to tell an answerable question from
    # an unanswerable one: it gets the questions as found, without paraphrases (which would triple its
    # training time) or declines. A real base gets the default dataset.
    # The shop's documents are written as policies and definitions, so every rule is on.
    lean = {} if cfg.base else {"paraphrases": 0, "decline_share": 0.0, "ood": False}
    lean["rules"] = RULES
    data = _timed(timings, "dataset", lambda: pipeline.build_data(DataBuildConfig(workspace=ws.root, **lean)))
    console.print(f"3/6 dataset: {data.train} train / {data.test} test examples, by rule {data.by_rule}")

    sft_cfg = pipeline.train_config(ws, {"base_model": base, "method": method, "epochs": epochs,
                                         "learning_rate": lr, "logging_steps": 5, "save_steps": 1000})
    title = "QLoRA fine-tuning (4-bit NF4 base)" if method == "qlora" else "LoRA fine-tuning (fp32 base)"
    with progress_bar(f"4/6 {title}", show_loss=True) as up:
        res = _timed(timings, f"train ({method})", lambda: pipeline.train(sft_cfg, callbacks=[Progress(up)]))
    console.print(f"   {res.steps} steps, train loss {res.start_loss:.3f} -> {res.end_loss:.3f} (mean of the first and "
                  "last 10 % of logged steps)")

    mres = _timed(timings, "merge", lambda: pipeline.merge(ws))
    console.print(f"5/6 merge: {mres.out}, top-1 agreement with adapter+base {mres.top1_agreement:.1%}")

    console.print("6/6 serving: starting the API server and asking questions with the openai client")
    answers = _timed(timings, "serve + 3 questions", lambda: _serve_and_ask(cfg, ws))
    for a in answers:
        srcs = "\n".join(f"  [{i}] {s['source']} — {s['heading_path']} ({s['score']:.2f})"
                         for i, s in enumerate(a["sources"], 1))
        console.print(Panel(f"[bold]{a['answer']}[/]\n\n[dim]sources:\n{srcs}[/]", title=a["question"],
                            title_align="left"))

    table = Table("stage", "seconds", title="Stage timings")
    for name, secs in timings.items():
        table.add_row(name, f"{secs:.1f}")
    table.add_row("[bold]total", f"[bold]{sum(timings.values()):.1f}")
    console.print(table)
    return {"answers": answers, "timings": timings}


def interview_answers(docs: Path) -> list[str]:
    """What the demo's user answers, in English and then Chinese (the agent follows the language)."""
    return ["hello", "Answer our shop's customers about returns, refunds and payments", "both",
            f"the documents are in {docs}", "what is LoRA?", "the tiny one", "1", "20分钟", "要", "本机", "好的"]


def interview(ws: Workspace, cfg: DemoConfig) -> Plan:
    """Stage 0: a short scripted conversation with the interviewing agent (no LLM), as `onboard chat` has it;
    it ends with the plan the rest of the demo carries out with its own settings (the tiny model's) and its
    languages (English and Chinese: a multilingual index)."""
    from agent.interview.graph import Interview
    from agent.interview.plan import Hardware, Plan
    from agent.interview.recommend import detect_hardware

    console.print("0/6 interview: a scripted `onboard chat` (`onboard chat` asks you; `onboard run plan.yaml` "
                  "replays the plan)")
    ram = detect_hardware().memory_gib
    plan = Plan(hardware=Hardware(device="cpu", memory_gib=ram))  # the demo trains on the CPU whatever the machine
    with Interview.open(ws.root / "chat.sqlite", "demo", plan=plan) as chat:
        console.print(Panel(chat.pending(), title="agent", title_align="left", border_style="cyan"))
        for answer in interview_answers(cfg.docs):
            console.print(f"[bold]> {answer}[/]", highlight=False)
            reply = chat.send(answer)
            console.print(Panel(reply.say, title="agent", title_align="left", border_style="cyan"), markup=False,
                          highlight=False)
    if not reply.done:
        raise DemoFailed(f"the scripted interview did not end with a plan; it stopped at: {reply.say}")
    return reply.plan


def _serve_and_ask(cfg: DemoConfig, ws: Workspace) -> list[dict]:
    import httpx
    from openai import OpenAI

    port = free_port()
    cmd = [sys.executable, "-m", "agent.cli", "serve", "--workspace", str(ws.root), "--port", str(port)]
    log = ws.server_log.open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            cwd=Path(__file__).resolve().parent.parent)
    try:
        deadline = time.monotonic() + cfg.server_timeout
        while True:
            if proc.poll() is not None:
                raise DemoFailed(f"the server exited with code {proc.returncode}; see {ws.server_log}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise DemoFailed(f"the server did not start in {cfg.server_timeout:.0f} s; see {ws.server_log}")
            time.sleep(0.5)
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="demo")
        model = client.models.list().data[0].id
        answers = []
        for q in cfg.questions:
            r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": q}], max_tokens=96)
            answers.append({"question": q, "answer": r.choices[0].message.content,
                            "sources": (r.model_extra or {}).get("sources", [])})
        return answers
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
