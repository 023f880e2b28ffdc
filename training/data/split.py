"""Hold out whole source documents for evaluation, stratified by language.

Splitting by example lets a question's paraphrase (or another question on the same chunk) sit in
both train and test, so the test loss flatters the model. We split by document: every example
made from a document lands on the same side, so no chunk's questions are in both. Each language is
split on its own, so a Chinese minority still gets Chinese test examples.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict


def _rank(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def split_by_document(examples: list[dict], test_fraction: float, seed: int = 0,
                      held: set[str] | None = None) -> tuple[list[dict], list[dict]]:
    """Return (train, test). Examples without `meta.doc_id` (user files, feedback) always train.

    `held`: the documents to hold out, as another dataset of the workspace did (so that no stage trains on
    what evaluation asks); the share is then not drawn again.

    Per language, documents (in a seeded hash order) go to test until about `test_fraction` of that
    language's examples are held out; a document that would push the test share past twice the
    target is skipped, and at least one document of each language always stays in training.
    Out-of-domain questions (training/data/decline.py: each its own pseudo-document) are split apart
    from the documents: counted with them, fifty one-question pseudo-documents would fill the
    held-out share and leave the real documents almost all in training.
    """
    if test_fraction <= 0:
        return list(examples), []
    test_docs = set(held) if held is not None else _held_out(examples, test_fraction, seed)
    train = [e for e in examples if e.get("meta", {}).get("doc_id") not in test_docs]
    test = [e for e in examples if e.get("meta", {}).get("doc_id") in test_docs]
    return train, test


def _held_out(examples: list[dict], test_fraction: float, seed: int) -> set[str]:
    by_lang: dict[tuple[str, bool], Counter] = defaultdict(Counter)
    for e in examples:
        meta = e.get("meta", {})
        if meta.get("doc_id"):
            stratum = (meta.get("language", "?"), meta.get("rule", "").startswith("out-of-domain"))
            by_lang[stratum][meta["doc_id"]] += 1
    test_docs: set[str] = set()
    for sizes in by_lang.values():
        total, target = sum(sizes.values()), test_fraction * sum(sizes.values())
        order = sorted(sizes, key=lambda d: _rank(seed, d))
        held = 0
        for doc in order:
            if held >= target or len([d for d in order if d in test_docs]) + 1 >= len(order):
                break
            if held + sizes[doc] <= max(2 * target, 1):
                test_docs.add(doc)
                held += sizes[doc]
        if not held and len(order) >= 2:  # every document is large: hold out the smallest if it is < half
            smallest = min(order, key=lambda d: (sizes[d], _rank(seed, d)))
            if sizes[smallest] * 2 <= total:
                test_docs.add(smallest)
    return test_docs
