"""The OpenAI Chat Completions shape of the model stub (tests/model_stub.py): what Qwen Code
calls with `--auth-type openai`.

`POST /v1/chat/completions`, streamed (SSE chunks, then a final chunk with `usage` when
`stream_options.include_usage` asks for it, then `[DONE]`) or not. OpenAI semantics:
`prompt_tokens` includes `prompt_tokens_details.cached_tokens`, `completion_tokens` includes
`completion_tokens_details.reasoning_tokens`.

Each answer bills figures of its own (the call's number is added to the base figures), as
real ones differ, so a request counted twice, or missed, shows in the ledger's totals.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

PATH = "/v1/chat/completions"


@dataclass
class ChatUsage:
    prompt: int = 1000  # includes cached
    cached: int = 200
    completion: int = 57  # includes reasoning
    reasoning: int = 7


@dataclass
class Billed:
    model: str
    stream: bool
    prompt: int
    cached: int
    completion: int
    reasoning: int


@dataclass
class ChatState:
    usage: ChatUsage = field(default_factory=ChatUsage)
    billed: list[Billed] = field(default_factory=list)


def state(stub) -> ChatState:
    return stub.shapes.setdefault("openai_chat", ChatState())


def _usage(st: ChatState, model: str, stream: bool) -> dict:
    n = len(st.billed)
    u = st.usage
    b = Billed(model, stream, u.prompt + 10 * n, u.cached + n, u.completion + 2 * n,
               u.reasoning + n)
    st.billed.append(b)
    return {"prompt_tokens": b.prompt, "completion_tokens": b.completion,
            "total_tokens": b.prompt + b.completion,
            "prompt_tokens_details": {"cached_tokens": b.cached},
            "completion_tokens_details": {"reasoning_tokens": b.reasoning}}


def answer(handler, path: str, body: dict) -> bool:
    """Answer a chat completion; False when the path is not one."""
    if path != PATH:
        return False
    st = state(handler.stub)
    model = body.get("model") or "unknown"
    stream = bool(body.get("stream"))
    ident = f"chatcmpl-stub{len(st.billed)}"
    text = "Hello from the stub."
    if not stream:
        handler._send(200, json.dumps({
            "id": ident, "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant", "content": text}}],
            "usage": _usage(st, model, False)}).encode())
        return True
    base = {"id": ident, "object": "chat.completion.chunk", "created": int(time.time()),
            "model": model}
    chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": text},
                                    "finish_reason": None}]},
              {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}]
    # usage is billed either way; the final chunk reports it when asked (as OpenAI does)
    usage = _usage(st, model, True)
    if (body.get("stream_options") or {}).get("include_usage"):
        chunks.append({**base, "choices": [], "usage": usage})
    data = b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks) + b"data: [DONE]\n\n"
    handler._send(200, data, "text/event-stream")
    return True
