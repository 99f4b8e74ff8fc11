"""A model-API stub on loopback: Anthropic Messages SSE for claude, OpenAI Responses SSE for
codex, and the shapes in modules of their own: Gemini's generateContent (stub_gemini.py) for
Gemini CLI, OpenAI chat completions (stub_openai_chat.py) for Qwen Code, Copilot CLI and
opencode.

Every answer's token counts are recorded, so a test can compare the ledger with exactly what
the "model" billed.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
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


@dataclass
class Call:
    path: str
    model: str
    stream: bool


@dataclass
class ModelStub:
    anthropic: AnthropicUsage = field(default_factory=AnthropicUsage)
    openai: OpenAIUsage = field(default_factory=OpenAIUsage)
    calls: list[Call] = field(default_factory=list)
    shapes: dict = field(default_factory=dict)  # the SHAPES modules' state, by name
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def billed(self, path: str) -> list[Call]:
        return [c for c in self.calls if c.path == path]


def _sse(events: list[tuple[str, dict]]) -> bytes:
    return b"".join(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
                    for name, data in events)


def anthropic_events(model: str, u: AnthropicUsage, text: str = "Hello from the stub.") -> bytes:
    message = {"id": "msg_stub", "type": "message", "role": "assistant", "model": model,
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


def openai_events(model: str, u: OpenAIUsage, text: str = "Hello from the stub.") -> bytes:
    item = {"id": "msg_stub", "type": "message", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}
    details = {"cached_tokens": u.cached}
    if u.cache_write:
        details["cache_write_tokens"] = u.cache_write
    usage = {"input_tokens": u.input, "input_tokens_details": details,
             "output_tokens": u.output, "output_tokens_details": {"reasoning_tokens": u.reasoning},
             "total_tokens": u.input + u.output}
    base = {"id": "resp_stub", "object": "response", "model": model}
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
        model = body.get("model", "")
        stream = bool(body.get("stream"))
        if path == "/v1/messages":
            self.stub.calls.append(Call(path, model, stream))
            if stream:
                return self._send(200, anthropic_events(model, self.stub.anthropic),
                                  "text/event-stream")
            u = self.stub.anthropic
            return self._send(200, json.dumps({
                "id": "msg_stub", "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
                "usage": {"input_tokens": u.input, "output_tokens": u.output,
                          "cache_creation_input_tokens": u.cache_creation,
                          "cache_read_input_tokens": u.cache_read}}).encode())
        if path == "/v1/responses":
            self.stub.calls.append(Call(path, model, stream))
            return self._send(200, openai_events(model, self.stub.openai), "text/event-stream")
        if path in stub_openai_chat.PATHS:
            self.stub.calls.append(Call(path, model, stream))
        if any(shape(self, path, body) for shape in SHAPES):
            return None
        self._send(200, b"{}")

    def do_GET(self) -> None:
        self._send(200, b"{}")

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
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
