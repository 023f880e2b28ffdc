"""Dynamic batching in the transformers engine (serving/engines/batch.py): requests that wait together are
generated in one batch, each gets the answer it gets alone, and each row ends on its own."""

import asyncio

import pytest

from serving.engines.base import SamplingParams
from serving.engines.hf import TransformersEngine

QUESTIONS = ["How long is the warranty on lamps?", "How do I return an item?", "Which payment methods do you take?",
             "退货需要多长时间？", "Do you ship abroad?"]


def _msgs(q: str) -> list[dict]:
    return [{"role": "user", "content": q}]


@pytest.fixture(scope="module")
def engine(merged_model):
    return TransformersEngine(merged_model, max_batch=8)


@pytest.fixture()
def batches(engine, monkeypatch) -> list[int]:
    """The batch size of each call of the model's generate."""
    sizes: list[int] = []
    original = engine.model.generate

    def generate(**kw):
        sizes.append(kw["input_ids"].shape[0])
        return original(**kw)

    monkeypatch.setattr(engine.model, "generate", generate)
    return sizes


def test_requests_waiting_together_are_one_batch_and_get_the_answers_they_get_alone(engine, batches):
    params = SamplingParams(max_new_tokens=24)
    alone = [asyncio.run(engine.generate(_msgs(q), params)) for q in QUESTIONS]
    assert batches == [1] * len(QUESTIONS)

    async def together():
        return await asyncio.gather(*(engine.generate(_msgs(q), params) for q in QUESTIONS))

    batched = asyncio.run(together())
    assert max(batches[len(QUESTIONS):]) > 1 and len(batches) < 2 * len(QUESTIONS)  # fewer calls than requests
    assert [g.text for g in batched] == [g.text for g in alone]
    assert [(g.prompt_tokens, g.completion_tokens, g.finish_reason) for g in batched] == \
        [(g.prompt_tokens, g.completion_tokens, g.finish_reason) for g in alone]


def test_each_row_ends_on_its_own_budget_stop_string_or_stream(engine, batches):
    """Rows of different max_tokens, one with a stop string and one streamed, in one batch: each ends as it
    would alone (a streamed row's pieces add up to its answer)."""
    long, short = SamplingParams(max_new_tokens=30), SamplingParams(max_new_tokens=3)
    q = QUESTIONS[1]
    whole = asyncio.run(engine.generate(_msgs(q), long)).text
    assert len(whole) > 12
    stop = whole[6:10]
    stopped = SamplingParams(max_new_tokens=30, stop=(stop,))

    async def together():
        async def streamed():
            deltas = [d async for d in engine.stream(_msgs(q), long)]
            return "".join(d.text for d in deltas), deltas[-1]

        return await asyncio.gather(engine.generate(_msgs(q), long), engine.generate(_msgs(q), short),
                                    engine.generate(_msgs(q), stopped), streamed())

    batches.clear()
    full, cut, at_stop, (text, last) = asyncio.run(together())
    assert max(batches) > 1
    assert full.text == whole and text == whole and last.completion_tokens == full.completion_tokens
    assert cut.completion_tokens == 3 and cut.finish_reason == "length" and whole.startswith(cut.text)
    assert at_stop.text == whole[: whole.index(stop)] and at_stop.finish_reason == "stop"


def test_a_request_needing_its_own_decoding_is_generated_alone(engine, batches):
    plain, with_logprobs = SamplingParams(max_new_tokens=8), SamplingParams(max_new_tokens=8, logprobs=2)

    async def together():
        return await asyncio.gather(engine.generate(_msgs(QUESTIONS[0]), plain),
                                    engine.generate(_msgs(QUESTIONS[0]), with_logprobs),
                                    engine.generate(_msgs(QUESTIONS[1]), plain))

    a, b, _ = asyncio.run(together())
    assert sorted(batches) == [1, 2] and b.logprobs and a.text == b.text


def test_greedy_and_sampled_requests_are_not_mixed(engine, batches):
    greedy, sampled = SamplingParams(max_new_tokens=8), SamplingParams(max_new_tokens=8, temperature=0.7)

    async def together():
        return await asyncio.gather(*(engine.generate(_msgs(q), p) for q in QUESTIONS[:2] for p in (greedy, sampled)))

    asyncio.run(together())
    assert sorted(batches) == [2, 2]


def test_max_batch_1_generates_one_at_a_time(merged_model, monkeypatch):
    engine = TransformersEngine(merged_model, max_batch=1)
    sizes: list[int] = []
    original = engine.model.generate
    monkeypatch.setattr(engine.model, "generate", lambda **kw: sizes.append(kw["input_ids"].shape[0]) or original(**kw))

    async def together():
        return await asyncio.gather(*(engine.generate(_msgs(q), SamplingParams(max_new_tokens=4)) for q in QUESTIONS))

    asyncio.run(together())
    assert sizes == [1] * len(QUESTIONS)

