"""What a dataset holds: counts, lengths (with a histogram PNG), languages, sources, rules; samples.

Backs `onboard data stats` and `onboard data preview`. Works on any file `onboard data validate`
accepts; lengths are in tokens of the target tokenizer when one is given, else in characters.
"""

from __future__ import annotations

import random
import statistics
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from rag.loaders import detect_language
from training.data.files import read_canonical


def record_text(rec: dict) -> str:
    """The text a canonical record trains on, roles joined, for lengths and language."""
    if "text" in rec:
        return rec["text"]
    if "messages" in rec:
        return "\n".join(m["content"] for m in rec["messages"])
    msgs = [*rec["prompt"], *rec["chosen"]] if isinstance(rec["prompt"], list) else []
    return "\n".join(m["content"] for m in msgs)


def load(path: str | Path) -> list[dict]:
    """Every record of a dataset file, canonical (file:line errors; `onboard data validate` lists them all)."""
    return read_canonical(path)


def _shape(rec: dict) -> str:
    return "text" if "text" in rec else "chat" if "messages" in rec else "preference"


def example_kind(meta: dict) -> str:
    """What an example teaches: a question as found, a paraphrase of one, or a decline (unanswerable: the
    context lacks the answer; out-of-domain); "other" for user files and feedback."""
    if meta.get("declines"):
        return meta.get("rule", "decline")
    if "wording" in meta:
        return "paraphrase" if meta["wording"] else "question"
    return "other"


def dataset_stats(path: str | Path, count_tokens: Callable[[str], int] | None = None,
                  histogram: str | Path | None = None) -> dict:
    """Counts by shape, language, source and rule; length percentiles; optional histogram PNG."""
    rows = load(path)
    unit = "tokens" if count_tokens else "characters"
    measure = count_tokens or len
    lengths = [measure(record_text(r)) for r in rows]
    langs = Counter(r.get("meta", {}).get("language") or detect_language(record_text(r)) for r in rows)
    q = statistics.quantiles(lengths, n=20) if len(lengths) > 1 else [lengths[0]] * 19
    out = {
        "file": str(path), "records": len(rows),
        "shapes": dict(Counter(_shape(r) for r in rows)),
        "languages": dict(langs),
        "sources": dict(Counter(r.get("meta", {}).get("source", "(none)") for r in rows).most_common(20)),
        "rules": dict(Counter(r.get("meta", {}).get("rule", "(none)") for r in rows)),
        "kinds": dict(Counter(example_kind(r.get("meta", {})) for r in rows)),
        "length_unit": unit,
        "length": {"min": min(lengths), "p50": round(q[9]), "p95": round(q[18]), "max": max(lengths),
                   "mean": round(sum(lengths) / len(lengths), 1)},
    }
    if histogram:
        out["histogram"] = str(plot_lengths(lengths, histogram, f"{Path(path).name}: length in {unit}"))
    return out


def plot_lengths(lengths: list[int], png: str | Path, title: str) -> Path:
    """Write a length histogram (matplotlib, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.hist(lengths, bins=min(40, max(5, len(set(lengths)))), color="#3b7dd8")
    ax.set_title(title)
    ax.set_xlabel("length")
    ax.set_ylabel("records")
    fig.tight_layout()
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    plt.close(fig)
    return png


def samples(path: str | Path, n: int = 5, seed: int = 0) -> list[dict]:
    """`n` records picked at random (seeded), canonical."""
    rows = load(path)
    return random.Random(seed).sample(rows, min(n, len(rows)))
