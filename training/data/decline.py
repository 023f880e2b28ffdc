"""Examples that teach the model to decline: a question whose retrieved context lacks the answer, and
a question outside the documents altogether, each answered with a short decline in the user's
language that offers a person (its wording: rag/prompt.py, or the workspace's prompt.yaml).

Every rule-made example has its answer in its context, so a model trained only on those learns to
answer whatever it is given; served, it then invents answers when retrieval finds nothing relevant, or
answers "what's the weather tomorrow?" from a shipping policy. Two kinds of example correct that:

- `unanswerable`: a share of the document questions asked again with the oracle chunk removed and the
  retriever's next hits in its place (the hard negatives RAFT uses: chunks that are close to the
  question but do not contain the answer);
- `out-of-domain`: everyday questions outside any company's documents (training/data/ood/*.txt, in
  English and Chinese, plus the user's own file), with whatever the retriever returns for them.

In DPO data both become pairs whose chosen side is the decline and whose rejected side is the
model's own (invented) answer (training/data/build.py).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from rag import Retriever, build_rag_messages
from rag.loaders import detect_language
from rag.prompt import BUILT_IN, Prompts
from rag.retrieval import Hit
from training.data.raft import hard_negatives, norm_text
from training.data.seeds import Seed
from training.errors import BadConfig

SAME_SECTION_SPARE = 4
"""Hits fetched beyond k, so that k remain after dropping the other chunks of the answer's section."""


def _share(seed_value: int, key: str) -> float:
    return int(hashlib.sha256(f"{seed_value}:decline:{key}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def chosen_for_decline(seeds: list[Seed], share: float, seed_value: int = 0) -> list[Seed]:
    """The seeds (about `share` of them, the same on every build) that also get an unanswerable example."""
    return [s for s in seeds if _share(seed_value, s.key) < share]


def unanswerable_example(seed: Seed, retriever: Retriever, k: int, prompts: Prompts = BUILT_IN) -> dict | None:
    """The seed's question with `k` retrieved chunks none of which is the oracle or holds the answer,
    answered with the decline (`prompts`, rag/prompt.py); None when the retriever finds no such chunk."""
    section = (seed.doc.id, seed.chunk.heading_path)
    for pool in (k + SAME_SECTION_SPARE, 4 * (k + SAME_SECTION_SPARE)):  # a wider pool when the section is long
        context = [h for h in hard_negatives(seed, retriever, pool)
                   if (h.metadata.get("doc_id"), h.heading_path) != section  # the answer's other chunks
                   and may_answer(h, seed) is None][:k]
        if len(context) == k:
            break
    if not context:
        return None
    messages = build_rag_messages([{"role": "user", "content": seed.question}], context, prompts=prompts)
    messages.append({"role": "assistant", "content": prompts.decline_for(seed.doc.language)})
    return {"messages": messages,
            "meta": {**seed.meta(), "rule": "unanswerable", "declines": True,
                     "retrieved": [h.chunk_id for h in context]}}


ANSWER_OVERLAP = 0.4
"""Share of the answer's character 4-grams from which a chunk is taken to state the answer too (related English
sections of the Debian FAQ share up to ~0.3 with an answer they do not give; restatements 0.45 and more)."""


def may_answer(hit: Hit, seed: Seed) -> str | None:
    """Why `hit` may answer the seed's question although it is not the answer's section, or None: FAQs
    repeat themselves, and a context meant to lack the answer must not hold it (a decline taught beside
    the answer teaches declining what the context answers).

    - the section's parent (its chapter's introduction, which often summarises the answer);
    - a cross-reference naming the question ("see 6.10 "What is in the pool directory?"");
    - much of the answer's wording (4-grams of characters, so Chinese and English alike).
    """
    own = seed.chunk.heading_path
    if hit.metadata.get("doc_id") == seed.doc.id and hit.heading_path and own.startswith(hit.heading_path + " > "):
        return "the section's parent"
    text, question = norm_text(hit.text), norm_text(seed.question)
    if len(question) >= 6 and question in text:
        return "names the question"
    grams = _grams(norm_text(seed.answer)[:400])
    if grams and len(grams & _grams(text)) / len(grams) >= ANSWER_OVERLAP:
        return "states much of the answer"
    return None


def _grams(text: str, n: int = 4) -> set[str]:
    return {text[i : i + n] for i in range(len(text) - n + 1)}


@dataclass
class OodQuestion:
    question: str
    language: str
    origin: str
    """Where it came from: "built-in" or the user's file (name:line)."""


def builtin_ood(languages: set[str]) -> list[OodQuestion]:
    """The bundled everyday questions in each of `languages` (en, zh)."""
    out = []
    for lang in sorted(languages & {"en", "zh"}):
        text = resources.files("training.data").joinpath(f"ood/{lang}.txt").read_text(encoding="utf-8")
        out += [OodQuestion(q, lang, "built-in") for q in _questions(text)]
    return out


def _questions(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def read_ood(path: Path) -> list[OodQuestion]:
    """The user's own out-of-domain questions: a text file, one per line (`#` comments); each line's
    language is detected.

    Raises:
        BadConfig: the file is missing, unreadable, or holds no question (names the file).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise BadConfig(f"--ood {path}: cannot read it ({e}). Pass a UTF-8 text file, one question per line.") from None
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        q = line.strip()
        if q and not q.startswith("#"):
            out.append(OodQuestion(q, detect_language(q), f"{path.name}:{n}"))
    if not out:
        raise BadConfig(f"--ood {path}: no question in it. Write one question per line.")
    return out


def ood_example(q: OodQuestion, retriever: Retriever | None, k: int, prompts: Prompts = BUILT_IN) -> dict:
    """An out-of-domain question with what the retriever returns for it (as served), answered with the
    decline. Each question is its own pseudo-document, so the split holds some of them out."""
    hits = retriever.search(q.question, k) if retriever else []
    messages = build_rag_messages([{"role": "user", "content": q.question}], hits, prompts=prompts)
    messages.append({"role": "assistant", "content": prompts.decline_for(q.language)})
    key = hashlib.sha256(q.question.encode()).hexdigest()[:12]
    return {"messages": messages,
            "meta": {"doc_id": f"ood:{q.language}:{key}", "source": f"out-of-domain ({q.origin.split(':')[0]})",
                     "origin": q.origin,
                     "rule": "out-of-domain", "language": q.language, "declines": True,
                     "retrieved": [h.chunk_id for h in hits]}}
