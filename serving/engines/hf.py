"""An engine on transformers' `generate`, for CPU and for when vLLM is not installed.

Generation is blocking, so it runs in a worker thread and the event loop keeps answering. One generation
runs at a time (a lock taken in the worker): concurrent ones only thrash. Plain requests (no log probabilities,
response_format, tools or seed) share one decode loop of up to `max_batch` rows (continuous batching,
serving/engines/batch.py), joining it at any step, each row ending on its own (end of turn, its max_tokens, a
stop string, its client gone) and streaming its own tokens; the others are generated alone with `generate`.
Every generation checks a cancel event, so a request whose client went away stops at the next token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import contextmanager
from pathlib import Path

from serving.engines.base import Delta, Generation, SamplingParams, cut_at_stop, held_back
from serving.errors import ContextTooLong, ModelNotLoaded

log = logging.getLogger(__name__)


def require_model_folder(path: Path | None) -> Path:
    """`path` if it is a model folder (it holds config.json).

    Raises:
        ModelNotLoaded: it is not; the message says how to get one.
    """
    if path is None or not (Path(path) / "config.json").exists():
        raise ModelNotLoaded(f"{path}: not a model folder (no config.json). Train and merge first "
                             "(`onboard train`, `onboard merge`) or pass --model DIR.")
    return Path(path)


class TransformersEngine:
    def __init__(self, model_path: str | Path, threads: int | None = None, max_batch: int = 8,
                 pack_weights: bool = True):
        """`max_batch`: requests generated together at most (serving.settings.ServeSettings.max_batch).
        `pack_weights`: on a CPU, pack the linear layers' weights once for oneDNN (serving/engines/packed.py: a
        decode step 1.3x faster for one row, 1.8x for eight); False keeps transformers' own layers (benchmarks
        compare the two)."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = require_model_folder(Path(model_path))
        if threads:
            torch.set_num_threads(threads)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        if self.tokenizer.chat_template is None:
            raise ModelNotLoaded(f"{path}: the tokenizer has no chat template, so chat requests cannot be rendered.")
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        try:
            self.model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(self.device).eval()
        except Exception as e:  # a truncated or corrupt weights file: safetensors, torch and OSError variants
            raise ModelNotLoaded(
                f"{path}: cannot load the model weights ({type(e).__name__}: {str(e).splitlines()[0][:200]}). "
                "A file is truncated or corrupt (an interrupted copy, a full disk): merge again with "
                "`onboard merge --force`, or copy the folder again.") from None
        self.packed = 0
        """Linear layers packed for oneDNN (serving/engines/packed.py); 0 on a GPU or when not asked."""
        if pack_weights and self.device == "cpu":
            from serving.engines.packed import pack_linears, packable

            if packable():
                self.packed = pack_linears(self.model)
            else:
                log.warning("this torch has no oneDNN (mkldnn) linear kernels: weights not packed, decoding is slower")
        self.context = _context_window(self.model.config, self.tokenizer)
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        self.eos_ids.add(self.tokenizer.eos_token_id)
        self._lock = threading.Lock()
        self._counting = threading.Lock()
        self.waiting_alone = 0
        """Requests to be generated alone waiting for the lock (the decode loop lets them in: serving/engines/batch.py)."""
        from serving.engines.batch import Batcher

        self.max_batch = max_batch
        self._batcher = Batcher(self, self._lock, self.max_batch)
        self._grammars = None
        """Compiled response_format grammars (serving.engines.grammar), made on first use."""
        from serving.tools import layout_of

        self.tool_layout = layout_of(self.tokenizer.chat_template)
        """How the template renders tool calls (serving.tools), None when it has no tools."""
        log.info("loaded %s on %s%s", path, self.device,
                 f" ({self.packed} linear layers packed for oneDNN)" if self.packed else "")

    # ---- the Engine interface
    async def generate(self, messages: list[dict], params: SamplingParams) -> Generation:
        # A thread of its own, not the event loop's pool: a request waiting for its batch must not hold one of
        # the pool's few threads; and cancelling the request does not wait for the thread to end.
        loop = asyncio.get_running_loop()
        done: asyncio.Future = loop.create_future()
        cancel = threading.Event()

        def settle(result, error) -> None:  # in the loop
            if not done.done():
                done.set_exception(error) if error is not None else done.set_result(result)

        def work() -> None:
            result, error = None, None
            try:
                result = self._generate(messages, params, cancel)
            except BaseException as e:  # raised in the request
                error = e
            try:
                loop.call_soon_threadsafe(settle, result, error)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass

        threading.Thread(target=work, daemon=True).start()
        try:
            return await done
        finally:
            cancel.set()

    def stream(self, messages: list[dict], params: SamplingParams) -> AsyncIterator[Delta]:
        if params.tools and params.tool_choice != "none":
            if self._forced(params)[1] is None and params.logprobs is None:
                # tool_choice auto: the content streams as it is written, the calls come whole at the end
                from serving.tools import stream_calls

                return stream_calls(self._text(messages, params), self.tool_layout)
            return self._whole(messages, params)
        return self._text(messages, params)

    async def _whole(self, messages: list[dict], params: SamplingParams) -> AsyncIterator[Delta]:
        """The answer as one piece: a forced call is all call, and log probabilities are the whole answer's."""
        g = await self.generate(messages, params)
        yield Delta(g.text, g.finish_reason, g.prompt_tokens, g.completion_tokens, g.logprobs, g.tool_calls)

    async def _text(self, messages: list[dict], params: SamplingParams) -> AsyncIterator[Delta]:
        """The answer's text as it is generated, and a last delta with the finish reason and token counts."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        cancel = threading.Event()

        def emit(item) -> None:  # called from the worker thread
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                cancel.set()

        threading.Thread(target=self._stream, args=(messages, params, cancel, emit), daemon=True).start()
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            # Closed or cancelled (the client went away) or done: stop generating at the next token.
            # No await here: a cancelled task cannot wait, and the worker releases the lock itself.
            cancel.set()

    async def count_tokens(self, messages: list[dict]) -> int:
        self._loaded()
        return await asyncio.to_thread(lambda: int(self._inputs(messages)["input_ids"].shape[1]))

    async def ready(self) -> str | None:
        return None if self.model is not None else "the engine is closed (the server is shutting down)"

    async def close(self) -> None:
        # A generation still running holds its own reference and finishes; later ones are refused.
        self.model = None

    # ---- blocking work, in worker threads
    def _inputs(self, messages: list[dict], params: SamplingParams | None = None):
        """The prompt's token ids: the messages (tool turns included) and the tools through the chat template,
        and, when a tool call is forced, the text the answer is made to begin with.

        Raises:
            Unsupported: tools or tool turns, and the template renders none (`param` tools or the message).
        """
        from serving.tools import history_for_template

        tools = self._tools(messages, params)
        text = self.tokenizer.apply_chat_template(history_for_template(messages), tools=tools, tokenize=False,
                                                  add_generation_prompt=True)
        text += self._forced(params)[0]
        return self.tokenizer(text, return_tensors="pt", add_special_tokens=False).to(self.device)

    def _tools(self, messages: list[dict], params: SamplingParams | None) -> list[dict] | None:
        """The tools to render (None: none, or tool_choice none), once the template is known to render them."""
        from serving.errors import Unsupported

        tools = params.tools if params is not None and params.tool_choice != "none" else None
        if self.tool_layout is None:
            if tools:
                raise Unsupported("tools: this model's chat template does not render tools (no tool calling); "
                                  "leave tools out, or serve a model whose template has them (Qwen2.5, Llama 3.1+, "
                                  "a model Onboard built).", "tools")
            turn = next((i for i, m in enumerate(messages) if m["role"] == "tool" or m.get("tool_calls")), None)
            if turn is not None:
                raise Unsupported(f"messages[{turn}]: this model's chat template does not render tool turns; leave "
                                  "them out.", f"messages[{turn}]")
        return tools or None

    def _forced(self, params: SamplingParams | None) -> tuple[str, str | None]:
        """For tool_choice required or a named function: the answer's forced beginning and the JSON schema of
        the call after it; ("", None) otherwise."""
        from serving.tools import forced_call

        if params is None or not params.tools or self.tool_layout is None:
            return "", None
        choice = params.tool_choice
        if choice == "required" or isinstance(choice, dict):
            name = choice["function"]["name"] if isinstance(choice, dict) else None
            prefix, schema = forced_call(self.tool_layout, params.tools, name)
            return prefix, json.dumps(schema)
        return "", None

    def _answer(self, text: str, params: SamplingParams) -> tuple[str, list | None]:
        """The answer's text and tool calls (None: no tools asked for): a forced call is read with its forced
        beginning (and its closing tag, when max_tokens did not cut it)."""
        from serving.tools import parse

        if not params.tools or params.tool_choice == "none":
            return text, None
        prefix, schema = self._forced(params)
        if schema is not None:
            text = prefix + text + ("\n</tool_call>" if self.tool_layout == "hermes" else "")
        content, calls = parse(text, self.tool_layout)
        return content or "", calls or None

    def _kwargs(self, params: SamplingParams, cancel: threading.Event, n_prompt: int) -> dict:
        stops = [lambda input_ids, scores, **_: cancel.is_set()]
        if params.stop:
            stops.append(self._stop_check(params.stop, n_prompt))
        kw = {"max_new_tokens": self._budget(n_prompt, params), "eos_token_id": sorted(self.eos_ids),
              "logits_processor": self._recorder(params) + self._grammar(params),
              "pad_token_id": self.tokenizer.pad_token_id or sorted(self.eos_ids)[0], "stopping_criteria": stops}
        if params.temperature > 0:
            kw.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
        else:
            kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kw

    @contextmanager
    def _alone(self):
        """The engine's lock for a request generated alone; while it waits, the decode loop takes no new rows, so
        it ends and lets this request in (no starving behind a loop that keeps being joined)."""
        with self._counting:
            self.waiting_alone += 1
        try:
            self._lock.acquire()
        finally:
            with self._counting:
                self.waiting_alone -= 1
        try:
            yield
        finally:
            self._lock.release()

    def _stop_check(self, stop: tuple[str, ...], n_prompt: int):
        """A stopping criterion: a stop string was generated (`stop_in_tail`)."""
        return lambda input_ids, scores, **_: stop_in_tail(self.tokenizer, input_ids[0, n_prompt:], stop)

    def _recorder(self, params: SamplingParams) -> list:
        """[a log-probability recorder] when the request asks for them, else []."""
        if params.logprobs is None:
            return []
        from serving.engines.logprobs import Recorder

        return [Recorder(self.tokenizer, params.logprobs, self.eos_ids)]

    def _grammar(self, params: SamplingParams) -> list:
        """[the grammar of the response_format's JSON, or of a forced tool call's], else []."""
        from serving.engines.grammar import Grammars, schema_of

        schema = schema_of(params.response_format) or self._forced(params)[1]
        if schema is None:
            return []
        if self._grammars is None:
            self._grammars = Grammars(self.tokenizer, self.model.config.vocab_size)
        return [self._grammars.processor(schema)]

    def _loaded(self):
        model = self.model
        if model is None:
            raise ModelNotLoaded("the engine is closed (the server is shutting down).")
        return model

    def _budget(self, n_prompt: int, params: SamplingParams) -> int:
        """New tokens allowed: the request's maximum, cut to what the context window has left.

        Raises:
            ContextTooLong: the prompt alone fills the window, or leaves less room than the client's own
                max_tokens.
        """
        room = self.context - n_prompt
        if room <= 0:
            raise ContextTooLong(
                f"the prompt is {n_prompt} tokens (retrieved context and history included) but this model reads "
                f"at most {self.context}, answer included. Shorten the messages, or retrieve fewer chunks.")
        if params.requested and params.max_new_tokens > room:
            raise ContextTooLong(
                f"This model's maximum context length is {self.context} tokens. However, you requested "
                f"{n_prompt + params.max_new_tokens} tokens ({n_prompt} in the messages, retrieved context included, "
                f"{params.max_new_tokens} in the completion). Please reduce the length of the messages or completion.")
        return min(params.max_new_tokens, room)

    def _finish(self, new: list[int]) -> str:
        return "stop" if new and new[-1] in self.eos_ids else "length"

    def _generate(self, messages: list[dict], params: SamplingParams, cancel: threading.Event) -> Generation:
        import torch

        if self._batcher.takes(params):
            return self._batcher.generate(messages, params, cancel)
        inputs = self._inputs(messages, params)
        n_prompt = inputs["input_ids"].shape[1]
        kwargs = self._kwargs(params, cancel, n_prompt)
        with self._alone(), torch.no_grad():
            if cancel.is_set():  # the caller left while this request waited for the lock: skip the prefill
                raise asyncio.CancelledError
            _seed(params)
            out = self._loaded().generate(**inputs, **kwargs)
        new = out[0, n_prompt:].tolist()
        text, stopped = cut_at_stop(self.tokenizer.decode(new, skip_special_tokens=True), params.stop)
        logprobs = None
        recorder = _recorder_in(kwargs)
        if recorder is not None:
            if new:
                recorder.resolve(new[-1])  # the last step's token: no step after it resolved it
            logprobs = recorder.take(len(text.encode("utf-8")))
        content, calls = self._answer(text, params)
        finish = "tool_calls" if calls else "stop" if stopped else self._finish(new)
        return Generation(content, n_prompt, len(new), finish, logprobs, calls)

    def _stream(self, messages: list[dict], params: SamplingParams, cancel: threading.Event,
                emit: Callable[[object], None]) -> None:
        import torch

        try:
            if self._batcher.takes(params):
                self._batcher.stream(messages, params, cancel, emit)
                return
            inputs = self._inputs(messages, params)
            n_prompt = inputs["input_ids"].shape[1]
            kwargs = self._kwargs(params, cancel, n_prompt)
            with self._alone(), torch.no_grad():
                if cancel.is_set():  # the client left while this request waited for the lock
                    return
                _seed(params)
                streamer = _Detokenizer(self.tokenizer, emit, params.stop, _recorder_in(kwargs))
                out = self._loaded().generate(**inputs, **kwargs, streamer=streamer)
            new = out[0, n_prompt:].tolist()
            emit(Delta("", "stop" if streamer.stopped else self._finish(new), n_prompt, len(new)))
        except BaseException as e:  # handed to the event loop, raised there in the request
            emit(e)
        finally:
            emit(None)


def stop_in_tail(tokenizer, new, stop: tuple[str, ...]) -> bool:
    """Whether a stop string appears in the last tokens of `new` (the generated ids), enough of them to hold
    the longest stop string (a token is at least one character)."""
    tail = new[-(max(len(s) for s in stop) + 8):]
    return any(s in tokenizer.decode(tail, skip_special_tokens=True) for s in stop)


def _recorder_in(kwargs: dict):
    """The generation's log-probability recorder, or None (not asked for)."""
    from serving.engines.logprobs import Recorder

    return next((p for p in kwargs["logits_processor"] if isinstance(p, Recorder)), None)


def _seed(params: SamplingParams) -> None:
    """Seed torch for a sampled generation that asked for a seed (under the engine's lock, so no other
    generation draws from the generator meanwhile)."""
    if params.seed is not None and params.temperature > 0:
        import torch

        torch.manual_seed(params.seed)


def _context_window(config, tokenizer) -> int:
    """Positions the model can attend to: its config's maximum, else the tokenizer's (when it states one)."""
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        if isinstance(getattr(config, name, None), int):
            return getattr(config, name)
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and limit < 10**9:
        return limit
    raise ModelNotLoaded(f"{config.name_or_path}: the model's config states no context length "
                         "(max_position_embeddings), so requests cannot be kept within it.")


class _Detokenizer:
    """A transformers streamer that turns token ids into text pieces, in the generating thread."""

    def __init__(self, tokenizer, emit: Callable[[object], None], stop: tuple[str, ...] = (), recorder=None):
        """`recorder`: the generation's log-probability recorder, whose tokens go out with their text."""
        self.tokenizer, self.emit, self.stop, self.recorder = tokenizer, emit, stop, recorder
        self.prompt_seen = False
        self.ids: list[int] = []
        self.sent = ""
        self.stopped = False
        """A stop string was generated: what precedes it is sent, nothing after."""

    def put(self, value) -> None:
        if not self.prompt_seen:  # generate() first puts the prompt
            self.prompt_seen = True
            return
        self.put_ids(value.reshape(-1).tolist())

    def put_ids(self, ids: list[int]) -> None:
        """Generated tokens (a batch's row hands its own here)."""
        if self.stopped:
            return
        self.ids.extend(ids)
        if self.recorder is not None:
            self.recorder.resolve(self.ids[-1])  # the step's token, before the next step starts
        text, self.stopped = cut_at_stop(self.tokenizer.decode(self.ids, skip_special_tokens=True), self.stop)
        # A byte-level token can end mid-character: hold back until the character is complete; and hold
        # back what could be the start of a stop string until it is known not to be one.
        if not self.stopped:
            if text.endswith("\ufffd"):
                return
            text = text[: len(text) - held_back(text, self.stop)]
        self._send(text)

    def end(self) -> None:
        """Send what was held back: bytes that never completed a character are sent as the whole answer
        has them (U+FFFD), so a stream always adds up to the non-streamed answer."""
        if not self.stopped:
            self._send(cut_at_stop(self.tokenizer.decode(self.ids, skip_special_tokens=True), self.stop)[0])

    def _send(self, text: str) -> None:
        if len(text) > len(self.sent):
            logprobs = None if self.recorder is None else self.recorder.take(len(text.encode("utf-8")))
            self.emit(Delta(text[len(self.sent):], logprobs=logprobs))
            self.sent = text
