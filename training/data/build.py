"""Build a training set from the ingested documents: `onboard data build --kind cpt|sft|raft|dpo`.

    onboard data build --workspace .onboard --kind raft

Reads top to bottom: load and chunk the documents of every folder ingested into the workspace (with
the loader and chunker ingestion used, so document and chunk ids match the index), make seeds (rule-based Q/A pairs, plus a teacher LLM's when one is configured),
turn them into examples of the requested kind, clean (training/data/clean.py), split by document
(training/data/split.py) and write `<workspace>/data/<kind>/{train,test}.jsonl` and `stats.json`, all three
replaced together; an existing dataset is replaced only with `force` (--force).
SFT and DPO prompts and RAFT examples are built with `rag.build_rag_messages`, the function the
server uses, so a model is trained on exactly the prompt it will be served.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import get_args

from rag import DEFAULT_K, RagConfig, Retriever, build_rag_messages
from rag.chunking import chunk_document
from rag.embeddings import embedder_for
from rag.ingest import ingested_roots
from rag.io import publish_file
from rag.loaders import Document, load_documents
from rag.model_card import DatasetCard, DatasetKind, RagContract
from rag.prompt import CITATION, PROMPT_LAYOUT, Prompts, load_prompts
from rag.workspace import Workspace
from training.data import cpt, decline, dpo, raft
from training.data.answers import ANSWER_TOKENS, shape_answers, teacher_answers
from training.data.clean import CleanConfig, clean_records
from training.data.feedback import feedback_triples
from training.data.files import read_canonical
from training.data.formats import write_jsonl
from training.data.rewording import PARAPHRASERS, Rewording, reword
from training.data.rules import DEFAULT_RULES, RULES
from training.data.seeds import Seed, rule_seeds, teacher_seeds
from training.data.split import split_by_document
from training.data.stats import example_kind
from training.errors import BadConfig, NoExamples, OutputExists

log = logging.getLogger(__name__)

Kind = DatasetKind
KINDS: tuple[str, ...] = get_args(DatasetKind)
DPO_PAIRS = ("all", "declines")
Progress = Callable[[str, int, int], None]
"""progress(stage, done, total)"""


@dataclass
class DataBuildConfig:
    """Where the documents and index are, and how the dataset is made."""

    workspace: Path
    """Workspace holding the index; datasets are written to `<workspace>/data/<kind>/`."""
    kind: Kind = "sft"
    """cpt: packed document text; sft: Q/A chats; raft: Q + oracle + hard negatives; dpo: preference triples."""
    docs: Path | None = None
    """Documents folder; default: every folder `onboard ingest` put into the workspace's index."""
    extra_files: list[Path] = field(default_factory=list)
    """Your own datasets (any accepted format: messages, alpaca, sharegpt, preference, text) added to
    the training split after cleaning."""
    rag_context: bool = True
    """SFT/DPO: put the retrieved chunks in each prompt's system message, exactly as serving does."""
    k: int = DEFAULT_K
    """SFT/DPO: chunks retrieved per question (serving uses the same k)."""
    raft_p: float = 0.8
    """RAFT: share of examples whose context holds the oracle chunk (P in the paper)."""
    raft_distractors: int = 3
    """RAFT: hard-negative chunks per example (the prompt holds distractors + 1 chunks)."""
    teacher: object | None = None
    """A `training.data.teacher.TeacherConfig`, or None to build from rules only."""
    rules: tuple[str, ...] = DEFAULT_RULES
    """The rules that make pairs (training/data/rules.py RULES), also with a teacher; () for none. By default the
    explicit ones (FAQ markers, question headings, FAQ files): `definition` and `policy` were right in under half
    of their pairs on real documents (bench/rule_precision.py) and are opt-in."""
    paraphrases: int = 2
    """SFT/RAFT: rewordings added per rule-made question; 0: none. The held-out split keeps one wording per
    question (the first paraphrase)."""
    paraphraser: str = "auto"
    """Who rewords (training/data/rewording.py): "teacher" (the configured teacher LLM), "self" (the base
    model, run here: slow on a CPU), "rules" (training/data/questions.py), or "auto": the teacher when one is
    configured, else the rules. The rules fill in whatever an LLM leaves short."""
    answer_tokens: int = ANSWER_TOKENS
    """Rule-made answers are cut to whole paragraphs (or sentences) within this many tokens."""
    decline_share: float = 0.25
    """SFT/RAFT/DPO: share of questions also asked with a context that lacks the answer, answered with a
    decline that offers a person (training/data/decline.py); 0: none."""
    ood: bool = True
    """Add the built-in everyday out-of-domain questions (EN/ZH, of the documents' languages), declined."""
    ood_file: Path | None = None
    """Your own out-of-domain questions (one per line), declined like the built-in ones."""
    base_model: str | None = None
    """DPO: the model whose own answers become the rejected side; also the tokenizer for length
    filters. Default: the workspace's tiny base when it exists."""
    dpo_pairs: str = "all"
    """DPO: which pairs: "all" (every example against the model's own answer), or "declines": pairs that teach
    when to decline, for an SFT model that answers from memory where it should decline. The questions to decline
    against the model's own answers (only those are generated), and as many answerable questions with their
    answer preferred over the decline (without those, DPO on declines alone taught a 0.5B model to decline every
    question: bench/RESULTS.md)."""
    feedback: Path | None = None
    """DPO: the server's feedback file; default `<workspace>/feedback/feedback.jsonl` when present."""
    block_tokens: int = 512
    """CPT: tokens per packed block."""
    clean: CleanConfig = field(default_factory=CleanConfig)
    """Dedup, length filters and PII masking applied to every example (built or imported)."""
    test_fraction: float = 0.15
    """Share of document-derived examples held out, by whole document, per language."""
    seed: int = 0
    force: bool = False
    """Replace the dataset of this kind when the workspace already holds one (--force); without it, refuse."""

    def __post_init__(self) -> None:
        self.workspace = Path(self.workspace)
        self.docs = Path(self.docs) if self.docs else None
        self.extra_files = [Path(p) for p in self.extra_files]
        if self.kind not in KINDS:
            raise BadConfig(f"--kind must be one of {', '.join(KINDS)} (got {self.kind!r})")
        if not 0 <= self.test_fraction < 1:
            raise BadConfig(f"--test-fraction must be in [0, 1) (got {self.test_fraction})")
        if not 0 <= self.raft_p <= 1:
            raise BadConfig(f"--raft-p must be in [0, 1] (got {self.raft_p})")
        if self.k < 1:  # the model would be trained on, and served, prompts without context
            raise BadConfig(f"--k must be at least 1 (got {self.k}); to train without retrieved context, pass "
                            "--no-rag-context.")
        self.rules = tuple(self.rules)
        unknown = [r for r in self.rules if r not in RULES]
        if unknown:
            raise BadConfig(f"--rules: unknown rule(s) {', '.join(unknown)}; choose from {', '.join(RULES)}.")
        if self.paraphrases < 0 or self.answer_tokens < 16:
            raise BadConfig(f"--paraphrases must be 0 or more and --answer-tokens at least 16 (got "
                            f"{self.paraphrases}, {self.answer_tokens}).")
        if self.paraphraser not in PARAPHRASERS:
            raise BadConfig(f"--paraphraser must be one of {', '.join(PARAPHRASERS)} (got {self.paraphraser!r})")
        if self.paraphraser == "teacher" and self.teacher is None:
            raise BadConfig("--paraphraser teacher but no teacher is configured: set ONBOARD_TEACHER_BASE_URL and "
                            "ONBOARD_TEACHER_MODEL, or pass --paraphraser self (the base model) or rules.")
        if self.paraphraser in ("teacher", "self") and (self.paraphrases == 0 or self.kind in ("cpt", "dpo")):
            raise BadConfig(f"--paraphraser {self.paraphraser} has nothing to do: "
                            + ("--paraphrases is 0." if self.paraphrases == 0 else
                               f"--kind {self.kind} is built without paraphrases.") + " Drop one of the two.")
        if self.dpo_pairs not in DPO_PAIRS:
            raise BadConfig(f"--dpo-pairs must be one of {', '.join(DPO_PAIRS)} (got {self.dpo_pairs!r})")
        if self.dpo_pairs != "all" and self.kind != "dpo":
            raise BadConfig(f"--dpo-pairs {self.dpo_pairs} is for --kind dpo (got --kind {self.kind}); drop it.")
        if self.dpo_pairs == "declines" and not (self.rag_context and (self.decline_share or self.ood or self.ood_file)):
            raise BadConfig("--dpo-pairs declines but the build makes no decline examples: keep --rag-context and "
                            "a --decline-share above 0 or the out-of-domain questions (--ood, --ood-file).")
        if not 0 <= self.decline_share <= 1:
            raise BadConfig(f"--decline-share must be in [0, 1] (got {self.decline_share})")
        self.ood_file = Path(self.ood_file) if self.ood_file else None
        if self.ood_file and not self.rag_context:
            raise BadConfig("--ood-file given with --no-rag-context: declines are taught against a retrieved "
                            "context; drop one of the two.")
        if self.raft_distractors < 0 or self.block_tokens < 1:
            raise BadConfig(f"--distractors must be 0 or more and --block-tokens at least 1 (got "
                            f"{self.raft_distractors}, {self.block_tokens}).")

    @property
    def ws(self) -> Workspace:
        return Workspace(self.workspace)

    @property
    def out_dir(self) -> Path:
        return self.ws.data_dir(self.kind)


@dataclass
class DataBuildResult:
    kind: str
    train_file: Path
    test_file: Path
    train: int
    test: int
    by_rule: dict
    by_language: dict
    stats: DatasetCard
    """The dataset card written beside the files (typed contract fields, plus the counts and cleaning report)."""


def _token_counter(base: str | None, fallback: Callable[[str], int]) -> Callable[[str], int]:
    if base is None:
        return fallback
    from training.chat_checks import text_counter

    return text_counter(base)


def _read_extra(path: Path, kind: str) -> list[dict]:
    """A user's dataset as canonical records of the shape this kind trains on."""
    rows = read_canonical(path, {"sft": "chat", "raft": "chat", "dpo": "preference", "cpt": "text"}[kind])
    for r in rows:
        r["meta"] = {**r.get("meta", {}), "rule": "user-file", "source": path.name}
    return rows


def _sft_example(seed: Seed, retriever: Retriever | None, k: int, prompts: Prompts) -> dict:
    """The question with the k chunks the server would retrieve for it; when the oracle is not among
    them it takes the last place, so the answer is always in the context the model is taught to use. The
    answer cites the oracle's number ([2]) as the prompt asks, unless it already cites (a teacher's)."""
    hits = retriever.search(seed.question, k) if retriever else []
    added = bool(hits) and seed.chunk.id not in {h.chunk_id for h in hits}
    if added:
        hits = [*hits[: k - 1], raft.chunk_hit(seed.chunk)]
    messages = build_rag_messages([{"role": "user", "content": seed.question}], hits, prompts=prompts)
    pos = next((i for i, h in enumerate(hits, 1) if h.chunk_id == seed.chunk.id), None)
    cite = pos is not None and not CITATION.search(seed.answer)
    messages.append({"role": "assistant", "content": f"{seed.answer} [{pos}]" if cite else seed.answer})
    return {"messages": messages,
            "meta": {**seed.meta(), "retrieved": [h.chunk_id for h in hits], "oracle_added": added}}


def _worded(seeds: list[Seed], rewording: Rewording) -> list[tuple[Seed, int, str]]:
    """Each seed with its paraphrases as seeds of their own: (seed, wording number, question id), wording 0
    for the question as found. Teacher questions are already in a customer's words and get none."""
    out = []
    for s in seeds:
        qid = hashlib.sha256(f"{s.chunk.id}\x00{s.rule}\x00{s.question}".encode()).hexdigest()[:16]
        out.append((s, 0, qid))
        if not s.rule.startswith("teacher:"):
            out += [(replace(s, question=q), i, qid) for i, q in enumerate(rewording.get(s.question, s.doc.language), 1)]
    return out


def _reword(cfg: DataBuildConfig, seeds: list[Seed], base: str | None, progress: Progress | None) -> Rewording:
    """Paraphrases of the rule-made questions, by the paraphraser `cfg` names (none for DPO: each pair needs
    the model's own answer to the question as found)."""
    n = cfg.paraphrases if cfg.kind in ("sft", "raft") else 0
    if cfg.kind == "dpo" and cfg.paraphrases:
        log.info("dpo: questions as found, without paraphrases (each pair needs the model's own answer)")
    who = cfg.paraphraser if cfg.paraphraser != "auto" else ("teacher" if cfg.teacher is not None else "rules")
    if who == "self" and base is None:
        raise BadConfig("--paraphraser self needs the base model: pass --base MODEL (or build the tiny base into "
                        f"{cfg.ws.tiny_base}).")
    questions = [(s.question, s.doc.language) for s in seeds if not s.rule.startswith("teacher:")]
    return reword(questions, n, teacher=cfg.teacher if who == "teacher" else None,
                  base_model=base if who == "self" else None, cache_path=cfg.ws.paraphrase_cache,
                  progress=(lambda d, t: progress("paraphrases", d, t)) if progress else None)


def _tag(example: dict, wording: int, qid: str) -> dict:
    example["meta"].update(question_id=qid, wording=wording)
    return example


def _one_wording(test: list[dict]) -> list[dict]:
    """The held-out split with one wording per question: the first paraphrase when there is one (what a
    customer would type), else the question as found; declines and user files are kept as they are."""
    best: dict[str, dict] = {}
    for e in test:
        qid = e.get("meta", {}).get("question_id")
        if qid is None:
            continue
        cur = best.get(qid)
        if cur is None or abs(e["meta"]["wording"] - 1) < abs(cur["meta"]["wording"] - 1):
            best[qid] = e
    keep = {id(e) for e in best.values()}
    return [e for e in test if e.get("meta", {}).get("question_id") is None or id(e) in keep]


def _declines(cfg: DataBuildConfig, seeds: list[Seed], retriever: Retriever, k: int, languages: set[str],
              prompts: Prompts) -> tuple[list[dict], dict]:
    """Unanswerable and out-of-domain examples (training/data/decline.py), and their counts."""
    out = []
    for s in decline.chosen_for_decline(seeds, cfg.decline_share, cfg.seed):
        ex = decline.unanswerable_example(s, retriever, k, prompts)
        if ex is not None:
            out.append(ex)
    unanswerable = len(out)
    questions = decline.builtin_ood(languages) if cfg.ood else []
    if cfg.ood_file:
        questions += decline.read_ood(cfg.ood_file)
    out += [decline.ood_example(q, retriever, k, prompts) for q in questions]
    return out, {"unanswerable": unanswerable, "out_of_domain": len(questions),
                 "out_of_domain_file": str(cfg.ood_file) if cfg.ood_file else None}


def _no_pairs(roots: list[Path]) -> NoExamples:
    return NoExamples(
        f"no question/answer pairs found in {', '.join(map(str, roots))}. Add an FAQ (lines starting `Q:`/`A:` or "
        "`问：`/`答：`, or headings ending in `?`), configure a teacher LLM (ONBOARD_TEACHER_BASE_URL, "
        "ONBOARD_TEACHER_MODEL), or pass your own dataset with --extra FILE.jsonl."
    )


def _refuse_existing(cfg: DataBuildConfig) -> None:
    """Refuse, before any work, to replace a dataset of this kind unless `force` is set."""
    files = [cfg.ws.train_file(cfg.kind), cfg.ws.test_file(cfg.kind), cfg.ws.dataset_card(cfg.kind)]
    there = [f.name for f in files if f.exists()]
    if there and not cfg.force:
        raise OutputExists(f"{cfg.out_dir} already holds a {cfg.kind} dataset ({', '.join(there)}): pass --force to "
                           "rebuild it, or move it elsewhere first.")


def _roots(cfg: DataBuildConfig) -> list[Path]:
    """The folders (or files) to build from: --docs, else every one ingested into the workspace."""
    if cfg.docs is not None:
        return [cfg.docs]
    roots = ingested_roots(cfg.workspace)
    if not roots:
        raise NoExamples(f"no documents known for workspace {cfg.workspace}. Run `onboard ingest DOCS` first or pass "
                         "--docs.")
    return roots


def _load(roots: list[Path]) -> list[Document]:
    """The documents of every root, in root order. Documents of different roots stay apart even when they
    share a path (X/faq.md, Y/faq.md): a document's id, and its chunks' ids, include its root, as in the
    index. A file reached through two roots (a folder and a folder inside it) is loaded once."""
    docs, seen = [], set()
    for root in roots:
        for d in load_documents(root).documents:
            path = (Path(d.root) / d.source).resolve()
            if path not in seen:
                seen.add(path)
                docs.append(d)
    return docs


def _where(meta: dict, roots: list[Path]) -> str:
    """Where an example came from, for stats.json: its document's path, under its root when there are several."""
    source = meta.get("source", "?")
    return f"{meta['root']}/{source}" if len(roots) > 1 and meta.get("root") else source


def _publish(cfg: DataBuildConfig, train: list[dict], test: list[dict], card: DatasetCard) -> tuple[Path, Path]:
    """Write train.jsonl, test.jsonl and stats.json beside each other, each to a temporary file first and
    renamed over the old one only when all three are written: a crash leaves the old dataset whole."""
    train_file, test_file, card_file = cfg.ws.train_file(cfg.kind), cfg.ws.test_file(cfg.kind), cfg.ws.dataset_card(cfg.kind)
    with ExitStack() as stack:
        tmp_card, tmp_test, tmp_train = (stack.enter_context(publish_file(f, ".tmp"))
                                         for f in (card_file, test_file, train_file))
        write_jsonl(tmp_train, train)
        write_jsonl(tmp_test, test)
        card.write(tmp_card)
    return train_file, test_file


def run(cfg: DataBuildConfig, progress: Progress | None = None) -> DataBuildResult:
    """Write `train.jsonl`, `test.jsonl` and `stats.json` under `<workspace>/data/<kind>/`.

    Raises:
        OutputExists: a dataset of this kind is there and `cfg.force` is not set.
        NoExamples: no documents are known, or they yield no example.
    """
    _refuse_existing(cfg)
    roots = _roots(cfg)
    rag_cfg = RagConfig.from_workspace(cfg.workspace)
    prompts = load_prompts(cfg.workspace)
    embedder = embedder_for(rag_cfg)
    extra = [r for f in cfg.extra_files for r in _read_extra(f, cfg.kind)]  # fail fast on bad input
    docs = _load(roots)
    chunks = {d.id: chunk_document(d, embedder.count_tokens, rag_cfg.chunk_tokens, rag_cfg.chunk_overlap_sentences)
              for d in docs}
    base = cfg.base_model or cfg.ws.default_base()
    count_tokens = _token_counter(base, embedder.count_tokens)
    stats: dict = {"kind": cfg.kind, "docs": os.pathsep.join(map(str, roots)), "roots": [str(r) for r in roots],
                   "base_model": base}

    if cfg.kind == "cpt":
        examples, stats["cpt"] = cpt.build_corpus(docs, chunks, count_tokens, cfg.block_tokens)
    else:
        seeds = rule_seeds(docs, chunks, cfg.rules) if cfg.rules else []
        if cfg.teacher is not None:
            more, tres = teacher_seeds(docs, chunks, cfg.teacher, cfg.ws.teacher_cache,
                                       progress=(lambda d, n: progress("teacher", d, n)) if progress else None)
            seeds += more
            stats["teacher"] = tres.summary()
        feedback_only = cfg.kind == "dpo" and (cfg.feedback or cfg.ws.feedback_file).exists()
        if not seeds and not extra and not feedback_only:  # DPO may learn from the server's feedback alone
            raise _no_pairs(roots)
        if cfg.teacher is not None:  # the teacher's short answers to the rule-made questions with long ones
            stats["teacher_answers"] = teacher_answers(
                seeds, cfg.teacher, cfg.ws.teacher_answers_cache, count_tokens,
                progress=(lambda d, n: progress("teacher answers", d, n)) if progress else None)
        shaped = shape_answers(seeds, count_tokens, cfg.answer_tokens)
        seeds = shaped.examples
        rewording = _reword(cfg, seeds, base, progress)
        worded = _worded(seeds, rewording)
        stats["questions"] = {"found": len(seeds) + shaped.dropped_restating, "answers_trimmed": shaped.trimmed,
                              "dropped_restating": shaped.dropped_restating,
                              "paraphrases": sum(1 for _, i, _ in worded if i), "paraphrased_by": rewording.counts}
        retriever = Retriever(rag_cfg, embedder)
        if cfg.kind == "raft":
            pool = [raft.chunk_hit(c) for cs in chunks.values() for c in cs]
            examples = [_tag(raft.make_example(s, retriever, cfg.raft_distractors, cfg.raft_p, cfg.seed, pool, prompts),
                             i, qid) for s, i, qid in worded]
            context_chunks = cfg.raft_distractors + 1
            stats["raft"] = {"p": cfg.raft_p, "distractors": cfg.raft_distractors,
                             "oracle_in_context": sum(e["meta"]["oracle_in_context"] for e in examples),
                             "random_distractors": sum(e["meta"]["random_distractors"] for e in examples)}
        else:
            examples = [_tag(_sft_example(s, retriever if cfg.rag_context else None, cfg.k, prompts), i, qid)
                        for s, i, qid in worded]
            context_chunks = cfg.k if cfg.rag_context else 0
            stats["questions"]["oracle_added"] = sum(e["meta"]["oracle_added"] for e in examples)
        if not cfg.rag_context:
            stats["declines"] = {"skipped": "no retrieved context (--no-rag-context): nothing to decline from"}
        elif cfg.decline_share or cfg.ood or cfg.ood_file:
            more, stats["declines"] = _declines(cfg, seeds, retriever, context_chunks,
                                                {d.language for d in docs}, prompts)
            examples += more
        stats["rag"] = RagContract(context_chunks=context_chunks, prompt_layout=PROMPT_LAYOUT,
                                   prompt_version=prompts.version,
                                   embedding_model=embedder.name, collection=rag_cfg.collection,
                                   embedding_languages=rag_cfg.embedding_languages)
        if cfg.kind == "dpo":
            examples, stats["dpo"] = _dpo(cfg, base, examples, progress)

    examples, report = clean_records(examples, cfg.clean, count_tokens)
    extra, extra_report = clean_records(extra, cfg.clean, count_tokens) if extra else ([], None)
    if not examples and not extra:
        raise _no_pairs(roots) if cfg.kind != "dpo" else NoExamples(
            "no DPO pairs: the model already gives every answer, or no answers were found. Add feedback "
            f"({cfg.ws.feedback_file}), configure a teacher, or pass --extra FILE.jsonl.")
    held, held_from = _held_out_elsewhere(cfg)
    if held_from:
        log.info("held out: the %d documents the %s dataset holds out, so that no stage trains on what "
                 "evaluation asks (--test-fraction is not drawn again; remove that dataset for a new split)",
                 len(held), " and ".join(held_from))
    train, test = split_by_document(examples, cfg.test_fraction, cfg.seed, held if held_from else None)
    test = _one_wording(test)
    train += extra

    everything = train + test
    stats.update({
        "train": len(train), "test": len(test),
        "test_sources": sorted({_where(e["meta"], roots) for e in test}),
        "held_out_as": held_from,
        "by_rule": dict(Counter(e["meta"].get("rule", "?") for e in everything)),
        "by_kind": dict(Counter(example_kind(e.get("meta", {})) for e in everything)),
        "by_language": dict(Counter(e["meta"].get("language", "?") for e in everything)),
        "by_source": dict(Counter(_where(e.get("meta", {}), roots) for e in everything)),
        "clean": report.as_dict(),
        "clean_extra": extra_report.as_dict() if extra_report else None,
    })
    card = DatasetCard(**stats)
    train_file, test_file = _publish(cfg, train, test, card)
    log.info("dataset %s: %d train / %d test, by rule %s", cfg.kind, len(train), len(test), card.by_rule)
    return DataBuildResult(cfg.kind, train_file, test_file, len(train), len(test),
                           card.by_rule, card.by_language, card)


def _held_out_elsewhere(cfg: DataBuildConfig) -> tuple[set[str], list[str]]:
    """The documents the workspace's other datasets hold out (their test files' doc_ids), and which datasets:
    a DPO run on top of an SFT run, evaluated on the SFT test split, must not have trained on it."""
    held: set[str] = set()
    kinds = []
    for kind in KINDS:
        test_file = cfg.ws.data_dir(kind) / "test.jsonl"
        if kind == cfg.kind or not test_file.exists() or cfg.test_fraction <= 0:
            continue
        docs = {json.loads(line).get("meta", {}).get("doc_id") for line in test_file.open(encoding="utf-8")
                if line.strip()}
        if docs - {None}:  # a dataset built with --test-fraction 0 holds out nothing
            held |= docs - {None}
            kinds.append(kind)
    return held, kinds


def _dpo(cfg: DataBuildConfig, base: str | None, examples: list[dict], progress: Progress | None):
    """Pair each good answer with the base model's own answer; add the server's feedback pairs."""
    info: dict = {}
    triples: list[dict] = []
    answerable: list[dict] = []
    if cfg.dpo_pairs == "declines":
        answerable = [e for e in examples if not e["meta"].get("declines")]
        examples = [e for e in examples if e["meta"].get("declines")]
        info["pairs_from"] = f"declines only ({len(examples)} questions)"
    if examples:
        if base is None:
            raise NoExamples("DPO needs the model whose answers it will improve: pass --base MODEL "
                             f"(or build the tiny base into {cfg.ws.tiny_base}).")
        answers = dpo.model_answers(base, [e["messages"][:-1] for e in examples],
                                    progress=(lambda d, n: progress("model answers", d, n)) if progress else None)
        triples, info["model_answers"] = dpo.make_triples(examples, answers)
    if cfg.dpo_pairs == "declines":  # as many pairs the other way, or DPO learns to decline everything
        kept = dpo.answer_over_decline(answerable, len(triples), load_prompts(cfg.workspace).decline_for, cfg.seed)
        triples += kept
        info["answer_over_decline"] = len(kept)
    fb = cfg.feedback or cfg.ws.feedback_file
    if fb.exists():
        res = feedback_triples(fb)
        triples += res.triples
        info["feedback"] = {"file": str(fb), "pairs": res.by_kind, "unused": res.unused}
    return triples, info
