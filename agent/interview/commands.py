"""What a user may say to the chat while training runs in the background, English and Chinese:

    job_command("how is it going?")   # "status"
    job_command("暂停一下")             # "pause"
    job_command("don't stop")          # None: a negated command is no command
"""

from __future__ import annotations

import re
from typing import Literal

from agent.interview.text import normalize, word

Command = Literal["status", "pause", "stop", "resume"]

_COMMANDS: list[tuple[Command, re.Pattern]] = [
    ("pause", re.compile(word(r"(?:pause|hold\s+on|wait\s+a\s+(?:moment|minute|bit))") + "|暂停|先停一下|等一下")),
    ("resume", re.compile(word(r"(?:continue|resume|go\s+on|carry\s+on|keep\s+going|unpause)") + "|继续|恢复|接着")),
    ("stop", re.compile(word(r"(?:stop|cancel|abort|quit|kill\s+it|halt)") + "|停止|停下|取消|终止|不练了|别练了")),
    ("status", re.compile(word(r"(?:how(?:'s|\s+is)\s+it\s+going|how\s+are\s+(?:we|things)|status|progress|"
                               r"how\s+long|how\s+far|eta|where\s+are\s+we|update)")
                          + "|进度|怎么样|如何了|还要多久|多久|到哪了|状态|情况")),
]
_NEGATED = re.compile(word(r"(?:don't|do\s+not|dont|never|no\s+need\s+to)") + r"\s*$|(?:不要|别|不用|不必)\s*$")


def job_command(text: str) -> Command | None:
    """The command in `text`, or None (nothing recognised, or it is negated: "don't stop", "不要停止")."""
    t = normalize(text)
    for command, pattern in _COMMANDS:
        m = pattern.search(t)
        if m and not _NEGATED.search(t[:m.start()]):
            return command
    return None
