"""Near-duplicate removal: precision and recall on planted near-duplicates, English and Chinese; speed.

    .venv/bin/python bench/dedup_quality.py

Offline and deterministic. English base paragraphs are docstrings of this Python's standard library
(read with `ast`, nothing imported), 200-800 characters. Chinese ones are generated from jieba's
bundled dictionary: clauses of frequency-weighted words by part of speech (subject, adverb, verb,
object), so character statistics are Chinese even though the sentences say little. Base paragraphs
closer than Jaccard 0.3 to an earlier one are dropped, so no two bases are near-duplicates.

Planted near-duplicates: 1-2 edited copies of 40 % of the bases at an edit rate of 2, 5 or 10 % of
the words (English: split on spaces; Chinese: jieba's words): deletions, insertions, replacements,
adjacent swaps, punctuation changes, case changes (English). Hard negatives: groups of 3 paragraphs that share a
long prefix (50-70 % of their length) and then continue differently. Records are shuffled.

Scoring is over pairs: two records are predicted to be copies when near-dedup puts them in one group
(a kept record and the records removed as its duplicates); they truly are when they come from the
same base. Precision, recall and F1 per language at several thresholds; the default is 0.85.
"""

from __future__ import annotations

import ast
import random
import re
import statistics
import sys
import sysconfig
import time
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.data.clean import CleanConfig, clean_records  # noqa: E402
from training.data.dedup import near_duplicates, shingles  # noqa: E402

SEED = 0
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9)
RATES = (0.02, 0.05, 0.10)
N_BASES = {"en": 500, "zh": 500}
N_RESERVE = 150  # per language: prefixes and continuations for hard negatives
ZH_PUNCT = "，。、；："


@dataclass
class Item:
    text: str
    lang: str
    group: int
    """Same group = same base paragraph (a true near-duplicate pair)."""
    kind: str
    """base, variant or hard-negative."""
    rate: float = 0.0


def english_paragraphs() -> list[str]:
    """Prose paragraphs (200-800 chars) from standard-library docstrings, doctests and code left out."""
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"test", "tests", "site-packages", "idlelib", "lib2to3", "turtledemo"}
    out: list[str] = []
    for f in sorted(p for p in root.rglob("*.py") if not skip & set(p.parts)):
        try:
            tree = ast.parse(f.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            cur = ""
            for para in re.split(r"\n\s*\n", ast.get_docstring(node) or ""):
                if ">>>" in para or re.search(r"^\s{4,}", para, re.M):
                    cur = ""
                    continue
                cur = (cur + " " + " ".join(para.split())).strip()
                if len(cur) >= 200:
                    if len(cur) <= 800 and sum(c.isalpha() or c == " " for c in cur) / len(cur) > 0.9:
                        out.append(cur)
                    cur = ""
    return list(dict.fromkeys(out))


def chinese_paragraphs(n: int, rng: random.Random) -> list[str]:
    """`n` paragraphs of 200-500 characters built from jieba's dictionary words by part of speech."""
    import jieba

    by_pos: dict[str, tuple[list[str], list[float]]] = {}  # part of speech -> words, cumulative weights
    with open(Path(jieba.__file__).parent / "dict.txt", encoding="utf-8") as f:
        for line in f:
            word, freq, pos = line.split()
            if re.fullmatch(r"[\u4e00-\u9fff]+", word) and int(freq) >= 20:
                words, cum = by_pos.setdefault(pos[0], ([], []))
                words.append(word)
                cum.append((cum[-1] if cum else 0.0) + int(freq) ** 0.5)  # flatter than raw frequency

    def pick(pos: str) -> str:
        words, cum = by_pos[pos]
        return rng.choices(words, cum_weights=cum)[0]

    def clause() -> str:
        subject = pick(rng.choice("rnnt"))
        adverb = pick("d") if rng.random() < 0.5 else ""
        verb = pick("v") + (rng.choice(["了", "着", "过"]) if rng.random() < 0.3 else "")
        obj = (pick("a") + "的" if rng.random() < 0.4 else "") + pick(rng.choice("nnv"))
        place = "在" + pick("n") + pick("f") if rng.random() < 0.2 else ""
        return subject + place + adverb + verb + obj

    out = []
    for _ in range(n):
        target, text = rng.randint(200, 500), ""
        while len(text) < target:
            clauses = [clause() for _ in range(rng.randint(2, 4))]
            joins = [rng.choice(["，", "，", "，而且", "，但是", "，所以"]) for _ in clauses[1:]]
            text += clauses[0] + "".join(j + c for j, c in zip(joins, clauses[1:], strict=True)) + "。"
        out.append(text)
    return out


def distinct(paras: list[str], max_jaccard: float = 0.3) -> list[str]:
    """Drop each paragraph whose exact shingle Jaccard with an earlier kept one exceeds `max_jaccard`."""
    import numpy as np
    from scipy.sparse import csr_matrix

    vocab: dict[bytes, int] = {}
    rows, cols = [], []
    for i, p in enumerate(paras):
        for s in shingles(p):
            rows.append(i)
            cols.append(vocab.setdefault(s, len(vocab)))
    x = csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(paras), len(vocab)))
    inter = (x @ x.T).toarray()
    size = np.diag(inter)
    jac = inter / (size[:, None] + size[None, :] - inter)
    kept: list[int] = []
    for i in range(len(paras)):
        if all(jac[i, j] <= max_jaccard for j in kept):
            kept.append(i)
    return [paras[i] for i in kept]


def edit_en(text: str, rate: float, vocab: list[str], rng: random.Random) -> str:
    words = text.split()
    for _ in range(max(1, round(rate * len(words)))):
        i = rng.randrange(len(words))
        op = rng.choice(["delete", "insert", "replace", "swap", "punct", "case"])
        if op == "delete" and len(words) > 5:
            del words[i]
        elif op == "insert":
            words.insert(i, rng.choice(vocab))
        elif op == "replace":
            words[i] = rng.choice(vocab)
        elif op == "swap" and i + 1 < len(words):
            words[i], words[i + 1] = words[i + 1], words[i]
        elif op == "punct" and words[i].rstrip(",.;:"):
            words[i] = words[i].rstrip(",.;:") if words[i][-1] in ",.;:" else words[i] + rng.choice(",.;")
        elif op == "case":
            words[i] = words[i].lower() if words[i][:1].isupper() else words[i].capitalize()
    return " ".join(words)


def edit_zh(text: str, rate: float, vocab: list[str], rng: random.Random) -> str:
    """Edit `rate` of the jieba words: Chinese has no spaces, and a word is 1-4 characters."""
    import jieba

    words = jieba.lcut(text)
    for _ in range(max(1, round(rate * len(words)))):
        i = rng.randrange(len(words))
        op = rng.choice(["delete", "insert", "replace", "swap", "punct"])
        if op == "delete" and len(words) > 5:
            del words[i]
        elif op == "insert":
            words.insert(i, rng.choice(vocab))
        elif op == "replace":
            words[i] = rng.choice(vocab)
        elif op == "swap" and i + 1 < len(words):
            words[i], words[i + 1] = words[i + 1], words[i]
        elif op == "punct":
            words[i] = rng.choice(ZH_PUNCT) if words[i] in ZH_PUNCT else words[i] + rng.choice(ZH_PUNCT)
    return "".join(words)


def vocabulary(texts: list[str], lang: str) -> list[str]:
    """Words to insert: English words, or jieba's Chinese words, found in `texts`."""
    if lang == "en":
        return sorted({w for t in texts for w in t.split()})
    import jieba

    return sorted({w for t in texts for w in jieba.lcut(t) if re.fullmatch(r"[\u4e00-\u9fff]+", w)})


def build_set(rng: random.Random) -> list[Item]:
    """Bases, their edited copies and hard negatives for both languages, shuffled."""
    pools = {"en": distinct(english_paragraphs()), "zh": distinct(chinese_paragraphs(900, rng))}
    items: list[Item] = []
    group = 0
    for lang, pool in pools.items():
        need = N_BASES[lang] + N_RESERVE
        if len(pool) < need:
            raise SystemExit(f"only {len(pool)} distinct {lang} paragraphs, need {need}")
        picked = rng.sample(pool, need)
        bases, reserve = picked[: N_BASES[lang]], picked[N_BASES[lang]:]
        vocab = vocabulary(bases, lang)
        for base in bases:
            group += 1
            items.append(Item(base, lang, group, "base"))
            if rng.random() < 0.4:
                for _ in range(rng.choice([1, 1, 2])):
                    rate = rng.choice(RATES)
                    text = edit_en(base, rate, vocab, rng) if lang == "en" else edit_zh(base, rate, vocab, rng)
                    items.append(Item(text, lang, group, "variant", rate))
        sep = " " if lang == "en" else ""
        for g in range(0, N_RESERVE - 3, 4):  # a prefix paragraph and three continuations
            prefix_src, *tails = reserve[g : g + 4]
            frac = rng.uniform(0.5, 0.7)
            prefix = prefix_src[: int(len(prefix_src) * frac)]
            tail_len = int(len(prefix) * (1 - frac) / frac)
            for tail in tails:
                group += 1
                items.append(Item(prefix + sep + tail[:tail_len], lang, group, "hard-negative"))
    rng.shuffle(items)
    return items


def pairs(labels: list[int], idx: list[int]) -> set[tuple[int, int]]:
    by: dict[int, list[int]] = {}
    for i in idx:
        by.setdefault(labels[i], []).append(i)
    return {p for members in by.values() for p in combinations(sorted(members), 2)}


def score(items: list[Item], dups: list, lang: str) -> tuple[float, float, float, int]:
    """Pairwise precision, recall, F1 and the true pair count for one language."""
    idx = [i for i, it in enumerate(items) if it.lang == lang]
    predicted = pairs([i if d is None else d[0] for i, d in enumerate(dups)], idx)
    true = pairs([it.group for it in items], idx)
    hit = len(predicted & true)
    p = hit / len(predicted) if predicted else 1.0
    r = hit / len(true) if true else 1.0
    return p, r, 2 * p * r / (p + r) if p + r else 0.0, len(true)


def exact_jaccard(a: str, b: str) -> float:
    sa, sb = set(shingles(a)), set(shingles(b))
    return len(sa & sb) / len(sa | sb)


def main() -> None:
    rng = random.Random(SEED)
    t0 = time.perf_counter()
    items = build_set(rng)
    texts = [it.text for it in items]
    n = {lang: sum(it.lang == lang for it in items) for lang in ("en", "zh")}
    print(f"set: {len(items)} records ({n['en']} en, {n['zh']} zh), "
          f"{sum(it.kind == 'variant' for it in items)} planted near-duplicates, "
          f"{sum(it.kind == 'hard-negative' for it in items)} hard negatives; built in {time.perf_counter() - t0:.0f} s")

    print("\n| threshold | lang | true pairs | precision | recall | F1 |\n| --- | --- | --- | --- | --- | --- |")
    at_default = None
    for t in THRESHOLDS:
        dups = near_duplicates(texts, threshold=t)
        if t == CleanConfig().near_dup_threshold:
            at_default = dups
        for lang in ("en", "zh"):
            p, r, f1, n_true = score(items, dups, lang)
            mark = " (default)" if t == CleanConfig().near_dup_threshold else ""
            print(f"| {t:g}{mark} | {lang} | {n_true} | {p:.3f} | {r:.3f} | {f1:.3f} |")

    # Recall by edit rate: is each planted copy grouped with its base? (default threshold)
    rep = [i if d is None else d[0] for i, d in enumerate(at_default)]
    base_of = {it.group: i for i, it in enumerate(items) if it.kind == "base"}
    print("\n| lang | edit rate | copies | caught at 0.85 | median exact Jaccard to base |\n| --- | --- | --- | --- | --- |")
    for lang in ("en", "zh"):
        for rate in RATES:
            vs = [i for i, it in enumerate(items) if it.kind == "variant" and it.lang == lang and it.rate == rate]
            caught = sum(rep[i] == rep[base_of[items[i].group]] for i in vs)
            med = statistics.median(exact_jaccard(items[i].text, items[base_of[items[i].group]].text) for i in vs)
            print(f"| {lang} | {rate:.0%} | {len(vs)} | {caught / len(vs):.3f} | {med:.2f} |")
    hard = [i for i, it in enumerate(items) if it.kind == "hard-negative"]
    grouped = sum(1 for i in hard if rep.count(rep[i]) > 1)
    print(f"\nhard negatives put in a group with another record at 0.85: {grouped} of {len(hard)}")

    # Why Chinese shingles are 2 characters: the same Chinese set with longer shingles.
    print("\n| Chinese shingle size | P / R at 0.7 | P / R at 0.85 |\n| --- | --- | --- |")
    for k_zh in (2, 3, 4, 5):
        cells = []
        for t in (0.7, 0.85):
            p, r, _, _ = score(items, near_duplicates(texts, threshold=t, shingle_size_zh=k_zh), "zh")
            cells.append(f"{p:.3f} / {r:.3f}")
        print(f"| {k_zh}{' (default)' if k_zh == CleanConfig().shingle_size_zh else ''} | {' | '.join(cells)} |")

    # Throughput on 10k records of ~200-800 characters: fresh edited copies of the set's texts.
    vocab = {lang: vocabulary([it.text for it in items if it.lang == lang], lang) for lang in ("en", "zh")}
    edit = {"en": edit_en, "zh": edit_zh}
    big = [{"text": it.text if k == 0 else edit[it.lang](it.text, 0.3, vocab[it.lang], rng)}
           for k in range(6) for it in items][:10_000]
    chars = sum(len(r["text"]) for r in big)
    print(f"\n| throughput: {len(big)} records, mean {chars / len(big):.0f} characters, one process "
          "| seconds | records/s | characters/s |\n| --- | --- | --- | --- |")
    runs = [("near_duplicates (MinHash + LSH)", lambda: near_duplicates([r["text"] for r in big])),
            ("clean_records, all steps", lambda: clean_records(big)),
            ("clean_records, all steps + mask_pii", lambda: clean_records(big, CleanConfig(mask_pii=True)))]
    for name, run in runs:
        t0 = time.perf_counter()
        run()
        dt = time.perf_counter() - t0
        print(f"| {name} | {dt:.1f} | {len(big) / dt:,.0f} | {chars / dt:,.0f} |")

if __name__ == "__main__":
    main()
