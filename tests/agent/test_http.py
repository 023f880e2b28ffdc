"""The interview over HTTP: a real uvicorn server, a real HTTP client, one conversation per thread, and
limits that hold."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from agent.http import MAX_MESSAGE, create_app
from tests.serving.servers import serve_in_thread

DOCS = Path(__file__).resolve().parents[2] / "examples" / "docs"


def _events(r: httpx.Response) -> list[tuple[str, dict]]:
    out = []
    for block in r.text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_an_interview_over_http(tmp_path):
    with serve_in_thread(create_app(tmp_path / "chat.sqlite")) as base, httpx.Client(base_url=base) as http:
        first = http.get("/v1/interview/threads/shop", params={"lang": "zh"}).json()
        assert first["say"].startswith("这个助手要做什么") and not first["done"]
        for answer in ["回答客户关于退货的问题", "中文", str(DOCS), "tiny", "raft", "一个小时", "要"]:
            r = http.post("/v1/interview/threads/shop/messages", json={"message": answer})
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        (kind, reply), (end, _) = _events(http.post("/v1/interview/threads/shop/messages", json={"message": "2"}))
        assert kind == "reply" and end == "end" and not reply["done"] and "deploy: compose" in reply["say"]
        (kind, reply), _ = _events(http.post("/v1/interview/threads/shop/messages", json={"message": "好的"}))
        assert reply["done"] and reply["say"] == "开始。"
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
