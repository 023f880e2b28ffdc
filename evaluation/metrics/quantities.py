"""Numbers in text, with what they count, reduced to one canonical key so different wordings compare.

    quantities("Refunds take 5 business days; shipping over $75 is free.")
    # -> spans for "5 business days" (key "5|business-day") and "$75" (key "75|usd")

Rules, all of them (no model, so what is compared is easy to show a person):

- Numbers: digits ("1,000" and "5.50" read as 1000 and 5.5), Chinese numerals (三十 -> 30, 两 -> 2,
  一百二十 -> 120, 二〇二四 -> 2024), English number words from zero to ninety-nine. Words and Chinese
  numerals count only before a unit ("one of them" is not a fact); digits count on their own too.
- Units, grouped into families so English and Chinese agree: business-day (business/working days,
  工作日), day (days, 天, 日), hour, minute, week, month, year, money (usd: $ dollars 美元; cny: ¥ 元
  块 RMB; eur; gbp), pct (% percent 百分之), kg, g, lb, km, m, cm, mm, gb, mb, tb. A business day is
  not a day: "5 days" does not state "5 business days".
- Ranges keep both ends: "5 to 10 days", "5-10 days" and "5 至 10 天" are all "5-10|day".
- Times become 24-hour "HH:MM" (14:00, 2 pm, 下午2点); dates become "YYYY-MM-DD", or "MM-DD" without a
  year (2024-03-15, March 15, 2024, 15 March, 2024年3月15日); phone numbers their digits.

Where patterns overlap the longest span wins, so "3月15日" is one date, not a month and a day.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

_DIGITS = r"\d+(?:,\d{3})*(?:\.\d+)?"
_ZH_NUM = r"[零〇一二两三四五六七八九十百千万]+"
_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_EN_NUM = rf"\b(?:(?:{'|'.join(_TENS)})(?:[- ](?:{'|'.join(_ONES[1:10])}))?|{'|'.join(_ONES)})\b"
_NUM = rf"(?<![A-Za-z0-9_.]){_DIGITS}|{_ZH_NUM}|{_EN_NUM}"
_TO = r"\s*(?:to|-|–|~|至|到)\s*"

# Unit families: (key, English words after a number, Chinese after a number and an optional 个).
_UNITS = [
    ("business-day", r"(?:business|working)[\s-]+days?", r"工作日"),
    ("day", r"(?:calendar[\s-]+)?days?", r"天|日"),
    ("hour", r"hours?|hrs?", r"小时|钟头"),
    ("minute", r"minutes?|mins?", r"分钟"),
    ("week", r"weeks?", r"周|星期|礼拜"),
    ("month", r"months?", r"个月"),
    ("year", r"years?|yrs?", r"年"),
    ("usd", r"dollars?|usd", r"美元|美金"),
    ("eur", r"euros?|eur", r"欧元"),
    ("gbp", r"gbp", r"英镑"),
    ("cny", r"yuan|rmb|cny", r"块钱|元|块|人民币"),
    ("pct", r"%|％|percent|per\s+cent", r""),
    ("kg", r"kg|kilograms?", r"公斤|千克"),
    ("g", r"g|grams?", r"克"),
    ("lb", r"lbs?", r""),
    ("km", r"km|kilomet(?:er|re)s?", r"公里|千米"),
    ("cm", r"cm|centimet(?:er|re)s?", r"厘米"),
    ("mm", r"mm|millimet(?:er|re)s?", r"毫米"),
    ("m", r"m|met(?:er|re)s?", r"米"),
    ("gb", r"gb", r""),
    ("mb", r"mb", r""),
    ("tb", r"tb", r""),
]
_UNIT = "|".join(rf"(?:{en})(?![A-Za-z])" for _, en, _ in _UNITS) + "|" + "|".join(
    rf"个?\s*(?:{zh})" for _, _, zh in _UNITS if zh
)
_CURRENCY = {"us$": "usd", "$": "usd", "usd": "usd", "€": "eur", "eur": "eur", "£": "gbp", "gbp": "gbp",
             "¥": "cny", "rmb": "cny", "cny": "cny"}
_MONTHS = "January February March April May June July August September October November December".split()
_MONTH = r"(?P<mon>(?:" + "|".join(rf"{m[:3]}(?:{m[3:]})?" for m in _MONTHS) + r")\.?)"
_DAY_SUFFIX = r"(?:st|nd|rd|th)?"
_AMPM = r"(?P<ap>[ap]\.?\s?m\.?)(?![A-Za-z])"
_ZH_SMALL = r"\d{1,2}|[零一二两三四五六七八九十]{1,3}"

# (kind, pattern); earlier kinds win ties of equal length.
_PATTERNS = [
    ("date", r"(?P<y>\d{4})[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})(?!\d)"),
    ("date", rf"(?:(?P<y>\d{{4}}|[零〇一二三四五六七八九]{{4}})\s*年\s*)?(?P<m>{_ZH_SMALL})\s*月\s*(?P<d>{_ZH_SMALL})\s*[日号]"),
    ("date", rf"\b{_MONTH}\s+(?P<d>\d{{1,2}}){_DAY_SUFFIX}(?:,?\s+(?P<y>\d{{4}}))?\b"),
    ("date", rf"\b(?P<d>\d{{1,2}}){_DAY_SUFFIX}\s+(?:of\s+)?{_MONTH}(?:,?\s+(?P<y>\d{{4}}))?\b"),
    ("time", rf"(?<![\d:])(?P<h>\d{{1,2}}):(?P<mi>\d{{2}})(?![\d:])(?:\s*{_AMPM})?"),
    ("time", rf"(?<![\d:.])(?P<h>\d{{1,2}})\s*{_AMPM}"),
    ("time", rf"(?P<zp>上午|早上|中午|下午|晚上)?\s*(?P<h>{_ZH_SMALL})\s*[点點](?:\s*(?P<mi>{_ZH_SMALL})\s*分|(?P<half>半))?"),
    ("phone", r"(?<![\w.+])(?:\+\d{1,3}[ -]?)?(?:\(\d{2,4}\)[ -]?)?\d{2,4}[ -]\d{3,4}(?:[ -]\d{3,4})?(?!\w)"),
    ("money", rf"(?P<cur>US\$|\$|USD|€|EUR|£|GBP|¥|￥|RMB|CNY)\s*(?P<n1>{_DIGITS})(?:{_TO}(?:US\$|\$|€|£|¥|￥)?\s*(?P<n2>{_DIGITS}))?"),
    ("pct", rf"百分之(?P<n1>{_ZH_NUM}|{_DIGITS})"),
    ("qty", rf"(?P<n1>{_NUM})(?:{_TO}(?P<n2>{_NUM}))?\s*-?\s*(?P<unit>{_UNIT})"),
    ("number", rf"(?<![A-Za-z0-9_.]){_DIGITS}(?![A-Za-z0-9_])"),
]
_COMPILED = [(kind, re.compile(p, re.I if kind in ("time", "qty") else 0)) for kind, p in _PATTERNS]


@dataclass(frozen=True)
class Quantity:
    """A number in a text, with what it counts: text[start:end] reads as `key`, e.g. "5|business-day"."""

    start: int
    end: int
    key: str


def quantities(text: str) -> list[Quantity]:
    """Every number in the text with its unit, time, date or currency, as canonical keys, in order
    (see the module docstring for the rules). Overlapping candidates keep the longest."""
    found: list[tuple[int, int, int, str]] = []
    for rank, (kind, pattern) in enumerate(_COMPILED):
        for m in pattern.finditer(text):
            key = _key(kind, m)
            if key is not None and m.group(0).strip():
                found.append((m.start(), m.end(), rank, key))
    found.sort(key=lambda f: (f[0] - f[1], f[2], f[0]))  # longest first, then the earlier pattern
    kept: list[Quantity] = []
    for start, end, _, key in found:
        if all(end <= q.start or start >= q.end for q in kept):
            kept.append(Quantity(start, end, key))
    return sorted(kept, key=lambda q: q.start)


def quantity_keys(text: str) -> set[str]:
    """The canonical keys of `quantities(text)`."""
    return {q.key for q in quantities(text)}


def number_value(text: str) -> Decimal | None:
    """The value of a number written in digits, Chinese numerals or English words (see module docstring)."""
    s = unicodedata.normalize("NFKC", text).strip().lower()
    if re.fullmatch(_DIGITS, s):
        try:
            return Decimal(s.replace(",", ""))
        except InvalidOperation:
            return None
    if re.fullmatch(_ZH_NUM, s):
        return _zh_value(s)
    words = re.split(r"[- ]+", s)
    if all(w in _ONES or w in _TENS for w in words) and words:
        return Decimal(sum(_ONES.index(w) if w in _ONES else 20 + 10 * _TENS.index(w) for w in words))
    return None


def _zh_value(s: str) -> Decimal | None:
    digits = {c: i for i, c in enumerate("零一二三四五六七八九")} | {"〇": 0, "两": 2}
    if all(c in digits for c in s):  # read digit by digit: 二〇二四 -> 2024
        return Decimal("".join(str(digits[c]) for c in s))
    total, section, num = 0, 0, 0
    for c in s:
        if c in digits:
            num = digits[c]
        elif c == "万":
            total, section, num = total + (section + num) * 10000, 0, 0
        else:  # 十 百 千: a missing multiplier is one (十五 = 15)
            section += (num or 1) * {"十": 10, "百": 100, "千": 1000}[c]
            num = 0
    return Decimal(total + section + num)


def _fmt(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def _key(kind: str, m: re.Match) -> str | None:
    g = m.groupdict()
    if kind == "date":
        month = _MONTHS.index(next(x for x in _MONTHS if x.lower().startswith(g["mon"][:3].lower()))) + 1 \
            if g.get("mon") else number_value(g["m"])
        day, year = number_value(g["d"]), number_value(g["y"]) if g.get("y") else None
        if month is None or day is None or not (1 <= month <= 12 and 1 <= day <= 31):
            return None
        md = f"{int(month):02d}-{int(day):02d}"
        return f"{int(year):04d}-{md}|date" if year is not None else f"{md}|date"
    if kind == "time":
        return _time_key(g)
    if kind == "phone":
        digits = re.sub(r"\D", "", m.group(0))
        return f"{digits}|phone" if len(digits) >= 7 else None
    if kind == "number":
        return f"{_fmt(number_value(m.group(0)))}|"
    n1 = _fmt(number_value(g["n1"]))
    n2 = _fmt(number_value(g["n2"])) if g.get("n2") else None
    if n1 is None or (g.get("n2") and n2 is None):
        return None
    value = f"{n1}-{n2}" if n2 else n1
    if kind == "money":
        return f"{value}|{_CURRENCY[unicodedata.normalize('NFKC', g['cur']).lower()]}"
    if kind == "pct":
        return f"{value}|pct"
    return f"{value}|{_unit_family(g['unit'])}"


def _unit_family(unit: str) -> str:
    u = unicodedata.normalize("NFKC", unit).lower().strip()
    for family, en, zh in _UNITS:
        if re.fullmatch(en, u) or (zh and re.fullmatch(rf"个?\s*(?:{zh})", u)):
            return family
    raise AssertionError(f"unit {unit!r} matched the pattern but no family")  # the tables disagree


def _time_key(g: dict) -> str | None:
    hour, minute = number_value(g["h"]), number_value(g["mi"]) if g.get("mi") else Decimal(0)
    if g.get("half"):
        minute = Decimal(30)
    if hour is None or minute is None:
        return None
    if not g["h"].isdigit() and not (g.get("zp") or g.get("mi") or g.get("half")):
        return None  # 一点 alone is "a little" far more often than one o'clock
    h, mi = int(hour), int(minute)
    ap = (g.get("ap") or "").replace(".", "").replace(" ", "").lower()
    if (ap == "pm" or g.get("zp") in ("下午", "晚上")) and h < 12:
        h += 12
    elif ap == "am" and h == 12:
        h = 0
    return f"{h:02d}:{mi:02d}|time" if h < 24 and mi < 60 else None
