"""The profile's schema: its tables and keys, their checks, and reading one profile file.

Both layers read files through here: the managed sources (managed.py) and the user
profile (profile.py), so a problem is worded the same wherever it is found.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

from aitrack.config.attributes import INTEGRITY_KEY, SOURCE_KEY, email_problem, reserved
from aitrack.config.urls import SECRET_NAME, url_problem

SIGNALS = ("metrics", "logs", "traces")
FAMILIES = ("normalized", "raw")  # what endpoint.forward may list (aitrack/egress.py)
PROTOCOLS = ("http/protobuf", "http/json")
ATTRIBUTE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,254}")
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
BAD_HEADER_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # control characters but tab
# a static header named like a secret (urls.SECRET_NAME), or a value with an auth scheme,
# is a secret in plain text
SECRET_HEADER_VALUE = re.compile(r"\s*(?:bearer|basic|token|digest|apikey)\s", re.I)
PORT_SPAN = 10000  # [agent] port_base: each user's agent on port_base + (uid mod PORT_SPAN)
PRICE_KEYS = ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h")

# table -> key -> (accepted python types, default)
SCHEMA: dict[str, dict[str, tuple[tuple[type, ...], Any]]] = {
    "endpoint": {
        "url": ((str,), None),
        "metrics_url": ((str,), None),
        "logs_url": ((str,), None),
        "traces_url": ((str,), None),
        "protocol": ((str,), "http/protobuf"),
        "auth_header": ((str,), "Authorization"),
        "auth_scheme": ((str,), "Bearer"),
        "keychain_account": ((str,), "default"),
        "metrics_keychain_account": ((str,), None),
        "logs_keychain_account": ((str,), None),
        "traces_keychain_account": ((str,), None),
        "ca_bundle": ((str,), None),
        "signals": ((list,), ["metrics", "logs"]),
        "timeout_s": ((int, float), 10),
        "flush_timeout_s": ((int, float), 2),
        "outbox_max_mb": ((int,), 256),
        "headers": ((dict,), {}),
        # the egress policy (aitrack/egress.py): which families leave the machine, which
        # attributes never do, and whether sessions known only from transcripts are sent
        "forward": ((list,), ["normalized", "raw"]),
        "drop_attributes": ((list,), []),
        "forward_imported": ((bool,), False),
    },
    "agent": {
        # the per-user agent's loopback port: the tools' own settings name it. Unset, each
        # user's is chosen at `aitrack agent install`, or is port_base + uid mod PORT_SPAN
        "port": ((int,), None),
        "port_base": ((int,), None),
        # how often the agent imports the tools' transcripts (they delete old ones)
        "import_interval_s": ((int, float), 600),
    },
    "identity": {
        # user.email when no attribute sets it: a template, "{user}@corp.example"
        "email": ((str,), None),
        # git's user.email may be used (marked aitrack.identity.source=git); unset: yes on an
        # unmanaged machine, no on a managed one
        "email_from_git": ((bool,), None),
    },
    "budget": {
        # what `aitrack statusline` measures spending against (USD, reported plus estimated)
        "daily_usd": ((int, float), None),
        "monthly_usd": ((int, float), None),
    },
    "telemetry": {
        "metric_export_interval_ms": ((int,), 60000),
        "logs_export_interval_ms": ((int,), 5000),
        "log_user_prompts": ((bool,), False),
        "log_tool_details": ((bool,), False),
    },
}
FREE_TABLES = ("attributes", "prices")  # tables whose keys are chosen by the user
URL_KEYS = ("url", "metrics_url", "logs_url", "traces_url")
ACCOUNT_KEYS = ("keychain_account", "metrics_keychain_account", "logs_keychain_account",
                "traces_keychain_account")


class ProfileError(Exception):
    """A profile that cannot be used; `problems` lists every reason, one line each."""

    def __init__(self, path: Path, problems: list[str]):
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


# ---------------------------------------------------------------- validation


# A TOML key part: bare, "basic" or 'literal'; dotted keys join parts with dots.
_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_DOTTED = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_HEADER_LINE = re.compile(rf"\s*\[\s*({_DOTTED})\s*\]")
_KEY_LINE = re.compile(rf"\s*({_DOTTED})\s*=")
KeyLines = dict[tuple[str, ...], int]  # key path -> line number


def _split_key(dotted: str) -> tuple[str, ...]:
    return tuple(_unquote(p) for p in re.findall(_KEY_PART, dotted))


def _unquote(part: str) -> str:
    if part[0] not in "\"'":
        return part
    try:
        return tomllib.loads(f"k = {part}")["k"]
    except tomllib.TOMLDecodeError:  # a line inside a multi-line string, not a key
        return part


def _key_lines(text: str) -> KeyLines:
    """The line of every table header and key in a TOML text, by key path (best effort)."""
    lines: KeyLines = {}
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), 1):
        if m := _HEADER_LINE.match(line):
            table = _split_key(m.group(1))
            lines.setdefault(table, number)
        elif m := _KEY_LINE.match(line):
            lines.setdefault(table + _split_key(m.group(1)), number)
    return lines


def _line(lines: KeyLines, path: tuple[str, ...]) -> int | None:
    """The key's own line; else where its table first appears; else its parent's line."""
    if path in lines:
        return lines[path]
    inside = [n for p, n in lines.items() if p[:len(path)] == path]
    if inside:
        return min(inside)
    return _line(lines, path[:-1]) if len(path) > 1 else None


def _where(lines: KeyLines, *path: str) -> str:
    # dotted like the origins in `profile show` ("attributes.team.id"); quoted only when
    # a name is empty or has spaces or control characters
    name = ".".join(p if p and p.isprintable() and " " not in p
                    else json.dumps(p, ensure_ascii=False) for p in path)
    line = _line(lines, path)
    return f"{name} (line {line})" if line else name


TOML_TYPES = {bool: "boolean", str: "string", int: "integer", float: "float", list: "array",
              dict: "table"}  # bool first: a bool is also an int


def _toml_type(value: Any) -> str:
    return next((name for t, name in TOML_TYPES.items() if isinstance(value, t)), "date/time")


def validate(data: dict[str, Any], text: str = "") -> list[str]:
    """Every problem in a parsed profile, each naming the key and, where found, its line."""
    lines = _key_lines(text)
    problems: list[str] = []
    for table, body in data.items():
        where = _where(lines, table)
        if table not in SCHEMA and table not in FREE_TABLES:
            what = f"unknown table [{table}]" if isinstance(body, dict) else (
                "unknown top-level key (settings belong in a table such as [endpoint])")
            problems.append(f"{where}: {what} (known: {', '.join([*SCHEMA, *FREE_TABLES])})")
            continue
        if not isinstance(body, dict):
            problems.append(f"{where}: must be a table, got {_toml_type(body)}")
            continue
        if table == "attributes":
            problems += _validate_attributes(body, lines)
        elif table == "prices":
            problems += _validate_prices(body, lines)
        else:
            problems += _validate_table(table, body, lines)
    return problems


def _validate_table(table: str, body: dict[str, Any], lines: KeyLines) -> list[str]:
    problems = []
    for key, value in body.items():
        where = _where(lines, table, key)
        spec = SCHEMA[table].get(key)
        if spec is None:
            problems.append(f"{where}: unknown key (known: {', '.join(SCHEMA[table])})")
            continue
        types, _ = spec
        # bool is an int in Python; never accept true for a number
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            want = "number" if float in types else TOML_TYPES[types[0]]
            article = "an" if want[0] in "aeiou" else "a"
            problems.append(f"{where}: must be {article} {want}, got {_toml_type(value)}")
            continue
        if key == "headers":
            auth = body.get("auth_header")
            auth = auth if isinstance(auth, str) else SCHEMA["endpoint"]["auth_header"][1]
            problems += [f"{_where(lines, table, key, name)}: {problem}"
                         for name, problem in _header_problems(value, auth)]
            continue
        problem = _check_value(key, value)
        if problem:
            problems.append(f"{where}: {problem}")
    if table == "endpoint":
        problems += _endpoint_problems(body, lines) + _egress_problems(body, lines)
    return problems


def _egress_problems(body: dict[str, Any], lines: KeyLines) -> list[str]:
    """aitrack's own metrics travel as metrics: a policy naming them must forward metrics."""
    forward, signals = body.get("forward"), body.get("signals", SCHEMA["endpoint"]["signals"][1])
    if not (isinstance(forward, list) and "normalized" in forward and isinstance(signals, list)
            and "metrics" not in signals):
        return []
    return [f"{_where(lines, 'endpoint', 'forward')}: \"normalized\" is sent as metrics, but "
            "endpoint.signals does not list metrics: add it, or forward only \"raw\""]


def _endpoint_problems(body: dict[str, Any], lines: KeyLines) -> list[str]:
    """Every forwarded signal needs somewhere to go."""
    if not any(body.get(k) for k in URL_KEYS):
        # [endpoint] is used whole, so a partial one cannot borrow another profile's url
        return [f"{_where(lines, 'endpoint')}: needs url (or per-signal metrics_url, logs_url, "
                "traces_url); an [endpoint] is used whole, never merged with another profile's"]
    signals = body.get("signals", SCHEMA["endpoint"]["signals"][1])
    if body.get("url") or not isinstance(signals, list):
        return []
    missing = [s for s in signals if s in SIGNALS and not body.get(f"{s}_url")]
    if not missing:
        return []
    if "signals" in body:
        return [f"{_where(lines, 'endpoint', 'signals')}: {s} has no URL: set url or {s}_url"
                for s in missing]
    # signals was never set: the default (metrics and logs) is what lacks a URL
    have = [s for s in SIGNALS if body.get(f"{s}_url")]
    first = min(have, key=lambda s: _line(lines, ("endpoint", f"{s}_url")) or 0)
    return [f"{_where(lines, 'endpoint', f'{first}_url')}: only {' and '.join(have)} "
            f"{'has' if len(have) == 1 else 'have'} a URL, but endpoint.signals is not set and "
            f"its default also forwards {' and '.join(missing)}: set signals = "
            f"{json.dumps([s for s in signals if s in have] or have)} or add "
            f"{' and '.join(f'{s}_url' for s in missing)}"]


def _check_value(key: str, value: Any) -> str | None:
    if key in URL_KEYS:
        return url_problem(value)
    if key == "protocol" and value not in PROTOCOLS:
        return f"must be one of {', '.join(PROTOCOLS)}, got {value!r}"
    if key == "signals":
        bad = [s for s in value if s not in SIGNALS]
        if bad or not value:
            unknown = f"unknown {', '.join(map(repr, bad))}; " if bad else ""
            return f"{unknown}must list one or more of {', '.join(SIGNALS)}"
    if key == "auth_header" and not HEADER_NAME.fullmatch(value):
        return "must be a valid HTTP header name"
    if key == "auth_scheme" and (BAD_HEADER_VALUE.search(value) or value != value.strip()):
        return "must be a word like Bearer, or \"\" to send the token bare"
    if key in ACCOUNT_KEYS and not value.strip():
        return "must not be empty"
    if key == "forward":
        bad = [f for f in value if f not in FAMILIES]
        if bad or not value:
            unknown = f"unknown {', '.join(map(repr, bad))}; " if bad else ""
            return (f"{unknown}must list one or both of {', '.join(FAMILIES)} (to send nothing, "
                    "remove [endpoint])")
    if key == "drop_attributes":
        bad = [a for a in value if not isinstance(a, str) or not ATTRIBUTE_NAME.fullmatch(a)]
        if bad:
            return (f"{bad[0]!r} is not an attribute name: list names such as \"user.email\" "
                    "(a letter or _, then letters, digits, '.', '_', '-')")
    if key in ("timeout_s", "flush_timeout_s", "outbox_max_mb", "daily_usd",
               "monthly_usd") and value <= 0:
        return "must be greater than 0"
    if key == "email":
        return email_problem(value)
    if key == "port" and not 1024 <= value <= 65535:
        return "must be a port number from 1024 to 65535"
    if key == "port_base" and not 1024 <= value <= 65536 - PORT_SPAN:
        return (f"must be from 1024 to {65536 - PORT_SPAN}: each user's agent listens on "
                f"port_base + (uid mod {PORT_SPAN})")
    if key == "import_interval_s" and value < 10:
        return "must be at least 10"
    if key.endswith("_interval_ms") and value < 100:
        return "must be at least 100"
    return None


KEYCHAIN_FIX = ("store the token in the keychain (`aitrack token set`) and name its header "
                "in endpoint.auth_header (and auth_scheme)")


def _header_problems(headers: dict[str, Any], auth_header: str) -> list[tuple[str, str]]:
    problems = []
    for name, value in headers.items():
        if not HEADER_NAME.fullmatch(name):
            problems.append((name, "invalid HTTP header name"))
        elif not isinstance(value, str):
            problems.append((name, f"must be a string, got {_toml_type(value)}"))
        elif BAD_HEADER_VALUE.search(value):
            problems.append((name, "header values must not contain newlines or control "
                                   "characters"))
        elif name.lower() == auth_header.lower():
            problems.append((name, f"is endpoint.auth_header, which carries the token: a static "
                                   f"value would be a secret in plain text; remove it and "
                                   f"{KEYCHAIN_FIX}"))
        elif SECRET_NAME.search(name) or SECRET_HEADER_VALUE.match(value):
            problems.append((name, f"looks like a secret, which a profile must not hold in "
                                   f"plain text: remove it and {KEYCHAIN_FIX}"))
    return problems


def _validate_attributes(body: dict[str, Any], lines: KeyLines) -> list[str]:
    problems = []
    for key, value in body.items():
        where = _where(lines, "attributes", key)
        if not ATTRIBUTE_NAME.fullmatch(key):
            problems.append(f"{where}: invalid attribute name (a letter or _, then letters, "
                            "digits, '.', '_', '-')")
        elif not isinstance(value, str):
            problems.append(f"{where}: must be a string, got {_toml_type(value)}")
        elif reserved(key):
            problems.append(f"{where}: reserved: aitrack sets the aitrack.* attributes itself "
                            f"({INTEGRITY_KEY}, {SOURCE_KEY})")
    return problems


def _validate_prices(body: dict[str, Any], lines: KeyLines) -> list[str]:
    problems = []
    for model, prices in body.items():
        if not isinstance(prices, dict):
            problems.append(f"{_where(lines, 'prices', model)}: must be a table of "
                            "per-million-token USD prices")
            continue
        if not prices:  # a snippet pasted without its prices filled in
            problems.append(f"{_where(lines, 'prices', model)}: sets no price: give at least "
                            f"input and output (USD per million tokens; any of "
                            f"{', '.join(PRICE_KEYS[2:])} left out costs what input does)")
        for key, value in prices.items():
            where = _where(lines, "prices", model, key)
            if key not in PRICE_KEYS:
                problems.append(f"{where}: unknown price (use {', '.join(PRICE_KEYS)})")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                problems.append(f"{where}: must be a non-negative number (USD per million)")
    return problems
