"""A small OpenAI-compatible judge server for tests, on 127.0.0.1.

It reads the answers out of the harness's delimiters (<<ANSWER-tag>> ...
<<END-tag>>) and answers in the required format by a policy, and it injects
faults on request: HTTP 500/429/400, a reply slower than the client's
timeout, a truncated body, a malformed JSON body, an HTML page.

    with JudgeServer(policy="longer") as server:
        server.url            # http://127.0.0.1:PORT/v1
        server.state.requests # requests seen so far

Run alone (for the served-checkpoint test): python -m tests.judge_server --port N --policy longer
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BLOCK = re.compile(r"<<ANSWER-([0-9a-f]+)>>\n(.*?)\n<<END-\1>>", re.DOTALL)
FAULTS = ("500", "429", "503", "400", "timeout", "truncated", "malformed", "html")
REASONING = re.compile(r"^(o\d|gpt-5)")
POLICIES = ("longer", "always_a", "marker", "garbage", "fix_on_reask", "fenced")
MARKER = "GOOD"
"""policy marker: the answer holding this word wins (tie when both or neither do); graders give it 9, else 3."""


@dataclass
class State:
    policy: str = "longer"
    faults: list[str] = field(default_factory=list)
    """Faults for the next requests, whatever they ask, in arrival order."""
    faults_for: dict[str, list[str]] = field(default_factory=dict)
    """marker -> faults for the next requests whose conversation holds the marker."""
    slow_s: float = 1.0
    """How long a `timeout` fault sleeps (longer than the client's timeout)."""
    delay_s: float = 0.0
    """Every request waits this long (to make requests overlap)."""
    answers: dict[str, str | list[str]] = field(default_factory=dict)
    """Standing in for checkpoints: the answer each model name gives (else "The answer is 42."); a list
    is picked from by the request's seed, so samples of one prompt can differ."""
    retry_after: str | None = None
    """Retry-After header sent with a 429 or 503 fault."""
    strict: bool = False
    """Enforce OpenAI's current rules: max_tokens is refused (max_completion_tokens is the name), and
    reasoning models (o1, o3, gpt-5, ...) refuse temperature and top_p."""
    times: list[float] = field(default_factory=list)
    """When each request arrived (time.monotonic)."""
    requests: int = 0
    served: Counter[str] = field(default_factory=Counter)
    """Outcomes by kind: ok, or the fault's name."""
    in_flight: int = 0
    peak: int = 0
    blocks: list[int] = field(default_factory=list)
    """Answer blocks found in each first user message."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_fault(self, text: str) -> str | None:
        with self.lock:
            for marker, queue in self.faults_for.items():
                if marker in text and queue:
                    return queue.pop(0)
            return self.faults.pop(0) if self.faults else None


def decide(policy: str, messages: list[dict[str, str]], answer: str = "The answer is 42.") -> str:
    """The judge's reply text for a conversation; `answer` for a prompt that is not a judge's."""
    first_user = next(m["content"] for m in messages if m["role"] == "user")
    answers = [body for _tag, body in BLOCK.findall(first_user)]
    if not answers:  # not a judge prompt: the server stands in for a checkpoint behind an endpoint
        return answer
    reasked = sum(m["role"] == "user" for m in messages) > 1
    if policy == "garbage" or (policy == "fix_on_reask" and not reasked):
        return "Both answers have merits. I think the first one is somewhat better overall."
    if len(answers) == 1:  # a single-answer grader
        words = answers[0].split()
        score = (9 if MARKER in answers[0] else 3) if policy == "marker" else max(1, min(10, len(words)))
        return json.dumps({"score": score, "reason": "graded"})
    a, b = answers[0], answers[1]
    if policy == "always_a":
        verdict = "A"
    elif policy == "marker":
        has_a, has_b = MARKER in a, MARKER in b
        verdict = "A" if has_a and not has_b else "B" if has_b and not has_a else "tie"
    else:  # longer
        verdict = "A" if len(a) > len(b) else "B" if len(b) > len(a) else "tie"
    reply = json.dumps({"verdict": verdict, "reason": f"policy {policy}"})
    return f"Here is my judgment:\n```json\n{reply}\n```" if policy == "fenced" else reply


def _refused(body: dict[str, Any]) -> str | None:
    """What OpenAI's API refuses today, as an `unsupported:<param>` fault (None: nothing)."""
    if "max_tokens" in body:
        return "unsupported:max_tokens"
    if REASONING.match(str(body.get("model", ""))):
        return next((f"unsupported:{p}" for p in ("temperature", "top_p") if p in body), None)
    return None


def make_handler(state: State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            self._send(200, json.dumps({"object": "list", "data": [{"id": "judge", "object": "model"}]}).encode())

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
            messages = body["messages"]
            with state.lock:
                state.times.append(time.monotonic())
                state.requests += 1
                state.in_flight += 1
                state.peak = max(state.peak, state.in_flight)
                first_user = next(m["content"] for m in messages if m["role"] == "user")
                state.blocks.append(len(BLOCK.findall(first_user)))
            try:
                time.sleep(state.delay_s)
                fault = _refused(body) if state.strict else None
                fault = fault or state.next_fault(json.dumps(messages))
                with state.lock:
                    state.served[fault or "ok"] += 1
                self._answer(fault, body)
            finally:
                with state.lock:
                    state.in_flight -= 1

        def _answer(self, fault: str | None, body: dict[str, Any]) -> None:
            if fault in ("500", "429", "503", "400"):
                headers = {"retry-after": state.retry_after} if state.retry_after and fault in ("429", "503") else {}
                self._send(int(fault), b'{"error": {"message": "injected"}}', headers=headers)
                return
            if fault is not None and fault.startswith("unsupported:"):
                param = fault.split(":", 1)[1]
                error = {"message": f"Unsupported parameter: '{param}' is not supported with this model.",
                         "type": "invalid_request_error", "param": param, "code": "unsupported_parameter"}
                self._send(400, json.dumps({"error": error}).encode())
                return
            if fault == "timeout":
                time.sleep(state.slow_s)
            answer = state.answers.get(body["model"], "The answer is 42.")
            if isinstance(answer, list):
                answer = answer[int(body.get("seed") or 0) % len(answer)]
            text = decide(state.policy, body["messages"], answer)
            payload = json.dumps({
                "id": "j", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}).encode()
            if fault == "malformed":
                self._send(200, payload[: len(payload) // 2])
            elif fault == "html":
                self._send(200, b"<html><body>Bad gateway</body></html>", "text/html")
            elif fault == "truncated":  # promise more bytes than are sent, then hang up
                self._send(200, payload[: len(payload) // 2], length=len(payload))
                self.close_connection = True
            else:
                self._send(200, payload)

        def _send(self, status: int, data: bytes, content_type: str = "application/json",
                  length: int | None = None, headers: dict[str, str] | None = None) -> None:
            try:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(data) if length is None else length))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up first (a timeout test)
                pass

        def log_message(self, *args: object) -> None:
            pass

    return Handler


class Server(ThreadingHTTPServer):
    request_queue_size = 256
    """A judge's whole window connects at once; at the default backlog (5) the kernel drops the surplus
    connections' SYNs, which the client resends a second later: a stall longer than a test's timeout."""
    daemon_threads = True


class JudgeServer:
    def __init__(self, policy: str = "longer", port: int = 0, **settings: Any) -> None:
        assert policy in POLICIES, policy
        self.state = State(policy=policy, **settings)
        self._server = Server(("127.0.0.1", port), make_handler(self.state))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> JudgeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--policy", default="longer", choices=POLICIES)
    args, _ = parser.parse_known_args()
    server = Server(("127.0.0.1", args.port), make_handler(State(policy=args.policy)))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
