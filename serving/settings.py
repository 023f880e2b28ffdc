"""Serving settings: one declaration, read from arguments and from ONBOARD_* environment variables.

    ServeSettings(workspace=".onboard", port=8000)          # arguments win over the environment
    ONBOARD_ENGINE=remote ONBOARD_REMOTE_URL=http://gpu:8000/v1 ...  ServeSettings()

Constructing settings does no I/O. What needs the disk (the RAG k recorded in the model card) is read
by `resolve_rag_k`, which start-up calls explicitly.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from serving.errors import BadSetting

log = logging.getLogger(__name__)

ENV_PREFIX = "ONBOARD_"


class ServeSettings(BaseSettings):
    """What to serve and how. Every field can be set as `ONBOARD_<FIELD>` in the environment."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True)

    engine: Literal["transformers", "remote", "llamacpp"] = Field(
        "transformers",
        description="transformers: run the model in this process (CPU or one GPU). remote: forward every "
        "generation to an OpenAI-compatible server at remote_url (vLLM, llama.cpp, another Onboard). llamacpp: "
        "serve the GGUF file `model` with llama.cpp's server, started and stopped by this one (fast on CPUs).")
    model: Path | None = Field(
        None,
        description="Model folder (a merged model or any Hugging Face causal LM folder); default: "
        "WORKSPACE/models/merged. With engine=remote it is optional and only read for its model card "
        "(the RAG k) and its name.")
    model_name: str | None = Field(
        None,
        description="Model id reported by /v1/models and accepted in requests; default: the model folder's "
        "name, else remote_model.")
    workspace: Path | None = Field(
        None, description="Workspace whose index feeds RAG; None serves without retrieval.")
    collection: str | None = Field(
        None, description="Chroma collection; default: the one the workspace was ingested into.")
    rag_k: int | None = Field(
        None, ge=0,
        description="Chunks retrieved per request and put in the system prompt (0 disables RAG). None: as "
        "many as the model was trained with (its model card), else rag.DEFAULT_K.")
    host: str = Field("127.0.0.1", min_length=1, description="Interface to listen on.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port to listen on.")
    max_new_tokens: int = Field(256, ge=1, description="Default and ceiling for a request's max_tokens.")
    max_request_bytes: int = Field(1_000_000, ge=1, description="Larger request bodies are refused with 413.")
    drain_seconds: float = Field(
        30.0, ge=0,
        description="On SIGTERM or Ctrl-C the server stops accepting connections and gives the answers in flight "
        "this long to finish; then it cancels them (their generations stop) and exits.")
    request_timeout: float = Field(
        600.0, gt=0,
        description="Seconds a chat request may take from its arrival to its last token (retrieval, waiting and "
        "generating); past it the generation stops: 504 for an answer not begun, an error event ending a stream.")
    max_queue: int = Field(
        64, ge=1,
        description="Chat requests in the server at once (answered or waiting); one more gets 503 with "
        "Retry-After at once instead of waiting behind them.")
    max_batch: int = Field(
        8, ge=1,
        description="transformers engine: rows of the decode loop that plain requests share (continuous batching: "
        "a request joins at the next step and leaves when it ends; on 2 CPU cores 8 clients asking in a row got "
        "3.5x the answers per second of one at a time from the 0.5B model, bench/batching.py); 1: one at a time.")
    threads: int | None = Field(
        None, ge=1, description="torch CPU threads for the transformers engine; None leaves torch's default.")
    llamacpp_python: str | None = Field(
        None,
        description="engine=llamacpp: a Python that has llama-cpp-python's server (`make setup LLAMACPP=1` "
        "installs it into this one, the default).")
    keys_file: Path | None = Field(
        None,
        description="SQLite file of API keys (`onboard keys create`); once it holds a key, every request but "
        "/healthz and /readyz needs one. Default: WORKSPACE/serving/keys.sqlite; no workspace, no keys.")
    conversations_file: Path | None = Field(
        None,
        description="SQLite file of POST /chat's conversations and the answers /feedback refers to. Default: "
        "WORKSPACE/serving/conversations.sqlite; no workspace: no /chat and /feedback routes.")
    feedback_file: Path | None = Field(
        None, description="Where /feedback appends (what `onboard data build --kind dpo` reads); default: "
        "WORKSPACE/feedback/feedback.jsonl.")
    history_turns: int = Field(
        6, ge=0, description="/chat: the conversation's last messages put in the prompt (older ones, and more when "
        "the prompt would not fit the model's context, are left out).")
    chat_retention_days: float = Field(
        30.0, gt=0, description="/chat: conversations and answers older than this are deleted at start-up.")
    query_expansion: Literal["none", "hyde"] = Field(
        "none", description="hyde: before retrieving, the served model writes a short hypothetical answer that "
        "joins the question (rag/hyde.py). On the Debian FAQ with multilingual-e5-small it raised MRR by 0.03-0.05 "
        "in both languages (recall@5 +0.04 English, -0.02 Chinese: within the benchmark's noise) for 2-5 s of the "
        "0.5B model per question on 2 CPU cores (bench/RESULTS.md); on a GPU that takes a fraction of a second. `onboard eval` "
        "retrieves without it.")
    handoff_min_cosine: float | None = Field(
        None, ge=-1, le=1, description="/chat: below this best embedding cosine, the documents hold nothing relevant "
        "and a person should take over (handoff). Default: by the index's embedding model (serving/handoff.py "
        "MIN_COSINE: all-MiniLM-L6-v2 0.45, multilingual-e5-small 0.87; measured with bench/handoff_threshold.py); "
        "for another model, set it, else only the BM25 rule applies (logged at start-up).")
    handoff_phrases: list[str] | None = Field(
        None, description="/chat: phrases with which a customer asks for a person (JSON list); default: the "
        "built-in English and Chinese ones (serving/handoff.py).")
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Origins whose web pages may call this API from a browser (CORS), e.g. "
        '["https://shop.example"] (env ONBOARD_CORS_ORIGINS as a JSON list); empty (the default): none.')
    log_format: Literal["text", "json"] = Field(
        "text", description="Server log lines: text, or json (one object per line with the request id, and an "
        "access line per request with route, status, seconds and the key's name).")
    log_bodies: bool = Field(
        False, description="Also log each chat's last user message and the answer (at INFO, with the request id). "
        "Off by default: customers' words stay out of the logs. API keys are never logged.")
    docs: bool = Field(
        True, description="Serve the API documentation (/docs, /redoc, /openapi.json); false hides them.")
    remote_url: str | None = Field(
        None,
        description="engine=remote: the upstream's OpenAI API base, with its /v1 (e.g. http://127.0.0.1:8001/v1).")
    remote_model: str | None = Field(
        None,
        description="engine=remote: the model id sent upstream (checked against its /v1/models at start-up); "
        "None lets the upstream choose (vLLM and llama.cpp serve one model).")
    remote_api_key: SecretStr | None = Field(
        None, description="engine=remote: bearer token for the upstream; never logged or echoed.")
    remote_timeout: float = Field(
        600.0, gt=0, description="engine=remote or llamacpp: seconds to wait for the upstream's answer (a long generation).")

    def __init__(self, **values) -> None:
        try:
            super().__init__(**values)
        except ValidationError as e:
            raise BadSetting(_describe(e)) from None
        self._check()

    @field_validator("remote_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None:
            return None
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        for o in v:
            if o != "*" and (not o.startswith(("http://", "https://")) or o.rstrip("/").count("/") > 2):
                raise ValueError(f"{o!r} is not an origin: scheme and host (and port), no path, e.g. "
                                 "https://shop.example")
        return [o.rstrip("/") for o in v]

    @field_validator("remote_api_key")
    @classmethod
    def _key(cls, v: SecretStr | None) -> SecretStr | None:
        return v if v is not None and v.get_secret_value() else None

    def _check(self) -> None:
        """Rules across fields. Pure: no file is opened."""
        if self.workspace is not None:
            from rag.workspace import Workspace

            ws = Workspace(self.workspace)
            self.keys_file = self.keys_file or ws.keys_file
            self.conversations_file = self.conversations_file or ws.conversations_file
            self.feedback_file = self.feedback_file or ws.feedback_file
        if self.engine == "transformers":
            if self.model is None and self.workspace is None:
                raise BadSetting("model: the transformers engine needs a model folder; pass model (env "
                                 "ONBOARD_MODEL) or a workspace whose models/merged it serves.")
            if self.model is None:
                from rag.workspace import Workspace

                self.model = Workspace(self.workspace).merged_model
        elif self.engine == "llamacpp":
            if self.model is None or self.model.suffix != ".gguf":
                raise BadSetting("model: engine 'llamacpp' serves a .gguf file (`onboard export --format gguf` "
                                 "writes one); pass it as model (env ONBOARD_MODEL).")
        else:
            if self.remote_url is None:
                raise BadSetting("remote_url: engine 'remote' needs the upstream's OpenAI API base, e.g. "
                                 "http://127.0.0.1:8001/v1 (env ONBOARD_REMOTE_URL).")
            if not (self.model_name or self.model or self.remote_model):
                raise BadSetting("model_name: engine 'remote' needs a name to serve under; set model_name "
                                 "(env ONBOARD_MODEL_NAME) or remote_model (env ONBOARD_REMOTE_MODEL).")

    @property
    def served_name(self) -> str:
        """The model id this server reports and accepts."""
        if self.model_name:
            return self.model_name
        if self.model is not None:
            return self.model.stem if self.model.suffix == ".gguf" else self.model.resolve().name
        assert self.remote_model is not None  # _check guarantees one of the three
        return self.remote_model


def trained_rag_k(settings: ServeSettings) -> int | None:
    """Chunks per prompt the model was trained with (its model card's RAG contract), or None when the
    model has no card or its card records no RAG contract.

    Raises:
        BadContract: the model card is unreadable or of an unknown schema version.
    """
    from rag.model_card import ModelCard

    card = ModelCard.read(settings.model) if settings.model is not None else None
    return card.rag.context_chunks if card is not None and card.rag is not None else None


def retrieval_required(settings: ServeSettings) -> str | None:
    """Why this server must retrieve (None when nothing asks it to): the model was trained on prompts
    holding retrieved chunks, or `rag_k` was set. Serving such a model without its documents would
    answer from its weights alone, silently: start-up refuses instead."""
    if settings.rag_k:
        return f"rag_k is {settings.rag_k}"
    trained = trained_rag_k(settings)
    if trained:
        return f"the model was trained on prompts holding {trained} retrieved chunks (its model card)"
    return None


def served_prompts(settings: ServeSettings):
    """The wording of the system prompt to serve with (the workspace's prompt.yaml, else the built-in one),
    with a loud warning when the model's card records that it was trained with another.

    Raises:
        BadContract: the prompt file or the model card is unreadable.
    """
    from rag.model_card import ModelCard
    from rag.prompt import BUILT_IN, PROMPT_LAYOUT, load_prompts

    prompts = load_prompts(settings.workspace) if settings.workspace else BUILT_IN
    card = ModelCard.read(settings.model) if settings.model is not None else None
    if card is not None and card.rag is not None:
        trained = card.rag.prompt_version or card.rag.prompt_layout
        if trained not in (prompts.version, PROMPT_LAYOUT):
            log.warning("the model was trained with prompt %s and is served with %s (%s): it may not follow "
                        "this wording; rebuild its dataset and retrain, or restore the wording it was trained "
                        "with", trained, prompts.version, prompts.origin)
    return prompts


def resolve_rag_k(settings: ServeSettings) -> int:
    """Chunks to retrieve per request: `settings.rag_k` when set, else as many as the model's training
    prompts held (its model card's RAG contract; 0 when it was trained without context), else
    `rag.DEFAULT_K` (no model folder, no card, or a card without a RAG contract).

    Raises:
        BadContract: the model card is unreadable or of an unknown schema version.
    """
    from rag.prompt import DEFAULT_K

    if settings.rag_k is not None:
        return settings.rag_k
    trained = trained_rag_k(settings)
    return DEFAULT_K if trained is None else trained


def _describe(e: ValidationError) -> str:
    """One line per invalid setting, naming it and its environment variable (never echoing a secret)."""
    lines = []
    for err in e.errors():
        name = ".".join(str(x) for x in err["loc"]) or "settings"
        field = str(err["loc"][0]) if err["loc"] else ""
        where = f" (env {ENV_PREFIX}{field.upper()})" if field in ServeSettings.model_fields else ""
        got = "" if "key" in field or err["type"] == "extra_forbidden" else f"; got {err.get('input')!r}"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{name}{where}: {msg}{got}")
    return "; ".join(lines)
