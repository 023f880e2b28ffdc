"""Precision of each rule in training/data/rules.py on real documents nobody here wrote.

    .venv/bin/python bench/rule_precision.py --write-sheet   # sample pairs into the label sheet
    (label each row of bench/labels/rule_precision.jsonl "good" or "bad", with a note for "bad")
    .venv/bin/python bench/rule_precision.py                 # precision per rule, from the labels

Documents: the Debian FAQ and the Debian Reference manual, English and Chinese, HTML read by the
project's own loader, so the rules see exactly what ingestion sees. Per (set, language, rule) up to
`--sample` pairs are drawn; the draw orders pairs by a seeded hash of the pair itself, so a change to
the rules that adds or drops a few pairs leaves the rest of the sample (and its labels) in place.
A row is "good" when a customer could plausibly ask the question and the answer answers it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import fetch_debian_faq, fetch_debian_reference  # noqa: E402
from rag.loaders import Document, load_file  # noqa: E402
from training.data.rules import find_pairs  # noqa: E402

SHEET = Path(__file__).resolve().parent / "labels" / "rule_precision.jsonl"
RULES = ("qa-markers", "question-heading", "definition", "policy")
SHEET_ANSWER = 600
KEY_ANSWER = 200


def documents() -> list[tuple[str, Document]]:
    """(set name, Document) for every English and Chinese HTML page of both sets."""
    faq, ref = fetch_debian_faq(), fetch_debian_reference()
    files = [("debian-faq", faq, p) for p in [*sorted(faq.glob("*.en.html")), *sorted(faq.glob("zh-cn/*.zh-cn.html"))]]
    files += [("debian-reference", ref, p) for p in sorted(ref.glob("*.html"))]
    return [(name, load_file(p, root)) for name, root, p in files]


def key(row: dict) -> tuple[str, str, str, str]:
    return row["set"], row["rule"], row["question"], row["answer"][:KEY_ANSWER]


def find_all() -> dict[tuple[str, str, str], list[dict]]:
    """Every pair the rules find, grouped by (set, language, rule)."""
    groups = defaultdict(list)
    for name, doc in documents():
        for p in find_pairs(doc):
            if p.rule in RULES:
                groups[name, doc.language, p.rule].append(
                    {"set": name, "language": doc.language, "rule": p.rule, "source": doc.source,
                     "question": p.question, "answer": p.answer})
    return groups


def sample(pairs: list[dict], n: int, seed: int) -> list[dict]:
    def rank(row: dict) -> str:
        return hashlib.sha256(json.dumps([seed, *key(row)], ensure_ascii=False).encode()).hexdigest()

    return sorted(pairs, key=rank)[:n]


def read_sheet() -> list[dict]:
    if not SHEET.exists():
        return []
    rows = [json.loads(line) for line in SHEET.read_text(encoding="utf-8").splitlines() if line.strip()]
    bad = [r for r in rows if r.get("label") not in (None, "good", "bad")]
    if bad:
        sys.exit(f"{SHEET}: label must be \"good\", \"bad\" or null; got {bad[0]['label']!r} ({bad[0]['question']!r})")
    return rows


def wilson(good: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p, d = good / n, 1 + z * z / n
    mid, half = (p + z * z / (2 * n)) / d, z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, mid - half), min(1.0, mid + half)


def precision(good: int, n: int) -> str:
    if n == 0:
        return "–"
    lo, hi = wilson(good, n)
    return f"{good / n:.0%} [{lo:.0%}, {hi:.0%}]"


def write_sheet(drawn: list[dict]) -> None:
    old = read_sheet()
    labels = {key(r): r for r in old}
    rows = []
    for r in drawn:
        prev = labels.pop(key(r), {})
        rows.append({**r, "answer": r["answer"][:SHEET_ANSWER], "label": prev.get("label"), "note": prev.get("note", "")})
    kept = [r for r in labels.values() if r.get("label")]  # labelled rows no longer drawn: never lose a label
    SHEET.parent.mkdir(parents=True, exist_ok=True)
    SHEET.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows + kept), encoding="utf-8")
    print(f"{SHEET}: {len(rows)} sampled rows ({sum(1 for r in rows if r['label'])} already labelled), "
          f"{len(kept)} labelled rows outside the sample kept")


def report(groups: dict, drawn: list[dict]) -> None:
    labels = {key(r): r["label"] for r in read_sheet() if r.get("label")}
    stale = len(labels.keys() - {key(r) for r in drawn})
    print("| set | language | rule | pairs found | sampled | labelled | good | precision [95 % Wilson] |")
    print("|---|---|---|---:|---:|---:|---:|---|")
    # per rule: pairs found, sampled, labelled, good; pairs found and pairs x precision of labelled groups
    total = {rule: [0, 0, 0, 0, 0, 0.0] for rule in RULES}
    for set_name in ("debian-faq", "debian-reference"):
        for lang in ("en", "zh"):
            for rule in RULES:
                rows = [r for r in drawn if (r["set"], r["language"], r["rule"]) == (set_name, lang, rule)]
                got = [labels[key(r)] for r in rows if key(r) in labels]
                good, found = got.count("good"), len(groups.get((set_name, lang, rule), []))
                for i, v in enumerate((found, len(rows), len(got), good)):
                    total[rule][i] += v
                if got:
                    total[rule][4] += found
                    total[rule][5] += found * good / len(got)
                print(f"| {set_name} | {lang} | {rule} | {found} | {len(rows)} | {len(got)} | {good} | "
                      f"{precision(good, len(got))} |")
    for rule, (found, n, labelled, good, covered, weighted) in total.items():
        w = f"; {weighted / covered:.0%} weighted by pairs found" if covered else ""
        print(f"| **all** | | **{rule}** | {found} | {n} | {labelled} | {good} | **{precision(good, labelled)}**{w} |")
    unlabelled = sum(t[1] - t[2] for t in total.values())
    print(f"\n{unlabelled} sampled rows unlabelled (not counted above); "
          f"{stale} labelled rows in {SHEET.name} are not in the current sample (ignored).")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sample", type=int, default=20, help="pairs drawn per (set, language, rule)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write-sheet", action="store_true", help=f"write the sample to {SHEET.name}, keeping labels")
    args = ap.parse_args()
    groups = find_all()
    drawn = [r for g in sorted(groups) for r in sample(groups[g], args.sample, args.seed)]
    if args.write_sheet:
        write_sheet(drawn)
    else:
        report(groups, drawn)


if __name__ == "__main__":
    main()
