"""The Gemini API shape of the model stub (tests/model_stub.py): what Gemini CLI calls.

`POST /v1beta/models/<model>:generateContent` (the model router and other utility calls:
JSON answers), `:streamGenerateContent?alt=sse` (the main turn and subagents) and
`:countTokens`. A request asking for JSON (`responseMimeType: application/json`) gets JSON
shaped by its `responseJsonSchema` (or `responseSchema`): Gemini CLI retries a router answer
it cannot parse for minutes. A prompt containing COMPLEX is routed to the Pro model.

Each answer bills figures of its own (the call's number is added to the base figures), as
real ones differ, so a request counted twice, or missed, shows in the ledger's totals.
`promptTokenCount` includes `cachedContentTokenCount`; `thoughtsTokenCount` is apart from
`candidatesTokenCount`; the total is their sum (Gemini API semantics).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

PREFIX = "/v1beta/models/"


@dataclass
class GeminiUsage:
    prompt: int = 1000  # includes cached
    cached: int = 200
    candidates: int = 50
    thoughts: int = 7


@dataclass
class Billed:
    """One billed request, as the stub answered it."""

    model: str
    method: str  # generateContent | streamGenerateContent
    prompt: int
    cached: int
    candidates: int
    thoughts: int


@dataclass
class GeminiState:
    usage: GeminiUsage = field(default_factory=GeminiUsage)
    billed: list[Billed] = field(default_factory=list)


def state(stub) -> GeminiState:
    return stub.shapes.setdefault("gemini", GeminiState())


def _fill(schema: dict, complex_: bool):
    """A value matching a JSON schema (upper- or lower-case types, as Gemini writes both)."""
    kind = str(schema.get("type", "object")).lower()
    if "enum" in schema:
        options = schema["enum"]
        return "pro" if complex_ and "pro" in options else options[0]
    if kind == "object":
        properties = schema.get("properties") or {}
        return {name: _fill(sub, complex_) for name, sub in properties.items()}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return 95 if complex_ else 10
    if kind == "boolean":
        return False
    return "stub"


def _text_of(body: dict) -> str:
    parts = [p.get("text", "") for c in body.get("contents") or [] for p in c.get("parts") or []
             if isinstance(p, dict)]
    return "\n".join(parts)


def _usage(st: GeminiState, model: str, method: str) -> dict:
    n = len(st.billed)
    u = st.usage
    billed = Billed(model, method, u.prompt + 10 * n, u.cached + n, u.candidates + n,
                    u.thoughts + n)
    st.billed.append(billed)
    return {"promptTokenCount": billed.prompt, "cachedContentTokenCount": billed.cached,
            "candidatesTokenCount": billed.candidates, "thoughtsTokenCount": billed.thoughts,
            "totalTokenCount": billed.prompt + billed.candidates + billed.thoughts}


def answer(handler, path: str, body: dict) -> bool:
    """Answer a Gemini API request; False when the path is not one."""
    if not path.startswith(PREFIX) or ":" not in path:
        return False
    model, _, method = path[len(PREFIX):].partition(":")
    st = state(handler.stub)
    if method == "countTokens":
        handler._send(200, json.dumps({"totalTokens": 100}).encode())
        return True
    config = body.get("generationConfig") or {}
    schema = config.get("responseJsonSchema") or config.get("responseSchema")
    if config.get("responseMimeType") == "application/json" and schema:
        text = json.dumps(_fill(schema, "COMPLEX" in _text_of(body)))
    else:
        text = "Hello from the stub."
    candidate = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
    response_id = f"stub-{len(st.billed)}"
    if method == "generateContent":
        handler._send(200, json.dumps({
            "candidates": [{**candidate, "finishReason": "STOP"}],
            "usageMetadata": _usage(st, model, method), "modelVersion": model,
            "responseId": response_id}).encode())
        return True
    if method == "streamGenerateContent":
        chunks = [{"candidates": [candidate], "modelVersion": model, "responseId": response_id},
                  {"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]},
                                   "finishReason": "STOP", "index": 0}],
                   "usageMetadata": _usage(st, model, method), "modelVersion": model,
                   "responseId": response_id}]
        handler._send(200, b"".join(f"data: {json.dumps(c)}\r\n\r\n".encode() for c in chunks),
                      "text/event-stream")
        return True
    return False
