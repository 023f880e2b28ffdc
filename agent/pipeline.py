"""The pipeline's steps as library functions: what `onboard <verb>` and the interviewing agent both call.

Each step takes typed inputs and returns a result object; the defaults and rules live here, not in a
front end: which base model a workspace trains on, where data and runs go, how a recipe and explicit
values combine, and the batch size a machine can hold (`plan_hardware`). The CLI only parses, calls
and prints (agent/cli/); the agent's tools will call the same functions.

    ws = Workspace(".onboard")
    ingest(ws, Path("docs"))
    build_data(DataBuildConfig(workspace=ws.root))
    cfg = train_config(ws, {"method": "lora", "epochs": 2})
    result = train(cfg)
    merge(ws)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agent.errors import PromptChanged
from rag.workspace import Workspace

log = logging.getLogger(__name__)

DEFAULT_EFFECTIVE_BATCH = 4
"""Sequences per optimizer step when neither --batch-size nor --gradient-accumulation-steps is given
(TrainConfig's defaults: 4 x 1). `plan_hardware` keeps it and lowers the per-step batch only when 4
does not fit the machine's memory."""


# ---------------------------------------------------------------- documents and data

def ingest(ws: Workspace, docs: Path, collection: str = "onboard", chroma_url: str | None = None,
           sync: bool = False, strict: bool = False, progress: Callable[[str, int, int], None] | None = None,
           embedding_model: str | None = None, languages: Sequence[str] | None = None):
    """Load, chunk, embed and store `docs` in the workspace's index. Returns `rag.IngestReport`.

    `progress(phase, done, total)`: phases "load" (files), "chunk" (documents), "embed" (chunks).
    `embedding_model`: see `rag.RagConfig`; None: the one the collection was built with, else, for a new index,
    multilingual-e5-small when `languages` (those the assistant serves) go beyond English, else MiniLM."""
    from rag import RagConfig
    from rag import ingest as run
    from rag.embeddings import DEFAULT_NAME, E5_NAME
    from rag.ingest_record import last_ingest, same_index

    cfg = RagConfig(workspace=ws.root, collection=collection, chroma_url=chroma_url)
    if embedding_model is None:
        prev = last_ingest(ws.root)
        if same_index(prev, cfg):  # adding documents to an index: embedded as it was built
            embedding_model = prev.get("embedding_model")
        elif set(languages or ()) - {"en"}:  # MiniLM is English-only (bench/RESULTS.md, issue 17)
            embedding_model = E5_NAME
    cfg.embedding_model = None if embedding_model == DEFAULT_NAME else embedding_model
    return run(cfg, docs, progress=progress, sync=sync, strict=strict)


def search(ws: Workspace, query: str, k: int = 5, filters: dict | None = None, **overrides) -> list:
    """Hybrid search over the index as it was ingested; `overrides` are RagConfig fields (mode, reranker...).
    An incomplete index (an ingest that did not finish) is searched too, with a logged warning; see
    `index_warning`."""
    from rag import RagConfig, Retriever

    return Retriever(RagConfig.from_workspace(ws.root, **overrides)).search(query, k, filters=filters or None)


def index_warning(ws: Workspace, collection: str | None = None) -> str | None:
    """One line when the workspace's index (`collection`, default the one ingested) is incomplete, else None."""
    from rag.ingest import ingest_state

    state = ingest_state(ws.root)
    return state.warning() if collection in (None, state.collection) else None


def build_data(cfg, progress: Callable[[str, int, int], None] | None = None):
    """`onboard data build`: a `training.data.build.DataBuildConfig` in, a `DataBuildResult` out.

    Builds from every folder ingested into the workspace (or `cfg.docs`). A dataset of the same kind
    already there is replaced only with `cfg.force`; otherwise `OutputExists` names the folder.
    """
    from training.data.build import run

    return run(cfg, progress=progress)


# ---------------------------------------------------------------- hardware and training

@dataclass
class HardwarePlan:
    """What `plan_hardware` decided, and why."""

    batch_size: int
    gradient_accumulation_steps: int
    gradient_checkpointing: bool | None
    """True when the plan needs checkpointing to fit; None leaves TrainConfig's own rule."""
    device: str
    memory_gib: float
    notes: list[str] = field(default_factory=list)


def machine_memory_gib() -> tuple[str, float]:
    """("cuda", the first GPU's memory) or ("cpu", the machine's RAM), in GiB (training.memory)."""
    from training.memory import machine_memory_gib

    return machine_memory_gib()


def plan_hardware(base: str, method: str, seq_len: int, effective_batch: int = DEFAULT_EFFECTIVE_BATCH,
                  lora_r: int = 16) -> HardwarePlan | None:
    """The per-step batch and accumulation that reach `effective_batch` within this machine's memory,
    from `training.memory.recommend`. None when the model's shape cannot be read (a Hub id not yet
    downloaded) or the method's memory is not modelled (prefix): TrainConfig's defaults then apply.

    Raises:
        DoesNotFit: not even batch 1 with checkpointing fits; the message says what would.
    """
    from training.base_model import resolve
    from training.memory import METHODS, ModelShape, recommend

    folder = Path(resolve(base))
    if method not in METHODS or not (folder / "config.json").exists():
        return None
    device, gib = machine_memory_gib()
    plan = recommend(ModelShape.from_config(folder), method, seq_len, gib, target_batch=effective_batch,
                     lora_r=lora_r, device=device)
    return HardwarePlan(plan.batch_size, plan.gradient_accumulation_steps,
                        True if plan.gradient_checkpointing else None, device, gib, plan.notes)


def train_config(ws: Workspace, values: dict, recipe: Path | None = None, plan: bool = True):
    """The run's `TrainConfig`: explicit `values` (field name -> value; None means not given) over the
    recipe's, over the workspace's defaults (tiny base, data/STAGE/, runs/STAGE), with the batch from
    `plan_hardware` when neither batch size nor accumulation was given anywhere (on --resume: the
    batch the run was trained with, which a resumed run may not change, rather than a new plan).

    Raises:
        BadConfig / BadRecipe: a value or recipe key is wrong; the flag or key is named.
        PromptChanged: the dataset was built with another wording of the prompt than the workspace's now.
    """
    from training.config import TrainConfig
    from training.recipes import NOTES, load_recipe

    fields = {k: v for k, v in (load_recipe(recipe) if recipe else {}).items() if k != NOTES}
    fields.update({k: v for k, v in values.items() if v is not None})
    stage = fields.setdefault("stage", "sft")
    fields.setdefault("base_model", str(ws.tiny_base))
    fields.setdefault("train_file", ws.train_file(stage))
    fields.setdefault("output_dir", ws.run_dir(stage))
    if "eval_file" not in fields and fields.get("evaluate", True):  # --no-eval: no eval data at all
        test = ws.test_file(stage)
        fields["eval_file"] = test if test.exists() and test.stat().st_size else None
    if fields.get("resume") and "batch_size" not in fields and "gradient_accumulation_steps" not in fields:
        fields.update(_recorded_batch(Path(fields["output_dir"])))
    cfg = TrainConfig.make(**fields)
    check_prompt(ws, Path(cfg.train_file))
    if plan and "batch_size" not in fields and "gradient_accumulation_steps" not in fields:
        hw = plan_hardware(cfg.base_model, cfg.method, cfg.max_length, lora_r=cfg.lora_r)
        if hw is not None:
            cfg.batch_size, cfg.gradient_accumulation_steps = hw.batch_size, hw.gradient_accumulation_steps
            if cfg.gradient_checkpointing is None and hw.gradient_checkpointing:
                cfg.gradient_checkpointing = True
            log.info("batch %d x accumulation %d for %.0f GiB of %s memory", hw.batch_size,
                     hw.gradient_accumulation_steps, hw.memory_gib, hw.device)
    return cfg


def check_prompt(ws: Workspace, train_file: Path) -> None:
    """Refuse a dataset built with another wording of the system prompt or decline than the workspace's now
    (WORKSPACE/prompt.yaml): the model would learn a prompt it will not be served.

    Raises:
        PromptChanged: names both versions and the command that rebuilds the dataset.
    """
    from rag.model_card import DatasetCard
    from rag.prompt import PROMPT_LAYOUT, load_prompts
    from rag.workspace import dataset_card_beside

    card = DatasetCard.read(dataset_card_beside(train_file))
    if card is None or card.rag is None:
        return
    now = load_prompts(ws.root)
    built = card.rag.prompt_version or card.rag.prompt_layout  # a card from before the wording was recorded
    if built != now.version and built != PROMPT_LAYOUT:
        raise PromptChanged(f"{train_file.parent} was built with prompt {built}, and the workspace's prompt is now "
                            f"{now.version} ({now.origin}): rebuild it with `onboard data build --kind {card.kind} "
                            f"--force`, so the model learns the prompt it will be served.")


def _recorded_batch(run_dir: Path) -> dict:
    """The batch size and accumulation a run folder's record holds ({} when it has none)."""
    from training.record import RUN_RECORD_FILE, RunRecord

    if not (run_dir / RUN_RECORD_FILE).exists():
        return {}
    cfg = RunRecord.read(run_dir).config
    return {"batch_size": cfg.batch_size, "gradient_accumulation_steps": cfg.gradient_accumulation_steps}


def train(cfg, callbacks: list | None = None):
    """Run the config's stage (`training.sft`, `cpt` or `dpo`). Returns `training.runs.TrainResult`."""
    from training.runs import run_stage

    return run_stage(cfg, callbacks)


# ---------------------------------------------------------------- models

def merge(ws: Workspace, run: Path | None = None, out: Path | None = None, base: str | None = None,
          force: bool = False):
    """Merge a run's adapter (default: the workspace's SFT run) into a standalone, verified model."""
    from training.merge import MergeConfig
    from training.merge import run as merge_run

    return merge_run(MergeConfig(run=run or ws.run_dir("sft"), out=out or ws.merged_model, base_model=base,
                                 force=force))


def export(model: Path, fmt: str, dtype: str | None = None, out: Path | None = None, force: bool = False):
    """The merged model as GGUF (f32/f16/q8_0, default f16) or ONNX (f32 only), verified against it."""
    from training.errors import BadConfig
    from training.export import ExportConfig, default_out
    from training.export import run as export_run

    if fmt == "onnx" and dtype not in (None, "f32"):
        raise BadConfig(f"--dtype {dtype}: ONNX export writes float32 only; drop --dtype, or use --format gguf.")
    gguf_dtype = dtype or "f16"
    return export_run(ExportConfig(model=model, out=out or default_out(model, fmt, gguf_dtype), format=fmt,
                                   gguf_dtype=gguf_dtype, force=force))


# ---------------------------------------------------------------- serving

def serve_settings(ws: Workspace, model: Path | None = None, **values):
    """`serving.settings.ServeSettings` for this workspace: its merged model and its index (when there
    is one); `values` are further settings (host, port, rag_k, max_new_tokens...), None meaning unset.
    Settings not given here come from ONBOARD_* environment variables."""
    from serving.settings import ServeSettings

    given = {k: v for k, v in values.items() if v is not None}
    return ServeSettings(model=model or ws.merged_model, workspace=ws.root if ws.has_index else None, **given)


def serve(ws: Workspace, model: Path | None = None, force: bool = False, **values) -> None:
    """Serve until interrupted (uvicorn); see `serve_settings`. A model whose last evaluation failed its
    gate is refused unless `force` (`check_evaluated`). The interview (agent/http.py) is served beside it,
    its conversations in WORKSPACE/chat.sqlite."""
    from functools import partial

    from agent.http import mount
    from serving.app import run

    settings = serve_settings(ws, model, **values)
    if settings.engine == "transformers" and (Path(settings.model) / "config.json").exists():  # else run() says why
        check_evaluated(ws, settings.model, force)
    run(settings, extend=partial(mount, db=ws.root / "chat.sqlite"))  # the interview beside the model


def check_evaluated(ws: Workspace, model: Path, force: bool = False, anyway: str = "Serve it anyway with --force"):
    """The gate before serving: the model's last evaluation in this workspace (found by its weights'
    fingerprint) must have passed. No evaluation, or a model that cannot be fingerprinted, is a logged
    warning; a failed one is refused, naming the metric and the numbers, unless `force`.

    Raises:
        GateFailed: the last evaluation failed and `force` is not set.
    """
    from evaluation.errors import GateFailed, NotAModel
    from evaluation.gate import latest_evaluation, model_fingerprint

    try:
        report = latest_evaluation(ws.root / "reports", model_fingerprint(Path(model)))
    except NotAModel:
        log.warning("%s: no safetensors weights to identify, so its evaluation is not checked", model)
        return None
    if report is None or report.gate is None:
        log.warning("%s has not been evaluated with a gate in %s: it is served on faith. Run `onboard eval` to "
                    "compare it with its base.", model, ws.root)
        return report
    if not report.gate.passed:
        msg = (f"{model} failed its last evaluation ({report.created}): {'; '.join(report.gate.reasons)}. {anyway}, "
               "or train again and re-run `onboard eval`.")
        if not force:
            raise GateFailed(msg)
        log.warning("%s", msg)
    return report


# ---------------------------------------------------------------- evaluation

def evaluate(ws: Workspace, base: Path | None = None, model: Path | None = None, progress=None, **options):
    """Base / base+RAG / tuned / tuned+RAG on the held-out questions (`evaluation.run`); the report and
    its folder. The base defaults to the one the merged model was trained from (its model card), else the
    workspace's tiny base; the tuned model to the workspace's merged model."""
    from pydantic import ValidationError

    from evaluation.errors import EvaluationError
    from evaluation.run import EvalConfig
    from evaluation.run import run as eval_run
    from rag.model_card import ModelCard

    tuned = model or (ws.merged_model if ws.merged_model.exists() else None)
    card = ModelCard.read(tuned) if tuned is not None else None
    base = base or (Path(card.base.name_or_path) if card is not None and card.base is not None else None) \
        or (Path(ws.default_base()) if ws.default_base() else None)
    if base is None:
        raise EvaluationError("no base model to compare with: pass --base DIR (the model you fine-tuned).")
    given = {k: v for k, v in options.items() if v is not None}
    try:
        cfg = EvalConfig(workspace=ws.root, base_model=base, tuned_model=tuned, **given)
    except ValidationError as e:
        err = e.errors()[0]
        raise EvaluationError(f"--{'-'.join(str(x) for x in err['loc']).replace('_', '-')}: {err['msg']}") from None
    return eval_run(cfg, progress), cfg.out_dir


def compare_evaluations(ws: Workspace, a: str, b: str) -> str:
    """What changed from evaluation `a` to `b` (report names under WORKSPACE/reports/, or folders), as Markdown."""
    from evaluation.compare import compare_reports
    from evaluation.results import EvalReport

    def folder(x: str) -> Path:
        return Path(x) if Path(x).is_dir() else ws.root / "reports" / x

    return compare_reports(EvalReport.read(folder(a) / "eval.json"), EvalReport.read(folder(b) / "eval.json"),
                           labels=(a, b))
