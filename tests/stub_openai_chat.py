"""The OpenAI Chat Completions shape of the model stub (tests/model_stub.py): what Qwen Code
(`--auth-type openai`), Copilot CLI (a custom provider) and opencode
(`@ai-sdk/openai-compatible`) call.

`POST /v1/chat/completions` (or `/chat/completions`), streamed (SSE chunks, then a final chunk
with `usage` when `stream_options.include_usage` asks for it, then `[DONE]`) or not. OpenAI
semantics: `prompt_tokens` includes `prompt_tokens_details.cached_tokens` (and
`cache_write_tokens` when sent), `completion_tokens` includes
`completion_tokens_details.reasoning_tokens`.

Each answer has an id of its own (`chatcmpl-stub-<n>`, what a tool records as the response id)
and bills figures of its own (the call's number is added to the base figures, as real ones
differ), so a request counted twice, or missed, shows in the ledger's totals. `billed` lists
every request with its figures, whether it offered tools, and the model it answered with.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

PATHS = ("/v1/chat/completions", "/chat/completions")


@dataclass
class ChatUsage:
    prompt: int = 1000  # includes cached and cache writes
    cached: int = 200
    completion: int = 57  # includes reasoning
    reasoning: int = 7
    cache_write: int = 0  # sent as prompt_tokens_details.cache_write_tokens when not 0
    vary: bool = True  # each request's figures differ (the call's number added)


@dataclass
class Billed:
    id: str
    model: str  # the model the answer names
    stream: bool
    tools: bool  # whether the request offered tools (a title request offers none)
    prompt: int
    cached: int
    cache_write: int
    completion: int
    reasoning: int


@dataclass
class ChatState:
    usage: ChatUsage = field(default_factory=ChatUsage)
    billed: list[Billed] = field(default_factory=list)
    model: str | None = None  # the model the answers name (default: the request's)
    lock: threading.Lock = field(default_factory=threading.Lock)


def state(stub) -> ChatState:
    return stub.shapes.setdefault("openai_chat", ChatState())


def _bill(st: ChatState, body: dict) -> Billed:
    with st.lock:
        n, u = len(st.billed), st.usage
        k = n if u.vary else 0
        cache_write = u.cache_write + k if u.cache_write else 0
        b = Billed(f"chatcmpl-stub-{n + 1}", st.model or body.get("model") or "unknown",
                   bool(body.get("stream")), bool(body.get("tools")),
                   u.prompt + 10 * k, u.cached + k, cache_write, u.completion + 2 * k,
                   u.reasoning + k)
        st.billed.append(b)
        return b


def usage_of(b: Billed) -> dict:
    details = {"cached_tokens": b.cached}
    if b.cache_write:
        details["cache_write_tokens"] = b.cache_write
    return {"prompt_tokens": b.prompt, "completion_tokens": b.completion,
            "total_tokens": b.prompt + b.completion, "prompt_tokens_details": details,
            "completion_tokens_details": {"reasoning_tokens": b.reasoning}}


def answer(handler, path: str, body: dict) -> bool:
    """Answer a chat completion; False when the path is not one."""
    if path not in PATHS:
        return False
    st = state(handler.stub)
    b = _bill(st, body)
    text = "Hello from the stub."
    created = int(time.time())
    if not b.stream:
        handler._send(200, json.dumps({
            "id": b.id, "object": "chat.completion", "created": created, "model": b.model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": usage_of(b)}).encode())
        return True
    base = {"id": b.id, "object": "chat.completion.chunk", "created": created, "model": b.model}
    chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                    "finish_reason": None}]},
              {**base, "choices": [{"index": 0, "delta": {"content": text},
                                    "finish_reason": None}]},
              {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}]
    # billed either way; the final chunk reports it when asked (as OpenAI does)
    if (body.get("stream_options") or {}).get("include_usage") is not False:
        chunks.append({**base, "choices": [], "usage": usage_of(b)})
    data = b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks) + b"data: [DONE]\n\n"
    handler._send(200, data, "text/event-stream")
    return True
