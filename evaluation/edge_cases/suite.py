"""The edge-case suite: typed cases loaded from a YAML file, and the prompt each case is asked with.

A suite file holds `version: 1` and a list of `cases`; the default one (`default.yaml`, beside this
module) fits the bundled example shop, in English and Chinese. A user's own file has the same shape;
a bad one is refused with one line naming the file, the case and the field.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal, get_args

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from rag.errors import OnboardError
from rag.prompt import BUILT_IN, Prompts, build_rag_messages
from rag.retrieval import Hit

DEFAULT_SUITE = Path(__file__).with_name("default.yaml")
SUITE_VERSION = 1

Category = Literal["out_of_domain", "sarcasm", "false_premise", "injection", "cross_language"]
Rule = Literal["decline", "apologise", "correct", "resist_injection", "answer_in_language"]
Language = Literal["en", "zh"]
CATEGORIES: tuple[str, ...] = get_args(Category)
LANGUAGES: tuple[str, ...] = get_args(Language)


class BadSuite(OnboardError, ValueError):
    """An edge-case suite file is missing, unreadable or malformed; the message names the file, the
    case (id and position) and the field."""


def _alternatives(v: object) -> object:
    """A fact written as one string is a fact with one way of saying it."""
    return [v] if isinstance(v, str) else v


def _planted_text(v: object) -> object:
    """A planted chunk written as one string is its text."""
    return {"text": v} if isinstance(v, str) else v


NonEmpty = Annotated[str, Field(min_length=1)]
Fact = Annotated[tuple[NonEmpty, ...], BeforeValidator(_alternatives), Field(min_length=1)]
"""One fact, as the ways of saying it (any one will do): `"30 days"` or `["5 years", "five years"]`."""


class Expect(BaseModel):
    """What the bot must do, in words for the report and as the rule that checks it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    behaviour: NonEmpty
    """The expected behaviour in words, e.g. "apologise and offer help, do not thank"."""
    rule: Rule
    """The check applied to the answer (`evaluation.edge_cases.rules`)."""


class Planted(BaseModel):
    """A document chunk injected into the retrieved context (prompt-injection cases)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: NonEmpty
    source: NonEmpty = "notice.md"
    """The source name shown in the prompt's context header, as a real chunk's would be."""
    heading_path: str = ""


class EdgeCase(BaseModel):
    """One question with a known right behaviour."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    category: Category
    language: Language
    """The question's language; `answer_in_language` requires the answer in it."""
    question: NonEmpty
    expect: Expect
    planted: Annotated[Planted | None, BeforeValidator(_planted_text)] = None
    """A chunk placed among the retrieved ones (a string is its text)."""
    facts: tuple[Fact, ...] = ()
    """What a correct answer states; checked by `correct` and `answer_in_language`."""
    premise: tuple[NonEmpty, ...] = ()
    """The false claim the question makes: the answer may mention it only to deny it (`correct`)."""
    forbidden: tuple[NonEmpty, ...] = ()
    """Strings a good answer never contains: an injection's marker, an invented detail."""

    @model_validator(mode="after")
    def _rule_has_what_it_needs(self) -> EdgeCase:
        rule = self.expect.rule
        if rule in ("correct", "answer_in_language") and not self.facts:
            raise ValueError(f"rule {rule!r} needs `facts` (what a correct answer states)")
        if rule == "correct" and not self.premise:
            raise ValueError("rule 'correct' needs `premise` (the false claim the question makes)")
        if rule == "resist_injection" and self.planted is None:
            raise ValueError("rule 'resist_injection' needs `planted` (the chunk carrying the instruction)")
        return self

    def planted_hit(self) -> Hit | None:
        """The planted chunk as a retrieval `Hit`, ready for `rag.build_rag_messages`; None without one."""
        if self.planted is None:
            return None
        return Hit(
            chunk_id=f"planted-{self.id}",
            source=self.planted.source,
            heading_path=self.planted.heading_path,
            text=self.planted.text,
            score=0.0,
            metadata={"planted": True, "language": self.language},
        )


def planted_messages(case: EdgeCase, hits: Sequence[Hit], position: int = 1, system: str | None = None,
                     prompts: Prompts = BUILT_IN) -> list[dict]:
    """The chat messages a served model sees for `case`: its question, with the retrieved `hits` (and
    the planted chunk, if any) in the system prompt, laid out by `rag.build_rag_messages` as serving does.

    The planted chunk takes the place of the lowest-ranked hit, at `position` (0-based, clamped), so the
    prompt keeps the k chunks the model was trained and is served with. Without a planted chunk the
    hits are used as they are.
    """
    chunks = list(hits)
    planted = case.planted_hit()
    if planted is not None:
        chunks = chunks[:-1]
        chunks.insert(max(0, min(position, len(chunks))), planted)
    return build_rag_messages([{"role": "user", "content": case.question}], chunks, system=system, prompts=prompts)


def load_suite(path: str | Path | None = None) -> list[EdgeCase]:
    """Read an edge-case suite (the bundled default when `path` is None).

    Raises:
        BadSuite: the file is missing, not YAML, of another version, has no cases, a case is
            malformed or two cases share an id; one line naming the file, the case and the field.
    """
    path = Path(path) if path is not None else DEFAULT_SUITE
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise BadSuite(f"{path}: cannot read the edge-case suite ({type(e).__name__}: {e}).") from e
    except yaml.YAMLError as e:
        raise BadSuite(f"{path}: not valid YAML ({' '.join(str(e).split())}).") from e
    if not isinstance(raw, dict) or raw.get("version") != SUITE_VERSION:
        raise BadSuite(f"{path}: an edge-case suite must start with `version: {SUITE_VERSION}` "
                       f"and hold a list of `cases`.")
    items = raw.get("cases")
    if not isinstance(items, list) or not items:
        raise BadSuite(f"{path}: `cases` must be a non-empty list of edge cases.")
    unknown = sorted(set(raw) - {"version", "cases"})
    if unknown:
        raise BadSuite(f"{path}: unknown top-level key(s) {', '.join(unknown)}; a suite holds `version` and `cases`.")
    cases: list[EdgeCase] = []
    seen: set[str] = set()
    for i, item in enumerate(items, 1):
        case = _parse_case(path, i, item)
        if case.id in seen:
            raise BadSuite(f"{path}: case {case.id!r} (#{i}): id is used by an earlier case; ids must be unique.")
        seen.add(case.id)
        cases.append(case)
    return cases


def _parse_case(path: Path, i: int, item: object) -> EdgeCase:
    """Validate one case, turning pydantic's report into one line naming the case and the field."""
    name = f"case {item.get('id')!r} (#{i})" if isinstance(item, dict) and item.get("id") else f"case #{i}"
    try:
        return EdgeCase.model_validate(item)
    except ValidationError as e:
        problems = []
        for err in e.errors()[:3]:
            field = ".".join(str(p) for p in err["loc"]) or "expect.rule"
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{field}: {' '.join(msg.split())}")
        more = f" (and {e.error_count() - 3} more)" if e.error_count() > 3 else ""
        raise BadSuite(f"{path}: {name}: {'; '.join(problems)}{more}.") from e
