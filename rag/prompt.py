"""The RAG prompt: one grounded system prompt, in the user's language, with the retrieved chunks numbered
under it. Serving builds every request with it, dataset building builds every training example with it
and the evaluation asks with it, so a model is trained on exactly what it will see when served.

The system prompt states the rules the training data teaches: answer only from the numbered context,
cite it as [n], say so and offer a person when the context does not answer, answer in the user's
language, never repeat the question. A workspace can reword it (and the decline the data teaches) in
WORKSPACE/prompt.yaml, per language:

    system:
      en: You are the assistant of Lumen & Oak. Answer only from the numbered context ...
      zh: 你是 Lumen & Oak 的客服助手。...
    decline:
      en: Sorry, our documents don't cover that. Shall I put you through to a colleague?

Every dataset and model card records the prompt's `version` (the layout and a hash of the wording), so
a dataset built with other wording is refused for training until rebuilt, and a model served with other
wording is warned about.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import BadContract
from rag.loaders import detect_language
from rag.retrieval import Hit

DEFAULT_K = 3
"""Chunks retrieved per question, for serving and for training data alike: a model trained on
prompts with k chunks should be served prompts with k chunks."""

PROMPT_LAYOUT = "system-context-v2"
"""Version of the layout below (system message, then `Context:` and numbered `[i] source — section`
chunks). Recorded in every dataset and model card; change it whenever the layout changes, so a model
trained on the old layout is known to be served a different one. v2: the grounded system prompt, per
language."""

SYSTEM_PROMPTS = {
    "en": "You are our company's customer-service assistant. Answer only from the numbered context below and "
          "cite the passage you used, like [1]. If the context does not answer the question, say so and offer "
          "to connect the user with a member of our team. Answer in the user's language, and do not repeat "
          "the question.",
    "zh": "你是本公司的客服助手。只根据下面编号的资料回答，并注明所依据的资料，例如 [1]。如果资料中没有答案，请直接说明，"
          "并提出为用户转接人工客服。用用户的语言回答，不要重复用户的问题。",
}
"""The built-in system prompt per language (the question's language picks it)."""

DECLINES = {
    "en": "I'm sorry, I can't find the answer to that in the documents I have. Would you like me to connect "
          "you with a member of our team?",
    "zh": "抱歉，我在现有的资料中找不到这个问题的答案。需要我为您转接人工客服吗？",
}
"""What the training data answers when the context does not hold the answer: says so, offers a person."""

DEFAULT_SYSTEM = SYSTEM_PROMPTS["en"]
PROMPT_FILE = "prompt.yaml"
LANGUAGES = ("en", "zh")


@dataclass(frozen=True)
class Prompts:
    """The wording of the system prompt and of the decline, per language ("en", "zh")."""

    system: dict[str, str] = field(default_factory=lambda: dict(SYSTEM_PROMPTS))
    decline: dict[str, str] = field(default_factory=lambda: dict(DECLINES))
    origin: str = "built-in"
    """Where the wording came from: "built-in" or the prompt file's path."""

    @property
    def version(self) -> str:
        """The layout and a hash of the wording: what dataset and model cards record."""
        text = json.dumps({"system": self.system, "decline": self.decline}, sort_keys=True, ensure_ascii=False)
        return f"{PROMPT_LAYOUT}:{hashlib.sha256(text.encode()).hexdigest()[:12]}"

    def system_for(self, question: str) -> str:
        """The system prompt in the language of `question`."""
        return self.system[detect_language(question)]

    def decline_for(self, language: str) -> str:
        return self.decline["zh" if language == "zh" else "en"]


BUILT_IN = Prompts()


def load_prompts(workspace: str | Path | None) -> Prompts:
    """The workspace's wording (WORKSPACE/prompt.yaml) over the built-in one; the built-in one when the
    workspace has no prompt file.

    Raises:
        BadContract: the file is not YAML of `system:`/`decline:` maps from en/zh to text; names the file and
            the key.
    """
    path = Path(workspace) / PROMPT_FILE if workspace is not None else None
    if path is None or not path.exists():
        return BUILT_IN
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise BadContract(f"{path}: cannot read it ({' '.join(str(e).split())[:200]}). Fix it or delete it to use "
                          "the built-in prompt.") from None
    if not isinstance(raw, dict) or set(raw) - {"system", "decline"}:
        got = sorted(map(str, raw)) if isinstance(raw, dict) else type(raw).__name__
        raise BadContract(f"{path}: expected the keys system and decline (got {got}).")
    out = {}
    for key, default in (("system", SYSTEM_PROMPTS), ("decline", DECLINES)):
        given = raw.get(key) or {}
        bad = [k for k in given if k not in LANGUAGES] if isinstance(given, dict) else ["(not a map)"]
        if bad or not all(isinstance(v, str) and v.strip() for v in given.values()):
            raise BadContract(f"{path}: {key}: expected a map from en/zh to non-empty text (problem: "
                              f"{', '.join(map(str, bad)) or 'an empty or non-text value'}).")
        out[key] = {**default, **{k: v.strip() for k, v in given.items()}}
    return Prompts(out["system"], out["decline"], str(path))


CITATION = re.compile(r"\s?\[(\d{1,3})\]")
"""A citation of the i-th context chunk in an answer: `[2]`."""


def strip_citations(text: str) -> str:
    """`text` without its [n] citation markers."""
    return CITATION.sub("", text).strip()


def format_context(hits: Sequence[Hit]) -> str:
    """Number the hits [1]..[n] with their source so answers can cite them."""
    parts = []
    for i, h in enumerate(hits, 1):
        where = f"{h.source} — {h.heading_path}" if h.heading_path else h.source
        parts.append(f"[{i}] {where}\n{h.text.strip()}")
    return "\n\n".join(parts)


CONTEXT_MARK = "\n\nContext:\n"


def strip_context(system: str) -> str:
    """A system prompt without the retrieved context `build_rag_messages` appended to it."""
    return system.split(CONTEXT_MARK, 1)[0]


def build_rag_messages(
    messages: Sequence[dict], hits: Sequence[Hit], system: str | None = None, prompts: Prompts = BUILT_IN
) -> list[dict]:
    """Return chat messages with the retrieved context in the system message.

    Args:
        messages: the conversation so far (OpenAI-style dicts with role/content); a system message
            in it replaces `system`.
        hits: retrieved chunks, best first.
        system: the system prompt; default: `prompts`' in the language of the last user message.
    """
    msgs = [dict(m) for m in messages]
    if msgs and msgs[0]["role"] == "system":
        system = msgs.pop(0)["content"]
    elif system is None:
        last = next((m["content"] for m in reversed(msgs) if m["role"] == "user" and isinstance(m["content"], str)), "")
        system = prompts.system_for(last)
    if hits:
        system = f"{system}{CONTEXT_MARK}{format_context(hits)}"
    return [{"role": "system", "content": system}, *msgs]
