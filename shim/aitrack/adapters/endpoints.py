"""The agent's URL as the tools' settings name it, and URLs shown without their secrets."""

from __future__ import annotations

import re


def agent_url(port: int) -> str:
    """`agent.url(port)`, without importing the agent (the wrapper's start-up path)."""
    return f"http://127.0.0.1:{port}"


def shown(url: str) -> str:
    """A URL without credentials, path or query (where some endpoints take a key)."""
    m = re.match(r"^([a-zA-Z][\w+.-]*://)(?:[^@/?#]*@)?([^/?#]*)", url)
    return f"{m.group(1)}{m.group(2)}" if m else "a non-URL value"
