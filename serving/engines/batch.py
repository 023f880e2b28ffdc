"""Dynamic batching for the transformers engine: plain requests that wait together are generated as one batch.

Each request thread queues its request and then either finds it answered by another thread's batch, or takes
the engine's lock and generates the oldest waiting request together with every waiting request that samples
the same way (up to `max_batch`), left-padded to one length. Every row ends on its own: at an end-of-turn
token, at its own token budget, at one of its stop strings, or when its client goes away; a streamed row
sends its text as its tokens come. Rows that ended are padded until the last one ends.

Requests that need per-request decoding state (log probabilities, a response_format or a forced tool call's
grammar, tools, a seed) are not batched: the engine generates them alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from serving.engines.base import Delta, Generation, SamplingParams, cut_at_stop

GATHER_S = 0.02
"""The longest a batch waits for requests still arriving to join it..."""
QUIET_S = 0.003
"""...which it stops doing once none has arrived for this long and none is being tokenized."""


def _sampling(params: SamplingParams) -> tuple:
    """Requests with the same key are generated in one batch."""
    return (params.temperature > 0, params.temperature if params.temperature > 0 else None,
            params.top_p if params.temperature > 0 else None)


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

    def takes(self, params: SamplingParams) -> bool:
        """Whether a request with `params` is generated in a batch."""
        return (self.max_batch > 1 and params.logprobs is None and not params.response_format
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
            if self.lock.acquire(blocking=False):
                try:
                    if not req.finished.is_set():
                        self._run(self._take())
                finally:
                    self.lock.release()
                with self._turn:
                    self._turn.notify_all()
            else:
                with self._turn:  # woken when a batch ends (or after a while: the lock may be a lone request's)
                    if not req.finished.is_set():
                        self._turn.wait(0.05)
        if req.error is not None:
            raise req.error
        return req

    def _take(self) -> list[_Request]:
        """The oldest waiting request and those that sample like it, up to max_batch (first come, first
        served); requests whose client left are finished without generating."""
        deadline = time.monotonic() + GATHER_S
        while (now := time.monotonic()) < deadline:
            with self._guard:
                if len(self._queue) >= self.max_batch or (not self._preparing and now - self._arrived > QUIET_S):
                    break
            time.sleep(0.001)
        with self._guard:
            for gone in [r for r in self._queue if r.cancel.is_set()]:
                self._queue.remove(gone)
                gone.finished.set()
            if not self._queue:
                return []
            key = _sampling(self._queue[0].params)
            batch = [r for r in self._queue if _sampling(r.params) == key][: self.max_batch]
            for r in batch:
                self._queue.remove(r)
        return batch

    # ---- the batch
    def _run(self, batch: list[_Request]) -> None:
        if not batch:
            return
        try:
            self._generate(batch)
        except BaseException as e:  # every row's request raises it
            for r in batch:
                r.error = e
        finally:
            for r in batch:
                r.finished.set()

    def _generate(self, batch: list[_Request]) -> None:
        import torch

        engine = self.engine
        pad = engine.tokenizer.pad_token_id
        pad = pad if pad is not None else sorted(engine.eos_ids)[0]
        width = max(len(r.ids) for r in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, r in enumerate(batch):  # left-padded: every row's next token is in the last column
            ids[i, width - len(r.ids):] = torch.tensor(r.ids)
            mask[i, width - len(r.ids):] = 1
        rows = _Rows(batch, engine.eos_ids, engine.tokenizer)
        params = batch[0].params
        kw = {"max_new_tokens": max(r.budget for r in batch), "eos_token_id": sorted(engine.eos_ids),
              "pad_token_id": pad, "stopping_criteria": [rows.ended], "streamer": rows}
        if params.temperature > 0:
            kw.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
        else:
            kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with torch.no_grad():
            engine._loaded().generate(input_ids=ids.to(engine.device), attention_mask=mask.to(engine.device), **kw)


class _Rows:
    """The batch's streamer (each step's tokens to their rows) and its stopping criterion (the rows that
    ended: generate pads them from then on, and stops when all have)."""

    def __init__(self, batch: list[_Request], eos: set[int], tokenizer):
        self.batch, self.eos, self.tokenizer = batch, eos, tokenizer
        self.prompt_seen = False

    def put(self, value) -> None:
        if not self.prompt_seen:  # generate() first puts the prompt
            self.prompt_seen = True
            return
        for r, token in zip(self.batch, value.reshape(-1).tolist(), strict=True):
            r.take(token, self.eos, self.tokenizer)

    def end(self) -> None:
        pass

    def ended(self, input_ids, scores, **_):
        import torch

        for r in self.batch:
            r.done = r.done or r.cancel.is_set()
        return torch.tensor([r.done for r in self.batch], device=input_ids.device)
