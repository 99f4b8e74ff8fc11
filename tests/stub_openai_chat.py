"""OpenAI chat completions for the model stub: `POST /v1/chat/completions`, streamed as SSE
with a final usage chunk (`stream_options.include_usage`), or one JSON answer.

Generic: the model is the request's, the usage per request is the stub's (`ChatUsage`, OpenAI
semantics: `prompt_tokens` includes the cached ones, `completion_tokens` includes reasoning),
and each answer has an id of its own (`chatcmpl-stub-<n>`), which is what a tool records as
the response id; `Answer.ids` lists them, so a test can compare request by request.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field

PATHS = ("/v1/chat/completions", "/chat/completions")


@dataclass
class ChatUsage:
    prompt: int = 1000  # includes cached
    cached: int = 200
    completion: int = 57  # includes reasoning
    reasoning: int = 7
    cache_write: int = 0  # sent as prompt_tokens_details.cache_write_tokens when not 0


@dataclass
class Answer:
    """What the stub answered: a response id per request, in order."""

    ids: list[str] = field(default_factory=list)
    tools: list[bool] = field(default_factory=list)  # whether each request offered tools
    model: str | None = None  # the model the answers name (default: the request's)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_id(self, tools: bool = False) -> str:
        with self.lock:
            self.ids.append(f"chatcmpl-stub-{len(self.ids) + 1}")
            self.tools.append(tools)
            return self.ids[-1]


def usage_of(u: ChatUsage) -> dict:
    prompt_details = {"cached_tokens": u.cached}
    if u.cache_write:
        prompt_details["cache_write_tokens"] = u.cache_write
    return {"prompt_tokens": u.prompt, "completion_tokens": u.completion,
            "total_tokens": u.prompt + u.completion, "prompt_tokens_details": prompt_details,
            "completion_tokens_details": {"reasoning_tokens": u.reasoning}}


def stream(response_id: str, model: str, u: ChatUsage, text: str) -> bytes:
    """The SSE body: a role chunk, the text, a finish chunk, the usage chunk, [DONE]."""
    base = {"id": response_id, "object": "chat.completion.chunk", "created": 1_800_000_000,
            "model": model}
    chunks = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                              "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {**base, "choices": [], "usage": usage_of(u)},
    ]
    return b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks) + b"data: [DONE]\n\n"


def whole(response_id: str, model: str, u: ChatUsage, text: str) -> bytes:
    """The answer to a request that does not stream."""
    return json.dumps({"id": response_id, "object": "chat.completion", "created": 1_800_000_000,
                       "model": model, "choices": [{"index": 0, "finish_reason": "stop",
                                                    "message": {"role": "assistant",
                                                                "content": text}}],
                       "usage": usage_of(u)}).encode()


def answer(body: dict, u: ChatUsage, answered: Answer, text: str) -> tuple[bytes, str]:
    """(body, content type) for one chat completions request."""
    rid = answered.next_id(bool(body.get("tools")))
    model = answered.model or body.get("model", "")
    if body.get("stream"):
        return stream(rid, model, u, text), "text/event-stream"
    return whole(rid, model, u, text), "application/json"
