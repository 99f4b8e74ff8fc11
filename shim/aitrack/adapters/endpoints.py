"""How a tool's settings reach the agent (AgentLink), the agent's URL as they name it, where
a tool's settings send telemetry other than the agent (`Destination`), URLs and OTLP headers
shown without their secrets, and the error of a settings file aitrack must not edit."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote  # loaded by pathlib anyway: no cost on the start-up path


class SettingsError(Exception):
    """A tool's settings file aitrack cannot edit safely: one line naming the fix (every
    tool's settings contract raises this one)."""


def agent_url(port: int) -> str:
    """`agent.url(port)`, without importing the agent (the wrapper's start-up path)."""
    return f"http://127.0.0.1:{port}"


def shown(url: str) -> str:
    """A URL without credentials, path or query (where some endpoints take a key)."""
    m = re.match(r"^([a-zA-Z][\w+.-]*://)(?:[^@/?#]*@)?([^/?#]*)", url)
    return f"{m.group(1)}{m.group(2)}" if m else "a non-URL value"


HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")


def header_names(value: str) -> list[str]:
    """Names in an OTLP headers value (`k=v,k2=v2`); the values are never kept. A part that
    is not `name=value` may be a bare token: it is named "?"."""
    names = []
    for item in value.split(","):
        name, sep, _ = item.partition("=")
        if item.strip():
            names.append(name.strip() if sep and HEADER_NAME.fullmatch(name.strip()) else "?")
    return names


@dataclass(frozen=True)
class AgentLink:
    """What a tool's settings need to send their telemetry to this user's agent; each tool
    takes what its settings can hold (a static key header, or a headers helper)."""

    port: int | None  # None: a machine-wide file for per-user ports (it names no port)
    key_header: str  # the header that carries the agent's key
    key: str | None  # the key, for settings that hold static headers (never a shared file)
    helper: str | None  # the tool's headers helper (a script that prints the key), if any
    run_header: str  # the header naming a wrapper's run (helpers add it)
    telemetry: Any  # the profile's [telemetry] (export intervals, prompts on or off)
    environment: str | None = None  # the profile's `environment` attribute

    @property
    def url(self) -> str:
        return agent_url(self.port or 0)


@dataclass
class Found:
    """What a tool's settings did before the first install, for a note (never a value): which
    header settings hold a value (a token, often), and which settings of the user's aitrack
    replaces (where they sent telemetry is `destinations`)."""

    plaintext_headers: list[str] | None = None
    replaced: list[str] | None = None


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
