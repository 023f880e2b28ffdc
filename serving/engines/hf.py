"""An engine on transformers' `generate`, for CPU and for when vLLM is not installed.

One generation runs at a time (a lock): on a small CPU machine concurrent generations only thrash.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

from serving.engines.base import Delta, Generation, SamplingParams
from serving.errors import ModelNotLoaded

log = logging.getLogger(__name__)


class TransformersEngine:
    def __init__(self, model_path: str | Path):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = Path(model_path)
        if not (path / "config.json").exists():
            raise ModelNotLoaded(f"{path}: not a model folder (no config.json). Pass the folder `onboard merge` wrote.")
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        if self.tokenizer.chat_template is None:
            raise ModelNotLoaded(f"{path}: the tokenizer has no chat template, so chat requests cannot be rendered.")
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(self.device).eval()
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        self.eos_ids.add(self.tokenizer.eos_token_id)
        self._lock = threading.Lock()
        log.info("loaded %s on %s", path, self.device)

    def _inputs(self, messages: list[dict]):
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.tokenizer(text, return_tensors="pt", add_special_tokens=False).to(self.device)

    def _kwargs(self, params: SamplingParams) -> dict:
        kw = {"max_new_tokens": params.max_new_tokens, "eos_token_id": sorted(self.eos_ids),
              "pad_token_id": self.tokenizer.pad_token_id or sorted(self.eos_ids)[0]}
        if params.temperature > 0:
            kw.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
        else:
            kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kw

    def generate(self, messages: list[dict], params: SamplingParams) -> Generation:
        import torch

        inputs = self._inputs(messages)
        n_prompt = inputs["input_ids"].shape[1]
        with self._lock, torch.no_grad():
            out = self.model.generate(**inputs, **self._kwargs(params))
        new = out[0, n_prompt:].tolist()
        stopped = bool(new) and new[-1] in self.eos_ids
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        return Generation(text, n_prompt, len(new), "stop" if stopped else "length")

    def stream(self, messages: list[dict], params: SamplingParams) -> Iterator[Delta]:
        import torch

        inputs = self._inputs(messages)
        n_prompt = inputs["input_ids"].shape[1]
        streamer = _TokenQueue()
        result: dict = {}

        def work() -> None:
            try:
                with torch.no_grad():
                    result["out"] = self.model.generate(
                        **inputs, **self._kwargs(params), streamer=streamer, stopping_criteria=[streamer.stop_when_cancelled]
                    )
            finally:
                streamer.end()

        with self._lock:
            thread = threading.Thread(target=work, daemon=True)
            thread.start()
            ids: list[int] = []
            sent = ""
            try:
                for tok in streamer:
                    ids.append(tok)
                    text = self.tokenizer.decode(ids, skip_special_tokens=True)
                    # A byte-level token can end mid-character: hold back until the character is complete.
                    if text.endswith("\ufffd") or len(text) <= len(sent):
                        continue
                    yield Delta(text[len(sent):])
                    sent = text
            finally:
                # The client may have gone away: stop generating before the next request gets the lock.
                streamer.cancelled.set()
                thread.join()
        new = result["out"][0, n_prompt:].tolist()
        stopped = bool(new) and new[-1] in self.eos_ids
        yield Delta("", "stop" if stopped else "length", n_prompt, len(new))


class _TokenQueue:
    """A transformers streamer that hands generated token ids to another thread."""

    def __init__(self):
        import queue

        self.q: queue.Queue = queue.Queue()
        self.prompt_seen = False
        self.cancelled = threading.Event()

    def stop_when_cancelled(self, input_ids, scores, **kwargs) -> bool:
        """A generate() stopping criterion: True once the consumer has stopped reading."""
        return self.cancelled.is_set()

    def put(self, value) -> None:
        if not self.prompt_seen:  # generate() first puts the prompt
            self.prompt_seen = True
            return
        for t in value.reshape(-1).tolist():
            self.q.put(t)

    def end(self) -> None:
        self.q.put(None)

    def __iter__(self):
        while (t := self.q.get()) is not None:
            yield t
