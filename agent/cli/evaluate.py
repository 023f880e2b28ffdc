"""`onboard eval`: base / base+RAG / tuned / tuned+RAG on the held-out questions and the edge cases."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agent.cli.common import DEFAULT_WS, VerboseOpt, WorkspaceOpt
from agent.ui import console, handle_errors, setup, stage_bars
from rag.workspace import Workspace


@handle_errors
def evaluate(
    workspace: WorkspaceOpt = DEFAULT_WS,
    base: Annotated[Path | None, typer.Option(help="Base model folder [default: the one the merged model was "
                                                   "trained from, else WORKSPACE/base/tiny].")] = None,
    model: Annotated[Path | None, typer.Option(help="Fine-tuned (merged) model [default: WORKSPACE/models/merged]."
                                               )] = None,
    base_url: Annotated[str | None, typer.Option(help="Ask the base model through this OpenAI-compatible server "
                                                     "(its /v1 base: llama.cpp, vLLM) instead of loading it here."
                                                )] = None,
    model_url: Annotated[str | None, typer.Option(help="Likewise for the fine-tuned model (e.g. its GGUF export "
                                                      "served by llama.cpp).")] = None,
    systems: Annotated[str, typer.Option(help="Comma-separated: base, base+rag, tuned, tuned+rag.")] =
    "base,base+rag,tuned,tuned+rag",
    questions: Annotated[Path | None, typer.Option(help="Chat examples to ask (JSONL, the format `data build` "
                                                        "writes) [default: WORKSPACE/data/sft/test.jsonl, the held-out "
                                                        "split].")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N questions (intervals widen).")] = None,
    k: Annotated[int | None, typer.Option(help="Chunks retrieved [default: as the model was trained].")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Longest answer, in tokens.")] = 128,
    concurrency: Annotated[int | None, typer.Option(help="Answers asked at once: a local model generates them as "
                                                         "one batch, a server gets concurrent requests (1: one at "
                                                         "a time) [default: 8 for a local model, 1 for a "
                                                         "server].", show_default=False)] = None,
    repeats: Annotated[int, typer.Option(help="Sampled answers per question for consistency (0: skip).")] = 3,
    temperature: Annotated[float, typer.Option(help="Sampling temperature of the consistency answers: what your "
                                                    "clients send in production.")] = 0.7,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling of the consistency answers.")] = 0.9,
    edge: Annotated[bool, typer.Option(help="Ask the edge cases too.")] = True,
    suite: Annotated[Path | None, typer.Option(help="Your own edge-case suite (YAML) [default: bundled].")] = None,
    judge: Annotated[bool | None, typer.Option("--judge/--no-judge", help="Score the answers with an LLM judge "
                                               "(ONBOARD_JUDGE_BASE_URL, _MODEL, _API_KEY) [default: when "
                                               "configured].", show_default=False)] = None,
    name: Annotated[str, typer.Option(help="Report folder under WORKSPACE/reports/ (rerun the same name to "
                                           "resume).")] = "latest",
    gate: Annotated[Path | None, typer.Option(help="The gate's rule (YAML/JSON: candidate, baseline, metric, "
                                                   "max_drop, edge_tolerance) [default: tuned+rag not worse than "
                                                   "base+rag on key facts beyond the noise].")] = None,
    compare: Annotated[tuple[str, str] | None, typer.Option(help="Show what changed between two reports (names "
                                                                 "under WORKSPACE/reports/ or folders); asks "
                                                                 "nothing.")] = None,
    verbose: VerboseOpt = False,
):
    """Evaluate the fine-tune against its base, with and without retrieval, and write eval.md/eval.html."""
    setup(verbose)
    from agent import pipeline

    if compare:
        console.print(pipeline.compare_evaluations(Workspace(workspace), *compare), markup=False, highlight=False)
        return

    with stage_bars() as update:
        report, out = pipeline.evaluate(
            Workspace(workspace), base=base, model=model, systems=tuple(s.strip() for s in systems.split(",")),
            test_file=questions, limit=limit, k=k, max_new_tokens=max_new_tokens, concurrency=concurrency, repeats=repeats,
            temperature=temperature, top_p=top_p, edge=edge, edge_suite=suite, judge=judge, name=name,
            base_url=base_url, tuned_url=model_url, gate_rule=gate, progress=update)
    for s in report.systems:
        facts = s.metrics.get("facts")
        shown = f"facts {facts.mean:.1%} [{facts.low:.1%}, {facts.high:.1%}]" if facts else "no key facts"
        edge_rate = f", edge cases {s.edge_pass_rate:.0%}" if s.edge_pass_rate is not None else ""
        declined = f", declined {s.decline_rate:.0%} of must-decline" if s.decline_rate is not None else ""
        echo = f", echoed {s.echo_rate:.0%}" if s.echo_rate is not None else ""
        console.print(f"  {s.name:10} {shown}{edge_rate}{declined}{echo}")
    if report.judge is not None:
        a = report.judge.agreement
        rho = "—" if a.facts.rho is None else f"{a.facts.rho:+.2f}"
        console.print(f"judge {report.judge.model}: agreement with key facts rho {rho} (n={a.facts.n})")
    if report.gate is not None:
        console.print(f"gate: {'passed' if report.gate.passed else 'FAILED'}: {'; '.join(report.gate.reasons)}")
    console.print(f"report: {out / 'eval.md'} and {out / 'eval.html'}")
