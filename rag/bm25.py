"""BM25 over the ingested chunks (bm25s), with Chinese segmented by jieba and English split into words.

The index lives beside the Chroma store and is rebuilt from the collection whenever it is stale, so
it never disagrees with the dense index for long.
"""

from __future__ import annotations

import json
import logging
import re
from functools import cache
from pathlib import Path

from rag.io import publish_dir

log = logging.getLogger(__name__)

_TOKEN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+|[a-z0-9]+(?:['’][a-z]+)?")
_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# Short, high-frequency words that carry no topic (English) or particles (Chinese).
_STOP = frozenset(
    "a an and are as at be by can do does for from has have how i if in is it its me my of on or our so "
    "that the their there this to was we what when where which who why will with you your "
    "的 了 是 在 和 与 或 吗 呢 吧 啊 我 你 您 我们 你们 这 那 有 个 就 都 也".split()
)


@cache
def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def tokenize(text: str) -> list[str]:
    """Lower-cased words; runs of Chinese characters segmented by jieba (search mode: words and sub-words)."""
    out = []
    for tok in _TOKEN.findall(text.lower()):
        if _CJK_RUN.match(tok):
            out.extend(w for w in _jieba().lcut_for_search(tok) if w.strip() and w not in _STOP)
        elif tok not in _STOP:
            out.append(tok)
    return out


class BM25Index:
    """A persisted BM25 index of chunk ids, with their metadata for filtering."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.ids: list[str] = []
        self.metas: list[dict] = []
        self.texts: list[str] = []
        self._bm25 = None

    def __len__(self) -> int:
        return len(self.ids)

    def build(self, ids: list[str], texts: list[str], metas: list[dict]) -> None:
        """Index the chunks and save atomically (a temp folder, then a rename)."""
        import bm25s

        self.ids, self.metas, self.texts = list(ids), list(metas), list(texts)
        self._bm25 = bm25s.BM25()
        corpus = [tokenize(t) or ["\u2205"] for t in texts]  # an empty document still needs a token
        if corpus:
            self._bm25.index(corpus, show_progress=False)
        with publish_dir(self.path) as tmp:
            if corpus:
                self._bm25.save(str(tmp / "bm25s"))
            (tmp / "chunks.json").write_text(json.dumps({"ids": self.ids, "metas": self.metas, "texts": self.texts},
                                                        ensure_ascii=False))

    def load(self) -> bool:
        """Load from disk; False if there is no (complete) index there."""
        import bm25s

        f = self.path / "chunks.json"
        if not f.exists():
            return False
        data = json.loads(f.read_text())
        self.ids, self.metas, self.texts = data["ids"], data["metas"], data.get("texts") or []
        if len(self.texts) != len(self.ids):
            return False  # written by an older version: rebuild
        self._bm25 = bm25s.BM25.load(str(self.path / "bm25s")) if self.ids else None
        return True

    def search(self, query: str, k: int, filters: dict | None = None) -> list[tuple[int, float]]:
        """Top-k (position in `ids`, BM25 score) pairs with a positive score, best first."""
        import numpy as np

        from rag.filters import matches

        q = tokenize(query)
        if not q or not self.ids or self._bm25 is None:
            return []
        mask = None
        if filters:
            mask = np.array([matches(m, filters) for m in self.metas], dtype=np.float32)
            if not mask.any():
                return []
        k = min(k, len(self.ids))
        docs, scores = self._bm25.retrieve([q], k=k, show_progress=False, weight_mask=mask, n_threads=0)
        return [(int(i), float(s)) for i, s in zip(docs[0], scores[0], strict=True) if s > 0]
