"""A model-API stub on loopback: Anthropic Messages SSE for claude, OpenAI Responses SSE for
codex, and the shapes in modules of their own: Gemini's generateContent (stub_gemini.py) for
Gemini CLI, OpenAI chat completions (stub_openai_chat.py) for Qwen Code, Copilot CLI and
opencode.

Every answer is recorded (`calls`: the log of billed requests), so a test can compare the
ledger with exactly what the "model" billed. By default every answer reports the same
usage and ids. `ModelStub.billing()` makes it behave as the real APIs do where counting can
go wrong: each request billed with its own usage (so a request counted twice or dropped
shows in any total), its own message / response id and `request-id` header, and, through
`answer_as`, an answer that names another model than the one requested (an alias answered
with a dated id, a gateway renaming models). The chat-completions and Gemini shapes
(their own modules) always bill each request with figures and an id of their own.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import stub_gemini
import stub_openai_chat

# More API shapes, each in its own module: answer(handler, path, body) -> True when it
# answered; its state lives in ModelStub.shapes.
SHAPES = (stub_gemini.answer, stub_openai_chat.answer)


@dataclass
class AnthropicUsage:
    input: int = 1234
    cache_creation: int = 567
    cache_read: int = 8910
    output: int = 321

    def nth(self, n: int) -> AnthropicUsage:
        """The usage of the n-th request when usage varies: no two requests alike."""
        return AnthropicUsage(self.input + 7 * n, self.cache_creation + 11 * n,
                              self.cache_read + 13 * n, self.output + 3 * n)

    def ledger(self) -> dict[str, int]:
        """In the ledger's token types (Anthropic's input excludes the cache already)."""
        return {"input": self.input, "output": self.output, "cache_read": self.cache_read,
                "cache_creation": self.cache_creation}


@dataclass
class OpenAIUsage:
    input: int = 5000  # includes cached
    cached: int = 1200
    output: int = 700  # includes reasoning
    reasoning: int = 250
    # prompt-cache writes (GPT-5.6 on), sent as input_tokens_details.cache_write_tokens, the
    # field codex 0.169.0 reads into cache_write_input_tokens; part of input, like cached.
    # 0 sends no such field, as older models do.
    cache_write: int = 0

    def nth(self, n: int) -> OpenAIUsage:
        return replace(self, input=self.input + 17 * n, cached=self.cached + 5 * n,
                       output=self.output + 9 * n, reasoning=self.reasoning + 2 * n)

    def ledger(self) -> dict[str, int]:
        """In the ledger's token types: input without its cached part and cache writes."""
        out = {"input": self.input - self.cached - self.cache_write, "cache_read": self.cached,
               "output": self.output, "reasoning": self.reasoning}
        if self.cache_write:
            out["cache_creation"] = self.cache_write
        return out


@dataclass
class Call:
    """One billed request, as the stub answered it."""

    path: str
    model: str  # the model requested
    stream: bool
    answered: str = ""  # the model the answer named
    usage: AnthropicUsage | OpenAIUsage | None = None  # what it billed
    id: str = ""  # message id (Anthropic) or response id (OpenAI)
    request_id: str = ""  # the request-id header
    body: dict = field(default_factory=dict, repr=False)

    @property
    def tokens(self) -> dict[str, int]:
        return self.usage.ledger() if self.usage is not None else {}

    def text(self) -> str:
        """The request's text, flattened (to tell a side request from a turn)."""
        return json.dumps(self.body)


@dataclass
class ModelStub:
    anthropic: AnthropicUsage = field(default_factory=AnthropicUsage)
    openai: OpenAIUsage = field(default_factory=OpenAIUsage)
    calls: list[Call] = field(default_factory=list)
    shapes: dict = field(default_factory=dict)  # the SHAPES modules' state, by name
    port: int = 0
    vary: bool = False  # each request billed with usage of its own (and ids of its own)
    answer_as: dict[str, str] = field(default_factory=dict)  # requested -> answered model
    delay: float = 0.0  # seconds before each answer (runs that overlap in time)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def billing(cls, answer_as: dict[str, str] | None = None) -> ModelStub:
        """A stub that bills as the real APIs do (see the module docstring)."""
        return cls(vary=True, answer_as=dict(answer_as or {}))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def billed(self, path: str) -> list[Call]:
        return [c for c in self.calls if c.path == path]

    def expected(self, path: str, calls: list[Call] | None = None) -> dict[str, dict[str, int]]:
        """Per answered model, the ledger token types summed over the requests billed."""
        out: dict[str, dict[str, int]] = {}
        for call in self.billed(path) if calls is None else calls:
            row = out.setdefault(call.answered or call.model, {})
            for k, v in call.tokens.items():
                row[k] = row.get(k, 0) + v
        return out

    def _bill(self, path: str, body: dict) -> Call:
        model = body.get("model", "")
        with self.lock:
            n = len(self.calls) + 1
            base = self.anthropic if path == "/v1/messages" else self.openai
            call = Call(path, model, bool(body.get("stream")),
                        answered=self.answer_as.get(model, model),
                        usage=base.nth(n) if self.vary else base,
                        id=("msg_stub" if path == "/v1/messages" else "resp_stub")
                        + (f"_{n:04d}" if self.vary else ""),
                        request_id=f"req_stub_{n:04d}" if self.vary else "", body=body)
            self.calls.append(call)
        return call


def _sse(events: list[tuple[str, dict]]) -> bytes:
    return b"".join(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
                    for name, data in events)


def anthropic_events(model: str, u: AnthropicUsage, text: str = "Hello from the stub.",
                     message_id: str = "msg_stub") -> bytes:
    message = {"id": message_id, "type": "message", "role": "assistant", "model": model,
               "content": [], "stop_reason": None, "stop_sequence": None,
               "usage": {"input_tokens": u.input, "cache_creation_input_tokens": u.cache_creation,
                         "cache_read_input_tokens": u.cache_read, "output_tokens": 1}}
    return _sse([
        ("message_start", {"type": "message_start", "message": message}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": text}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta",
                           "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"output_tokens": u.output}}),
        ("message_stop", {"type": "message_stop"}),
    ])


def openai_events(model: str, u: OpenAIUsage, text: str = "Hello from the stub.",
                  response_id: str = "resp_stub") -> bytes:
    item = {"id": "msg_stub", "type": "message", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}
    details = {"cached_tokens": u.cached}
    if u.cache_write:
        details["cache_write_tokens"] = u.cache_write
    usage = {"input_tokens": u.input, "input_tokens_details": details,
             "output_tokens": u.output, "output_tokens_details": {"reasoning_tokens": u.reasoning},
             "total_tokens": u.input + u.output}
    base = {"id": response_id, "object": "response", "model": model}
    return _sse([
        ("response.created", {"type": "response.created",
                              "response": {**base, "status": "in_progress", "output": []}}),
        ("response.output_item.added", {"type": "response.output_item.added", "output_index": 0,
                                        "item": {**item, "status": "in_progress", "content": []}}),
        ("response.output_text.delta", {"type": "response.output_text.delta", "item_id": "msg_stub",
                                        "output_index": 0, "content_index": 0, "delta": text}),
        ("response.output_item.done", {"type": "response.output_item.done", "output_index": 0,
                                       "item": item}),
        ("response.completed", {"type": "response.completed",
                                "response": {**base, "status": "completed", "output": [item],
                                             "usage": usage}}),
    ])


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    stub: ModelStub

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            body = {}
        path = self.path.split("?", 1)[0]
        if path in ("/v1/messages", "/v1/responses") and self.stub.delay:
            time.sleep(self.stub.delay)
        if path == "/v1/messages":
            call = self.stub._bill(path, body)
            if call.stream:
                return self._send(200, anthropic_events(call.answered, call.usage,
                                                        message_id=call.id),
                                  "text/event-stream", call)
            u = call.usage
            return self._send(200, json.dumps({
                "id": call.id, "type": "message", "role": "assistant", "model": call.answered,
                "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
                "usage": {"input_tokens": u.input, "output_tokens": u.output,
                          "cache_creation_input_tokens": u.cache_creation,
                          "cache_read_input_tokens": u.cache_read}}).encode(), call=call)
        if path == "/v1/responses":
            call = self.stub._bill(path, body)
            return self._send(200, openai_events(call.answered, call.usage,
                                                 response_id=call.id),
                              "text/event-stream", call)
        if path in stub_openai_chat.PATHS:
            self.stub.calls.append(Call(path, body.get("model", ""), bool(body.get("stream"))))
        if any(shape(self, path, body) for shape in SHAPES):
            return None
        self._send(200, b"{}")

    def do_GET(self) -> None:
        self._send(200, b"{}")

    def _send(self, status: int, body: bytes, ctype: str = "application/json",
              call: Call | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if call is not None and call.request_id:
            self.send_header("request-id", call.request_id)
            self.send_header("x-request-id", call.request_id)
        self.end_headers()
        self.wfile.write(body)


def start(stub: ModelStub | None = None) -> tuple[ModelStub, ThreadingHTTPServer]:
    stub = stub or ModelStub()
    handler = type("StubHandler", (_Handler,), {"stub": stub})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    stub.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return stub, server
