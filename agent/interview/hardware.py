"""The GPUs a user says they have: "两张 24G 的卡", "one 4090", "2x A100 80GB", "cpu only".

    gpus("2x A100 80GB")  # GpuAnswer(count=2, memory_gib=80.0, model="A100")
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.interview.numbers import NUM, memory_spans, normalize, quantity, word

GPU_MEMORY_GIB: dict[str, float] = {
    "H200": 141.0, "H100": 80.0, "H800": 80.0, "A100": 40.0, "A800": 40.0, "A6000": 48.0, "L40S": 48.0,
    "A10": 24.0, "L4": 24.0, "4090": 24.0, "3090": 24.0, "4080": 16.0, "3080": 10.0, "T4": 16.0, "V100": 16.0}
"""Memory of one card when the user names the model but not its memory. A100 and A800 also come
with 80 GiB and V100 with 32; the smaller size is the safe guess, since a plan that fits it fits the larger card too."""

_MODEL = re.compile(
    r"(?<![a-z0-9])(?:nvidia\s*)?(?:geforce\s*)?(?:rtx\s*|tesla\s*)?"
    r"(?P<model>h200|h100|h800|a100|a800|a6000|l40s|a10|l4|4090|3090|4080|3080|t4|v100)d?(?![0-9])(?![a-rt-z])")
_NO_GPU = re.compile(
    "|".join([
        word(r"no\s+(?:nvidia\s+)?(?:gpus?|graphics\s+cards?|cuda)"), word(r"without\s+(?:an?\s+)?gpus?"),
        word(r"(?:don't|do\s+not|dont)\s+have\s+(?:an?\s+|any\s+)?gpus?"), word(r"cpu[\s-]*only"),
        word(r"(?:only|just)\s+(?:an?\s+|the\s+)?cpus?"), r"(?:只有|只用|纯|仅|只能用)\s*cpu",
        r"没有?\s*(?:独立)?(?:显卡|gpu|卡)", r"无\s*(?:显卡|gpu)", r"^(?:none|zero|0|no|没有|无)[.!。]?$"]))
_GPU_WORD = re.compile(word(r"(?:gpus?|cards?|graphics|cuda|vram)") + "|显卡|显存|卡")
_CN_COUNT = [(re.compile(r"单(?=\s*[卡张块])"), "1"), (re.compile(r"双(?=\s*[卡张块]|\s*[a-z0-9])"), "2")]
_TIMES = re.compile(r"(?<![a-z])[x×*]\s*(?=\d)|(?<=\d)\s*[x×*](?![a-z])")
_RAM = re.compile(r"\s*(?:of\s+)?(?:system\s+)?(?:ram|内存|系统内存)|\s*(?:的\s*)?(?:内存|系统内存)")
_TOTAL = re.compile(word(r"(?:in\s+total|total|combined|altogether)") + "|总共|合计|加起来|总显存")


@dataclass(frozen=True)
class GpuAnswer:
    """What the user has: `count` cards (0: CPU only) of `memory_gib` each; `model` as in GPU_MEMORY_GIB."""

    count: int
    memory_gib: float | None = None
    model: str | None = None


def _blank(text: str, spans: list[tuple[int, int]]) -> str:
    for start, end in sorted(spans, reverse=True):
        text = text[:start] + " " * (end - start) + text[end:]
    return text


def gpus(text: str) -> GpuAnswer | None:
    """The GPUs in an answer, else None (nothing about GPUs, or two different models named).

    A named model with no memory given gets its memory from GPU_MEMORY_GIB; a model or memory with no count
    means one card; "48G in total" over two cards is 24 each. A bare number ("2") is a count."""
    t = normalize(text)
    if _NO_GPU.search(t):
        return GpuAnswer(0)
    found = list(_MODEL.finditer(t))
    if len({m.group("model") for m in found}) > 1:
        return None  # "a 4090 and a 3090": mixed cards, ask again
    model = found[0].group("model").upper() if found else None
    rest = _blank(t, [m.span() for m in found])
    mems = [m for m in memory_spans(rest) if not _RAM.match(rest, m[2])]  # "8GB RAM" is not on a GPU
    rest = _blank(rest, [(s, e) for _, s, e in mems])
    for pattern, digit in _CN_COUNT:
        rest = pattern.sub(digit, rest)
    rest = _TIMES.sub(" ", rest)
    about_gpus = bool(found or mems or _GPU_WORD.search(t))
    counted = quantity(rest, "count")
    if not about_gpus:
        bare = re.fullmatch(rf"(?:{NUM})\s*(?:张|块|个)?", t)
        return GpuAnswer(int(counted.value)) if bare and counted else None
    count = int(counted.value) if counted else 1 if (found or mems or re.search(word("an?"), t)) else None
    if count is None:
        return None
    memory = mems[0][0] if mems else GPU_MEMORY_GIB[model] if model else None
    if memory is not None and mems and count > 1 and _TOTAL.search(t):
        memory = memory / count
    return GpuAnswer(count, memory, model)

