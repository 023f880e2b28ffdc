"""Numbers and quantities in chat answers, English and Chinese: "two", "两张", "一个半小时", "24个G", "90 min".

Pure functions over text; each returns None when the text holds no number of the kind asked for, so the
caller re-asks. Chinese numerals are read up to 999 (零 to 百); English number words up to twenty.

    quantity("两个小时", "duration")   # Quantity(value=2.0, unit="hours")
    quantity("24G显存", "memory")      # Quantity(value=24.0, unit="GiB")
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from agent.interview.text import normalize, word

UnitKind = Literal["memory", "duration", "count"]

EN_NUMBERS: dict[str, int] = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20}
ZH_DIGITS: dict[str, int] = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6,
                             "七": 7, "八": 8, "九": 9}
ZH_UNITS: dict[str, int] = {"十": 10, "百": 100}


def zh_int(s: str) -> int | None:
    """A Chinese numeral up to 999 ("十五", "两百", "一百零五", colloquial "一百二" = 120); None if malformed."""
    if not s or any(ch not in ZH_DIGITS and ch not in ZH_UNITS for ch in s):
        return None
    total, digit, prev = 0, None, ""
    for ch in s:
        if ch in ZH_DIGITS:
            if digit is not None and prev != "零" and digit != 0:
                return None  # "二四": two digits in a row is not a numeral
            digit = ZH_DIGITS[ch]
        else:
            total += (1 if digit is None else digit) * ZH_UNITS[ch]
            digit = None
        prev = ch
    if digit is not None:
        # "一百二" means 120: a last digit straight after 百 counts tens
        total += digit * 10 if len(s) >= 2 and s[-2] == "百" else digit
    return total


_ZH_RUN = "[零〇一二两三四五六七八九十百]+"
_EN_RUN = "|".join(sorted(EN_NUMBERS, key=len, reverse=True))
NUM = rf"(?<![a-z0-9.])\d+(?:,\d{{3}})*(?:\.\d+)?(?![\d])|{_ZH_RUN}|{word(f'(?:{_EN_RUN})')}"
"""One number token: digits (with thousands commas and decimals), a run of Chinese numerals, or an English word."""

_HALF = r"(?P<half>个半|\s+and\s+a\s+half)?"
_TOKEN = re.compile(rf"(?P<num>{NUM}){_HALF}")
_ONLY_HALF = re.compile(rf"一半|{word('half')}|半(?!年)")
_NOT_A_NUMBER_AFTER = set("些下起直样般切共旦致定半")  # 一些, 一下, 一起 ...: words, not numbers
_NOT_A_NUMBER_BEFORE = set("统唯万之")  # 统一, 唯一, 万一


def _token_value(token: str) -> float | None:
    token = token.replace(",", "")
    if token[0].isdigit():
        return float(token)
    if token in EN_NUMBERS:
        return float(EN_NUMBERS[token])
    value = zh_int(token)
    return None if value is None else float(value)


def numbers(text: str) -> list[tuple[float, int, int]]:
    """Every number in already-normalized `text` as (value, start, end), in order ("一个半" is 1.5)."""
    found: list[tuple[float, int, int]] = []
    for m in _TOKEN.finditer(text):
        tok, start, end = m.group("num"), m.start(), m.end()
        if tok == "一" and (text[end:end + 1] in _NOT_A_NUMBER_AFTER or text[start - 1:start] in _NOT_A_NUMBER_BEFORE):
            continue
        value = _token_value(tok)
        if value is not None:
            found.append((value + (0.5 if m.group("half") else 0.0), start, end))
    return found


def number(text: str) -> float | None:
    """The first number in `text` ("3", "1.5", "三", "两个半" = 2.5, "twelve", "half" = 0.5), else None."""
    text = normalize(text)
    found = numbers(text)
    half = _ONLY_HALF.search(text)
    if half and (not found or half.start() < found[0][1]) and not any(s <= half.start() < e for _, s, e in found):
        return 0.5
    return found[0][0] if found else None


@dataclass(frozen=True)
class Quantity:
    """A number with its unit: "GiB" for memory, "hours" for durations, "" for counts."""

    value: float
    unit: str


# ---------------------------------------------------------------- memory

_MEMORY_UNITS: dict[str, float] = {"t": 1024.0, "m": 1 / 1024, "g": 1.0}
_MEMORY = re.compile(
    rf"(?P<num>{NUM})\s*(?:个\s*)?(?P<unit>(?P<u>[gmt])(?:i?b|igs?|igabytes?|egabytes?|erabytes?)?)(?![a-z0-9])")


def memory_spans(text: str) -> list[tuple[float, int, int]]:
    """(GiB, start, end) for each memory amount in normalized `text`. A GB on a GPU's box is really a GiB."""
    found = []
    for m in _MEMORY.finditer(text):
        value = _token_value(m.group("num"))
        if value is not None:
            found.append((value * _MEMORY_UNITS[m.group("u")], m.start(), m.end()))
    return found


def _memory(text: str) -> float | None:
    found = memory_spans(text)
    if found:
        return found[0][0]
    # a bare number answers "how much memory (GB)?": "24", "24 的"
    bare = re.fullmatch(rf"({NUM})\s*(?:的)?", text)
    return _token_value(bare.group(1)) if bare else None


# ---------------------------------------------------------------- durations

_HOURS_PER: dict[str, float] = {"minute": 1 / 60, "hour": 1.0, "day": 24.0, "week": 168.0}
_DURATION_UNITS: dict[str, str] = {
    "minute": r"分钟|min(?:ute)?s?(?![a-z])|m(?![a-z])",
    "hour": r"个?小时|个?钟头|hours?(?![a-z])|hrs?(?![a-z])|h(?![a-z])",
    "day": r"天|days?(?![a-z])|d(?![a-z])",
    "week": r"个?星期|周|weeks?(?![a-z])|wk(?![a-z])"}
_DURATION = re.compile(
    rf"(?P<num>{NUM}){_HALF}\s*(?:(?P<minute>{_DURATION_UNITS['minute']})|(?P<hour>{_DURATION_UNITS['hour']})"
    rf"|(?P<day>{_DURATION_UNITS['day']})|(?P<week>{_DURATION_UNITS['week']}))(?P<tail>\s*and\s+a\s+half)?")
_SPELLED = [  # English phrases without digits, rewritten into ones _DURATION reads
    (re.compile(word(r"half\s+an?\s+(hour|day|week)")), r"0.5 \1"),
    (re.compile(r"(?<![a-z0-9])an?\s+couple\s+(?:of\s+)?"), "2 "),
    (re.compile(r"(?<![a-z0-9])an?\s+(?=(?:hour|day|week|minute)s?(?![a-z]))"), "1 "),
    (re.compile(r"(?<!个)半(?:个)?(?=小时|钟头|天|星期)"), "0.5"),
    (re.compile(r"(\d\s*(?:h|小时))(?=\d)"), r"\1 "),  # "1h30m": the 30 starts a number of its own
    (re.compile(r"(\d\s*(?:h|小时)\s+\d{1,2})(?![\d.])(?!\s*[a-z\u4e00-\u9fff])"), r"\1 min"),  # "1h30"
    (re.compile(rf"({NUM})\s*(?:-|~|{word('to')}|到|至)\s*(?:{NUM})(?=\s*[a-z小个钟天周分星])"), r"\1")]  # a range: the lower end


def _duration(text: str) -> float | None:
    for pattern, replacement in _SPELLED:
        text = pattern.sub(replacement, text)
    total, last_rank, last_end = None, 99, -1
    for m in _DURATION.finditer(text):
        unit = next(u for u in ("minute", "hour", "day", "week") if m.group(u))
        value = _token_value(m.group("num"))
        if value is None:
            continue
        value += 0.5 if (m.group("half") or m.group("tail")) else 0.0
        rank = list(_HOURS_PER).index(unit)
        joined = re.fullmatch(r"[\s,]*(?:and|又|零)?\s*", text[last_end:m.start()]) is not None
        if total is None:
            total = value * _HOURS_PER[unit]
        elif rank < last_rank and joined:  # "1 hour 30 minutes", "一天零三小时": add up
            total += value * _HOURS_PER[unit]
        else:
            break
        last_rank, last_end = rank, m.end()
    return total


# ---------------------------------------------------------------- counts

_COUNT_WORDS: dict[str, int] = {"single": 1, "dual": 2, "quad": 4, "a pair of": 2, "a couple of": 2}
_COUNT_WORD = re.compile(word("(?:" + "|".join(_COUNT_WORDS) + ")"))


def _count(text: str) -> float | None:
    for _, start, end in reversed(memory_spans(text)):  # "两张 24G 的卡": the 24 is not the count
        text = text[:start] + " " * (end - start) + text[end:]
    found = numbers(text)
    words = _COUNT_WORD.search(text)
    if words and (not found or words.start() < found[0][1]):
        return float(_COUNT_WORDS[words.group(0)])
    if not found or found[0][0] != int(found[0][0]):
        return None
    return found[0][0]


def quantity(text: str, unit_kind: UnitKind) -> Quantity | None:
    """The first amount of `unit_kind` in `text`, else None.

    memory -> GiB ("24G", "512 MB" = 0.5, "24 个 G"; a bare "24" is read as GiB);
    duration -> hours ("90 min" = 1.5, "half an hour", "一个半小时", "一天" = 24; "3-4 hours" = 3, the lower end);
    count -> a whole number ("two", "两张", "3 GPUs", "dual"); memory amounts in the text are skipped."""
    text = normalize(text)
    if unit_kind == "memory":
        value, unit = _memory(text), "GiB"
    elif unit_kind == "duration":
        value, unit = _duration(text), "hours"
    elif unit_kind == "count":
        value, unit = _count(text), ""
    else:
        raise ValueError(f"unit_kind must be 'memory', 'duration' or 'count', not {unit_kind!r}")
    return None if value is None else Quantity(value, unit)
