"""OpenAI-compatible request/response models, and the one error shape every error uses.

Requests forbid arguments they do not declare (a 400 naming the argument, as OpenAI answers), and every
OpenAI chat parameter declared here is either honoured or refused by name (serving/conformance.py):
never accepted and ignored.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContentPart(_Strict):
    """One part of a message's content given as a list (OpenAI's content parts); only text is served."""

    type: str
    text: str | None = None
    image_url: Any = None
    input_audio: Any = None
    file: Any = None


class ChatMessage(_Strict):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[dict] | None = None
    tool_call_id: str | None = None
    refusal: str | None = None


class StreamOptions(_Strict):
    include_usage: bool = False
    include_obfuscation: bool | None = None


class ChatCompletionRequest(_Strict):
    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    """OpenAI's newer name for max_tokens; give one of them."""
    n: int = Field(1, ge=1, le=16)
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    """An end-user id for the caller's own records; never used to generate, never logged."""
    stop: str | list[str] | None = None
    logprobs: bool | None = None
    """Each answer token's log probability (choices[].logprobs.content)."""
    top_logprobs: int | None = Field(None, ge=0, le=20)
    """With logprobs: the N most likely tokens at each position too."""
    response_format: dict | None = None
    """text; json_object (a JSON object); json_schema ({"name", "schema"}): generated to match (the transformers
    engine's constrained decoding, a remote upstream's own)."""
    tools: list[dict] | None = None
    """Functions the model may call, rendered by its chat template (serving/tools.py)."""
    tool_choice: str | dict | None = None
    """auto (the default with tools), none, required, or {"type": "function", "function": {"name"}}."""
    parallel_tool_calls: bool | None = None
    """false: at most one call per answer (the first the model wrote)."""
    # Declared so that they are refused by name when set (serving/conformance.py), not as unknown.
    functions: list[dict] | None = None
    function_call: str | dict | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = None
    modalities: list[str] | None = None
    audio: dict | None = None
    prediction: dict | None = None
    reasoning_effort: str | None = None
    service_tier: str | None = None
    web_search_options: dict | None = None
    rag: bool = True
    """Onboard extension: set false to answer without retrieval."""


class Source(BaseModel):
    """A retrieved chunk the answer was grounded on (an Onboard extension field)."""

    id: str
    source: str
    heading_path: str = ""
    score: float
    snippet: str


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    """None when the answer is only tool calls."""
    tool_calls: list[dict] | None = None
    """Left out when the model called no tool (OpenAI's schema has it an array or absent, never null)."""
    refusal: None = None
    """Present and null, as OpenAI sends it: this server never refuses through this field."""
    annotations: list = Field(default_factory=list)
    """Present and empty, as OpenAI sends it (its web-search citations); the documents are in `sources`."""

    @model_serializer(mode="wrap")
    def _no_null_calls(self, handler) -> dict:
        out = handler(self)
        if out.get("tool_calls") is None:
            out.pop("tool_calls", None)
        return out


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(BaseModel):
    content: list[TokenLogprob] | None
    refusal: None = None


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop", "length", "tool_calls"] | None
    logprobs: ChoiceLogprobs | None = None
    """Present; null unless the request asked for logprobs."""


class ChatCompletionResponse(BaseModel):
    id: str = Field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[Choice]
    usage: Usage
    sources: list[Source] = []


class DeltaMessage(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[dict] | None = None
    """Each with its `index`, as OpenAI streams them."""


class StreamChoice(BaseModel):
    index: int = 0
    delta: DeltaMessage
    finish_reason: Literal["stop", "length", "tool_calls"] | None = None
    """Null on every chunk but the last of its choice, and present on all of them."""
    logprobs: ChoiceLogprobs | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[StreamChoice]
    usage: Usage | None = None
    """Only on the final chunk (its `choices` empty), when the request set stream_options.include_usage."""
    sources: list[Source] | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=lambda: int(time.time()))
    owned_by: str = "onboard"
    kind: Literal["chat", "embedding"] = "chat"
    """Onboard extension: what the model serves, so a client (the remote engine) can tell the chat model
    from the embedding model in the list."""


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class EmbeddingRequest(_Strict):
    model: str = Field(min_length=1)
    input: str | list[str] | list[int] | list[list[int]]
    """Texts, or token arrays in the served embedding model's own tokenizer (as vLLM reads them)."""
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    """Honoured when it is the model's own size; refused by name otherwise (these models cannot be shortened)."""
    user: str | None = None


class EmbeddingData(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: EmbeddingUsage


class TokenizeRequest(BaseModel):
    """vLLM's `POST /tokenize` for chat messages (the subset Onboard serves)."""

    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    """Counted as a chat request renders them: chat template and generation prompt included."""


class TokenizeResponse(BaseModel):
    count: int
    """Prompt tokens, chat template included: what a chat request with these messages (and no RAG) costs."""


class ErrorInfo(BaseModel):
    """OpenAI's error shape: `param` names the request field at fault, `code` is a string or null."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorInfo


# ---------------------------------------------------------------- customer-service chat (POST /chat, /feedback)

SESSION_ID = r"^[A-Za-z0-9_-]{1,64}$"


class ChatRequest(BaseModel):
    """One customer message in a conversation the server remembers."""

    model_config = ConfigDict(extra="forbid")
    message: str = Field(min_length=1, description="What the customer wrote.")
    session_id: str | None = Field(None, pattern=SESSION_ID,
                                   description="The conversation to continue; none starts one (its id is answered).")
    stream: bool = Field(False, description="Answer as server-sent events: `start` (session_id, response_id, "
                                            "sources), `delta` (text) as it is written, then `end` (the ChatReply).")


class Handoff(BaseModel):
    needed: bool
    """Whether a person should take over: the customer asked for one, the documents hold nothing relevant, or
    the answer declines (serving/handoff.py)."""
    reason: str | None = None


class ChatReply(BaseModel):
    session_id: str
    response_id: str
    """What POST /feedback refers to."""
    reply: str
    sources: list[Source]
    """The chunks the reply was grounded on; `[n]` in the reply cites the n-th."""
    handoff: Handoff
    usage: Usage


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    response_id: str = Field(min_length=1)
    rating: Literal["up", "down"] | None = None
    correction: str | None = Field(None, min_length=1, description="The answer the customer wanted.")

    @model_validator(mode="after")
    def _something(self) -> FeedbackRequest:
        if self.rating is None and self.correction is None:
            raise ValueError("give a rating (up or down), a correction, or both")
        return self


class FeedbackReply(BaseModel):
    id: str
    response_id: str
