"""Continuous batching in the transformers engine (serving/engines/batch.py, decode.py): requests share one
decode loop, joining it at any step; each gets the answer it gets alone, and each row ends on its own."""

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


class Calls:
    """What the engine ran: `generate`'s batch sizes (requests generated alone) and the decode loop's rows at each
    step."""

    def __init__(self):
        self.alone: list[int] = []
        self.steps: list[int] = []
        self.joins: list[tuple[int, list[list[int]]]] = []
        """Each join: the rows already in the loop, and the prompts (token ids) joining."""

    def clear(self) -> None:
        self.alone.clear()
        self.steps.clear()
        self.joins.clear()


@pytest.fixture()
def batches(engine, monkeypatch) -> Calls:
    from serving.engines.decode import Rows

    calls = Calls()
    generate, step, join = engine.model.generate, Rows.step, Rows.join

    def spied_step(rows):
        calls.steps.append(len(rows))
        return step(rows)

    def spied_join(rows, requests):
        calls.joins.append((len(rows), [r.ids for r in requests]))
        return join(rows, requests)

    monkeypatch.setattr(engine.model, "generate", lambda **kw: calls.alone.append(kw["input_ids"].shape[0]) or generate(**kw))
    monkeypatch.setattr(Rows, "step", spied_step)
    monkeypatch.setattr(Rows, "join", spied_join)
    return calls


def test_requests_waiting_together_are_one_batch_and_get_the_answers_they_get_alone(engine, batches):
    params = SamplingParams(max_new_tokens=24)
    alone = [asyncio.run(engine.generate(_msgs(q), params)) for q in QUESTIONS]
    assert set(batches.steps) == {1} and batches.alone == []
    batches.clear()

    async def together():
        return await asyncio.gather(*(engine.generate(_msgs(q), params) for q in QUESTIONS))

    batched = asyncio.run(together())
    assert max(batches.steps) > 2 and batches.alone == []  # rows generated side by side
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
    assert max(batches.steps) >= 3 and batches.steps[-1] == 2  # rows left as they ended; the two long ones ran on
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
    # the logprobs one by generate, alone; the plain ones in the loop (together, or one after the other when the
    # logprobs one was waiting when the second came: the loop takes no new rows then)
    assert batches.alone == [1] and batches.steps and b.logprobs and a.text == b.text


def test_greedy_and_sampled_rows_share_the_loop_and_a_row_joins_while_it_runs(engine, batches):
    """Each row decodes its own way (greedy rows get their answer alone, sampled rows sample); a request that
    arrives while others generate joins them at the next step, and gets its answer alone too."""
    greedy, sampled = SamplingParams(max_new_tokens=24), SamplingParams(max_new_tokens=24, temperature=0.7)
    alone = [asyncio.run(engine.generate(_msgs(q), greedy)).text for q in QUESTIONS[:3]]

    async def together():
        first = [asyncio.create_task(engine.generate(_msgs(q), p)) for q in QUESTIONS[:2] for p in (greedy, sampled)]
        while not batches.steps:  # the loop runs: then the late one asks
            await asyncio.sleep(0.001)
        late = await engine.generate(_msgs(QUESTIONS[2]), greedy)
        return await asyncio.gather(*first), late

    batches.clear()
    (g0, s0, g1, s1), late = asyncio.run(together())
    assert [g0.text, g1.text, late.text] == alone and s0.completion_tokens > 0 and s1.completion_tokens > 0
    late_ids = engine._inputs(_msgs(QUESTIONS[2]), greedy)["input_ids"][0].tolist()
    (already,) = [n for n, prompts in batches.joins if late_ids in prompts]
    assert already > 0 and batches.alone == []  # the late one joined rows that were generating


def test_max_batch_1_generates_one_at_a_time(merged_model, monkeypatch):
    engine = TransformersEngine(merged_model, max_batch=1)
    sizes: list[int] = []
    original = engine.model.generate
    monkeypatch.setattr(engine.model, "generate", lambda **kw: sizes.append(kw["input_ids"].shape[0]) or original(**kw))

    async def together():
        return await asyncio.gather(*(engine.generate(_msgs(q), SamplingParams(max_new_tokens=4)) for q in QUESTIONS))

    asyncio.run(together())
    assert sizes == [1] * len(QUESTIONS)



def test_a_request_generated_alone_is_not_starved_by_the_loop(engine, batches):
    """While a request that must be generated alone (log probabilities) waits, the loop takes no new rows: it
    ends with the rows it has, the waiting request gets the model, and a request arriving after it starts a new
    loop instead of joining the old one."""
    long, later = SamplingParams(max_new_tokens=300), SamplingParams(max_new_tokens=8)

    async def scenario():
        first = asyncio.create_task(engine.generate(_msgs(QUESTIONS[0]), long))
        while not batches.steps:  # the loop runs
            await asyncio.sleep(0.001)
        alone = asyncio.create_task(engine.generate(_msgs(QUESTIONS[1]), SamplingParams(max_new_tokens=8, logprobs=1)))
        while not engine.waiting_alone:
            await asyncio.sleep(0.001)
        steps_before = len(batches.steps)
        last = asyncio.create_task(engine.generate(_msgs(QUESTIONS[2]), later))
        return await first, await alone, await last, steps_before

    a, b, c, steps_before = asyncio.run(scenario())
    assert a.completion_tokens > 20 and b.logprobs and c.completion_tokens > 0
    assert batches.alone == [1] and max(batches.steps) == 1, batches.steps  # the late one never joined the first
    late_ids = engine._inputs(_msgs(QUESTIONS[2]), later)["input_ids"][0].tolist()
    assert [n for n, prompts in batches.joins if late_ids in prompts] == [0]  # it started a loop of its own
    assert steps_before < a.completion_tokens  # the alone one waited while the first was still generating


def test_a_request_is_answered_when_its_row_ends_not_when_the_loop_does(engine, batches, monkeypatch):
    """The loop runs on a thread of its own: the request that started it is not held until every row is done
    (under steady load that would be never)."""
    from serving.engines import batch

    take = batch._Request.take
    monkeypatch.setattr(batch._Request, "take", lambda self, token, eos, tok: take(self, token, set(), tok))

    async def first_short_then_long():
        short = asyncio.create_task(engine.generate(_msgs(QUESTIONS[0]), SamplingParams(max_new_tokens=12)))
        while not batches.steps:  # the short request's loop is running
            await asyncio.sleep(0.002)
        long = asyncio.create_task(engine.generate(_msgs(QUESTIONS[1]), SamplingParams(max_new_tokens=400)))
        got = await short
        running = not long.done()
        return got, running, await long

    short, long_still_running, long = asyncio.run(first_short_then_long())
    assert short.completion_tokens == 12 and long.completion_tokens == 400
    assert long_still_running
    assert any(rows == 1 for rows, _ in batches.joins[1:])  # the long request joined the short one's loop


def test_when_no_thread_can_be_started_the_request_fails_and_the_next_one_is_answered(engine, monkeypatch):
    import threading

    params = SamplingParams(max_new_tokens=4)
    start = threading.Thread.start

    def no_thread(self):
        if self.name == "onboard-decode-loop":
            raise RuntimeError("can't start new thread")
        return start(self)

    monkeypatch.setattr(threading.Thread, "start", no_thread)
    with pytest.raises(RuntimeError, match="can't start new thread"):
        asyncio.run(engine.generate(_msgs(QUESTIONS[0]), params))
    monkeypatch.setattr(threading.Thread, "start", start)
    assert asyncio.run(engine.generate(_msgs(QUESTIONS[0]), params)).completion_tokens > 0  # the lock was let go
