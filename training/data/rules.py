"""Question/answer pairs made from documents by rules, with no LLM, in English and Chinese.

On by default are the rules whose pairs a reader judged right at least 90 % of the time on real documents
(`bench/rule_precision.py`: the Debian FAQ and the Debian Reference, EN and ZH, labels in
bench/labels/rule_precision.jsonl): `question-heading` 47/47. `definition` (39 %) and `policy` (28 % of the pairs
found) pick side remarks, demonstratives ("什么是这里？") and stitched fragments out of technical prose; they
stay available (`--rules`) for documents written as definitions and rules, such as a shop's policies.

Rules, each named in every example it makes (`meta.rule`) and counted in the build stats:
- `qa-markers`, `question-heading`: explicit Q/A the document states (training/data/faq.py);
- `faq-file`: rows of a CSV/JSONL FAQ file (every heading of such a document is a question);
- `definition`: "X is a/an/our ...", "X means ...", "**X**: ...", "X是指...", "所谓X，就是..." become
  "What is X?" / "什么是X？" answered by the defining sentence;
- `policy`: a section whose sentences state rules (must, cannot, within 30 days, 必须, 不得, 内...)
  becomes "What does <document> say about <section>?" / "<文档>中关于<章节>有什么规定？" answered by
  those sentences.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from rag.chunking import HEADING, heading_matches
from rag.loaders import Document
from training.data.faq import QAPair, extract_qa
from training.data.questions import asks, clean_question

RULES = ("qa-markers", "question-heading", "faq-file", "definition", "policy")
DEFAULT_RULES = ("qa-markers", "question-heading", "faq-file")
"""The rules on by default (see above); `qa-markers` and `faq-file` are as explicit as headings."""

SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])")
"""Sentence boundaries in English and Chinese (a full stop inside "6.95" or an email is not one)."""

_DEF_EN = [
    re.compile(r"^(?P<term>[A-Z][\w&'’-]*(?:\s+(?:[A-Z&][\w&'’-]*|of|and|for))*)\s+(?:is|are)\s+"
               r"(?:a|an|our|the name of|the term for)\s+(?P<rest>.{8,})$"),
    re.compile(r"^(?:The term\s+)?[\"“]?(?P<term>[\w&'’ -]{2,40}?)[\"”]?\s+(?:means|refers to|stands for)\s+(?P<rest>.{8,})$"),
]
_DEF_ZH = [
    re.compile(r"^所谓[“\"]?(?P<term>[^，,。；：“”\"]{2,20}?)[”\"]?[，,]\s*(?:是指|就是|指的是|即)(?P<rest>.{4,})$"),
    re.compile(r"^[“\"]?(?P<term>[^，,。；：“”\"\s]{2,20}?)[”\"]?(?:是指|指的是|是一种|是一个|是我们的)(?P<rest>.{4,})$"),
]
_GLOSSARY = re.compile(r"^\s*(?:[-*+]\s+)?\*\*(?P<term>[^*]{2,40})\*\*\s*[:：—–-]\s*(?P<rest>.{8,})$")

_POLICY_EN = re.compile(
    r"\b(must|must not|cannot|can't|can be|can only|only if|may|not covered|required|will not|do not|never|"
    r"within \d+|free|fee|charged|deducted|eligible|allowed|accept|refund|guarantee)\b", re.IGNORECASE)
_POLICY_ZH = re.compile(r"(必须|不得|不可|不能|须|应当|可以|仅|方可|免费|收费|扣除|\d+\s*[天日小时个]+.{0,4}内|不予|享有|享受)")
MAX_POLICY_SENTENCES = 4

QUESTION_WORDS = frozenset({
    "what", "which", "who", "whom", "whose", "when", "where", "why", "how", "it", "this", "that", "there", "these",
    "those", "here", "什么", "哪个", "哪些", "谁", "何时", "哪里", "为什么", "如何", "怎么", "怎样", "这", "那", "这个",
    "那个", "它"})  # fmt: skip
"""Terms a definition can never be about: "What is a control file?" is a question, not a definition of "What"."""


def _bad_term(term: str) -> bool:
    """A "term" that is no term: a question word or pronoun, a demonstrative ("这里是一个 crontab 文件"), a
    list bullet, or a clause ("A common release goal is NoRCBugs which")."""
    t = term.strip().lower()
    words = t.split()
    return (t in QUESTION_WORDS or t.startswith(("这", "那", "下面", "如下", "以下", "上面", "此", "-", "•"))
            or len(words) > 5 or any(w in ("is", "are", "was", "were", "which", "that", "who") for w in words[1:]))


def _is_question(sentence: str) -> bool:
    return sentence.rstrip().endswith(("?", "？"))


def _navigation(sentence: str) -> bool:
    """A sentence that is a link or a heading rather than a statement: a question (another FAQ entry),
    a numbered heading ("9.4. How can I ..."), or a bare "see ..." pointer."""
    s = sentence.strip().lstrip("-*+ ").strip()
    return _is_question(s) or clean_question(s) != s or bool(re.match(r"^(see|参见|请参阅|详见)\b", s, re.I))


def _sentences(text: str) -> list[str]:
    return [s.strip() for line in text.splitlines() for s in SENTENCE_END.split(line) if s.strip()]


def _clean_term(term: str) -> str:
    return term.strip().strip("*\"“”'").strip()


def _definitions(doc: Document) -> Iterator[QAPair]:
    pos = 0
    for line in doc.text.splitlines(keepends=True):
        start, pos = pos, pos + len(line)
        body = line.strip()
        if not body or HEADING.match(body) or body.startswith("|"):
            continue
        g = _GLOSSARY.match(body)
        if g and not _bad_term(_clean_term(g["term"])):
            term = _clean_term(g["term"])
            q = f"什么是{term}？" if doc.language == "zh" else f"What is {term}?"
            yield QAPair(q, f"{term}: {g['rest'].strip()}" if doc.language != "zh" else f"{term}：{g['rest'].strip()}",
                         start, "definition")
            continue
        for sentence in _sentences(body):
            if _is_question(sentence):
                continue
            for pattern in (_DEF_ZH if doc.language == "zh" else _DEF_EN):
                m = pattern.match(sentence)
                if m and not _bad_term(_clean_term(m["term"])):
                    term = _clean_term(m["term"])
                    q = f"什么是{term}？" if doc.language == "zh" else f"What is {term}?"
                    yield QAPair(q, sentence, start + max(line.find(sentence), 0), "definition")
                    break


def _sections(doc: Document) -> Iterator[tuple[str, int, int, str]]:
    """(heading, offset of the heading, end offset, body text up to the next heading) per section."""
    lines, pos = [], 0
    for line in doc.text.splitlines(keepends=True):
        lines.append((pos, line.rstrip("\n")))
        pos += len(line)
    heads = [(i, m) for i, m in enumerate(heading_matches([t for _, t in lines])) if m]
    for n, (i, m) in enumerate(heads):
        end = heads[n + 1][0] if n + 1 < len(heads) else len(lines)
        stop = lines[end][0] if end < len(lines) else len(doc.text)
        yield m.group(2).strip(), lines[i][0], stop, "\n".join(t for _, t in lines[i + 1 : end])


def _policies(doc: Document, taken: set[int]) -> Iterator[QAPair]:
    rule = _POLICY_ZH if doc.language == "zh" else _POLICY_EN
    for heading, start, end, body in _sections(doc):
        if heading.endswith(("?", "？")) or any(start <= t < end for t in taken):
            continue  # the section's explicit Q/A already covers it
        said = [s for s in _sentences(body) if rule.search(s) and not s.startswith("|") and not _navigation(s)]
        if not said:
            continue
        answer = ("" if doc.language == "zh" else " ").join(said[:MAX_POLICY_SENTENCES])
        topic, title = clean_question(heading), clean_question(doc.title or "")
        if not topic or asks(topic):
            continue  # a question heading without its "?": a template would ask about a question
        if heading == doc.title or not title:  # the document's opening section: its general rules
            q = f"{topic}的主要规定是什么？" if doc.language == "zh" else f"What are the main points of {_the(topic)}?"
        elif doc.language == "zh":
            q = f"{title}中关于{topic}有什么规定？"
        else:
            q = f"What does {_the(title)} say about {topic[0].lower() + topic[1:]}?"
        yield QAPair(q, answer, start, "policy")


def _the(name: str) -> str:
    """ "the X" unless X already starts with an article or is a name ("Lumen & Oak returns policy")."""
    return name if re.match(r"^(the|a|an|our|your)\b", name, re.I) else f"the {name}"


def _faq_file(doc: Document) -> list[QAPair]:
    pairs = []
    for heading, start, _, body in _sections(doc):
        if body.strip():
            pairs.append(QAPair(heading, body.strip(), start, "faq-file"))
    return pairs


def find_pairs(doc: Document, rules: tuple[str, ...] | None = None) -> list[QAPair]:
    """Every Q/A pair the rules find in `doc`, in document order.

    Args:
        rules: limit to these rule names (default: all). Explicit Q/A always wins over a
            template pair made from the same place in the document.
    """
    if doc.kind == "faq-table":
        pairs = _faq_file(doc)
    else:
        pairs = extract_qa(doc.text)
        taken = {p.start for p in pairs}
        pairs += [p for p in _definitions(doc) if p.start not in taken]
        pairs += list(_policies(doc, taken))
    if rules is not None:
        pairs = [p for p in pairs if p.rule in rules]
    return sorted(pairs, key=lambda p: p.start)
