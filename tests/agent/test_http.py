"""The interview over HTTP: a real uvicorn server, a real HTTP client, one conversation per thread, and
limits that hold."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from agent.http import MAX_MESSAGE, create_app
from tests.serving.servers import serve_in_thread

DOCS = Path(__file__).resolve().parents[2] / "examples" / "docs"


def _events(r: httpx.Response) -> list[tuple[str, dict]]:
    out = []
    for block in r.text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


@pytest.fixture
def setups(tmp_path):
    """Where the confirmed plans run; any run still going is stopped at the end of the test."""
    from agent.setups import Setup

    folder = tmp_path / "setups"
    yield folder
    for thread in folder.iterdir() if folder.is_dir() else []:
        found = Setup.find(thread)
        if found is not None:
            found.stop()


def test_an_interview_over_http(tmp_path, setups):
    with serve_in_thread(create_app(tmp_path / "chat.sqlite", setups)) as base, \
            httpx.Client(base_url=base, timeout=60) as http:  # stopping waits for the run's process to end
        first = http.get("/v1/interview/threads/shop", params={"lang": "zh"}).json()
        assert first["say"].startswith("这个助手要做什么") and not first["done"]
        for answer in ["回答客户关于退货的问题", "中文", str(DOCS), "tiny", "raft", "一个小时", "要"]:
            r = http.post("/v1/interview/threads/shop/messages", json={"message": answer})
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        (kind, reply), (end, _) = _events(http.post("/v1/interview/threads/shop/messages", json={"message": "2"}))
        assert kind == "reply" and end == "end" and not reply["done"] and "deploy: compose" in reply["say"]
        (kind, reply), _ = _events(http.post("/v1/interview/threads/shop/messages", json={"message": "好的"}))
        assert reply["done"] and reply["say"] == "开始。\n进度见 GET /v1/interview/threads/shop/run"
        assert reply["plan"]["stage"] == "raft" and reply["plan"]["languages"] == ["zh"]
        other = http.get("/v1/interview/threads/staff").json()  # another thread starts afresh
        assert other["say"].startswith("What should the assistant do") and other["plan"]["purpose"] == ""
        assert http.get("/v1/interview/threads/shop").json()["done"]  # and the first is kept


def test_bad_requests_are_refused_by_name(tmp_path):
    with serve_in_thread(create_app(tmp_path / "chat.sqlite")) as base, httpx.Client(base_url=base) as http:
        too_long = http.post("/v1/interview/threads/t/messages", json={"message": "x" * (MAX_MESSAGE + 1)})
        assert too_long.status_code == 422 and "message" in too_long.text
        assert http.post("/v1/interview/threads/t/messages", json={"message": ""}).status_code == 422
        assert http.get("/v1/interview/threads/..%2Fetc").status_code in (404, 422)
        assert http.get("/v1/interview/threads/" + "a" * 65).status_code == 422
        bad_lang = http.get("/v1/interview/threads/t", params={"lang": "fr"})
        assert bad_lang.status_code == 422 and "lang" in bad_lang.text


EN_PLAN = ["Answer customers about returns", "English", str(DOCS), "tiny", "sft", "1 hour", "no", "none"]
"""An interview's answers up to the plan (then "yes" confirms it)."""


def _confirm(http: httpx.Client, thread: str) -> dict:
    for answer in EN_PLAN:
        http.post(f"/v1/interview/threads/{thread}/messages", json={"message": answer})
    (_, reply), _ = _events(http.post(f"/v1/interview/threads/{thread}/messages", json={"message": "yes"}))
    return reply


def _follow(http: httpx.Client, path: str, stop_when=lambda kind, data: False, **kw) -> list[tuple[int, str, dict]]:
    """The run's server-sent events until its `end` (or until `stop_when(kind, data)`): (id, kind, data)."""
    got = []
    with http.stream("GET", path, timeout=600, **kw) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        block: dict = {}
        for line in r.iter_lines():
            if line.startswith(":"):
                continue
            if line:
                key, value = line.split(": ", 1)
                block[key] = value
                continue
            if block:
                got.append((int(block["id"]), block["event"], json.loads(block["data"])))
                block = {}
                if got[-1][1] == "end" or stop_when(*got[-1][1:]):
                    return got
    return got


def test_a_confirmed_plan_runs_apart_streams_what_it_says_stops_and_starts_again(tmp_path, setups):
    """The yes that confirms a plan starts its run in SETUPS/THREAD (a process of its own); the run's events
    stream until stopped; one run at a time per server; a restarted run streams on after the last event seen."""
    with serve_in_thread(create_app(tmp_path / "chat.sqlite", setups)) as base, \
            httpx.Client(base_url=base, timeout=60) as http:  # stopping waits for the run's process to end
        assert http.get("/v1/interview/threads/shop/run").status_code == 404  # no plan, no run
        reply = _confirm(http, "shop")
        assert reply["done"] and reply["run"] == "/v1/interview/threads/shop/run"
        assert reply["say"].startswith("Starting.") and "GET /v1/interview/threads/shop/run" in reply["say"]
        assert (setups / "shop" / "plan.yaml").is_file() and not (tmp_path / "plan.yaml").exists()

        busy = _confirm(http, "staff")  # a second plan while the first runs: kept, not started
        assert busy["done"] and busy["run"] is None and "Not started yet" in busy["say"]
        refused = http.post("/v1/interview/threads/staff/run")
        assert refused.status_code == 409 and "already running" in refused.text
        assert http.post("/v1/interview/threads/shop/run").status_code == 409  # it runs already

        first = _follow(http, reply["run"], stop_when=lambda kind, data: kind == "say")
        assert [i for i, _, _ in first] == list(range(1, len(first) + 1))
        stopped = http.post("/v1/interview/threads/shop/run/stop").json()  # waits up to 30 s for the end
        assert stopped["stopped"] is True and stopped["ended"] in (True, False)
        rest = _follow(http, reply["run"], headers={"Last-Event-ID": str(first[-1][0])})
        assert rest[0][0] == first[-1][0] + 1
        assert rest[-1][1] == "end" and rest[-1][2]["end"]["ok"] is False and "again" in rest[-1][2]["end"]["error"]

        again = http.post("/v1/interview/threads/shop/run")  # resumes: the finished steps are skipped
        assert again.status_code == 202 and again.json()["run"] == reply["run"]
        more = _follow(http, f"{reply['run']}?after={rest[-1][0]}", stop_when=lambda kind, data: kind == "say")
        assert more[0][0] == rest[-1][0] + 1
        http.post("/v1/interview/threads/shop/run/stop")
        assert http.get("/v1/interview/threads/shop").json()["run"] == reply["run"]
        assert http.get("/v1/interview/threads/nobody/run").status_code == 404
        assert http.get(reply["run"], params={"after": -1}).status_code == 422


@pytest.mark.slow
def test_a_plan_confirmed_over_http_ends_in_a_trained_evaluated_model(tmp_path, setups):
    """The whole run behind the chat page's "Set up a fine-tune": the tiny model from the example documents,
    trained, merged and evaluated, in the thread's own workspace."""
    with serve_in_thread(create_app(tmp_path / "chat.sqlite", setups)) as base, \
            httpx.Client(base_url=base, timeout=60) as http:  # stopping waits for the run's process to end
        for answer in EN_PLAN[:6] + ["yes", "local"]:
            http.post("/v1/interview/threads/shop/messages", json={"message": answer})
        (_, reply), _ = _events(http.post("/v1/interview/threads/shop/messages", json={"message": "yes"}))
        events = _follow(http, reply["run"])
    said = [d["say"] for _, kind, d in events if kind == "say"]
    stages = {d["progress"] for _, kind, d in events if kind == "progress"}
    end = events[-1][2]["end"]
    assert end["ok"], end
    assert {"training"} <= stages and any(s.startswith("trained ") for s in said)
    assert (setups / "shop" / "models").is_dir() and Path(end["model"]).is_dir() and Path(end["report"]).exists()
    assert end["gate_passed"] is not None and end["serve"] == f"onboard serve -w {setups / 'shop'}"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the swallowed interrupt
def test_a_stop_swallowed_by_a_finalizer_is_raised_at_the_next_event(tmp_path, monkeypatch):
    """A SIGTERM whose KeyboardInterrupt lands in a `__del__` (Python prints it and goes on) still stops the
    setup: the next event it writes raises it again."""
    import signal

    from agent.setups import _Stop, _Writer

    monkeypatch.setattr(_Stop, "requested", False)

    class Finalized:
        def __del__(self):
            _Stop.handle(signal.SIGTERM, None)

    Finalized()  # the handler runs in a finalizer: its KeyboardInterrupt is ignored
    out = _Writer(tmp_path / "events.jsonl")
    with pytest.raises(KeyboardInterrupt):
        out.progress("tiny base model", 98, 300)
    assert (tmp_path / "events.jsonl").read_text() == ""
