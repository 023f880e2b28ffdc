"""Near-duplicate texts, found with MinHash LSH over character shingles, in English and Chinese alike.

    dups = near_duplicates(texts, threshold=0.85)   # None for kept texts, (kept index, similarity) else

Why character shingles and not words: Chinese has no spaces, and a segmenter would be one more model
to load and one more source of disagreement. Shingles are 5 characters of English, 2 of Chinese (a
Chinese character carries about as much as 2.5 English ones; see `shingles`), taken from the text
casefolded, with punctuation removed and whitespace collapsed, so punctuation and case edits do not
hide a copy. Why MinHash LSH (datasketch): comparing every pair is quadratic; LSH proposes the few
candidates worth comparing, and the MinHash estimate of their Jaccard similarity confirms them.

Which text of a record is compared is the cleaner's decision (training/data/clean.py); this module
only compares strings. bench/dedup_quality.py measures precision and recall of these settings.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

from training.errors import BadConfig

_PUNCT = re.compile(r"[^\w\s]+|_+")


def shingles(text: str, k: int = 5, k_zh: int = 2) -> list[bytes]:
    """Distinct character shingles of the casefolded text without punctuation, as UTF-32 bytes.

    A shingle is `k` characters of English (or any spaced script) or `k_zh` Chinese characters, and
    in mixed text a window of the same weight (a Chinese character counts k / k_zh). Five English
    characters are about one word; five Chinese ones span about three words (a word is 1-3
    characters), so one changed word would break far more of the shingles. With 2-character Chinese
    shingles a changed word costs about the same similarity in both languages (bench/dedup_quality.py).
    """
    import numpy as np

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


def lsh_index(threshold: float, num_perm: int):
    """An empty `datasketch.MinHashLSH` for this threshold and number of permutations.

    Raises:
        BadConfig: datasketch cannot band these settings (thresholds near 1 with few permutations);
            the message names the config fields to change.
    """
    from datasketch import MinHashLSH

    try:
        return MinHashLSH(threshold=threshold, num_perm=num_perm)
    except ValueError as e:  # e.g. "number of bands too small" at thresholds near 1
        raise BadConfig(
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
    chains (A ~ B ~ C with A and C far apart) cannot remove C. The same seed gives the same result
    on every run.

    Returns:
        For each text, None when it is kept, else (index of the kept text it repeats, estimated Jaccard).
    """
    from datasketch import MinHash

    # crc32 (C, deterministic) instead of the default SHA-1: the hash is most of the cost.
    shingled = (shingles(t, shingle_size, shingle_size_zh) for t in texts)
    sigs = MinHash.bulk(shingled, num_perm=num_perm, seed=seed, hashfunc=zlib.crc32)
    lsh = lsh_index(threshold, num_perm)
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
