"""Edge cases: questions with a known right behaviour (decline, apologise, correct, resist an injected
instruction, answer in the question's language), in English and Chinese, checked by rules.

    cases = load_suite()                      # the bundled suite for the example shop, or load_suite(path)
    messages = planted_messages(case, hits)   # the served prompt, the planted chunk among the hits
    result = check(case, answer)              # CaseResult(passed, reason)
"""

from evaluation.edge_cases.rules import RULES, CaseResult, check
from evaluation.edge_cases.suite import (
    CATEGORIES,
    DEFAULT_SUITE,
    LANGUAGES,
    BadSuite,
    EdgeCase,
    Expect,
    Planted,
    load_suite,
    planted_messages,
)

__all__ = [
    "CATEGORIES", "DEFAULT_SUITE", "LANGUAGES", "RULES", "BadSuite", "CaseResult", "EdgeCase", "Expect",
    "Planted", "check", "load_suite", "planted_messages",
]
