"""Mask personal data in English and Chinese text: emails, phone numbers, ID numbers, card numbers.

    masked, counts = mask_pii("电话13812345678，邮箱 li.lei@example.com")
    # masked == "电话[PHONE]，邮箱 [EMAIL]"; counts == Counter({"phone": 1, "email": 1})

Patterns run in a fixed order (emails, CN resident IDs, payment cards, US SSNs, CN mobiles, CN
landlines, US phones), each on the output of the previous one, so a card number is masked whole
before the phone pattern could see an 11-digit run inside it. Numbers are matched with ASCII-only
boundaries: Chinese has no spaces around numbers (`电话13812345678联系`), and Python's Unicode `\\b`
treats CJK characters as word characters, so it would never see a boundary there. A number must
not touch another digit or letter, nor continue as `.5` / `-5`, so dates (2024-05-01), versions
(1.2.3), decimals and parts of longer numbers are left alone. ID and card numbers are masked only
when their check digit is right (ISO 7064 MOD 11-2 for CN IDs, Luhn for cards): an order number or
a random 18-digit number is not personal data.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

PLACEHOLDERS = {"email": "[EMAIL]", "phone": "[PHONE]", "id": "[ID]", "card": "[CARD]"}
"""Kind -> the placeholder that replaces it in the text."""

# A number starts where no ASCII letter, digit or underscore precedes it, and not right after
# "digit." or "digit-" (it would be the tail of a date, version or longer number).
_START = r"(?<![A-Za-z0-9_])(?<![0-9][.-])"
# ...and ends where no letter or digit follows, nor ".digit" / "-digit" (a decimal, a longer number).
_END = r"(?![A-Za-z0-9_])(?![.-][0-9])"

_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![A-Za-z0-9-])"
)
# 6-digit region, birth date 18xx-20xx, 3-digit sequence, check character.
_CN_ID = re.compile(
    _START + r"[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx]" + _END
)
# 13-19 digits, optionally grouped with spaces or dashes; issuer digit 2-6 (ISO/IEC 7812: Mastercard,
# Amex/JCB/Diners, Visa, Mastercard/Maestro, Discover/UnionPay). Checked further in _card_ok.
_CARD = re.compile(_START + r"[2-6](?:[ -]?\d){12,18}" + _END)
# Area 000, 666 and 900-999 are never issued; group 00 and serial 0000 neither.
_SSN = re.compile(_START + r"(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}" + _END)
# Optional +86 / 0086 / 86 (optionally in parentheses), then 1[3-9]x xxxx xxxx with optional
# space or dash between the 3-4-4 groups.
_CN_MOBILE = re.compile(
    r"(?:(?<![A-Za-z0-9_+])\(?(?:\+|00)?86\)?[ -]?|" + _START + r")1[3-9]\d[ -]?\d{4}[ -]?\d{4}" + _END
)
# Area code 0 + 2-3 digits, dash (or in parentheses), 7-8 digit number.
_CN_LANDLINE = re.compile(r"(?<![A-Za-z0-9_(])(?:" + _START + r"0\d{2,3}-|\(0\d{2,3}\) ?)\d{7,8}" + _END)
# NANP: area and exchange start with 2-9; separators required, so a bare 10-digit run is not a phone.
_US_PHONE = re.compile(
    r"(?:(?<![A-Za-z0-9_+])\+?1[ .-]?|" + _START + r")(?:\([2-9]\d{2}\) ?|[2-9]\d{2}[ .-])[2-9]\d{2}[ .-]\d{4}" + _END
)

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def cn_id_ok(number: str) -> bool:
    """True when an 18-character CN resident ID has the right ISO 7064 MOD 11-2 check character."""
    if len(number) != 18 or not number[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == number[17].upper()


def luhn_ok(digits: str) -> bool:
    """True when a digit string passes the Luhn check used by payment cards."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card_ok(match: str) -> bool:
    """Luhn, plus card-like grouping: one kind of separator, groups of 3-6 digits (4-4-4-4, 4-6-5...)."""
    seps = set(re.findall(r"[ -]", match))
    if len(seps) > 1:
        return False
    if seps:
        groups = re.split(r"[ -]", match)
        if any(not 3 <= len(g) <= 6 for g in groups[:-1]) or not 1 <= len(groups[-1]) <= 6:
            return False
    digits = re.sub(r"\D", "", match)
    return 13 <= len(digits) <= 19 and luhn_ok(digits)


_RULES: list[tuple[str, re.Pattern, Callable[[str], bool] | None]] = [
    ("email", _EMAIL, None),
    ("id", _CN_ID, cn_id_ok),
    ("card", _CARD, _card_ok),
    ("id", _SSN, None),
    ("phone", _CN_MOBILE, None),
    ("phone", _CN_LANDLINE, None),
    ("phone", _US_PHONE, None),
]


def mask_pii(text: str) -> tuple[str, Counter]:
    """Replace emails, phone numbers, ID and card numbers with placeholders.

    Args:
        text: any text, English, Chinese or mixed.

    Returns:
        (masked text, Counter of masked items by kind: "email", "phone", "id", "card").
        Numbers whose check digit fails (CN IDs, cards) are left as they are.
    """
    counts: Counter = Counter()
    for kind, pattern, valid in _RULES:

        def repl(m: re.Match, kind: str = kind, valid: Callable[[str], bool] | None = valid) -> str:
            if valid is not None and not valid(m.group(0)):
                return m.group(0)
            counts[kind] += 1
            return PLACEHOLDERS[kind]

        text = pattern.sub(repl, text)
    return text, counts
