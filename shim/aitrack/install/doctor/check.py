"""What a doctor check is given (`Context`) and what it returns (`Check`), shared by every
module of checks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from aitrack.config.paths import Paths
from aitrack.config.profile import Profile

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"


@dataclass
class Check:
    name: str
    status: str  # PASS | WARN | FAIL
    summary: str
    fix: str | None = None
    details: list[str] = field(default_factory=list)
    data: dict = field(default_factory=dict)  # machine-readable facts; never a secret

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Context:
    env: Mapping[str, str]
    paths: Paths
    profile: Profile
    home: Path
    # account -> token, read by the keychain check for the probes' headers only
    tokens: dict[str, str] = field(default_factory=dict, repr=False)


def worst(checks: list[Check]) -> str:
    statuses = {c.status for c in checks}
    return FAIL if FAIL in statuses else WARN if WARN in statuses else PASS


def shown_url(url: str | None) -> str:
    """A URL without credentials or query (where some endpoints take a key)."""
    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
