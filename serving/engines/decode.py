"""The rows of the continuous decode loop (serving/engines/batch.py): one key-value cache for every row, left-padded
to one length, that rows join (their prompts prefilled together) and leave (their cache rows dropped) between steps.

Positions are each row's own (its tokens so far), and the attention mask hides every row's padding, so a row's
tokens are the ones `generate` gives it alone (greedy: the same tokens, checked by tests/serving/test_batching.py).
"""

from __future__ import annotations


class Rows:
    def __init__(self, engine, top_k: int):
        import torch

        self.engine, self.top_k, self.device = engine, top_k, engine.device
        self.requests: list = []
        self.cache = None
        self.mask = torch.zeros((0, 0), dtype=torch.long, device=self.device)
        """[rows, positions]: 1 where a row has a token, 0 on its left padding."""
        self.last = torch.zeros(0, dtype=torch.long, device=self.device)
        """Each row's last token: the next step's input."""
        pad = engine.tokenizer.pad_token_id
        self.pad = pad if pad is not None else sorted(engine.eos_ids)[0]

    def __len__(self) -> int:
        return len(self.requests)

    def join(self, requests: list) -> None:
        """Prefill `requests` together (left-padded) and add them to the batch with their first token."""
        import torch
        from transformers import DynamicCache

        width = max(len(r.ids) for r in requests)
        ids = torch.full((len(requests), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(requests), width), dtype=torch.long)
        for i, r in enumerate(requests):
            ids[i, width - len(r.ids):] = torch.tensor(r.ids)
            mask[i, width - len(r.ids):] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        with torch.no_grad():
            out = self.engine._loaded()(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(1) - 1).clamp(min=0),
                                        past_key_values=DynamicCache(), use_cache=True, logits_to_keep=1)
        first = self._pick(out.logits[:, -1], requests)
        self._merge(out.past_key_values, mask)
        self.last = torch.cat([self.last, first])
        self.requests += requests
        self._take(first, requests)

    def step(self) -> None:
        """One token for every row."""
        import torch

        self.mask = torch.cat([self.mask, self.mask.new_ones((len(self), 1))], 1)
        with torch.no_grad():
            out = self.engine._loaded()(input_ids=self.last[:, None], attention_mask=self.mask,
                                        position_ids=self.mask.sum(1, keepdim=True) - 1, past_key_values=self.cache,
                                        use_cache=True)
        self.cache = out.past_key_values
        self.last = self._pick(out.logits[:, -1], self.requests)
        self._take(self.last, self.requests)

    def drop_ended(self) -> list:
        """Remove the rows that ended (or whose client left); returns their requests."""
        import torch

        for r in self.requests:
            r.done = r.done or r.cancel.is_set()
        ended = [r for r in self.requests if r.done]
        if not ended:
            return []
        keep = [i for i, r in enumerate(self.requests) if not r.done]
        self.requests = [self.requests[i] for i in keep]
        index = torch.tensor(keep, dtype=torch.long, device=self.device)
        self.mask, self.last = self.mask[index], self.last[index]
        unused = int((self.mask.sum(0) == 0).long().cumprod(0).sum()) if keep else self.mask.shape[1]
        self.mask = self.mask[:, unused:]
        for layer in self._layers():
            layer.keys, layer.values = layer.keys[index, :, unused:], layer.values[index, :, unused:]
        if not keep:
            self.cache = None
        return ended

    # ---- helpers
    def _layers(self) -> list:
        return self.cache.layers if self.cache is not None else []

    def _merge(self, cache, mask) -> None:
        """Another batch's cache and mask into this one, both left-padded to the longer."""
        import torch

        if self.cache is None:
            self.cache, self.mask = cache, mask
            return
        have, new = self.mask.shape[1], mask.shape[1]
        width = max(have, new)

        def pad(x, n):  # [rows, heads, positions, dim], n positions more on the left
            return x if n == 0 else torch.cat([x.new_zeros((x.shape[0], x.shape[1], n, x.shape[3])), x], 2)

        for mine, theirs in zip(self.cache.layers, cache.layers, strict=True):
            mine.keys = torch.cat([pad(mine.keys, width - have), pad(theirs.keys, width - new)])
            mine.values = torch.cat([pad(mine.values, width - have), pad(theirs.values, width - new)])
        self.mask = torch.cat([torch.cat([self.mask.new_zeros((len(self), width - have)), self.mask], 1),
                               torch.cat([mask.new_zeros((mask.shape[0], width - new)), mask], 1)])

    def _pick(self, logits, requests):
        """Each row's next token: the most likely one (greedy rows), or sampled with its temperature, top_p and
        the top_k most likely."""
        import torch

        picked = logits.argmax(-1)
        for i, r in enumerate(requests):
            if r.params.temperature > 0:
                scores = logits[i].float() / r.params.temperature
                top, idx = scores.topk(min(self.top_k, scores.shape[-1]))
                probs = top.softmax(-1)
                if r.params.top_p < 1.0:  # keep the most likely tokens whose probability adds up to top_p
                    keep = probs.cumsum(-1) - probs < r.params.top_p
                    probs = torch.where(keep, probs, torch.zeros_like(probs))
                picked[i] = idx[torch.multinomial(probs / probs.sum(), 1)]
        return picked

    def _take(self, tokens, requests) -> None:
        for r, t in zip(requests, tokens.tolist(), strict=True):
            r.take(t, self.engine.eos_ids, self.engine.tokenizer)
