"""The agent's URL as the tools' settings name it, URLs shown without their secrets, and
where a tool's settings send telemetry other than the agent (`Destination`)."""

from __future__ import annotations

import re
from urllib.parse import unquote  # loaded by pathlib anyway: no cost on the start-up path


def agent_url(port: int) -> str:
    """`agent.url(port)`, without importing the agent (the wrapper's start-up path)."""
    return f"http://127.0.0.1:{port}"


def shown(url: str) -> str:
    """A URL without credentials, path or query (where some endpoints take a key)."""
    m = re.match(r"^([a-zA-Z][\w+.-]*://)(?:[^@/?#]*@)?([^/?#]*)", url)
    return f"{m.group(1)}{m.group(2)}" if m else "a non-URL value"


class Destination:
    """Where a tool's own settings send OTLP: `url` is a base URL (`signal` None: every signal
    goes to url/v1/<signal>) or one signal's own URL; `protocol` is "http/protobuf",
    "http/json", "grpc" or None (not said); `headers` as written, secrets included (they are
    moved to the keychain, never shown)."""

    __slots__ = ("signal", "url", "protocol", "headers")

    def __init__(self, signal: str | None, url: str, protocol: str | None,
                 headers: dict[str, str]):
        self.signal = signal
        self.url = url
        self.protocol = protocol
        self.headers = headers

    def signal_url(self, signal: str) -> str:
        return self.url if self.signal else f"{self.url.rstrip('/')}/v1/{signal}"


def otlp_headers(value: str | None) -> dict[str, str]:
    """OTEL_EXPORTER_OTLP_HEADERS (`k=v,k2=v2`, values percent-encoded) as a dict; a part
    that is not `name=value` is kept under "" (a bare token, say)."""
    found: dict[str, str] = {}
    for item in (value or "").split(","):
        name, sep, text = item.partition("=")
        if item.strip():
            found[name.strip() if sep else ""] = unquote(text.strip() if sep else item.strip())
    return found
