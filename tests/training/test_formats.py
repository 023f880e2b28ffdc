import json

import pytest

from training.data.files import read_messages_file, read_records
from training.data.formats import (
    FORMATS,
    BadRecord,
    detect_format,
    from_canonical,
    to_canonical,
    write_json_array,
)
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


# ---------------------------------------------------------------- formats, canonical shapes, round trips

CHAT = [{"role": "user", "content": "How do I reset my VPN?"}, {"role": "assistant", "content": "Open Settings."}]
WELL_FORMED = [
    ("messages", {"messages": CHAT}),
    ("messages", {"messages": [{"role": "system", "content": "Be brief."}, *CHAT, *CHAT], "meta": {"chunk_id": "c1"}}),
    ("alpaca", {"instruction": "Translate", "input": "猫", "output": "cat"}),
    ("alpaca", {"instruction": "Say hi", "input": "", "output": "Hi!"}),
    ("alpaca", {"instruction": "Say hi", "input": "", "output": "Hi!", "system": "Be kind.", "meta": {"src": "x"}}),
    ("sharegpt", {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}),
    ("sharegpt", {"conversations": [{"from": "system", "value": "s"}, {"from": "human", "value": "q"},
                                    {"from": "gpt", "value": "a"}, {"from": "human", "value": "q2"},
                                    {"from": "gpt", "value": "a2"}]}),
    ("preference", {"prompt": "2+2?", "chosen": "4", "rejected": "5"}),
    ("preference-messages", {
        "prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "2+2?"}],
        "chosen": [{"role": "assistant", "content": "4"}],
        "rejected": [{"role": "assistant", "content": "5"}],
        "meta": {"rule": "teacher"},
    }),
    ("text", {"text": "Paragraph one.\nStill one."}),
]


@pytest.mark.parametrize(("fmt", "record"), WELL_FORMED)
def test_every_format_round_trips(fmt, record):
    assert detect_format(record) == fmt
    canon = to_canonical(record, "d.jsonl:1")
    assert from_canonical(canon, fmt) == record
    assert to_canonical(from_canonical(canon, fmt), "again") == canon


@pytest.mark.parametrize(("fmt", "record"), WELL_FORMED)
def test_canonical_shapes(fmt, record):
    canon = to_canonical(record, "w")
    if fmt in ("messages", "alpaca", "sharegpt"):
        assert set(canon) - {"meta"} == {"messages"}
        assert all(set(m) == {"role", "content"} for m in canon["messages"])
        assert canon["messages"][-1]["role"] == "assistant"
    elif "chosen" in canon:
        assert set(canon) - {"meta"} == {"prompt", "chosen", "rejected"}
        assert [m["role"] for m in canon["chosen"]] == ["assistant"]
    else:
        assert set(canon) == {"text"}
    assert canon.get("meta") is record.get("meta")  # passed through, not copied or changed


def test_alternative_spellings_are_read_and_written_in_normal_form():
    share = {"conversations": [{"from": "user", "value": "q"}, {"from": "assistant", "value": "a"}]}
    canon = to_canonical(share, "w")
    assert canon == {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    assert from_canonical(canon, "sharegpt") == {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}
    no_input = {"instruction": "Say hi", "output": "Hi!"}
    assert from_canonical(to_canonical(no_input, "w"), "alpaca") == {"instruction": "Say hi", "input": "", "output": "Hi!"}


def test_chat_formats_convert_into_each_other():
    canon = to_canonical({"instruction": "Translate", "input": "猫", "output": "cat"}, "w")
    assert from_canonical(canon, "messages")["messages"][0] == {"role": "user", "content": "Translate\n\n猫"}
    assert from_canonical(canon, "sharegpt")["conversations"][1] == {"from": "gpt", "value": "cat"}


@pytest.mark.parametrize(
    ("record", "fmt", "reason"),
    [
        ({"messages": CHAT + CHAT}, "alpaca", "alpaca holds one question"),
        ({"prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}],
          "chosen": [{"role": "assistant", "content": "a"}], "rejected": [{"role": "assistant", "content": "b"}]},
         "preference", "Keep it as preference-messages"),
        ({"messages": CHAT}, "text", "cannot be written as text"),
    ],
)
def test_from_canonical_refuses_what_a_format_cannot_hold(record, fmt, reason):
    with pytest.raises(BadDataset, match=reason):
        from_canonical(to_canonical(record, "w"), fmt)


def test_from_canonical_unknown_format():
    with pytest.raises(ValueError, match="unknown format"):
        from_canonical({"text": "x"}, "csv")
    assert "text" in FORMATS


@pytest.mark.parametrize(
    ("record", "code"),
    [
        ([1, 2], "not-object"),
        ({"question": "q", "answer": "a"}, "unknown-format"),
        ({"messages": "hi"}, "missing-field"),
        ({"instruction": "q"}, "missing-field"),
        ({"prompt": "q", "chosen": "a"}, "missing-field"),
        ({"conversations": [{"from": "bot", "value": "x"}]}, "unknown-role"),
        ({"text": ""}, "empty-content"),
        ({"prompt": "q", "chosen": "", "rejected": "b"}, "empty-content"),
        ({"conversations": [{"from": "human", "value": "q"}]}, "no-assistant"),
        ({"prompt": "q", "chosen": "a", "rejected": "a"}, "duplicate"),
        ({"messages": CHAT, "meta": "x"}, "missing-field"),
    ],
)
def test_to_canonical_names_where_and_code(record, code):
    with pytest.raises(BadRecord) as e:
        to_canonical(record, "d.jsonl:7")
    assert e.value.code == code
    assert str(e.value).startswith("d.jsonl:7: ")


def test_read_messages_file_reads_sharegpt_and_json_arrays(tmp_path):
    share = {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}
    f = _write(tmp_path / "d.jsonl", [json.dumps(share)])
    assert read_messages_file(f) == [[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]]
    arr = tmp_path / "d.json"
    arr.write_text(json.dumps([json.loads(GOOD), share], indent=2), encoding="utf-8")
    assert len(read_messages_file(arr)) == 2


def test_read_messages_file_refuses_preference_records(tmp_path):
    f = _write(tmp_path / "d.jsonl", [GOOD, json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"})])
    with pytest.raises(BadDataset, match=r"d.jsonl:2: a preference record, not a chat example"):
        read_messages_file(f)


def test_json_array_records_are_numbered_by_the_line_they_start_on(tmp_path):
    f = tmp_path / "d.json"
    f.write_text(json.dumps([{"text": "a"}, 3, {"text": "b"}], indent=2), encoding="utf-8")
    rows = list(read_records(f))
    assert [n for n, _ in rows] == [2, 5, 6]
    assert rows[0][1] == {"text": "a"} and rows[1][1].code == "not-object"


def test_broken_json_array_names_the_line_and_stops(tmp_path):
    f = tmp_path / "d.json"
    f.write_text('[\n  {"text": "a"},\n  {"text": "b",\n  {"text": "c"}\n]\n', encoding="utf-8")
    rows = list(read_records(f))
    assert rows[0] == (2, {"text": "a"})
    assert rows[1][0] == 4 and rows[1][1].code == "broken-json"
    assert len(rows) == 2


def test_txt_paragraphs_are_text_records(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("First para\nline two\n\n\nSecond para\n\n", encoding="utf-8")
    assert list(read_records(f)) == [(1, {"text": "First para\nline two"}), (5, {"text": "Second para"})]


def test_jsonl_saved_as_txt_is_read_as_jsonl(tmp_path):
    f = _write(tmp_path / "d.txt", [GOOD, GOOD])
    assert [n for n, _ in read_records(f)] == [1, 2]


def test_bom_and_crlf_are_accepted(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_bytes(b"\xef\xbb\xbf" + GOOD.encode() + b"\r\n" + GOOD.encode() + b"\r\n")
    assert len(read_messages_file(f)) == 2


def test_write_json_array_is_read_back(tmp_path):
    rows = [{"text": "a"}, {"text": "猫"}]
    f = tmp_path / "out.json"
    assert write_json_array(f, rows) == 2
    assert json.loads(f.read_text(encoding="utf-8")) == rows
    assert [r for _, r in read_records(f)] == rows


def test_read_canonical_names_the_line_of_a_record_of_the_wrong_shape(tmp_path):
    from training.data.files import read_canonical

    f = _write(tmp_path / "pairs.jsonl", [json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}), GOOD])
    assert len(read_canonical(f)) == 2
    with pytest.raises(BadDataset, match=r"pairs.jsonl:2: this needs preference records and this one is chat"):
        read_canonical(f, "preference")
