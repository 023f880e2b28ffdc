"""Text helpers shared by the interview's parsers: normalising answers and matching whole words beside Chinese."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence


def normalize(text: str) -> str:
    """NFKC (full-width digits and punctuation become ASCII), curly apostrophes straight, lower case, stripped."""
    return unicodedata.normalize("NFKC", text).replace("\u2019", "'").lower().strip()


def word(pattern: str) -> str:
    """`pattern` as a whole ASCII word. `\\b` does not work beside Chinese (both are \\w), so look for letters."""
    return rf"(?<![a-z0-9]){pattern}(?![a-z0-9])"


def phrases(items: Sequence[str]) -> re.Pattern[str]:
    """One regex for many phrases, longest first so "不是" wins over "不"; ASCII ones match whole words."""
    parts = []
    for p in sorted(items, key=len, reverse=True):
        body = r"\s+".join(re.escape(w) for w in p.split())
        parts.append(word(body) if p.isascii() else body)
    return re.compile("|".join(parts))


def squash(s: str) -> str:
    """Runs of white space as one space."""
    return re.sub(r"\s+", " ", s)
