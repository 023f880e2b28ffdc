"""Continuous batching for the transformers engine: plain requests are generated together in one decode loop,
which a request joins at any step and leaves when it ends.

Each request thread queues its request and waits for it to be answered; when no loop is running (the engine's lock
is free), it takes the lock and starts one, on a thread of its own that runs until no request is left in it or
waiting. At each step the requests waiting join (up to `max_batch` rows): their prompts are prefilled together,
left-padded, and their key-value caches are left-padded into the running batch's; then one forward step gives every
row its next token. Every row ends on its own: at an end-of-turn token, at its own token budget, at one of its stop
strings, or when its client goes away; its place is free for the next request at the next step. A streamed row sends
its text as its tokens come. Greedy rows take the most likely token, sampled rows sample with their own temperature
and top_p (and the model's top_k, as `generate` does).

Requests that need per-request decoding state (log probabilities, a response_format or a forced tool call's
grammar, tools, a seed) are not batched: the engine generates them alone, with `generate`; while one waits, the
loop takes no new rows, so it ends and lets that request have the model. Nor is anything on a
model whose generation config asks for more than this loop does (a repetition penalty, banned words...).

Measured on the 0.5B model on 2 CPU cores, its linear layers packed (serving/engines/packed.py; bench/batching.py,
bench/RESULTS.md): 8 clients asking 8 questions each in a row got 3.5x the answers per second of one at a time,
8 asking at once 2.8x to 3.8x, 32 at once 4.1x; every answer the one `generate` gives alone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from serving.engines.base import Delta, Generation, SamplingParams, cut_at_stop

log = logging.getLogger(__name__)

GATHER_S = 0.02
"""The longest a loop about to start waits for requests still arriving to join it..."""
QUIET_S = 0.003
"""...which it stops doing once none has arrived for this long and none is being tokenized."""
PLAIN = {"repetition_penalty": 1.0, "no_repeat_ngram_size": 0, "bad_words_ids": None, "suppress_tokens": None,
         "begin_suppress_tokens": None, "min_length": 0, "min_new_tokens": None, "forced_bos_token_id": None,
         "forced_eos_token_id": None, "sequence_bias": None, "encoder_repetition_penalty": 1.0}
"""Generation-config settings the loop does not apply, at the values that change nothing."""


@dataclass
class _Request:
    ids: list[int]
    params: SamplingParams
    budget: int
    cancel: threading.Event
    emit: Callable[[object], None] | None = None
    """A streamed request's sink (deltas); None: the whole answer is returned."""
    new: list[int] = field(default_factory=list)
    done: bool = False
    stopped: bool = False
    """A stop string was generated."""
    detok: object | None = None
    error: BaseException | None = None
    finished: threading.Event = field(default_factory=threading.Event)

    def take(self, token: int, eos: set[int], tokenizer) -> None:
        """One generated token; marks the row done when it ends the answer."""
        if self.done:
            return
        if self.cancel.is_set():
            self.done = True
            return
        self.new.append(token)
        if self.detok is not None:
            self.detok.put_ids([token])
            self.stopped = self.detok.stopped
        elif self.params.stop:
            from serving.engines.hf import stop_in_tail

            self.stopped = stop_in_tail(tokenizer, self.new, self.params.stop)
        self.done = self.stopped or token in eos or len(self.new) >= self.budget


class Batcher:
    """The queue and the batched `generate` of one `TransformersEngine`."""

    def __init__(self, engine, lock: threading.Lock, max_batch: int):
        self.engine, self.lock, self.max_batch = engine, lock, max_batch
        self._queue: list[_Request] = []
        self._guard = threading.Lock()
        self._turn = threading.Condition()
        """Notified when a batch ends: the requests still waiting try for the lock again."""
        self._preparing = 0
        """Requests being tokenized: a batch about to start waits a moment for them."""
        self._arrived = 0.0
        """When the last request arrived (time.monotonic)."""
        config = engine.model.generation_config
        unplain = {k: getattr(config, k, v) for k, v in PLAIN.items() if getattr(config, k, v) not in (v, None)}
        self.plain = not unplain
        """The model's generation config asks for nothing the loop does not do (else: each request alone)."""
        if unplain:
            log.warning("requests are generated one at a time, not batched: the model's generation config sets %s, "
                        "which only transformers' generate applies", unplain)
        self.top_k = getattr(config, "top_k", None) or 50
        """Sampled rows keep the top_k most likely tokens, as generate does (its default 50, or the model's)."""

    def takes(self, params: SamplingParams) -> bool:
        """Whether a request with `params` is generated in the loop."""
        return (self.max_batch > 1 and self.plain and params.logprobs is None and not params.response_format
                and not params.tools and params.seed is None)

    def generate(self, messages: list[dict], params: SamplingParams, cancel: threading.Event) -> Generation:
        import asyncio

        req = self._serve(messages, params, cancel)
        if req.cancel.is_set() and not req.new:
            raise asyncio.CancelledError
        text, stopped = cut_at_stop(self.engine.tokenizer.decode(req.new, skip_special_tokens=True), params.stop)
        return Generation(text, len(req.ids), len(req.new), "stop" if stopped else self.engine._finish(req.new))

    def stream(self, messages: list[dict], params: SamplingParams, cancel: threading.Event,
               emit: Callable[[object], None]) -> None:
        """Emits the deltas and the last one (finish reason and token counts), or raises."""
        req = self._serve(messages, params, cancel, emit)
        if req.cancel.is_set():
            return
        req.detok.end()
        emit(Delta("", "stop" if req.stopped else self.engine._finish(req.new), len(req.ids), len(req.new)))

    # ---- the queue
    def _serve(self, messages: list[dict], params: SamplingParams, cancel: threading.Event,
               emit: Callable[[object], None] | None = None) -> _Request:
        """Queue the request and return it once generated (by this thread's batch or another's).

        Raises:
            ContextTooLong: the prompt does not fit (before anything is queued).
            The batch's error, when its generation failed.
        """
        with self._guard:
            self._preparing += 1
            self._arrived = time.monotonic()
        try:
            inputs = self.engine._inputs(messages, params)
            ids = inputs["input_ids"][0].tolist()
            req = _Request(ids, params, self.engine._budget(len(ids), params), cancel, emit)
            if emit is not None:
                from serving.engines.hf import _Detokenizer

                req.detok = _Detokenizer(self.engine.tokenizer, emit, params.stop)
                req.detok.prompt_seen = True
            with self._guard:
                self._queue.append(req)
        finally:
            with self._guard:
                self._preparing -= 1
        while not req.finished.is_set():
            # No loop running (the lock is free): start one, on a thread of its own, so that this request is
            # answered when its row ends, not when the loop does (under steady load, never).
            if self.lock.acquire(blocking=False):
                if req.finished.is_set():
                    self.lock.release()
                    break
                try:
                    threading.Thread(target=self._drive, name="onboard-decode-loop", daemon=True).start()
                except BaseException:  # no thread to be had: leave the lock free, this request fails
                    self.lock.release()
                    raise
            with self._turn:  # woken when a row ends or a loop ends (or after a while: the lock may be a lone request's)
                if not req.finished.is_set():
                    self._turn.wait(0.05)
        if req.error is not None:
            raise req.error
        return req

    def _take(self, room: int | None = None, wait: bool = True) -> list[_Request]:
        """The oldest waiting requests, up to `room` (default max_batch; first come, first served), after waiting
        a moment for requests still arriving when `wait`; requests whose client left are finished without
        generating."""
        room = self.max_batch if room is None else room
        deadline = time.monotonic() + (GATHER_S if wait else 0)
        while (now := time.monotonic()) < deadline:
            with self._guard:
                if len(self._queue) >= room or (not self._preparing and now - self._arrived > QUIET_S):
                    break
            time.sleep(0.001)
        with self._guard:
            gone = [r for r in self._queue if r.cancel.is_set()]
            for r in gone:
                self._queue.remove(r)
            batch, self._queue[:room] = self._queue[:room], []
        if gone:
            self._done(gone)
        return batch

    # ---- the loop
    def _drive(self) -> None:
        """The decode loop's thread: runs it (the lock taken by the request that started it), then lets the next
        one start."""
        try:
            self._run(self._take())
        finally:
            self.lock.release()
            with self._turn:
                self._turn.notify_all()

    def _done(self, requests: list[_Request]) -> None:
        """Their rows ended (or failed): their threads return them."""
        with self._turn:
            for r in requests:
                r.finished.set()
            self._turn.notify_all()

    def _run(self, first: list[_Request]) -> None:
        """The decode loop, from `first` until no row is left in it or waiting to join."""
        if not first:
            return
        from serving.engines.decode import Rows

        rows = Rows(self.engine, self.top_k)
        joining = first
        try:
            while True:
                if joining:
                    rows.join(joining)
                    joining = []
                if ended := rows.drop_ended():
                    self._done(ended)
                if len(rows) < self.max_batch and not self.engine.waiting_alone:  # else: end, and let it in
                    joining = self._take(self.max_batch - len(rows), wait=not rows)
                if not rows and not joining:
                    return
                if rows:
                    rows.step()
        except BaseException as e:  # every row's request raises it, in its own thread
            for r in [*rows.requests, *joining]:
                r.error = e
            self._done([*rows.requests, *joining])
