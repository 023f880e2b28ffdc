import json

import pytest

from training.data.formats import read_messages_file
from training.errors import BadDataset


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD = json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]})


def test_reads_messages_and_alpaca(tmp_path):
    f = _write(tmp_path / "d.jsonl", [GOOD, "", json.dumps({"instruction": "Translate", "input": "猫", "output": "cat"})])
    rows = read_messages_file(f)
    assert rows[0][-1] == {"role": "assistant", "content": "hello"}
    assert rows[1] == [{"role": "user", "content": "Translate\n\n猫"}, {"role": "assistant", "content": "cat"}]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ('{"messages": [', "broken JSON"),
        (json.dumps({"messages": [{"role": "bot", "content": "x"}]}), "unknown role 'bot'"),
        (json.dumps({"messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "a"}]}), "empty content"),
        (json.dumps({"messages": [{"role": "user", "content": "q"}]}), "last message must be the assistant"),
        (json.dumps({"prompt": "q"}), "unknown record format"),
    ],
)
def test_bad_line_is_named_with_reason(tmp_path, bad, reason):
    f = _write(tmp_path / "d.jsonl", [GOOD, GOOD, bad])
    with pytest.raises(BadDataset) as e:
        read_messages_file(f)
    assert "d.jsonl:3:" in str(e.value)
    assert reason in str(e.value)
