"""Constrained decoding for `response_format` on the transformers engine: the answer is generated under a
grammar (xgrammar, the library vLLM uses), so `json_object` gives a JSON object and `json_schema` JSON valid
against the schema, whatever the model would have written. A grammar is compiled once per schema and applied
as a logits processor (a token mask per step: ~2 ms on this machine's CPU for a 151k vocabulary).

The JSON is compact (no free whitespace), so a small model cannot pad it with spaces until max_tokens. An
answer cut by max_tokens is cut JSON, with finish_reason "length", as OpenAI's.
"""

from __future__ import annotations

import json
from functools import lru_cache

from serving.errors import BadRequest, Unsupported

ANY_OBJECT = '{"type": "object"}'


def schema_of(response_format: dict | None) -> str | None:
    """The JSON schema (as text) an OpenAI `response_format` asks for; None for text (or none given)."""
    if not response_format or response_format.get("type") == "text":
        return None
    if response_format["type"] == "json_object":
        return ANY_OBJECT
    return json.dumps(response_format["json_schema"].get("schema") or {"type": "object"})


class Grammars:
    """Compiled grammars for one tokenizer."""

    def __init__(self, tokenizer, vocab_size: int):
        try:
            import xgrammar as xgr
        except ImportError:
            raise Unsupported("response_format: constrained decoding needs xgrammar, which is not installed here "
                              "(`make setup` installs it); leave response_format out.", "response_format") from None
        self._xgr = xgr
        self._compiler = xgr.GrammarCompiler(xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size))
        self._compiled = lru_cache(maxsize=64)(self._compile)

    def processor(self, schema: str):
        """A fresh logits processor (it keeps the request's parse state) for `schema`.

        Raises:
            BadRequest: the schema cannot be compiled; `param` points at it.
        """
        from xgrammar.contrib.hf import LogitsProcessor

        return LogitsProcessor(self._compiled(schema))

    def _compile(self, schema: str):
        try:
            return self._compiler.compile_json_schema(schema, any_whitespace=False)
        except Exception as e:  # xgrammar raises RuntimeError/ValueError variants for schemas it cannot compile
            raise BadRequest(f"response_format.json_schema.schema: cannot be enforced ({str(e).splitlines()[0][:300]}).",
                             "response_format.json_schema.schema") from None
