"""The OpenAI-compatible backend: against a real vLLM server started here with
`harness serve` on 127.0.0.1, and against a small local server that fails on
purpose to exercise retries, timeouts and the concurrency bound."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harness.config.engine import EndpointConfig, SamplingConfig
from harness.engines.base import ChatRequest
from harness.engines.openai_backend import OpenAIBackend
from harness.errors import InfraError
from tests.conftest import ROOT

GREEDY = SamplingConfig(temperature=0, max_tokens=32)


def chat(text: str) -> ChatRequest:
    return ChatRequest((("user", text),), None, None, 0)


# --------------------------------------------------------------------- a faulty local server
class Faulty(BaseHTTPRequestHandler):
    plan: list[int] = []  # status codes to answer with, in order; then 200
    delay = 0.0
    lock = threading.Lock()
    in_flight = peak = calls = 0

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        length = int(self.headers.get("content-length", 0))
        body = json.loads(self.rfile.read(length))
        with Faulty.lock:
            Faulty.calls += 1
            Faulty.in_flight += 1
            Faulty.peak = max(Faulty.peak, Faulty.in_flight)
            status = Faulty.plan.pop(0) if Faulty.plan else 200
        time.sleep(Faulty.delay)
        with Faulty.lock:
            Faulty.in_flight -= 1
        if status != 200:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"error": {"message": "injected"}}')
            return
        answer = "echo: " + body["messages"][-1]["content"]
        payload = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                   "choices": [{"index": 0, "finish_reason": "stop",
                                "message": {"role": "assistant", "content": answer}}],
                   "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}
        data = json.dumps(payload).encode()
        try:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except BrokenPipeError:  # the client timed out first, as the timeout test intends
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def faulty() -> Iterator[str]:
    Faulty.plan, Faulty.delay, Faulty.in_flight, Faulty.peak, Faulty.calls = [], 0.0, 0, 0, 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), Faulty)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def backend(url: str, **kw: object) -> OpenAIBackend:
    return OpenAIBackend(EndpointConfig(base_url=url, backoff_s=0.01, **kw), "m")


def test_retries_then_succeeds(faulty: str) -> None:
    Faulty.plan = [500, 429]
    engine = backend(faulty, max_retries=2)
    [answer] = engine.generate([chat("hi")], GREEDY)
    assert answer.text == "echo: hi" and answer.completion_tokens == 3
    assert (Faulty.calls, engine.retries_used) == (3, 2)


def test_gives_up_after_max_retries(faulty: str) -> None:
    Faulty.plan = [503, 503, 503]
    with pytest.raises(InfraError, match=r"gave up after 3 attempts"):
        backend(faulty, max_retries=2).generate([chat("hi")], GREEDY)
    assert Faulty.calls == 3


def test_client_errors_are_not_retried(faulty: str) -> None:
    Faulty.plan = [400]
    with pytest.raises(InfraError, match=r"HTTP 400"):
        backend(faulty, max_retries=3).generate([chat("hi")], GREEDY)
    assert Faulty.calls == 1


def test_timeouts_are_retried(faulty: str) -> None:
    Faulty.delay = 0.5
    with pytest.raises(InfraError, match=r"gave up after 2 attempts"):
        backend(faulty, max_retries=1, timeout_s=0.1).generate([chat("hi")], GREEDY)
    assert Faulty.calls == 2


def test_concurrency_is_bounded_and_order_kept(faulty: str) -> None:
    Faulty.delay = 0.3  # long enough for requests to overlap even on a loaded machine
    answers = backend(faulty, max_concurrency=3).generate([chat(str(i)) for i in range(9)], GREEDY)
    assert [a.text for a in answers] == [f"echo: {i}" for i in range(9)]
    assert 2 <= Faulty.peak <= 3  # concurrent, and never past the bound


def test_missing_key_variable_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARNESS_TEST_KEY", raising=False)
    with pytest.raises(Exception, match=r"endpoint.api_key_env: environment variable HARNESS_TEST_KEY is not set"):
        OpenAIBackend(EndpointConfig(base_url="http://127.0.0.1:1/v1", api_key_env="HARNESS_TEST_KEY"), "m", "c.yaml")


# --------------------------------------------------------------------- a real vLLM server
# (the vllm_server fixture lives in conftest.py: one server per session, shared with the judge tests)
def listening_addresses(port: int) -> set[str]:
    """Local addresses in LISTEN state for a port, read from /proc/net/tcp{,6}."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.rsplit(":", 1)
            if state == "0A" and int(port_hex, 16) == port:
                found.add(address)
    return found


@pytest.mark.slow
def test_serve_binds_loopback_only(vllm_server: str) -> None:
    port = int(vllm_server.rsplit(":", 1)[1].split("/")[0])
    assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1, little-endian hex


@pytest.mark.slow
def test_chat_api_matches_local_transformers(vllm_server: str, demo_models, tmp_path_factory) -> None:
    from harness.config.schema import CheckpointConfig
    from harness.config.suites import load_suite
    from harness.engines import open_backend
    from harness.engines.checkpoint import resolve_checkpoint
    from harness.records.cache import Cache

    suite = load_suite(ROOT / "suites" / "demo" / "general.yaml")
    local = resolve_checkpoint(CheckpointConfig(name="l", model=str(demo_models.base), backend="transformers"),
                               "l.yaml", Cache(tmp_path_factory.mktemp("c") / "c.sqlite"))
    requests = [local.render(item.conversation, 0)[0] for item in suite.items[:12]]
    engine = open_backend(local)
    try:
        expected = engine.generate(requests, GREEDY)
    finally:
        engine.close()
    remote = OpenAIBackend(EndpointConfig(base_url=vllm_server, max_concurrency=4), "demo-base")
    answers = remote.generate(requests, GREEDY)
    assert [a.text for a in answers] == [e.text for e in expected]
    assert all(a.prompt_tokens > 0 and a.completion_tokens > 0 for a in answers)
    completions = OpenAIBackend(EndpointConfig(base_url=vllm_server, api="completions"), "demo-base")
    assert [a.text for a in completions.generate(requests, GREEDY)] == [e.text for e in expected]


# --------------------------------------------------------------------- hosted APIs as they are today
@pytest.mark.parametrize("model", ["gpt-4.1-mini", "o3-mini", "gpt-5"])
def test_requests_follow_openais_current_rules(model: str) -> None:
    """max_completion_tokens, and no temperature or top_p to a reasoning model: a server enforcing
    OpenAI's rules answers every request (before, each got HTTP 400, which is never retried)."""
    from tests.judge_server import JudgeServer

    with JudgeServer(strict=True) as server:
        backend = OpenAIBackend(EndpointConfig(base_url=server.url, model=model, max_retries=0), model)
        [answer] = backend.generate([chat("hi")], GREEDY)
        assert answer.text == "The answer is 42." and server.state.served["ok"] == 1


def test_a_server_that_refuses_a_setting_names_it_in_one_line() -> None:
    from tests.judge_server import JudgeServer

    with JudgeServer(strict=True) as server:
        endpoint = EndpointConfig(base_url=server.url, model="o3", send_sampling=["temperature"], max_retries=3)
        with pytest.raises(InfraError, match=r"HTTP 400: .*Unsupported parameter: 'temperature'"):
            OpenAIBackend(endpoint, "o3").generate([chat("hi")], GREEDY)
        assert server.state.requests == 1  # a client error is not retried
        old = EndpointConfig(base_url=server.url, model="m", length_field="max_tokens", max_retries=0)
        with pytest.raises(InfraError, match="'max_tokens' is not supported"):
            OpenAIBackend(old, "m").generate([chat("hi")], GREEDY)


@pytest.mark.parametrize("status", ["429", "503"])
def test_retry_after_is_honoured(status: str) -> None:
    from tests.judge_server import JudgeServer

    with JudgeServer(faults=[status], retry_after="1.5") as server:
        endpoint = EndpointConfig(base_url=server.url, model="m", max_retries=2, backoff_s=0.01)
        [answer] = OpenAIBackend(endpoint, "m").generate([chat("hi")], GREEDY)
        first, second = server.state.times
    assert answer.text == "The answer is 42." and second - first >= 1.45


def test_retry_after_forms_and_cap() -> None:
    from email.utils import formatdate

    from harness.engines.openai_backend import retry_after_s

    assert retry_after_s({"retry-after": "3"}, 60) == 3.0
    assert retry_after_s({"retry-after-ms": "250", "retry-after": "3"}, 60) == 0.25
    assert retry_after_s({"retry-after": "600"}, 60) == 60  # capped: max_retry_after_s
    assert 8 <= (retry_after_s({"retry-after": formatdate(time.time() + 10, usegmt=True)}, 60) or 0) <= 10
    assert retry_after_s({"retry-after": "soon"}, 60) is None and retry_after_s({}, 60) is None
