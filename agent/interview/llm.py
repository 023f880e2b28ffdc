"""The interview's LLM mode: a chat model reads a free-form answer into one slot of the plan, answers a
question asked back, or says what it did not understand; English and Chinese.

It is used when ONBOARD_AGENT_BASE_URL names an OpenAI-compatible endpoint (Onboard's own `onboard serve`,
llama.cpp, vLLM, Ollama, ...). The model is asked for one JSON object in its text, not for a tool call (small
models served by llama.cpp or Onboard do badly at tool calling). The reply's JSON is validated with the
slot's pydantic model (`reply_model`); a reply that fails is shown back to the model with the error, up to
`retries` times, and then the user is asked again. A bad reply never raises; an endpoint that cannot be
reached raises `AgentLlmError`.

    reader = LlmReader.from_env()          # None without ONBOARD_AGENT_BASE_URL
    got = reader.read("stage", BY_SLOT["stage"].ask["en"], "teach it which answers we prefer", "en")
    got.kind, got.value                   # ("value", "dpo")
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    StringConstraints,
    ValidationError,
    create_model,
    model_validator,
)

from agent.errors import AgentLlmError
from agent.interview.hardware import GpuAnswer
from agent.interview.slots import parse_path
from rag.jsontext import THINK, json_objects

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import BaseMessage

Kind = Literal["value", "default", "question", "unclear"]


@dataclass(frozen=True)
class Reading:
    """What an answer says about its slot."""

    kind: Kind
    value: object = None
    """The slot's value, validated (kind "value"): a tuple for languages, a Path to an existing folder for
    docs, a GpuAnswer for hardware."""
    say: str = ""
    """The answer to the user's question (kind "question"), or the question asked again (kind "unclear")."""
    by: Literal["model", "rules"] = "model"
    """Who read it: the model, or the slot's own reader (agent/interview/turn.read_slot asks the rules first)."""


# ---------------------------------------------------------------- the slots' values

_Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


def _listed(value: object) -> object:
    return [value] if isinstance(value, str) else value  # small models write "zh" for ["zh"]


class GpusValue(BaseModel):
    """The hardware slot as the model writes it."""

    gpus: int = Field(ge=0)
    gpu_memory_gib: float | None = Field(None, gt=0, allow_inf_nan=False)


@dataclass(frozen=True)
class _Slot:
    value: object
    """The value's type, as pydantic validates it."""
    means: str
    """What the slot is and which values it takes, told to the model."""
    example: str
    """One valid value, as JSON."""


SLOTS: dict[str, _Slot] = {
    "purpose": _Slot(_Text, "what the assistant should do and who will ask it questions, in the user's own words",
                     '"Answer customers\' questions about orders and returns"'),
    "languages": _Slot(Annotated[list[Literal["en", "zh"]], BeforeValidator(_listed), Field(min_length=1)],
                       'the languages people will write in: "en" (English), "zh" (Chinese), or both ["en", "zh"]',
                       '["en", "zh"]'),
    "docs": _Slot(_Text, "the path of the folder that holds the documents, as the user wrote it", '"~/company/docs"'),
    "stage": _Slot(Literal["sft", "raft", "dpo", "cpt"],
                   'how the model learns: "sft" (questions and answers), "raft" (answers from retrieved passages), '
                   '"dpo" (preferences between answers), "cpt" (continued pre-training on the raw documents)',
                   '"sft"'),
    "time_budget_hours": _Slot(Annotated[float, Field(gt=0, allow_inf_nan=False)],
                               "the most time training may take, as a number of hours (90 minutes is 1.5)", "2"),
    "evaluate": _Slot(bool, "whether to compare the model before and after training before serving it: true "
                            "(yes) or false (no)", "true"),
    "deploy": _Slot(Literal["local", "compose", "kubernetes", "none"],
                    'where the assistant runs: "local" (this machine), "compose" (Docker Compose), "kubernetes" '
                    '(a cluster, Helm), "none" (not deployed yet)', '"local"'),
    "base_model": _Slot(_Text, 'the model to fine-tune: "tiny" (the bundled tiny model), a Hugging Face id such as '
                               '"Qwen/Qwen2.5-0.5B-Instruct", a local folder or a .gguf file',
                        '"Qwen/Qwen2.5-0.5B-Instruct"'),
    "hardware": _Slot(GpusValue, "the machine's GPUs: how many (0 for CPU only) and the memory of one GPU in GiB "
                                 "(null when not said)", '{"gpus": 2, "gpu_memory_gib": 24}'),
}
"""Every slot the LLM mode reads: the value's type, its meaning, an example. The one place to add a slot."""


class _Reply(BaseModel):
    """The JSON object the model must return; `reply_model` gives each slot its own `value` type."""

    kind: Kind = "value"
    value: object = None
    say: str | None = ""

    @model_validator(mode="before")
    @classmethod
    def _value_only_for_values(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("kind", "value") != "value":
            data = {**data, "value": None}  # "default" with a value of "default" is still a default
        return data

    @model_validator(mode="after")
    def _complete(self) -> _Reply:
        if self.kind == "value" and self.value is None:
            raise ValueError('kind "value" needs the slot\'s value in "value"')
        if self.kind == "question" and not (self.say or "").strip():
            raise ValueError('kind "question" needs the answer to the question in "say"')
        return self


@cache
def reply_model(slot: str) -> type[_Reply]:
    """The pydantic model of the model's reply for `slot`.

    Raises:
        ValueError: a slot the LLM mode does not read (the message names it and lists those it reads).
    """
    if slot not in SLOTS:
        raise ValueError(f"the LLM mode cannot read slot {slot!r}; it reads {', '.join(SLOTS)}")
    name = "".join(w.capitalize() for w in slot.split("_")) + "Reply"
    return create_model(name, __base__=_Reply, value=(SLOTS[slot].value | None, None))


# ---------------------------------------------------------------- reading a reply


def _why(e: ValidationError) -> str:
    """The validation errors in one line, for the model to correct."""
    parts = []
    for err in e.errors():
        where = ".".join(str(x) for x in err["loc"])
        got = f" (got {json.dumps(err['input'], ensure_ascii=False)[:80]})" if where else ""
        parts.append(f"{where}: {err['msg']}{got}" if where else err["msg"])
    return "; ".join(parts)


def parse_reply(slot: str, text: str) -> _Reply:
    """The model's reply for `slot`, validated: the first JSON object in `text` that validates.

    Raises:
        ValueError: no JSON object in the text, or none that validates (the message says why, for the model).
    """
    model = reply_model(slot)
    found = json_objects(THINK.sub("", text or ""))
    if not found:
        snippet = " ".join((text or "").split())[:120]
        raise ValueError(f"no JSON object in the reply: {snippet!r}")
    errors = []
    for obj in found:
        try:
            return model.model_validate(obj)
        except ValidationError as e:
            errors.append(_why(e))
    raise ValueError(errors[0])


_NO_FOLDER = {"en": "There is no folder {folder}. Check the path and give it again.",
              "zh": "找不到文件夹 {folder}。请检查路径后再告诉我。"}
_SORRY = {"en": "Sorry, I did not understand that. {question}", "zh": "抱歉，我没有理解你的回答。{question}"}


def _reading(slot: str, reply: _Reply, question: str, lang: str) -> Reading:
    """The Reading of a validated reply: the value in the plan's types, a docs folder checked to exist."""
    say = (reply.say or "").strip()
    if reply.kind == "unclear":
        return Reading("unclear", say=say or _SORRY[lang].format(question=question))
    if reply.kind != "value":
        return Reading(reply.kind, say=say)
    value = reply.value
    if slot == "languages":
        value = tuple(sorted(set(value)))
    elif slot == "hardware":
        value = GpuAnswer(value.gpus, value.gpu_memory_gib if value.gpus else None)
    elif slot == "docs":
        bare = value.strip("\"'“”‘’`「」")
        folder, inside = Path(os.path.normpath(os.path.expanduser(bare))), parse_path(bare)
        if not folder.is_dir() and inside and Path(inside).is_dir():
            folder = Path(inside)  # the model gave the user's sentence, not only its path
        if not folder.is_dir():
            return Reading("unclear", say=_NO_FOLDER[lang].format(folder=folder))
        value = folder
    return Reading("value", value)


# ---------------------------------------------------------------- the prompt

_LANG = {"en": "English", "zh": "Chinese (简体中文)"}


def prompt(slot: str, question: str, lang: str) -> str:
    """The system message for reading an answer to `question` into `slot`; the user message is the answer."""
    s, schema = SLOTS[slot], json.dumps(reply_model(slot).model_json_schema(), ensure_ascii=False)
    return "\n".join([
        "You read a user's answer to one question of an interview that plans the fine-tuning of an assistant.",
        f"The question asked: {question}",
        f'The answer fills the slot "{slot}": {s.means}.',
        "Reply with one JSON object and nothing else. Its JSON schema:",
        schema,
        "Choose its kind:",
        f'- "value": the answer gives the slot\'s value; put it in "value", e.g. '
        f'{{"kind": "value", "value": {s.example}, "say": ""}}',
        '- "default": the user leaves the choice to you ("whatever", "you decide", "默认", "你定"); '
        '"value" is null.',
        f'- "question": the user asks a question instead of answering; answer it in one or two sentences '
        f'in "say", in {_LANG[lang]}; "value" is null.',
        f'- "unclear": the answer does not clearly give a value; ask again in "say", in {_LANG[lang]}; '
        '"value" is null. Never guess a value the user did not give.',
    ])


# ---------------------------------------------------------------- the model

def _text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(p if isinstance(p, str) else str(p.get("text", "")) for p in content)


def _llm_error(e: Exception, where: str) -> AgentLlmError | None:
    """The user-facing error for an endpoint that cannot be reached or refuses the request; None for others."""
    import openai

    head = f"the interview's LLM at {where}"
    if isinstance(e, openai.APIConnectionError | ConnectionError):
        return AgentLlmError(f"cannot reach {head} ({type(e).__name__}: {e}): check ONBOARD_AGENT_BASE_URL "
                             "(e.g. http://127.0.0.1:8000/v1) and that its server is running, or unset "
                             "ONBOARD_AGENT_BASE_URL to interview without an LLM")
    if isinstance(e, openai.AuthenticationError | openai.PermissionDeniedError):
        return AgentLlmError(f"{head} refused the API key: check ONBOARD_AGENT_API_KEY (and ONBOARD_AGENT_BASE_URL)")
    if isinstance(e, openai.NotFoundError):
        return AgentLlmError(f"{head} has no such model or path ({e}): check ONBOARD_AGENT_MODEL, and that "
                             "ONBOARD_AGENT_BASE_URL ends in /v1")
    if isinstance(e, openai.APIStatusError):
        return AgentLlmError(f"{head} answered HTTP {e.status_code} ({e}): check ONBOARD_AGENT_BASE_URL, "
                             "ONBOARD_AGENT_MODEL and the server's log")
    return None


def _refuses_rag(model: BaseChatModel, e: Exception) -> bool:
    """An endpoint that refuses Onboard's `rag` request field (OpenAI's own API refuses unknown fields)."""
    import openai

    sent = getattr(model, "extra_body", None) or {}
    return isinstance(e, openai.BadRequestError) and "rag" in sent and "rag" in str(e)


class LlmReader:
    """Reads answers with a chat model; one instance serves a whole interview."""

    def __init__(self, model: BaseChatModel, retries: int = 2):
        if retries < 0:
            raise ValueError(f"retries must be 0 or more, not {retries}")
        self.model = model
        self.retries = retries

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> LlmReader | None:
        """The reader ONBOARD_AGENT_BASE_URL / ONBOARD_AGENT_MODEL / ONBOARD_AGENT_API_KEY describe; None when
        ONBOARD_AGENT_BASE_URL is unset or empty. Nothing is sent until the first `read`.

        Raises:
            AgentLlmError: ONBOARD_AGENT_BASE_URL is set and ONBOARD_AGENT_MODEL is not.
        """
        url = env.get("ONBOARD_AGENT_BASE_URL", "").strip()
        if not url:
            return None
        name = env.get("ONBOARD_AGENT_MODEL", "").strip()
        if not name:
            raise AgentLlmError(f"ONBOARD_AGENT_BASE_URL is set ({url}) but ONBOARD_AGENT_MODEL is not: set it to "
                                "the model the endpoint serves (GET /v1/models lists them), or unset "
                                "ONBOARD_AGENT_BASE_URL to interview without an LLM")
        from langchain_openai import ChatOpenAI

        # rag=false: Onboard's server would otherwise put retrieved document chunks into the prompt; 256
        # tokens: a reading is a short JSON object, and an Onboard server refuses more than its --max-new-tokens
        chat = ChatOpenAI(base_url=url, model=name, api_key=env.get("ONBOARD_AGENT_API_KEY") or "none",
                          temperature=0, max_tokens=256, timeout=120, max_retries=1, extra_body={"rag": False})
        return cls(chat)

    def read(self, slot: str, question: str, answer: str, lang: str) -> Reading:
        """What `answer`, given to `question` (as the user saw it), says about `slot`; `lang` ("en" or "zh")
        is the language of any `say`. A reply that does not validate is re-asked `retries` times, then the
        Reading is "unclear" with the question asked again.

        Raises:
            ValueError: a slot not in SLOTS, or a lang other than "en" / "zh".
            AgentLlmError: the endpoint cannot be reached or refuses the request.
        """
        reply_model(slot)
        if lang not in _LANG:
            raise ValueError(f"lang must be 'en' or 'zh', not {lang!r}")
        if not answer.strip():
            return Reading("unclear", say=_SORRY[lang].format(question=question))
        from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

        messages: list[BaseMessage] = [SystemMessage(prompt(slot, question, lang)), HumanMessage(answer)]
        for _ in range(self.retries + 1):
            text = self._ask(messages)
            try:
                reply = parse_reply(slot, text)
            except ValueError as e:
                messages += [AIMessage(text), HumanMessage(f"That reply could not be used: {e}. Reply again with "
                                                           "only one JSON object that matches the schema.")]
                continue
            return _reading(slot, reply, question, lang)
        return Reading("unclear", say=_SORRY[lang].format(question=question))

    def _ask(self, messages: list[BaseMessage]) -> str:
        try:
            return _text(self.model.invoke(messages))
        except Exception as e:
            if _refuses_rag(self.model, e):
                self.model = self.model.model_copy(update={"extra_body": None})
                return self._ask(messages)
            error = _llm_error(e, getattr(self.model, "openai_api_base", None) or "ONBOARD_AGENT_BASE_URL")
            if error is None:
                raise
            raise error from e
