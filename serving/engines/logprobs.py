"""Log probabilities of the generated tokens, as OpenAI returns them (`logprobs`, `top_logprobs`), for the
transformers engine.

A `Recorder` is a logits processor placed before temperature and top-p (transformers runs a request's own
processors ahead of its warpers), so what it sees are the model's own logits for the step, and each chosen
token's log probability is the model's, not the sampling distribution's. It keeps one step's distribution at
a time: the chosen token is resolved when the next step starts (or, streaming, as the streamer receives it).
"""

from __future__ import annotations

from functools import cache

from transformers import LogitsProcessor

from serving.engines.base import TokenLogprob


class Recorder(LogitsProcessor):
    def __init__(self, tokenizer, top: int, skip: set[int]):
        """`top`: alternatives per position (0-20); `skip`: token ids never reported (EOS: the answer's end is
        not part of its text)."""
        self.tokenizer, self.top, self.skip = tokenizer, top, skip
        self.pending = None
        self.entries: list[TokenLogprob] = []
        self.sent = 0
        """Entries already handed out by `take`."""

    def __call__(self, input_ids, scores):
        import torch

        if self.pending is not None:
            self.resolve(int(input_ids[0, -1]))
        self.pending = torch.log_softmax(scores[0].float(), dim=-1)
        return scores

    def resolve(self, token_id: int) -> None:
        """The token chosen at the pending step: record it (once)."""
        lp, self.pending = self.pending, None
        if lp is None or token_id in self.skip:
            return
        top = []
        if self.top:
            values, ids = lp.topk(self.top)
            top = [self._entry(int(i), float(v)) for v, i in zip(values, ids, strict=True)]
        self.entries.append(self._entry(token_id, float(lp[token_id]), top))

    def take(self, upto_bytes: int) -> list[TokenLogprob]:
        """The entries not taken yet whose bytes lie within the first `upto_bytes` of the answer (what was
        sent so far: a held-back piece keeps its tokens, tokens after a stop string are never taken)."""
        done = sum(len(e.bytes) for e in self.entries[: self.sent])
        out = []
        for e in self.entries[self.sent:]:
            if done + len(e.bytes) > upto_bytes:
                break
            done += len(e.bytes)
            out.append(e)
        self.sent += len(out)
        return out

    def _entry(self, token_id: int, logprob: float, top: list[TokenLogprob] | None = None) -> TokenLogprob:
        raw = token_bytes(self.tokenizer, token_id)
        return TokenLogprob(raw.decode("utf-8", errors="backslashreplace"), max(logprob, -9999.0), list(raw),
                            top or [])


def token_bytes(tokenizer, token_id: int) -> bytes:
    """The bytes a token stands for: exact for byte-level BPE (GPT-2, Llama 3, Qwen), where one token may
    hold part of a character; otherwise its decoded text."""
    piece = tokenizer.convert_ids_to_tokens(token_id)
    table = _byte_decoder()
    if isinstance(piece, str) and piece and all(c in table for c in piece) and _byte_level(tokenizer):
        return bytes(table[c] for c in piece)
    return tokenizer.decode([token_id]).encode("utf-8")


def _byte_level(tokenizer) -> bool:
    """Whether the tokenizer maps bytes to characters as GPT-2 does (a space is "Ġ")."""
    return tokenizer.convert_tokens_to_string(["Ġ"]) == " "


@cache
def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level BPE alphabet, character -> byte."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=True)}
