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

Near-duplicates are found with MinHash LSH (datasketch) over character shingles, so Chinese, which has
no spaces, is compared as well as English: 5 characters of English, 2 of Chinese (a Chinese character
carries about as much as 2.5 English ones; see `shingles`). Shingles are taken from the text
casefolded, with punctuation removed and whitespace collapsed, so punctuation and case edits do not
hide a copy.
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from training.data.pii import mask_pii
from training.errors import BadDataset

log = logging.getLogger(__name__)

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ufeff]")  # C0/C1 controls but \t \n; stray BOMs
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_PUNCT = re.compile(r"[^\w\s]+|_+")


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
        t = self.near_dup_threshold
        if t is not None and not 0 < t <= 1:
            raise ValueError(f"near_dup_threshold must be in (0, 1] or None to disable (got {t}).")
        if self.num_perm < 16:
            raise ValueError(f"num_perm must be at least 16 (got {self.num_perm}); 128 is the usual choice.")
        if self.shingle_size < 1 or self.shingle_size_zh < 1:
            raise ValueError(f"shingle_size and shingle_size_zh must be at least 1 "
                             f"(got {self.shingle_size}, {self.shingle_size_zh}).")
        if self.max_tokens is not None and self.max_tokens < self.min_tokens:
            raise ValueError(f"max_tokens ({self.max_tokens}) is below min_tokens ({self.min_tokens}).")
        if t is not None:
            _lsh(t, self.num_perm)


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


# ---------------------------------------------------------------- record shapes


def record_kind(record: object, index: int) -> str:
    """'text', 'chat' or 'preference'.

    Raises:
        BadDataset: the record has none of the three shapes, or a message is malformed (names the index).
    """
    if not isinstance(record, dict):
        raise BadDataset(f"record {index}: expected a JSON object, got {type(record).__name__}.")
    if not isinstance(record.get("meta", {}), dict):
        raise BadDataset(f"record {index}: 'meta' must be an object (got {type(record['meta']).__name__}).")
    if "text" in record:
        if not isinstance(record["text"], str):
            raise BadDataset(f"record {index}: 'text' must be a string.")
        return "text"
    if "messages" in record:
        _check_messages(record["messages"], f"record {index}: 'messages'")
        return "chat"
    if {"prompt", "chosen", "rejected"} <= record.keys():
        for key in ("prompt", "chosen", "rejected"):
            _check_messages(record[key], f"record {index}: '{key}'")
        return "preference"
    raise BadDataset(
        f"record {index}: unknown shape (keys: {', '.join(sorted(record)) or 'none'}). "
        'Use {"text": ...}, {"messages": [...]} or {"prompt": [...], "chosen": [...], "rejected": [...]}.'
    )


def _check_messages(msgs: object, where: str) -> None:
    if not isinstance(msgs, list):
        raise BadDataset(f"{where} must be a list of {{role, content}} objects.")
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str) or "role" not in m:
            raise BadDataset(f"{where}[{i}] needs a 'role' and a string 'content'.")


def _message_keys(kind: str) -> tuple[str, ...]:
    return {"chat": ("messages",), "preference": ("prompt", "chosen", "rejected")}.get(kind, ())


def _strings(record: dict, kind: str) -> list[str]:
    """Every text string of the record, system messages included."""
    if kind == "text":
        return [record["text"]]
    return [m["content"] for key in _message_keys(kind) for m in record[key]]


def _map_strings(record: dict, kind: str, fn: Callable[[str], str]) -> dict:
    """A new record with `fn` applied to every text string; other keys (meta included) shared."""
    out = dict(record)
    if kind == "text":
        out["text"] = fn(record["text"])
    for key in _message_keys(kind):
        out[key] = [{**m, "content": fn(m["content"])} for m in record[key]]
    return out


def _dedup_parts(record: dict, kind: str) -> list[tuple[str, str]]:
    """(role, content) pairs that decide duplicates: no system messages."""
    if kind == "text":
        return [("text", record["text"])]
    if kind == "chat":
        return [(m["role"], m["content"]) for m in record["messages"] if m["role"] in ("user", "assistant")]
    parts = [("prompt", m["content"]) for m in record["prompt"] if m["role"] == "user"]
    parts += [("chosen", m["content"]) for m in record["chosen"]]
    return parts + [("rejected", m["content"]) for m in record["rejected"]]


def _dedup_text(record: dict, kind: str) -> str:
    return "\n".join(c for _, c in _dedup_parts(record, kind))


def _model_texts(record: dict, kind: str) -> list[str]:
    """What the model reads: the whole record; a preference record gives prompt+chosen and prompt+rejected."""
    if kind == "preference":
        prompt = [m["content"] for m in record["prompt"]]
        return ["\n".join(prompt + [m["content"] for m in record[k]]) for k in ("chosen", "rejected")]
    return ["\n".join(_strings(record, kind))]


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


def _mojibake_pattern() -> tuple[re.Pattern, dict[str, int]]:
    """UTF-8 bytes that were decoded as cp1252/latin-1 ("é" -> "Ã©", "中文" -> "ä¸­æ–‡")."""
    to_byte: dict[str, int] = {}
    for b in range(0x80, 0x100):
        try:
            to_byte.setdefault(bytes([b]).decode("cp1252"), b)
        except UnicodeDecodeError:
            pass
        to_byte.setdefault(chr(b), b)

    def cls(lo: int, hi: int) -> str:
        return "[" + "".join(re.escape(c) for c, b in to_byte.items() if lo <= b <= hi) + "]"

    cont = cls(0x80, 0xBF)
    pat = re.compile(f"{cls(0xC2, 0xDF)}{cont}|{cls(0xE0, 0xEF)}{cont}{{2}}|{cls(0xF0, 0xF4)}{cont}{{3}}")
    return pat, to_byte


_MOJIBAKE, _TO_BYTE = _mojibake_pattern()
# What double-decoded text turns back into: Latin letters, punctuation, currency, CJK, full-width forms.
_PLAUSIBLE = re.compile(r"[\u00a0-\u024f\u2000-\u206f\u20a0-\u20cf\u3000-\u9fff\uff00-\uffef]")


def _broken(text: str) -> str | None:
    """Why the text is broken ("replacement-char", "surrogate", "mojibake"), or None."""
    if "\ufffd" in text:
        return "replacement-char"
    if _SURROGATE.search(text):
        return "surrogate"
    for m in _MOJIBAKE.finditer(text):
        try:
            fixed = bytes(_TO_BYTE[c] for c in m.group(0)).decode("utf-8")
        except UnicodeDecodeError:
            continue
        if _PLAUSIBLE.fullmatch(fixed):
            return "mojibake"
    return None


def _fix_text(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", unicodedata.normalize("NFC", text))


def shingles(text: str, k: int = 5, k_zh: int = 2) -> list[bytes]:
    """Distinct character shingles of the casefolded text without punctuation, as UTF-32 bytes.

    A shingle is `k` characters of English (or any spaced script) or `k_zh` Chinese characters, and
    in mixed text a window of the same weight (a Chinese character counts k / k_zh). Five English
    characters are about one word; five Chinese ones span about three words (a word is 1-3
    characters), so one changed word would break far more of the shingles. With 2-character Chinese
    shingles a changed word costs about the same similarity in both languages (bench/dedup_quality.py).
    """
    norm = " ".join(_PUNCT.sub("", text).casefold().split()) or text.strip()
    data = norm.encode("utf-32-le")  # fixed 4 bytes per character: a shingle is a plain slice
    points = np.frombuffer(data, dtype="<u4")
    cjk = ((points >= 0x3400) & (points <= 0x9FFF)) | ((points >= 0xF900) & (points <= 0xFAFF))
    # Integer weights: k_zh per other character, k per Chinese one; a window weighs k * k_zh.
    weight = np.where(cjk, k, k_zh)
    cum = np.concatenate(([0], np.cumsum(weight)))
    ends = np.searchsorted(cum, cum[:-1] + k * k_zh)  # first end where the window is heavy enough
    full = ends <= len(points)
    if not full.any():
        return [data]
    starts = (4 * np.flatnonzero(full)).tolist()
    return list({data[a:b] for a, b in zip(starts, (4 * ends[full]).tolist(), strict=True)})


def _lsh(threshold: float, num_perm: int):
    """An empty MinHashLSH index; a ValueError naming the config fields when datasketch refuses them."""
    from datasketch import MinHashLSH

    try:
        return MinHashLSH(threshold=threshold, num_perm=num_perm)
    except ValueError as e:  # e.g. "number of bands too small" at thresholds near 1
        raise ValueError(
            f"near_dup_threshold {threshold} with num_perm {num_perm} cannot be indexed ({e}). "
            "Lower near_dup_threshold (exact copies are removed anyway) or raise num_perm."
        ) from None


def near_duplicates(
    texts: Sequence[str],
    threshold: float = 0.85,
    num_perm: int = 128,
    shingle_size: int = 5,
    shingle_size_zh: int = 2,
    seed: int = 1,
) -> list[tuple[int, float] | None]:
    """Find texts that nearly repeat an earlier kept text.

    Each text is compared (MinHash LSH, candidates confirmed by their estimated Jaccard) with the
    texts kept so far only, so every removed text has a kept one at least `threshold` similar;
    chains (A ~ B ~ C with A and C far apart) cannot remove C.

    Returns:
        For each text, None when it is kept, else (index of the kept text it repeats, estimated Jaccard).
    """
    from datasketch import MinHash

    # crc32 (C, deterministic) instead of the default SHA-1: the hash is most of the cost.
    shingled = (shingles(t, shingle_size, shingle_size_zh) for t in texts)
    sigs = MinHash.bulk(shingled, num_perm=num_perm, seed=seed, hashfunc=zlib.crc32)
    lsh = _lsh(threshold, num_perm)
    out: list[tuple[int, float] | None] = []
    for i, sig in enumerate(sigs):
        best: tuple[int, float] | None = None
        for j in lsh.query(sig):
            sim = sig.jaccard(sigs[j])
            if sim >= threshold and (best is None or sim > best[1]):
                best = (j, sim)
        if best is None:
            lsh.insert(i, sig, check_duplication=False)
        out.append(best)
    return out


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
        reasons = [x for x in map(_broken, _strings(r.record, r.kind)) if x]
        if reasons:
            why[reasons[0]] += 1
            gone.append(r)
        else:
            keep.append(_Row(r.index, r.kind, _map_strings(r.record, r.kind, _fix_text)))
    return keep, _removed(gone, cfg, **dict(sorted(why.items())))


def _exact_dedup(rows: list[_Row], cfg: CleanConfig) -> tuple[list[_Row], dict]:
    seen: set = set()
    keep, gone = [], []
    for r in rows:
        key = (r.kind, tuple((role, " ".join(c.split())) for role, c in _dedup_parts(r.record, r.kind)))
        (gone if key in seen else keep).append(r)
        seen.add(key)
    return keep, _removed(gone, cfg)


def _near_dedup(rows: list[_Row], cfg: CleanConfig) -> tuple[list[_Row], dict]:
    dups = near_duplicates([_dedup_text(r.record, r.kind) for r in rows], cfg.near_dup_threshold,
                           cfg.num_perm, cfg.shingle_size, cfg.shingle_size_zh, cfg.seed)
    keep = [r for r, d in zip(rows, dups, strict=True) if d is None]
    gone = [(r, d) for r, d in zip(rows, dups, strict=True) if d is not None]
    examples = [
        {"index": r.index, "duplicate_of": rows[j].index, "similarity": round(sim, 3),
         "text": _preview(r.record, r.kind)}
        for r, (j, sim) in gone[: cfg.max_examples]
    ]
    return keep, {"removed": len(gone), "threshold": cfg.near_dup_threshold, "examples": examples}


def _length_filter(rows: list[_Row], cfg: CleanConfig, count_tokens: Callable[[str], int] | None):
    count = count_tokens or (lambda s: math.ceil(len(s) / 4))
    keep, gone, short, long = [], [], 0, 0
    for r in rows:
        n = max(count(t) for t in _model_texts(r.record, r.kind))
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

        r.record = _map_strings(r.record, r.kind, one)
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
