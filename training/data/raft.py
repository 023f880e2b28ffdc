"""RAFT examples (Zhang et al. 2024, "RAFT: Adapting Language Model to Domain Specific RAG").

Each example is a question, its oracle chunk and `distractors` other chunks, in the very prompt the
server builds (`rag.build_rag_messages`). The distractors are hard negatives from our own
retriever: the top hits for the question that are not the oracle and do not contain the answer.
In a fraction 1 - P of the examples the oracle is left out (replaced by one more distractor, so the
prompt always holds the same number of chunks): the model learns to use the context when the
answer is there and to fall back on what it knows when it is not.

Answers: with a teacher, the RAFT chain of thought (`##Reason: ... ##begin_quote## ... ##end_quote##
... ##Answer: ...`); without one, the document's own answer citing the oracle's number, e.g. `[2]`.
"""

from __future__ import annotations

import hashlib
import random
import re

from rag import Retriever, build_rag_messages
from rag.prompt import BUILT_IN, Prompts
from rag.retrieval import Hit
from training.data.seeds import Seed

FETCH_EXTRA = 8
"""Hits fetched beyond what is needed, so that enough remain after removing the oracle and
chunks that contain the answer."""


def norm_text(text: str) -> str:
    return re.sub(r"\W+", "", text).lower()


def _hash01(*parts: object) -> float:
    h = hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()
    return int(h[:8], 16) / 0xFFFFFFFF


def chunk_hit(c) -> Hit:
    return Hit(c.id, c.source, c.heading_path, c.text, 1.0, c.metadata())


def hard_negatives(seed: Seed, retriever: Retriever, n: int) -> list[Hit]:
    """The retriever's best hits for the question, minus the oracle and any chunk holding the answer."""
    answer = norm_text(seed.answer)[:40]
    out = []
    for h in retriever.search(seed.question, n + FETCH_EXTRA):
        if h.chunk_id == seed.chunk.id or (answer and answer in norm_text(h.text)):
            continue
        out.append(h)
        if len(out) == n:
            break
    return out


def raft_answer(seed: Seed, oracle_pos: int | None) -> str:
    """The target answer: teacher reasoning when there is one, else a cited plain answer."""
    if seed.raft:
        return seed.raft.strip()
    if seed.reason:
        return f"##Reason: {seed.reason.strip()}\n##Answer: {seed.answer.strip()}"
    if oracle_pos is None:
        return seed.answer.strip()
    return f"{seed.answer.strip()} [{oracle_pos}]"


def _fill(seed: Seed, negs: list[Hit], pool: list[Hit], n: int, rng: random.Random) -> list[Hit]:
    """Top up with random chunks (same language first) when the retriever found too few negatives,
    as in a small corpus or a query BM25 barely matches."""
    answer = norm_text(seed.answer)[:40]
    taken = {h.chunk_id for h in negs} | {seed.chunk.id}
    spare = [h for h in pool if h.chunk_id not in taken and not (answer and answer in norm_text(h.text))]
    rng.shuffle(spare)
    spare.sort(key=lambda h: h.metadata.get("language") != seed.doc.language)
    return negs + spare[: n - len(negs)]


def make_example(seed: Seed, retriever: Retriever, distractors: int, p: float, rng_seed: int = 0,
                 pool: list[Hit] | None = None, prompts: Prompts = BUILT_IN) -> dict:
    """One RAFT example in the serving layout, with provenance in `meta`.

    Args:
        pool: every chunk as a Hit; random distractors are drawn from it when the retriever returns
            too few hard negatives (recorded in meta as `random_distractors`).
    """
    keep_oracle = _hash01(rng_seed, "oracle", seed.key) < p
    want = distractors + (0 if keep_oracle else 1)
    negs = hard_negatives(seed, retriever, want)
    hard = len(negs)
    if hard < want and pool:
        negs = _fill(seed, negs, pool, want, random.Random(f"{rng_seed}:fill:{seed.key}"))
    context = negs[:distractors] + [chunk_hit(seed.chunk)] if keep_oracle else negs
    random.Random(f"{rng_seed}:{seed.key}").shuffle(context)
    pos = next((i for i, h in enumerate(context, 1) if h.chunk_id == seed.chunk.id), None)
    messages = build_rag_messages([{"role": "user", "content": seed.question}], context, prompts=prompts)
    messages.append({"role": "assistant", "content": raft_answer(seed, pos)})
    return {
        "messages": messages,
        "meta": {**seed.meta(), "oracle_in_context": keep_oracle, "oracle_position": pos,
                 "distractors": [h.chunk_id for h in context if h.chunk_id != seed.chunk.id],
                 "random_distractors": len(negs) - hard,
                 "retrieved": [h.chunk_id for h in context]},
    }
