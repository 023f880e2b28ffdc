"""Answer against reference answer, by words: token F1, exact match, ROUGE-L, BLEU and chrF.

Every score is in [0, 1], 1 for a perfect match. English and Chinese (and text mixing both) are
tokenised the same way for F1, exact match and ROUGE-L (`tokenize`):

- English (any script with spaces): lower-cased words and numbers, punctuation stripped, the
  articles a/an/the dropped (SQuAD's normalisation). "5.95", "1,000" and "14:00" stay one token.
- Chinese, which has no spaces, either by character (`mode="char"`, the CMRC/DuReader convention:
  no segmenter to disagree with) or by jieba word (`mode="word"`: 工作日 is one token, so a
  paraphrase that keeps the words scores higher than one that only shares characters).

BLEU and chrF come from sacrebleu (the reference implementation, so numbers compare with papers):
BLEU uses sacrebleu's `zh` tokenizer when the references contain Chinese (it splits Chinese into
characters and tokenises everything else like the default `13a`), else `13a`; chrF compares
character n-grams and needs no tokenizer.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from functools import cache
from typing import Literal

from rag.loaders import detect_language

Mode = Literal["char", "word"]

SHORT_MAX_TOKENS = 5
"""A reference of at most this many tokens (jieba words for Chinese) is short: exact match is
meaningful for "30 days" or "3 个工作日", and meaningless for a sentence, which no answer repeats verbatim."""

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# A CJK run; a number with its separators (5.95, 1,000, 14:00); any other run of letters and digits.
_TOKEN = re.compile(rf"(?P<cjk>[{_CJK}]+)|(?P<num>\d+(?:[.,:]\d+)+)|(?P<word>(?:(?![{_CJK}])[^\W_])+)")
_ARTICLES = frozenset({"a", "an", "the"})


@cache
def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def tokenize(text: str, mode: Mode = "char") -> list[str]:
    """The tokens the F1, exact-match and ROUGE-L scores count (see the module docstring).

    tokenize("The fee is $5.95!") == ["fee", "is", "5.95"]; tokenize("退款 3 个工作日") gives
    ["退", "款", "3", "个", "工", "作", "日"] by character and ["退款", "3", "个", "工作日"] by word.
    """
    if mode not in ("char", "word"):
        raise ValueError(f"mode must be 'char' or 'word', not {mode!r}")
    text = unicodedata.normalize("NFKC", text).lower().replace("'", "").replace("\u2019", "")
    out: list[str] = []
    for m in _TOKEN.finditer(text):
        if m.group("cjk"):
            run = m.group("cjk")
            out.extend(run if mode == "char" else _jieba().lcut(run))
        elif m.group(0) not in _ARTICLES:
            out.append(m.group(0))
    return out


def token_f1(pred: str, ref: str, mode: Mode = "char") -> float:
    """SQuAD-style token F1: the harmonic mean of precision (share of the prediction's tokens found in
    the reference) and recall (share of the reference's tokens found in the prediction), counting
    repeated tokens as often as they occur in both. In [0, 1]; 1.0 when both are empty."""
    p, r = tokenize(pred, mode), tokenize(ref, mode)
    if not p or not r:
        return float(p == r)
    same = sum((Counter(p) & Counter(r)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(r)
    return 2 * precision * recall / (precision + recall)


def is_short(ref: str) -> bool:
    """True when the reference has at most SHORT_MAX_TOKENS tokens (words; jieba words for Chinese),
    so that `exact_match` against it means something."""
    return len(tokenize(ref, "word")) <= SHORT_MAX_TOKENS


def exact_match(pred: str, ref: str) -> float:
    """1.0 when prediction and reference have the same tokens (`tokenize`: case, punctuation, articles,
    spaces and full-/half-width ignored), else 0.0. Only meaningful where `is_short(ref)`."""
    return float(tokenize(pred) == tokenize(ref))


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence, one DP row at a time (O(len(a) * len(b)))."""
    row = [0] * (len(b) + 1)
    for x in a:
        diag = 0  # the previous row's value at j - 1
        for j, y in enumerate(b, 1):
            above = row[j]
            row[j] = diag + 1 if x == y else max(above, row[j - 1])
            diag = above
    return row[-1]


def rouge_l(pred: str, ref: str, mode: Mode = "char") -> float:
    """ROUGE-L F-measure: F1 of precision LCS/len(pred) and recall LCS/len(ref), where LCS is the
    longest common subsequence of tokens (in order, not necessarily adjacent). Rewards answers that
    say the reference's words in the reference's order. In [0, 1]; 1.0 when both are empty."""
    p, r = tokenize(pred, mode), tokenize(ref, mode)
    if not p or not r:
        return float(p == r)
    lcs = _lcs(p, r)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(p), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


def _bleu_tokenizer(refs: Sequence[str]) -> str:
    return "zh" if any(detect_language(r) == "zh" for r in refs) else "13a"


def _check_pairs(preds: Sequence[str], refs: Sequence[str]) -> None:
    if isinstance(preds, str) or isinstance(refs, str):
        raise TypeError("preds and refs are lists of strings (use sentence_bleu/sentence_chrf for one pair)")
    if len(preds) != len(refs):
        raise ValueError(f"{len(preds)} predictions for {len(refs)} references")


def bleu(preds: Sequence[str], refs: Sequence[str]) -> float:
    """Corpus BLEU (sacrebleu, lower-cased, one reference per prediction) / 100, in [0, 1]: the geometric
    mean of 1- to 4-gram precisions pooled over all pairs, times a brevity penalty. Pooling is why it is
    computed per corpus: a short answer alone often has no matching 4-gram and scores 0.

    Raises:
        ValueError: the lists differ in length.
    """
    import sacrebleu

    _check_pairs(preds, refs)
    score = sacrebleu.corpus_bleu(list(preds), [list(refs)], tokenize=_bleu_tokenizer(refs), lowercase=True)
    return min(score.score / 100, 1.0)


def sentence_bleu(pred: str, ref: str) -> float:
    """BLEU of one answer (sacrebleu's sentence BLEU: exponential smoothing and effective n-gram order,
    so short answers do not all score 0) / 100, in [0, 1]. For per-question scores and worst-answer lists."""
    import sacrebleu

    score = sacrebleu.sentence_bleu(pred, [ref], tokenize=_bleu_tokenizer([ref]), lowercase=True)
    return min(score.score / 100, 1.0)


def chrf(preds: Sequence[str], refs: Sequence[str]) -> float:
    """Corpus chrF (sacrebleu: character 1- to 6-gram F-score, recall weighted twice, spaces ignored)
    / 100, in [0, 1]. Works on Chinese as is, and forgives English inflection ("refund"/"refunds").

    Raises:
        ValueError: the lists differ in length.
    """
    import sacrebleu

    _check_pairs(preds, refs)
    return min(sacrebleu.corpus_chrf(list(preds), [list(refs)]).score / 100, 1.0)


def sentence_chrf(pred: str, ref: str) -> float:
    """chrF of one answer / 100, in [0, 1] (see `chrf`)."""
    import sacrebleu

    return min(sacrebleu.sentence_chrf(pred, [ref]).score / 100, 1.0)


ECHO_SHARE = 0.8
"""An answer echoes its question when it repeats this share of the question's tokens in one run."""


def echoes(question: str, answer: str) -> bool:
    """Whether `answer` repeats its question back instead of answering: it holds at least ECHO_SHARE of the
    question's tokens (by character for Chinese) as one unbroken run, for a question of 4 tokens or more.
    "How long do refunds take?" -> "Refunds take 5 to 10 business days." does not echo; "How long do refunds
    take? Refunds ..." does."""
    from difflib import SequenceMatcher

    q, a = tokenize(question, "char"), tokenize(answer, "char")
    if len(q) < 4 or not a:
        return False
    m = SequenceMatcher(None, q, a, autojunk=False).find_longest_match(0, len(q), 0, len(a))
    return m.size >= ECHO_SHARE * len(q)
