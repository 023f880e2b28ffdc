"""Clean a dataset before training: broken text, empties, exact and near duplicates, length, language, PII.

    records, report = clean_records(records, CleanConfig(mask_pii=True), count_tokens=lambda s: len(tok(s).input_ids))
    log.info("%s", report.summary())

Records are text (`{"text"}`), chat (`{"messages"}`) or preference (`{"prompt", "chosen", "rejected"}`),
each with an optional "meta" dict that cleaning copies unchanged except for adding meta["language"].
Input records are never modified; the survivors are new dicts, in input order.

Which text decides what is a duplicate: a chat record's user and assistant turns, a preference record's
prompt user turns plus chosen and rejected. System messages do not count: our RAG examples put the
retrieved context there, so shared context would make distinct questions look alike, and examples
that differ only in context are the same lesson. Length counts the whole record, system included,
because that is what the model reads.

Near-duplicates are found with MinHash LSH over character shingles (training/data/dedup.py), so
Chinese, which has no spaces, is compared as well as English. Broken text is found with ftfy: a string
that ftfy would repair by re-decoding it as UTF-8 is mojibake ("é" read as "Ã©", "中文" as "ä¸­æ–‡").
Record shapes and their text fields are training/data/formats.py's (`record_kind`, `map_strings`).
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

from training.data.dedup import lsh_index, near_duplicates
from training.data.formats import map_strings, model_texts, record_kind, record_strings
from training.data.pii import mask_pii
from training.errors import BadConfig

log = logging.getLogger(__name__)

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ufeff]")  # C0/C1 controls but \t \n; stray BOMs
_SURROGATE = re.compile(r"[\ud800-\udfff]")


@dataclass
class CleanConfig:
    """What to remove and how strictly."""

    near_dup_threshold: float | None = 0.85
    """Estimated Jaccard similarity of character shingles at or above which a record is a
    near-duplicate of an earlier one; None disables near-dedup."""
    num_perm: int = 128
    """MinHash permutations: more is a finer similarity estimate (error ~ 1/sqrt(num_perm)), slower."""
    shingle_size: int = 5
    """Characters per shingle in English and other spaced scripts."""
    shingle_size_zh: int = 2
    """Chinese characters per shingle: 2 makes a changed word cost as much similarity as in English
    (bench/dedup_quality.py: with 5, a Chinese copy with 2 % of its words edited is mostly missed)."""
    min_tokens: int = 1
    """Drop records shorter than this (count_tokens when given, else characters / 4, rounded up)."""
    max_tokens: int | None = None
    """Drop records longer than this; None keeps all. Set it to the training max_seq_length."""
    mask_pii: bool = False
    """Replace emails, phone, ID and card numbers with [EMAIL], [PHONE], [ID], [CARD]."""
    seed: int = 1
    """MinHash seed; the same seed gives the same result on every run."""
    max_examples: int = 3
    """Removed records quoted per step in the report."""

    def __post_init__(self) -> None:
        """Refuse bad values now, with the field's name, rather than midway through a build.

        Raises:
            BadConfig: (a ValueError) a value is out of range, or datasketch cannot index the threshold.
        """
        t = self.near_dup_threshold
        if t is not None and not 0 < t <= 1:
            raise BadConfig(f"near_dup_threshold must be in (0, 1] or None to disable (got {t}).")
        if self.num_perm < 16:
            raise BadConfig(f"num_perm must be at least 16 (got {self.num_perm}); 128 is the usual choice.")
        if self.shingle_size < 1 or self.shingle_size_zh < 1:
            raise BadConfig(f"shingle_size and shingle_size_zh must be at least 1 "
                            f"(got {self.shingle_size}, {self.shingle_size_zh}).")
        if self.max_tokens is not None and self.max_tokens < self.min_tokens:
            raise BadConfig(f"max_tokens ({self.max_tokens}) is below min_tokens ({self.min_tokens}).")
        if t is not None:
            lsh_index(t, self.num_perm)


@dataclass
class CleanStep:
    """Counts for one cleaning step."""

    name: str
    """utf8, empty, exact-dedup, near-dedup, length, language or pii."""
    before: int
    """Records going in."""
    after: int
    """Records coming out."""
    detail: dict = field(default_factory=dict)
    """Step-specific counts ("removed", per-reason, per-language, per-PII-kind) and "examples"."""


@dataclass
class CleanReport:
    """What each step did, in order."""

    steps: list[CleanStep] = field(default_factory=list)
    """One entry per step that ran."""

    def as_dict(self) -> dict:
        """JSON-ready: input and output counts plus every step."""
        return {
            "input": self.steps[0].before if self.steps else 0,
            "output": self.steps[-1].after if self.steps else 0,
            "steps": [asdict(s) for s in self.steps],
        }

    def summary(self) -> str:
        """One line per step: `name  before -> after  key=value ...` (examples left out)."""
        lines = []
        for s in self.steps:
            counts = " ".join(f"{k}={v}" for k, v in s.detail.items() if k != "examples")
            lines.append(f"{s.name:<12} {s.before:>7} -> {s.after:<7} {counts}".rstrip())
        return "\n".join(lines)


# ---------------------------------------------------------------- what decides duplicates and emptiness


def _dedup_parts(record: dict, kind: str) -> list[tuple[str, str]]:
    """(role, content) pairs that decide duplicates: no system messages, and for an example that
    declines (training/data/decline.py) only the question: every decline has the same answer."""
    if kind == "text":
        return [("text", record["text"])]
    if kind == "chat":
        roles = ("user",) if record.get("meta", {}).get("declines") else ("user", "assistant")
        return [(m["role"], m["content"]) for m in record["messages"] if m["role"] in roles]
    parts = [("prompt", m["content"]) for m in record["prompt"] if m["role"] == "user"]
    parts += [("chosen", m["content"]) for m in record["chosen"]]
    return parts + [("rejected", m["content"]) for m in record["rejected"]]


def _dedup_text(record: dict, kind: str) -> str:
    return "\n".join(c for _, c in _dedup_parts(record, kind))


def _is_empty(record: dict, kind: str) -> bool:
    if kind == "text":
        return not record["text"].strip()
    if kind == "chat":
        answers = [m["content"] for m in record["messages"] if m["role"] == "assistant"]
    else:
        answers = [m["content"] for k in ("chosen", "rejected") for m in record[k]]
        if not record["chosen"] or not record["rejected"]:
            return True
    return not answers or any(not a.strip() for a in answers)


def _preview(record: dict, kind: str, n: int = 80) -> str:
    text = " ".join(_dedup_text(record, kind).split())
    return text if len(text) <= n else text[: n - 1] + "…"


# ---------------------------------------------------------------- text checks


def _is_mojibake(text: str) -> bool:
    """True when ftfy would repair the text by encoding it back to bytes and decoding them as UTF-8:
    UTF-8 that was read as cp1252 or latin-1, in the whole string or in part of it. A plan that only
    reinterprets C1 control characters is not mojibake (those controls are stripped by `_fix_text`)."""
    import ftfy

    if text.isascii():
        return False
    _, plan = ftfy.fix_encoding_and_explain(text)
    return any((step == "decode" and arg.startswith("utf-8")) or (step, arg) == ("apply", "decode_inconsistent_utf8")
               for step, arg in plan or ())


def _broken(text: str) -> str | None:
    """Why the text is broken ("replacement-char", "surrogate", "mojibake"), or None."""
    if "\ufffd" in text:
        return "replacement-char"
    if _SURROGATE.search(text):
        return "surrogate"
    if _is_mojibake(text):
        return "mojibake"
    return None


def _fix_text(text: str) -> str:
    """NFC, \\n line ends, no control characters but tab and newline: invisible differences that would
    otherwise split duplicates apart and reach the tokenizer as junk tokens."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", unicodedata.normalize("NFC", text))


# ---------------------------------------------------------------- the pipeline


@dataclass
class _Row:
    index: int
    """Position in the input."""
    kind: str
    record: dict


def _step(report: CleanReport, name: str, rows: list[_Row], keep: list[_Row], detail: dict) -> list[_Row]:
    report.steps.append(CleanStep(name, len(rows), len(keep), detail))
    log.info("clean %s: %d -> %d %s", name, len(rows), len(keep),
             {k: v for k, v in detail.items() if k != "examples"})
    return keep


def _removed(gone: list[_Row], cfg: CleanConfig, **extra) -> dict:
    """Detail of a filtering step: how many went, `extra` counts, the first few quoted."""
    examples = [{"index": r.index, "text": _preview(r.record, r.kind)} for r in gone[: cfg.max_examples]]
    return {"removed": len(gone), **extra, "examples": examples}


def _clean_utf8(rows: list[_Row], cfg: CleanConfig) -> tuple[list[_Row], dict]:
    keep, gone, why = [], [], Counter()
    for r in rows:
        reasons = [x for x in map(_broken, record_strings(r.record, r.kind)) if x]
        if reasons:
            why[reasons[0]] += 1
            gone.append(r)
        else:
            keep.append(_Row(r.index, r.kind, map_strings(r.record, r.kind, _fix_text)))
    return keep, _removed(gone, cfg, **dict(sorted(why.items())))


def _exact_dedup(rows: list[_Row], cfg: CleanConfig) -> tuple[list[_Row], dict]:
    seen: set = set()
    keep, gone = [], []
    for r in rows:
        key = (r.kind, tuple((role, " ".join(c.split())) for role, c in _dedup_parts(r.record, r.kind)))
        (gone if key in seen else keep).append(r)
        seen.add(key)
    return keep, _removed(gone, cfg)


def _wording(r: _Row) -> tuple[str | None, int]:
    meta = r.record.get("meta", {})
    return meta.get("question_id"), meta.get("wording", 0)


def _near_dedup(rows: list[_Row], cfg: CleanConfig) -> tuple[list[_Row], dict]:
    """Near duplicates of an earlier example go. A question's paraphrases (training/data/questions.py)
    are near duplicates of it by design: they are not compared, and go with their question when it goes."""
    first = [r for r in rows if not _wording(r)[1]]
    dups = near_duplicates([_dedup_text(r.record, r.kind) for r in first], cfg.near_dup_threshold,
                           cfg.num_perm, cfg.shingle_size, cfg.shingle_size_zh, cfg.seed)
    gone = [(r, d) for r, d in zip(first, dups, strict=True) if d is not None]
    gone_questions = {_wording(r)[0] for r, _ in gone} - {None}
    gone_ids = {id(r) for r, _ in gone}
    keep = [r for r in rows if id(r) not in gone_ids and not (_wording(r)[1] and _wording(r)[0] in gone_questions)]
    examples = [
        {"index": r.index, "duplicate_of": first[j].index, "similarity": round(sim, 3),
         "text": _preview(r.record, r.kind)}
        for r, (j, sim) in gone[: cfg.max_examples]
    ]
    return keep, {"removed": len(rows) - len(keep), "paraphrases_removed": len(rows) - len(keep) - len(gone),
                  "threshold": cfg.near_dup_threshold, "examples": examples}


def _length_filter(rows: list[_Row], cfg: CleanConfig, count_tokens: Callable[[str], int] | None):
    count = count_tokens or (lambda s: math.ceil(len(s) / 4))
    keep, gone, short, long = [], [], 0, 0
    for r in rows:
        n = max(count(t) for t in model_texts(r.record, r.kind))
        if n < cfg.min_tokens:
            short += 1
        elif cfg.max_tokens is not None and n > cfg.max_tokens:
            long += 1
        else:
            keep.append(r)
            continue
        gone.append(r)
    counter = "count_tokens" if count_tokens else "characters/4"
    return keep, _removed(gone, cfg, too_short=short, too_long=long, counted_with=counter)


def _language(rows: list[_Row]) -> tuple[list[_Row], dict]:
    from rag.loaders import detect_language

    langs, detected = Counter(), 0
    for r in rows:
        meta = r.record.get("meta") or {}
        if meta.get("language"):
            langs[meta["language"]] += 1
            continue
        lang = detect_language(_dedup_text(r.record, r.kind))
        r.record = {**r.record, "meta": {**meta, "language": lang}}
        langs[lang] += 1
        detected += 1
    return rows, {**dict(sorted(langs.items())), "detected": detected}


def _mask(rows: list[_Row]) -> tuple[list[_Row], dict]:
    total, changed = Counter(), 0
    for r in rows:
        found = Counter()

        def one(s: str, found: Counter = found) -> str:
            masked, c = mask_pii(s)
            found.update(c)
            return masked

        r.record = map_strings(r.record, r.kind, one)
        changed += bool(found)
        total.update(found)
    return rows, {"records_changed": changed, **{k: total[k] for k in ("email", "phone", "id", "card")}}


def clean_records(
    records: Iterable[dict], cfg: CleanConfig | None = None, count_tokens: Callable[[str], int] | None = None
) -> tuple[list[dict], CleanReport]:
    """Run the cleaning steps in order: utf8, empty, exact-dedup, near-dedup, length, language, pii.

    Args:
        records: text, chat or preference records (shapes in the module docstring); not modified.
        cfg: what to remove; default CleanConfig().
        count_tokens: tokens in a string for the target tokenizer; default characters / 4.

    Returns:
        (surviving records as new dicts in input order, report with counts for each step).

    Raises:
        BadDataset: a record has an unknown shape or a malformed message (names its index).
    """
    cfg = cfg or CleanConfig()
    rows = [_Row(i, record_kind(r, i), r) for i, r in enumerate(records)]
    report = CleanReport()

    keep, detail = _clean_utf8(rows, cfg)
    rows = _step(report, "utf8", rows, keep, detail)
    keep = [r for r in rows if not _is_empty(r.record, r.kind)]
    gone = [r for r in rows if _is_empty(r.record, r.kind)]
    rows = _step(report, "empty", rows, keep, _removed(gone, cfg))
    keep, detail = _exact_dedup(rows, cfg)
    rows = _step(report, "exact-dedup", rows, keep, detail)
    if cfg.near_dup_threshold is not None:
        keep, detail = _near_dedup(rows, cfg)
        rows = _step(report, "near-dedup", rows, keep, detail)
    keep, detail = _length_filter(rows, cfg, count_tokens)
    rows = _step(report, "length", rows, keep, detail)
    keep, detail = _language(rows)
    rows = _step(report, "language", rows, keep, detail)
    if cfg.mask_pii:
        keep, detail = _mask(rows)
        rows = _step(report, "pii", rows, keep, detail)
    return [r.record for r in rows], report
