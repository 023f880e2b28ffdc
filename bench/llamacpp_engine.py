"""The llama.cpp engine against the transformers engine on the same model, same RAG-sized prompts, same machine,
in one run: time to first token, tokens per second, and how often the GGUF's greedy answer is the fp32 model's.

    .venv/bin/python bench/llamacpp_engine.py --gguf q8_0=FILE [--gguf f16=FILE] [--model DIR] [--prompts 4]

The transformers engine runs the model folder (default: the offline Qwen2.5-Coder-0.5B, fp32); each GGUF (what
`onboard export --format gguf` writes from it) is served by the llamacpp engine (llama.cpp's server as a child,
ONBOARD_LLAMACPP_PYTHON or this Python). Both get 2 threads. Prompts: Debian FAQ sections as the retrieved
context (about 1,300 tokens) and a question about them, greedy, up to 64 new tokens, streamed, one at a time,
each prompt different (llama.cpp's prompt cache would make a repeated one free). Reported: time to first token
(the prefill), decode tokens per second after it, and answers equal to the fp32 model's.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import os
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.fetch import default_cache  # noqa: E402

QWEN = default_cache("qwen2.5-coder-0.5b-instruct") / "hf"
QUESTIONS = ["What does this section say about keeping the system up to date?", "Summarise the first answer.",
             "Which command does the text recommend?", "这段文字的主要内容是什么？"]


def prompts(n: int, context_chars: int = 6000) -> list[list[dict]]:
    from bench.common import fetch_debian_faq

    faq = fetch_debian_faq()
    pages = sorted(faq.glob("*.en.html"))
    out = []
    for i in range(n):
        text = html.unescape(re.sub(r"<[^>]+>", " ", pages[i % len(pages)].read_text(errors="replace")))
        text = re.sub(r"\s+", " ", text)[:context_chars]
        out.append([{"role": "system", "content": f"Answer from this context.\n\n{text}"},
                    {"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}])
    return out


async def measure(engine, asks: list[list[dict]], max_tokens: int, tokenizer) -> tuple[list[float], float, list[str]]:
    """(times to first token, decode tokens/s after the first token, answers). Tokens are counted with the
    model's own tokenizer for every engine (llama.cpp's server reports no usage when streaming)."""
    from serving.engines.base import SamplingParams

    ttfts, answers, tokens, decoding = [], [], 0, 0.0
    for messages in asks:
        t0, first, parts = time.perf_counter(), None, []
        async for d in engine.stream(messages, SamplingParams(max_new_tokens=max_tokens)):
            if d.text and first is None:
                first = time.perf_counter() - t0
            parts.append(d.text)
        total = time.perf_counter() - t0
        answer = "".join(parts)
        n = len(tokenizer(answer, add_special_tokens=False)["input_ids"])
        if first is not None and n > 1:
            tokens, decoding = tokens + n - 1, decoding + total - first
        ttfts.append(first if first is not None else float("nan"))
        answers.append(answer.strip())
    return ttfts, tokens / decoding if decoding else float("nan"), answers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=QWEN)
    ap.add_argument("--gguf", action="append", default=[], help="NAME=FILE, repeatable (e.g. q8_0=model.gguf)")
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=64)
    args = ap.parse_args()
    from transformers import AutoTokenizer

    from serving.engines.hf import TransformersEngine
    from serving.engines.llamacpp import LlamaCppEngine

    asks = prompts(args.prompts)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    n_prompt = len(tokenizer(tokenizer.apply_chat_template(asks[0], add_generation_prompt=True, tokenize=False),
                             add_special_tokens=False)["input_ids"])
    rows = {}
    engine = TransformersEngine(args.model, threads=2)
    asyncio.run(measure(engine, asks[-1:], 4, tokenizer))  # warm-up (another prompt: no cache helps)
    rows["transformers fp32"] = asyncio.run(measure(engine, asks, args.max_tokens, tokenizer))
    del engine
    for spec in args.gguf:
        name, path = spec.split("=", 1)
        engine = LlamaCppEngine(Path(path), os.environ.get("ONBOARD_LLAMACPP_PYTHON"), threads=2)
        try:
            rows[f"llamacpp {name}"] = asyncio.run(measure(engine, asks, args.max_tokens, tokenizer))
        finally:
            asyncio.run(engine.close())
    base_answers, base_rate = rows["transformers fp32"][2], rows["transformers fp32"][1]
    print(f"model {args.model.name}, {args.prompts} different prompts of about {n_prompt} tokens, greedy, up to "
          f"{args.max_tokens} new tokens, streamed, 2 threads")
    print("engine | TTFT p50 | decode tokens/s | x transformers | answers equal to fp32")
    for name, (ttft, rate, answers) in rows.items():
        same = sum(a == b for a, b in zip(answers, base_answers, strict=True))
        print(f"{name} | {statistics.median(ttft):.2f} s | {rate:.1f} | {rate / base_rate:.2f}x | "
              f"{same}/{len(answers)}")


if __name__ == "__main__":
    main()
