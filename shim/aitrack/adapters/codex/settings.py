"""Codex's own settings, pointed at the per-user agent (`aitrack agent install`).

Codex (CLI, IDE extension, desktop app, background server) reads `[otel]` from
`$CODEX_HOME/config.toml` (else `~/.codex/config.toml`) over the machine's
`/etc/codex/config.toml`, with the legacy `/etc/codex/managed_config.toml` over both.
Its exporters take static headers only (no helper, no `${VAR}` expansion), so the agent's
key sits in the user's config.toml, which must therefore stay 0600 and the user's own.
Edited with tomlkit: the user's comments and layout survive. Checked with codex 0.169.0:
`codex exec` sends logs, metrics and traces to these exporters with their header.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aitrack.adapters.codex import locate
from aitrack.adapters.endpoints import (
    HEADER_NAME,
    AgentLink,
    Destination,
    Found,
    SettingsError,
    agent_url,
    shown,
)

NAME = "codex"
TITLE = "Codex"
SYSTEM_DIR_VAR = "AITRACK_CODEX_SYSTEM_DIR"  # tests: where the machine-level config is
EXPORTERS = {"exporter": "logs", "metrics_exporter": "metrics", "trace_exporter": "traces"}
HOLDS_SECRET = True  # the agent's key is in the user file: 0600, the user's own
MISSING = object()
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


# ---------------------------------------------------------------- where the files are


def user_file(env: Mapping[str, str] | None = None) -> Path:
    return locate.home(env) / "config.toml"


def system_dir(env: Mapping[str, str] | None = None) -> Path | None:
    env = os.environ if env is None else env
    if env.get(SYSTEM_DIR_VAR):
        return Path(env[SYSTEM_DIR_VAR])
    return None if sys.platform == "win32" else Path("/etc/codex")  # Windows: unknown


def settings_files(env: Mapping[str, str] | None = None) -> list[str]:
    """Every file whose change could change `points_at_agent`, lowest precedence first."""
    base = system_dir(env)
    system = [base / "config.toml"] if base else []
    legacy = [base / "managed_config.toml"] if base else []
    return [str(p) for p in (*system, user_file(env), *legacy)]


# ---------------------------------------------------------------- what aitrack sets


def exporter(url: str, signal: str, headers: Mapping[str, str] | None) -> dict:
    inner: dict[str, Any] = {"endpoint": f"{url}/v1/{signal}", "protocol": "binary"}
    if headers:
        inner["headers"] = dict(headers)
    return {"otlp-http": inner}


def wanted(link: AgentLink) -> dict[tuple[str, ...], Any]:
    """Key path -> value aitrack sets in `[otel]` of the user's config.toml: Codex's
    exporters take static headers only, so the file holds the agent's key."""
    headers = {link.key_header: link.key} if link.key else None
    return _otel(link.url, headers, link.telemetry, link.environment)


def _otel(url: str, headers: Mapping[str, str] | None, telemetry,
          environment: str | None) -> dict[tuple[str, ...], Any]:
    out: dict[tuple[str, ...], Any] = {("otel", key): exporter(url, signal, headers)
                                       for key, signal in EXPORTERS.items()}
    out[("otel", "log_user_prompt")] = bool(telemetry.log_user_prompts)
    if environment:
        out[("otel", "environment")] = environment
    return out


def found(doc: TomlDoc, link: AgentLink) -> Found:
    """What the user's `[otel]` did that the first install changes (for a note)."""
    data = doc.value()
    otel = data.get("otel") if isinstance(data.get("otel"), dict) else {}
    return Found([f"[otel] {k} headers" for k in plaintext_headers(otel, link.key_header)], [])


def raw(value: Any, quote_keys: bool = False) -> str:
    """A value as TOML text: inline tables spaced as in Codex's documentation."""

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string: JSON's escapes are TOML's
    if isinstance(value, dict):
        items = ", ".join(
            f"{json.dumps(k) if quote_keys or not _BARE_KEY.fullmatch(k) else k} = "
            f"{raw(v, quote_keys=k == 'headers')}" for k, v in value.items())
        return f"{{ {items} }}" if items else "{}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def machine_snippet(link: AgentLink, os_name: str) -> str:
    """The `[otel]` table IT deploys in /etc/codex/config.toml: no key (every user reads it)."""
    port = link.port
    lines = [
        f"# aitrack: Codex sends its telemetry to each user's aitrack agent on 127.0.0.1:{port}.",
        "# Deploy in /etc/codex/config.toml (machine defaults: a user's own",
        "# ~/.codex/config.toml wins key by key).",
        "# A file every user reads cannot hold a user's agent key, so these exporters send",
        "# none. Use it only where the agent accepts key-less requests from its own OS user",
        "# (the Linux peer-uid check; other users' connections are refused). Better, and",
        "# needed elsewhere: run `aitrack agent install` in each user's session at login;",
        "# it writes this table with the user's key to ~/.codex/config.toml (0600).",
        "[otel]",
    ]
    for (_, key), value in _otel(link.url, None, link.telemetry, link.environment).items():
        lines.append(f"{key} = {raw(value)}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- reading the settings


def parse(text: str, path: Path) -> TomlDoc:
    try:
        doc = TomlDoc(text)
    except Exception as exc:  # tomlkit's parse errors have no common base but Exception
        raise SettingsError(f"{path} is not valid TOML ({exc}); Codex cannot read it "
                            "either: fix it, then try again") from None
    otel = doc.get(("otel",))
    if otel is not MISSING and not isinstance(otel, dict):
        raise SettingsError(f"{path}: otel must be a table: fix it, then try again")
    return doc


def _read_otel(path: Path) -> dict:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    otel = data.get("otel")
    return otel if isinstance(otel, dict) else {}


def effective(env: Mapping[str, str] | None = None) -> tuple[dict, dict[str, str]]:
    """(the `[otel]` table in effect, key -> file that set it), key by key."""
    merged: dict = {}
    origin: dict[str, str] = {}
    for name in settings_files(env):
        table = _read_otel(Path(name))
        merged.update(table)
        origin.update({k: name for k in table})
    return merged, origin


def endpoint_of(value: Any) -> str | None:
    """The endpoint of an exporter setting (`{ otlp-http = { endpoint = ... } }`)."""
    if isinstance(value, dict):
        for kind in ("otlp-http", "otlp-grpc"):
            inner = value.get(kind)
            if isinstance(inner, dict) and isinstance(inner.get("endpoint"), str):
                return inner["endpoint"]
    return None


def headers_of(value: Any) -> dict:
    if isinstance(value, dict):
        for inner in value.values():
            if isinstance(inner, dict) and isinstance(inner.get("headers"), dict):
                return inner["headers"]
    return {}


_PROTOCOLS = {"binary": "http/protobuf", "json": "http/json"}


def destinations(data: Mapping[str, Any], url: str) -> list[Destination]:
    """Where a config's `[otel]` exporters send OTLP, other than the agent at `url`: each
    signal's URL, protocol and headers."""
    otel = data.get("otel") if isinstance(data.get("otel"), Mapping) else {}
    found = []
    for key, signal in EXPORTERS.items():
        value = otel.get(key)
        endpoint = endpoint_of(value)
        if not endpoint or endpoint.startswith(url + "/"):
            continue
        kind = next(k for k in ("otlp-http", "otlp-grpc")
                    if isinstance(value.get(k), dict) and value[k].get("endpoint") == endpoint)
        protocol = "grpc" if kind == "otlp-grpc" else \
            _PROTOCOLS.get(str(value[kind].get("protocol", "binary")))
        found.append(Destination(signal, endpoint, protocol,
                                 {str(k): str(v) for k, v in headers_of(value).items()}))
    return found


def diagnose(port: int, env: Mapping[str, str] | None = None) -> str | None:
    """None when Codex's effective `[otel]` sends its logs and metrics to the agent on
    `port`; otherwise why not, in a few words."""

    otel, origin = effective(env)
    url = agent_url(port)
    for key in ("exporter", "metrics_exporter"):
        signal = EXPORTERS[key]
        found = endpoint_of(otel.get(key))
        if found is None:
            return f"[otel] {key} does not send {signal} over OTLP"
        if found.rstrip("/") != f"{url}/v1/{signal}":
            return f"[otel] {key} sends {signal} to {shown(found)} ({origin[key]})"
    return None


def points_at_agent(port: int, env: Mapping[str, str] | None = None) -> bool:
    """Codex's effective `[otel]` (user config over the machine's) sends logs and metrics
    to the agent on `port`."""
    return diagnose(port, env) is None


def plaintext_headers(otel: Mapping[str, Any], own_header: str | None = None) -> list[str]:
    """`[otel]` exporters with headers other than the agent's own (tokens, often)."""
    return [key for key in EXPORTERS
            if any(name != own_header for name in headers_of(otel.get(key)))]


def stored_headers(env: Mapping[str, str] | None = None, own_header: str | None = None
                   ) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """(where, the names of the headers the user's `[otel]` holds other than the agent's
    own key: never their values), and the files that cannot be read (doctor's
    plaintext-token check)."""
    path = user_file(env)
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return [], []
    except (OSError, ValueError) as exc:
        return [], [f"cannot read {path}: {getattr(exc, 'strerror', None) or 'invalid TOML'}"]
    otel = config.get("otel") if isinstance(config.get("otel"), dict) else {}
    found = []
    for where, headers in _headers_in(otel, "otel"):
        names = [n if HEADER_NAME.fullmatch(str(n)) else "?" for n in headers
                 if n != own_header]
        if names:
            found.append((f"{path} [{where}]", names))
    return found, []


def _headers_in(node: object, where: str) -> list[tuple[str, dict]]:
    """Every non-empty `headers` table under [otel], with its dotted location."""
    found: list[tuple[str, dict]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "headers" and isinstance(value, dict) and value:
                found.append((where, value))
            else:
                found += _headers_in(value, f"{where}.{key}")
    return found


# ---------------------------------------------------------------- editing TOML in place


class TomlDoc:
    """A TOML document edited with tomlkit: comments and layout survive."""

    def __init__(self, text: str):
        # tomlkit takes ~100 ms to import: only when a file is edited, never when the
        # wrapper's start-up cache asks where Codex sends its telemetry (tomllib does that)
        import tomlkit

        self.doc = tomlkit.parse(text)

    def text(self) -> str:
        return self.doc.as_string()

    def value(self) -> dict:
        return self.doc.unwrap()

    def _container(self, path: tuple[str, ...]):
        node = self.doc
        for key in path:
            if not hasattr(node, "get") or key not in node:
                return None
            node = node[key]
        return node if hasattr(node, "keys") else None

    def get(self, path: tuple[str, ...]) -> Any:
        parent = self._container(path[:-1])
        if parent is None or path[-1] not in parent:
            return MISSING
        item = parent[path[-1]]
        return item.unwrap() if hasattr(item, "unwrap") else item

    def raw(self, path: tuple[str, ...]) -> str | None:
        """The value's text as written; a `[table]` (or a value behind dotted keys) as the
        equivalent inline text."""
        from tomlkit.items import Table  # loaded by __init__ already (see there)

        parent = self._container(path[:-1])
        if parent is None or path[-1] not in parent:
            return None
        item = parent[path[-1]]
        if isinstance(item, Table) or not hasattr(item, "as_string"):
            return raw(item.unwrap() if hasattr(item, "unwrap") else item)
        return item.as_string().strip()

    def keys(self, path: tuple[str, ...]) -> list[str] | None:
        node = self._container(path)
        return None if node is None else list(node.keys())

    def set_raw(self, path: tuple[str, ...], text: str) -> None:
        import tomlkit  # loaded by __init__ already (see there)

        parent = self.doc
        for key in path[:-1]:
            if key not in parent:
                parent[key] = tomlkit.table()
            parent = parent[key]
        parent[path[-1]] = tomlkit.parse(f"x = {text}\n")["x"]

    def delete(self, path: tuple[str, ...]) -> None:
        parent = self._container(path[:-1])
        if parent is not None and path[-1] in parent:
            del parent[path[-1]]
            if len(path) == 1:  # a whole table: no trail of blank lines at the end
                text = self.doc.as_string()
                if text.endswith("\n\n"):
                    import tomlkit  # loaded by __init__ already (see there)

                    self.doc = tomlkit.parse(text.rstrip("\n") + "\n" if text.strip() else "")
