"""`onboard data validate` / `--fix` on real files: every defect by line and code, and a fix that
writes a cleaned copy and never touches the original."""

import json

import pytest

from training.data.formats import file_sha256
from training.data.validate import CODES, Problem, default_fix_path, fix_file, validate_file
from training.errors import BadDataset, NoExamples


def chat(q: str = "How do I reset my VPN?", a: str = "Open Settings, then Network.") -> dict:
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


def jl(record) -> str:
    return record if isinstance(record, str) else json.dumps(record, ensure_ascii=False)


def write(path, records) -> object:
    path.write_text("".join(jl(r) + "\n" for r in records), encoding="utf-8")
    return path


def only_problem(report):
    assert len(report.problems) == 1, report.problems
    return report.problems[0]


@pytest.mark.parametrize(
    ("bad", "code", "reason"),
    [
        ('{"messages": [{"role": "user"', "broken-json", "broken JSON (Expecting ',' delimiter at column 30)"),
        ('"just a string"', "not-object", "expected a JSON object"),
        ({"question": "q", "answer": "a"}, "unknown-format", "unknown record format (keys: answer, question)"),
        ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant"}]}, "missing-field", "messages[1] needs 'role' and 'content'"),
        ({"messages": [{"role": "bot", "content": "q"}, {"role": "assistant", "content": "a"}]}, "unknown-role", "unknown role 'bot'"),
        ({"messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "a"}]}, "empty-content", "messages[0] (user) has empty content"),
        ({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]}, "no-assistant", "no assistant turn"),
        ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}, {"role": "user", "content": "q2"}]},
         "no-assistant", "the last message must be the assistant's answer"),
    ],
)
def test_each_defect_is_reported_with_its_line_and_code(tmp_path, bad, code, reason):
    f = write(tmp_path / "d.jsonl", [chat("q1"), "", chat("q2"), bad, chat("q3")])
    report = validate_file(f)
    p = only_problem(report)
    assert (p.line, p.code) == (4, code)
    assert reason in p.reason
    assert str(p).startswith(f"{f}:4: ")
    assert (report.format, report.total, report.valid, report.ok()) == ("messages", 4, 3, False)


def test_duplicate_names_the_first_line(tmp_path):
    dup = chat("same", "answer")
    f = write(tmp_path / "d.jsonl", [dup, chat("other"), {**dup, "meta": {"source": "b"}}])
    p = only_problem(validate_file(f))
    assert (p.line, p.code, p.reason) == (3, "duplicate", "duplicate of line 1; delete one of them.")


def test_duplicate_across_chat_formats_is_the_same_content(tmp_path):
    f = write(tmp_path / "d.jsonl", [chat("q", "a"), chat("x"), {"instruction": "q", "output": "a"}])
    p = only_problem(validate_file(f))
    assert (p.line, p.code) == (3, "duplicate")


def test_too_long_uses_the_callers_token_count(tmp_path):
    f = write(tmp_path / "d.jsonl", [chat("short"), chat("long " * 300)])
    seen = []

    def count_tokens(record: dict) -> int:
        seen.append(record)
        return sum(len(m["content"].split()) for m in record["messages"]) * 6

    p = only_problem(validate_file(f, count_tokens=count_tokens, max_tokens=1024))
    assert (p.line, p.code) == (2, "too-long")
    assert p.reason.startswith("1824 tokens; the model's context is 1024")
    assert seen[0] == chat("short")  # the canonical record is what gets counted


def test_token_count_needs_a_limit(tmp_path):
    f = write(tmp_path / "d.jsonl", [chat()])
    with pytest.raises(ValueError, match="go together"):
        validate_file(f, count_tokens=len)


def test_not_utf8_names_line_and_byte(tmp_path):
    f = tmp_path / "d.jsonl"
    good = (jl(chat()) + "\n").encode()
    f.write_bytes(good + b'{"text": "caf\xe9"}\n' + (jl(chat("2")) + "\n").encode())
    p = only_problem(validate_file(f))
    assert (p.line, p.code) == (2, "not-utf8")
    assert p.reason == f"not valid UTF-8 at byte {len(good) + 13}; re-save the file as UTF-8."


def test_mixed_format_text_in_a_chat_file(tmp_path):
    f = write(tmp_path / "d.jsonl", [chat("1"), chat("2"), {"text": "a note"}, chat("3")])
    report = validate_file(f)
    p = only_problem(report)
    assert (p.line, p.code) == (3, "mixed-format")
    assert p.reason.startswith("text record in a file of messages records; use one format per file. --fix drops it")


def test_mixed_chat_formats_are_reported_and_converted_by_fix(tmp_path):
    alpaca = [{"instruction": f"q{i}", "input": "", "output": "a"} for i in range(3)]
    f = write(tmp_path / "d.jsonl", [*alpaca, chat("q", "a")])
    report, out, n = fix_file(f)
    p = only_problem(report)
    assert (report.format, p.line, p.code) == ("alpaca", 4, "mixed-format")
    assert "--fix rewrites it as alpaca" in p.reason
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert n == 4 and rows == [*alpaca, {"instruction": "q", "input": "", "output": "a"}]


@pytest.mark.parametrize(
    ("name", "content", "what"),
    [
        ("faq.csv", b"question,answer\nHow do I reset?,Open Settings\n", "line 1 is not a JSON object ('question,answer')"),
        ("guide.md", b"# Guide\n\nSome text.\n[link](x)\n", "line 1 is not a JSON object ('# Guide')"),
        ("manual.jsonl", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "it is a PDF"),
        ("blob.jsonl", bytes(range(256)) * 4, "it looks like a binary file"),
    ],
)
def test_a_file_that_is_not_jsonl_gets_one_message(tmp_path, name, content, what):
    f = tmp_path / name
    f.write_bytes(content)
    with pytest.raises(BadDataset) as e:
        validate_file(f)
    msg = str(e.value)
    assert msg.startswith(f"{f} is not JSONL: {what}")
    assert "Expected one JSON object per line (or a .json array" in msg
    assert msg.count("\n") == 0


def test_not_jsonl_hints_say_what_to_do(tmp_path):
    (tmp_path / "faq.csv").write_text("q,a\n1,2\n")
    (tmp_path / "guide.md").write_text("# Guide\n")
    with pytest.raises(BadDataset, match="to_json"):
        validate_file(tmp_path / "faq.csv")
    with pytest.raises(BadDataset, match="onboard ingest"):
        validate_file(tmp_path / "guide.md")


def test_one_pretty_printed_object_is_named_as_such(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text(json.dumps({"data": [chat()]}, indent=2))
    with pytest.raises(BadDataset, match="one JSON object spread over several lines.*under 'data'"):
        validate_file(f)


def test_a_3_mb_line_is_read_as_one_line_whether_valid_or_broken(tmp_path):
    big = chat(a="word " * 600_000)  # one 3 MB record: longer than the buffer the sniffer once cut lines at
    f = write(tmp_path / "d.jsonl", [big])
    assert f.stat().st_size > 3_000_000
    report = validate_file(f)  # was: "holds one JSON object spread over several lines"
    assert report.ok() and (report.total, report.valid, report.format) == (1, 1, "messages")
    assert validate_file(write(tmp_path / "two.jsonl", [chat(), big])).ok()
    assert validate_file(write(tmp_path / "d.txt", [big])).format == "messages"  # JSONL under a .txt name

    broken = jl(big)[:-2]  # the closing brackets lost
    for records, line in (([broken], 1), ([chat(), broken, chat("Another?")], 2)):
        report = validate_file(write(tmp_path / "d.jsonl", records))
        assert [(p.line, p.code) for p in report.problems] == [(line, "broken-json")]


def test_a_line_over_the_limit_is_refused_with_its_size_and_the_limit(tmp_path, monkeypatch):
    from training.data import files

    monkeypatch.setattr(files, "MAX_LINE_BYTES", 1000)
    long = chat(a="word " * 400)
    f = write(tmp_path / "d.jsonl", [chat(), long, chat("Another?")])
    size = len(jl(long)) + 1
    report = validate_file(f)
    assert [(p.line, p.code) for p in report.problems] == [(2, "line-too-long")]
    assert f"{size:,} bytes, over the 1,000-byte limit" in report.problems[0].reason and report.valid == 2
    only = write(tmp_path / "one.jsonl", [long])  # alone in its file: still the line named, not the file
    assert [(p.line, p.code) for p in validate_file(only).problems] == [(1, "line-too-long")]


def test_broken_lines_in_a_jsonl_file_are_reported_one_by_one(tmp_path):
    f = write(tmp_path / "d.jsonl", ['{"messages": [', '{"text": ', chat()])
    report = validate_file(f)
    assert [(p.line, p.code) for p in report.problems] == [(1, "broken-json"), (2, "broken-json")]


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(BadDataset, match="no such file"):
        validate_file(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n  \n")
    with pytest.raises(NoExamples, match="is empty"):
        validate_file(tmp_path / "empty.jsonl")
    (tmp_path / "empty.json").write_text("[]")
    with pytest.raises(NoExamples):
        validate_file(tmp_path / "empty.json")


def test_problems_are_ordered_by_line_and_counted_by_code(tmp_path):
    f = write(tmp_path / "d.jsonl", ["{", chat(), {"text": "t"}, chat(), "[]"])
    report = validate_file(f)
    assert [p.line for p in report.problems] == [1, 3, 4, 5]
    assert report.by_code() == {"broken-json": 1, "not-object": 1, "duplicate": 1, "mixed-format": 1}
    assert set(report.by_code()) <= set(CODES)
    assert report.summary() == f"{f}: messages, 5 records, 1 valid; 4 problems (1 broken-json, 1 not-object, 1 duplicate, 1 mixed-format)."
    assert sorted([Problem(5, "a", "x"), Problem(2, "b", "y")])[0].line == 2


def test_a_clean_file_is_ok(tmp_path):
    f = write(tmp_path / "d.jsonl", [{"prompt": "2+2?", "chosen": "4", "rejected": "5"}, {"prompt": "1+1?", "chosen": "2", "rejected": "3"}])
    report = validate_file(f)
    assert report.ok() and (report.format, report.total, report.valid) == ("preference", 2, 2)


def test_json_array_problems_are_named_by_the_line_the_record_starts(tmp_path):
    f = tmp_path / "d.json"
    f.write_text(json.dumps([chat("1"), {"instruction": "q"}, chat("2")], indent=2), encoding="utf-8")
    p = only_problem(validate_file(f))
    lines = f.read_text().splitlines()
    assert lines[p.line - 1].strip() == "{" and lines[p.line].strip() == '"instruction": "q"'
    assert p.code == "missing-field" and p.reason.startswith("missing 'output'")


def test_txt_file_is_validated_as_text(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("One.\n\nTwo.\n\nOne.\n", encoding="utf-8")
    report = validate_file(f)
    assert report.format == "text"
    assert [(p.line, p.code) for p in report.problems] == [(5, "duplicate")]


def test_fix_writes_only_good_records_in_the_same_format_and_leaves_the_original(tmp_path):
    good = [
        {"conversations": [{"from": "human", "value": "q1"}, {"from": "gpt", "value": "a1"}], "id": 1},
        {"conversations": [{"from": "human", "value": "q2"}, {"from": "gpt", "value": "a2"}]},
    ]
    bad = ["{oops", {"conversations": [{"from": "human", "value": "q3"}]}, good[0]]
    f = write(tmp_path / "data.jsonl", [good[0], bad[0], bad[1], good[1], bad[2]])
    before = file_sha256(f)
    report, out, n = fix_file(f)
    assert file_sha256(f) == before
    assert out == tmp_path / "data.fixed.jsonl" == default_fix_path(f)
    assert [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()] == good  # extra keys kept
    assert n == 2 and report.valid == 2 and len(report.problems) == 3
    assert validate_file(out).ok()


def test_fix_keeps_a_json_array_an_array(tmp_path):
    f = tmp_path / "d.json"
    f.write_text(json.dumps([chat("1"), chat("1"), chat("2")]), encoding="utf-8")
    before = file_sha256(f)
    _, out, n = fix_file(f, out=tmp_path / "clean" / "d.json")
    assert file_sha256(f) == before
    assert n == 2 and json.loads(out.read_text(encoding="utf-8")) == [chat("1"), chat("2")]


def test_fix_of_a_txt_file_writes_jsonl(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("One.\n\nOne.\n\nTwo.\n", encoding="utf-8")
    _, out, n = fix_file(f)
    assert out.name == "notes.fixed.jsonl"
    assert out.read_text(encoding="utf-8") == '{"text": "One."}\n{"text": "Two."}\n'


def test_fix_refuses_to_write_over_the_input(tmp_path, monkeypatch):
    f = write(tmp_path / "d.jsonl", [chat(), "{broken"])
    before = file_sha256(f)
    monkeypatch.chdir(tmp_path)
    for out in (f, "d.jsonl", tmp_path / "sub" / ".." / "d.jsonl"):
        with pytest.raises(BadDataset, match="refusing to write over the input file"):
            fix_file(f, out=out)
    link = tmp_path / "link.jsonl"
    link.symlink_to(f)
    with pytest.raises(BadDataset, match="refusing"):
        fix_file(f, out=link)
    assert file_sha256(f) == before


def test_fix_with_nothing_good_writes_nothing(tmp_path):
    f = write(tmp_path / "d.jsonl", ["{broken", {"text": ""}])
    with pytest.raises(NoExamples, match="no good record to write"):
        fix_file(f)
    assert not default_fix_path(f).exists()


def test_jsonl_under_a_long_junk_header_is_still_jsonl(tmp_path):
    f = write(tmp_path / "d.jsonl", ["# exported by tool", "# v2", "#", "#", "#", "#", chat()])
    report = validate_file(f)
    assert [(p.line, p.code) for p in report.problems] == [(n, "broken-json") for n in range(1, 7)]
    assert report.valid == 1


def test_problem_without_a_path_prints_its_line():
    assert str(Problem(3, "duplicate", "duplicate of line 1")) == "line 3: duplicate of line 1"
    assert Problem(3, "duplicate", "x").format("d.jsonl") == "d.jsonl:3: x"
