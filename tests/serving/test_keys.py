"""API keys and per-key rate limits: the store (real SQLite), the limiter, and a real server called by the
openai client and by a browser's CORS preflight."""

import json
import sqlite3
import stat
import sys

import httpx
import openai
import pytest
from typer.testing import CliRunner

from agent.cli import app
from serving.auth import RateLimiter
from serving.errors import BadSetting
from serving.keys import KeyStore
from tests.serving.servers import serve_in_process


def test_the_store_keeps_only_hashes_and_revoking_the_last_key_keeps_keys_required(tmp_path):
    store = KeyStore(tmp_path / "keys.sqlite")
    assert not store.required() and store.list() == []
    key, secret = store.create("support-site", rpm=60)
    assert secret.startswith("onb-") and len(secret) > 40 and store.find(secret) == key
    assert store.find(secret + "x") is None and store.find("sk-" + secret[4:]) is None
    assert stat.S_IMODE((tmp_path / "keys.sqlite").stat().st_mode) == 0o600
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert secret.encode() not in raw and secret[4:20].encode() not in raw
    rows = sqlite3.connect(tmp_path / "keys.sqlite").execute("SELECT hash FROM keys").fetchall()
    assert len(rows[0][0]) == 64
    store.revoke(key.id)
    assert store.find(secret) is None and store.required()  # no key left active: still closed
    assert store.list()[0].revoked is not None
    with pytest.raises(BadSetting, match="no key with id 'nope'"):
        store.revoke("nope")
    with pytest.raises(BadSetting, match="--rpm must be at least 1"):
        store.create("x", rpm=0)


def test_the_limiter_counts_requests_and_tokens_over_a_sliding_minute(tmp_path):
    store = KeyStore(tmp_path / "k.sqlite")
    by_requests, _ = store.create("a", rpm=2)
    by_tokens, _ = store.create("b", tpm=150)
    lim = RateLimiter()
    assert lim.over(by_requests, now=0) is None and lim.over(by_requests, now=10) is None
    assert lim.over(by_requests, now=20) == ("requests", 40)  # the first request ages out at 60
    assert lim.over(by_requests, now=60.5) is None
    assert lim.over(by_tokens, now=0) is None
    lim.charge(by_tokens, 100, now=1)
    assert lim.over(by_tokens, now=2) is None
    lim.charge(by_tokens, 100, now=30)
    assert lim.over(by_tokens, now=31) == ("tokens", 30)  # 100 of the 200 must age out: the one at 1, at 61
    assert lim.over(by_tokens, now=61.5) is None


def test_the_cli_makes_lists_and_revokes_keys(tmp_path):
    runner = CliRunner()
    made = runner.invoke(app, ["keys", "create", "shop", "--rpm", "5", "--keys-file", str(tmp_path / "k.sqlite")])
    assert made.exit_code == 0, made.output
    key_id, secret = made.stdout.split()[1], made.stdout.split()[-1]
    listed = runner.invoke(app, ["keys", "list", "--keys-file", str(tmp_path / "k.sqlite")])
    assert key_id in listed.stdout and "shop" in listed.stdout and secret not in listed.stdout
    assert runner.invoke(app, ["keys", "revoke", key_id, "--keys-file", str(tmp_path / "k.sqlite")]).exit_code == 0
    bad = runner.invoke(app, ["keys", "revoke", "zzzz", "--keys-file", str(tmp_path / "k.sqlite")])
    assert bad.exit_code == 1 and "onboard keys list" in bad.output


LOG: dict = {}


@pytest.fixture(scope="module")
def keyed(merged_model, workspace, tmp_path_factory):
    """A real server with a key store of its own (not the shared workspace's), CORS for one origin, no docs."""
    tmp = tmp_path_factory.mktemp("keyed")
    store = KeyStore(tmp / "keys.sqlite")
    _, limited = store.create("limited", rpm=2)
    _, free = store.create("free")
    env = {"ONBOARD_THREADS": "2", "ONBOARD_KEYS_FILE": str(store.path), "ONBOARD_DOCS": "false",
           "ONBOARD_LOG_FORMAT": "json", "ONBOARD_LOG_BODIES": "true", "ONBOARD_CONVERSATIONS_FILE": str(tmp / "chat.sqlite"),
           "ONBOARD_CORS_ORIGINS": '["https://shop.example"]', "ONBOARD_MAX_NEW_TOKENS": "8"}
    argv = [sys.executable, "-m", "agent.cli", "serve", "--workspace", str(workspace), "--model", str(merged_model)]
    with serve_in_process(env, tmp / "server.log", argv) as base:
        yield base, store, limited, free


def test_a_server_with_keys_refuses_strangers_and_limits_each_key(keyed):
    base, store, limited, free = keyed
    assert httpx.get(f"{base}/healthz").status_code == 200  # probes need no key
    none = httpx.get(f"{base}/v1/models")
    assert none.status_code == 401 and none.json()["error"]["type"] == "invalid_request_error"
    assert "Authorization" in none.json()["error"]["message"] and none.headers["www-authenticate"].startswith("Bearer")
    with pytest.raises(openai.AuthenticationError) as e:
        openai.OpenAI(base_url=f"{base}/v1", api_key="onb-wrong", max_retries=0).models.list()
    assert e.value.code == "invalid_api_key"

    client = openai.OpenAI(base_url=f"{base}/v1", api_key=free, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="merged",
                                                           messages=[{"role": "user", "content": "Hello Zorblax"}])
    answer, rid = raw.parse(), raw.headers["x-request-id"]
    assert answer.choices[0].message.content is not None
    LOG["asked"] = (rid, answer.choices[0].message.content, [free, limited])

    capped = openai.OpenAI(base_url=f"{base}/v1", api_key=limited, max_retries=0)
    first = capped.models.with_raw_response.list()
    assert first.headers["x-ratelimit-limit-requests"] == "2" and first.headers["x-ratelimit-remaining-requests"] == "1"
    capped.models.list()
    with pytest.raises(openai.RateLimitError) as e:
        capped.models.list()
    assert e.value.code == "rate_limit_exceeded" and e.value.body["type"] == "requests"
    assert 1 <= int(e.value.response.headers["retry-after"]) <= 60
    assert client.models.list().data  # another key is not held back

    key = next(k for k in store.list() if k.name == "free")
    store.revoke(key.id)  # a running server sees it at once
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


def test_cors_lets_only_the_configured_origin_in_and_docs_can_be_hidden(keyed):
    base, store, *_ = keyed
    _, key = store.create("docs reader")
    ask = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
    ok = httpx.options(f"{base}/v1/chat/completions", headers={"Origin": "https://shop.example", **ask})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://shop.example"
    other = httpx.options(f"{base}/v1/chat/completions", headers={"Origin": "https://evil.example", **ask})
    assert "access-control-allow-origin" not in other.headers
    refused = httpx.get(f"{base}/v1/models", headers={"Origin": "https://shop.example"})
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == "https://shop.example"
    for path in ("/docs", "/openapi.json"):
        assert httpx.get(f"{base}{path}", headers={"Authorization": f"Bearer {key}"}).status_code == 404


def test_json_logs_carry_request_ids_and_bodies_when_asked_never_keys(keyed):
    rid, answer, secrets = LOG["asked"]
    base, store, *_ = keyed
    lines = [json.loads(x) for x in (store.path.parent / "server.log").read_text().splitlines() if x.startswith("{")]
    said = [x for x in lines if x.get("request_id") == rid]
    access = next(x for x in said if x["logger"] == "onboard.access")
    assert access["route"] == "/v1/chat/completions" and access["status"] == 200 and access["key"] == "free"
    chat = next(x for x in said if x["message"] == "chat answered")
    assert chat["question"] == "Hello Zorblax" and chat["answer"] == answer  # log_bodies is on for this server
    text = (store.path.parent / "server.log").read_text()
    assert not any(s in text or s[4:12] in text for s in secrets)


def test_a_conversation_is_continued_only_with_the_key_that_started_it(keyed):
    base, store, *_ = keyed
    (_, alice), (_, bob) = store.create("alice"), store.create("bob")
    started = httpx.post(f"{base}/chat", json={"message": "Do you ship to Canada?"},
                         headers={"Authorization": f"Bearer {alice}"}, timeout=120)
    assert started.status_code == 200
    again = {"session_id": started.json()["session_id"], "message": "And to Mexico?"}
    other = httpx.post(f"{base}/chat", json=again, headers={"Authorization": f"Bearer {bob}"}, timeout=120)
    assert other.status_code == 404 and other.json()["error"]["param"] == "session_id"
    same = httpx.post(f"{base}/chat", json=again, headers={"Authorization": f"Bearer {alice}"}, timeout=120)
    assert same.status_code == 200 and same.json()["session_id"] == again["session_id"]


def test_the_chat_page_is_open_and_asks_for_a_key_when_the_server_has_keys(keyed):
    base, *_ = keyed
    page = httpx.get(base)  # no key: the page holds nothing of the server's, and asks for one
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'data-keys="true"' in page.text and 'data-chat="true"' in page.text and 'data-setup="true"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]  # no inline script can run
    assert "<script>" not in page.text
    js = httpx.get(f"{base}/web/chat.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript") and "/feedback" in js.text
    assert httpx.get(f"{base}/web/other.js").status_code == 401  # only the page's own files are open
