"""`onboard data ...`: build, validate, preview and describe training datasets."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from agent.cli.common import DEFAULT_WS, BaseOpt, VerboseOpt, WorkspaceOpt
from agent.ui import console, handle_errors, setup, stage_bars
from rag.prompt import DEFAULT_K
from rag.workspace import Workspace

data_app = typer.Typer(help="Datasets: build training data from the documents; check your own.", no_args_is_help=True, rich_markup_mode=None)

def _default_base(workspace: Path, base: str | None) -> str | None:
    return base or Workspace(workspace).default_base()


@data_app.command("build")
@handle_errors
def build(
    workspace: WorkspaceOpt = DEFAULT_WS,
    kind: Annotated[str, typer.Option(help="cpt (document text), sft (Q/A chats), raft (Q + oracle + hard "
                                           "negatives), dpo (preference triples).")] = "sft",
    docs: Annotated[Path | None, typer.Option(help="Documents [default: every folder ingested into the "
                                                   "workspace].")] = None,
    extra: Annotated[list[Path] | None, typer.Option(help="Your own dataset (any format `data validate` "
                                                          "accepts), added to training; repeatable.")] = None,
    teacher: Annotated[bool, typer.Option(help="Use the teacher LLM set by ONBOARD_TEACHER_BASE_URL / _MODEL / "
                                               "_API_KEY [default: on when configured].")] = True,
    questions: Annotated[int, typer.Option(help="Teacher questions per chunk.")] = 2,
    teacher_timeout: Annotated[float | None, typer.Option(help="Seconds to wait for one teacher reply; env "
                                                               "ONBOARD_TEACHER_TIMEOUT [default: 120].")] = None,
    teacher_retries: Annotated[int | None, typer.Option(help="Retries per teacher request (timeouts, 429, 5xx); env "
                                                             "ONBOARD_TEACHER_RETRIES [default: 4].")] = None,
    rag_context: Annotated[bool, typer.Option(help="SFT/DPO: wrap each question in the serving RAG prompt.")] = True,
    k: Annotated[int, typer.Option(help="SFT/DPO: chunks retrieved per question (as serving).")] = DEFAULT_K,
    raft_p: Annotated[float, typer.Option(help="RAFT: share of examples with the oracle chunk in context.")] = 0.8,
    distractors: Annotated[int, typer.Option(help="RAFT: hard-negative chunks per example.")] = 3,
    block_tokens: Annotated[int, typer.Option(help="CPT: tokens per packed block.")] = 512,
    rules: Annotated[str | None, typer.Option(help="Comma-separated rules that make pairs: qa-markers, "
                                                   "question-heading, faq-file, definition, policy; '' for none "
                                                   "[default: the first three: definition and policy are right "
                                                   "too rarely on real documents, see bench/rule_precision.py].")] = None,
    paraphrases: Annotated[int, typer.Option(help="SFT/RAFT: rewordings added per rule-made question (0: "
                                                  "none).")] = 2,
    paraphraser: Annotated[str, typer.Option(help="Who rewords: teacher (the configured teacher LLM), self (the "
                                                  "base model, run here: slow on a CPU), rules, or auto (the "
                                                  "teacher when configured, else rules).")] = "auto",
    answer_tokens: Annotated[int, typer.Option(help="Rule-made answers cut to whole paragraphs or sentences "
                                                    "within this many tokens.")] = 256,
    decline_share: Annotated[float, typer.Option(help="Share of questions also asked with a context that "
                                                      "lacks the answer, answered with a decline (0: none).")] = 0.25,
    ood: Annotated[bool, typer.Option(help="Add the built-in everyday out-of-domain questions, declined.")] = True,
    ood_file: Annotated[Path | None, typer.Option(help="Your own out-of-domain questions, one per line, "
                                                       "declined too.")] = None,
    dpo_pairs: Annotated[str, typer.Option(help="DPO: every example against the model's own answer (all), or "
                                                "pairs that teach when to decline (declines): the questions to "
                                                "decline against the model's answers, and as many answers "
                                                "preferred over the decline.")] = "all",
    base: BaseOpt = None,
    mask_pii: Annotated[bool, typer.Option(help="Mask emails, phone, ID and card numbers.")] = False,
    near_dup: Annotated[float, typer.Option(help="Near-duplicate threshold (MinHash Jaccard); 0 disables.")] = 0.85,
    min_tokens: Annotated[int, typer.Option(help="Drop examples shorter than this.")] = 1,
    max_tokens: Annotated[int | None, typer.Option(help="Drop examples longer than this (target tokenizer).")] = None,
    test_fraction: Annotated[float, typer.Option(help="Share held out, by whole document.")] = 0.15,
    force: Annotated[bool, typer.Option("--force", help="Replace the dataset of this kind if the workspace has "
                                                        "one.")] = False,
    verbose: VerboseOpt = False,
):
    """Build WORKSPACE/data/KIND/{train,test}.jsonl and stats.json from the ingested documents (every
    folder ingested), refusing to replace an existing dataset without --force."""
    setup(verbose)
    from agent.pipeline import build_data
    from training.data.build import DataBuildConfig
    from training.data.clean import CleanConfig
    from training.data.teacher import TeacherConfig

    if not teacher and (teacher_timeout is not None or teacher_retries is not None):
        from training.errors import BadConfig

        raise BadConfig("--teacher-timeout/--teacher-retries given with --no-teacher: drop them, or drop "
                        "--no-teacher to use the teacher.")
    tcfg = TeacherConfig.from_env(questions_per_chunk=questions, timeout_s=teacher_timeout,
                                  max_retries=teacher_retries) if teacher else None
    clean = CleanConfig(near_dup_threshold=near_dup or None, min_tokens=min_tokens, max_tokens=max_tokens,
                        mask_pii=mask_pii)
    cfg = DataBuildConfig(workspace=workspace, kind=kind, docs=docs, extra_files=extra or [], teacher=tcfg,
                          rag_context=rag_context, k=k, raft_p=raft_p, raft_distractors=distractors,
                          base_model=base, clean=clean, test_fraction=test_fraction, block_tokens=block_tokens,
                          paraphrases=paraphrases, paraphraser=paraphraser, answer_tokens=answer_tokens, decline_share=decline_share,
                          ood=ood, ood_file=ood_file, dpo_pairs=dpo_pairs, force=force,
                          **({"rules": tuple(r.strip() for r in rules.split(",") if r.strip())} if rules is not None else {}))
    with stage_bars() as update:
        r = build_data(cfg, progress=update)
    console.print(f"{r.train} train / {r.test} test {kind} examples -> {r.train_file.parent}")
    console.print(f"  by rule: {r.by_rule}\n  by language: {r.by_language}")
    extra = r.stats.model_extra or {}
    console.print(f"  from: {', '.join(extra.get('roots') or [r.stats.docs])}")
    if extra.get("teacher"):
        console.print(f"  teacher: {extra['teacher']}")
    if extra.get("questions"):
        console.print(f"  questions: {extra['questions']}")
    if extra.get("declines"):
        console.print(f"  declines: {extra['declines']}")
    console.print("  cleaning: " + "; ".join(f"{s['name']} {s['before']}->{s['after']}" for s in extra["clean"]["steps"]))
    if r.test:
        console.print(f"  held out (whole documents): {', '.join(extra['test_sources'])}")
    if extra.get("held_out_as"):
        console.print(f"  held out as the {' and '.join(extra['held_out_as'])} dataset does: no stage trains on "
                      "what evaluation asks (remove that dataset for a new split)")


@data_app.command("validate")
@handle_errors
def validate(
    file: Annotated[Path, typer.Argument(help="Dataset file: JSONL, a JSON array, or plain text.")],
    fix: Annotated[bool, typer.Option(help="Write a cleaned copy (bad and duplicate records removed).")] = False,
    out: Annotated[Path | None, typer.Option(help="Where --fix writes [default: FILE.fixed.jsonl].")] = None,
    base: BaseOpt = None,
    workspace: WorkspaceOpt = DEFAULT_WS,
    max_problems: Annotated[int, typer.Option(help="Problems to print (all are counted).")] = 50,
    verbose: VerboseOpt = False,
):
    """Detect the format and report every bad record by line. Exits 1 when there are problems
    (unless --fix wrote a clean copy)."""
    setup(verbose)
    from training.chat_checks import record_counter
    from training.data.validate import fix_file, validate_file

    model = _default_base(workspace, base)
    count, ctx = record_counter(model) if model else (None, None)
    if fix:
        report, path, n = fix_file(file, out, count_tokens=count, max_tokens=ctx)
    else:
        report = validate_file(file, count_tokens=count, max_tokens=ctx)
    for p in report.problems[:max_problems]:
        console.print(f"{file}:{p.line}: [yellow]{p.code}[/] {p.reason}", highlight=False, soft_wrap=True)
    if len(report.problems) > max_problems:
        console.print(f"... and {len(report.problems) - max_problems} more")
    by = ", ".join(f"{c} {n}" for c, n in report.by_code().items())
    console.print(f"{file}: format {report.format}, {report.total} records, {report.valid} valid"
                  + (f", problems: {by}" if by else ", no problems"))
    if fix:
        console.print(f"wrote {n} records to {path} (the original is unchanged)")
    elif not report.ok():
        raise typer.Exit(1)


def _default_file(workspace: Path, kind: str, file: Path | None) -> Path:
    return file or Workspace(workspace).train_file(kind)


@data_app.command("preview")
@handle_errors
def preview(
    file: Annotated[Path | None, typer.Argument(help="Dataset [default: WORKSPACE/data/KIND/train.jsonl].")] = None,
    kind: Annotated[str, typer.Option(help="Which built dataset, when FILE is not given.")] = "sft",
    n: Annotated[int, typer.Option("-n", help="Samples to show.")] = 5,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    workspace: WorkspaceOpt = DEFAULT_WS,
):
    """Show random samples as a table: what the model will see, and where each came from."""
    setup(False)
    from training.data.stats import samples

    path = _default_file(workspace, kind, file)
    table = Table("#", "input", "output", "context", "from", title=str(path), show_lines=True)
    for i, r in enumerate(samples(path, n, seed), 1):
        meta = r.get("meta", {})
        if "text" in r:
            table.add_row(str(i), r["text"][:500], "", "", f"{meta.get('source', '')}\n{meta.get('rule', '')}")
            continue
        prompt = r["messages"][:-1] if "messages" in r else r["prompt"]
        if "messages" in r:
            output = r["messages"][-1]["content"][:400]
        else:
            output = (f"[green]chosen:[/] {r['chosen'][-1]['content'][:200]}\n"
                      f"[red]rejected:[/] {r['rejected'][-1]['content'][:200]!r}")
        system = prompt[0]["content"] if prompt and prompt[0]["role"] == "system" else ""
        context = "\n".join(line for line in system.splitlines() if re.match(r"^\[\d+\] ", line))
        table.add_row(str(i), prompt[-1]["content"][:400], output, context or "(none)",
                      f"{meta.get('source', '')}\n{meta.get('rule', '')}\n{meta.get('chunk_id', '')}")
    console.print(table)


@data_app.command("stats")
@handle_errors
def stats(
    file: Annotated[Path | None, typer.Argument(help="Dataset [default: WORKSPACE/data/KIND/train.jsonl].")] = None,
    kind: Annotated[str, typer.Option(help="Which built dataset, when FILE is not given.")] = "sft",
    png: Annotated[Path | None, typer.Option(help="Length histogram [default: beside FILE, .lengths.png].")] = None,
    base: BaseOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the numbers as JSON.")] = False,
    workspace: WorkspaceOpt = DEFAULT_WS,
):
    """Counts, lengths (histogram PNG), languages, sources and rules of a dataset."""
    setup(False)
    from training.data.stats import dataset_stats

    path = _default_file(workspace, kind, file)
    model = _default_base(workspace, base)
    count = None
    if model:
        from training.chat_checks import text_counter

        count = text_counter(model)
    s = dataset_stats(path, count, png or path.with_suffix(".lengths.png"))
    if as_json:
        console.print_json(json.dumps(s, ensure_ascii=False))
        return
    table = Table("", "", title=str(path), show_header=False)
    table.add_row("records", str(s["records"]))
    table.add_row("shapes", ", ".join(f"{k} {v}" for k, v in s["shapes"].items()))
    table.add_row(f"length ({s['length_unit']})", ", ".join(f"{k} {v}" for k, v in s["length"].items()))
    table.add_row("languages", ", ".join(f"{k} {v}" for k, v in s["languages"].items()))
    table.add_row("rules", ", ".join(f"{k} {v}" for k, v in s["rules"].items()))
    table.add_row("kinds", ", ".join(f"{k} {v}" for k, v in s["kinds"].items()))
    table.add_row("sources", "\n".join(f"{k} {v}" for k, v in s["sources"].items()))
    table.add_row("histogram", s["histogram"])
    console.print(table)
