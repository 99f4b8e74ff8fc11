"""Checks of the settings that send a tool's telemetry around aitrack or hold an OTLP token
in plaintext: the environment, the shell profiles, the tools' own settings files.

What a tool's settings files hold is its adapter's knowledge. The adapters do not say yet
what these checks need, so the last section of this module reads Claude Code's and Codex's
files itself, each function shaped as the one the adapter should provide (its name is in
the docstring); once they do, the checks loop over `adapters.TOOLS` and that section goes.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path

from aitrack import adapters
from aitrack.adapters.claude import settings as claude_settings
from aitrack.adapters.codex import settings as codex_settings
from aitrack.adapters.endpoints import agent_url
from aitrack.capture.loopback import SECRET_HEADER
from aitrack.install.doctor.check import FAIL, PASS, WARN, Check, Context

OTLP_HEADER_VARS = tuple(f"OTEL_EXPORTER_OTLP_{s}HEADERS"
                         for s in ("", "METRICS_", "LOGS_", "TRACES_"))
OTLP_REDIRECT = re.compile(r"OTEL_EXPORTER_OTLP_(?:(?:METRICS|LOGS|TRACES)_)?(?:ENDPOINT|HEADERS)")
_SECRET_NAME = re.compile(r"auth|key|token|secret|passw|team|cookie|signature|credential", re.I)
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")
_RC_FILES = (".zshenv", ".zprofile", ".zshrc", ".bash_profile", ".bash_login", ".bashrc",
             ".profile", ".config/fish/config.fish")
_RC_ASSIGN = re.compile(r"^\s*(?:export\s+|setenv\s+|set\s+(?:-\w+\s+)*)?"
                        r"(OTEL_EXPORTER_OTLP_(?:(?:METRICS|LOGS|TRACES)_)?HEADERS)(?:=|\s+)(.*)")

Finding = tuple[str, bool]  # (a detail line: where, which header names), whether one is secret


# ---------------------------------------------------------------- managed settings


def managed_settings_tools() -> list[str]:
    """The tools with a machine-wide settings file IT may deploy: one check each."""
    return [tool for tool in adapters.TOOLS
            if hasattr(adapters.part(tool, "settings"), "managed_file")]


def check_managed_settings(ctx: Context, tool: str) -> Check:
    """The tool's machine-wide settings leave its telemetry to aitrack (or send it to the
    agent): a key there wins over the environment aitrack gives the tool."""
    mod = adapters.part(tool, "settings")
    name, title, path = f"{tool}-settings", mod.TITLE, mod.managed_file(ctx.env)
    try:
        env = managed_env(path)
    except FileNotFoundError:
        return Check(name, PASS, f"no {title} managed settings ({path})")
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not valid JSON"
        return Check(name, WARN, f"cannot read {title}'s managed settings {path}: {reason}",
                     f"IT: fix or remove the file; {title} may ignore it")
    redirecting = sorted(k for k in env if OTLP_REDIRECT.fullmatch(str(k)))
    data = {"path": str(path), "redirecting_keys": redirecting}
    url = agent_url(ctx.profile.agent.port)  # as `aitrack agent print-settings` sets it
    if redirecting and all(k.endswith("ENDPOINT") and str(env[k]).rstrip("/").startswith(url)
                           for k in redirecting):
        return Check(name, PASS, f"{path} sends {title}'s telemetry to the aitrack agent "
                     f"({url})", data=data)
    if redirecting:
        secret = any(k.endswith("HEADERS") for k in redirecting)
        return Check(name, FAIL, f"{path} sets {', '.join(redirecting)}: {title} then sends its "
                     "telemetry there instead of to aitrack, so its usage is not tracked"
                     + ("; the headers are a plaintext secret" if secret else ""),
                     f"IT: remove {', '.join(redirecting)} from the env block of {path} "
                     "(aitrack forwards to the org endpoint itself)", data=data)
    off = telemetry_off(env)
    if off:
        return Check(name, WARN, f"{path} sets {', '.join(off)}: {title} reports no usage to "
                     f"aitrack", f"IT: remove it from the env block of {path}", data=data)
    return Check(name, PASS, f"{path} leaves telemetry to aitrack", data=data)


# ---------------------------------------------------------------- plaintext tokens


def header_names(value: str) -> list[str]:
    """Names in an OTLP headers value (`k=v,k2=v2`); the values are never kept. A part that
    is not `name=value` may be a bare token: it is named "?" and counts as a secret."""
    names = []
    for item in value.split(","):
        name, sep, _ = item.partition("=")
        if item.strip():
            names.append(name.strip() if sep and _HEADER_NAME.fullmatch(name.strip()) else "?")
    return names


def _finding(where: str, names: list[str]) -> Finding:
    secret = not names or any(n == "?" or _SECRET_NAME.search(n) for n in names)
    return f"{where}: header{'s' if len(names) != 1 else ''} {', '.join(names) or '?'}", secret


def check_plaintext_tokens(ctx: Context) -> Check:
    findings = _in_environment(ctx.env) + _in_shell_profiles(ctx.home)
    stored, problems = stored_headers(ctx.env)
    findings += [_finding(where, names) for where, names in stored]
    details = [f for f, _ in findings] + problems
    data = {"findings": details}
    if any(secret for _, secret in findings):
        return Check("plaintext-tokens", FAIL, "an OTLP token is stored in plaintext (aitrack "
                     "ignores it and uses the keychain)",
                     "remove it from the places listed (shell profile, ~/.codex/config.toml, "
                     "~/.claude/settings.json: `aitrack agent install` does it for the last "
                     "two), keep it only in the keychain (`aitrack token set`), and ask IT to "
                     "rotate it if it was shared", details, data)
    if findings or problems:
        return Check("plaintext-tokens", WARN, "OTLP headers are set outside aitrack, which "
                     "ignores them", "remove them unless another tool needs them", details, data)
    return Check("plaintext-tokens", PASS, "no OTLP headers in the environment, shell profiles "
                 f"or {codex_settings.user_file(ctx.env)}", None, details, data)


def _in_environment(env: Mapping[str, str]) -> list[Finding]:
    return [_finding(f"environment variable {var}", header_names(env[var]))
            for var in OTLP_HEADER_VARS if env.get(var, "").strip()]


def _in_shell_profiles(home: Path) -> list[Finding]:
    findings = []
    for rc in _RC_FILES:
        try:
            text = (home / rc).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            m = _RC_ASSIGN.match(line)
            if m and m.group(2).strip().strip("'\""):
                findings.append(_finding(f"~/{rc} line {number} sets {m.group(1)}",
                                         header_names(m.group(2).strip().strip("'\""))))
    return findings


# ---------------------------------------------------------------- tool knowledge, for now
# What the adapters should provide (adapters/<tool>/settings.py), in these shapes.


def managed_env(path: Path) -> dict:
    """adapter `settings.managed_env(path)`: the `env` block of a machine-wide settings
    file; FileNotFoundError, OSError or ValueError as reading it raises. Claude Code's format
    (a JSON object), the only tool with managed settings today."""
    settings = json.loads(path.read_text(encoding="utf-8"))
    env = settings.get("env") if isinstance(settings, dict) else None
    return env if isinstance(env, dict) else {}


def telemetry_off(env: Mapping[str, object]) -> list[str]:
    """adapter `settings.telemetry_off(env)`: the `KEY=value` settings of an `env` block
    that stop the tool from reporting usage (Claude Code's)."""
    off = [f"{k}={env[k]}" for k in ("CLAUDE_CODE_ENABLE_TELEMETRY",) if
           str(env.get(k, "1")).strip().lower() in ("0", "false")]
    off += [f"{k}={env[k]}" for k in ("OTEL_METRICS_EXPORTER",)
            if k in env and "otlp" not in str(env[k])]
    return off


def stored_headers(env: Mapping[str, str]) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """adapter `settings.stored_headers(env, own_header)`, for each tool: (where, the names of
    the OTLP headers its user settings hold, never their values), and the files that cannot
    be read. The agent's own key is there by design (`aitrack agent install`)."""
    codex, problems = _codex_headers(env)
    return codex + _claude_headers(env), problems


def _codex_headers(env: Mapping[str, str]) -> tuple[list[tuple[str, list[str]]], list[str]]:
    path = codex_settings.user_file(env)
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return [], []
    except (OSError, ValueError) as exc:
        return [], [f"cannot read {path}: {getattr(exc, 'strerror', None) or 'invalid TOML'}"]
    otel = config.get("otel") if isinstance(config.get("otel"), dict) else {}
    found = []
    for where, headers in _headers_in(otel, "otel"):
        names = [n if _HEADER_NAME.fullmatch(str(n)) else "?" for n in headers
                 if n != SECRET_HEADER]
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


def _claude_headers(env: Mapping[str, str]) -> list[tuple[str, list[str]]]:
    path = claude_settings.user_file(env)
    block, _ = claude_settings.read_env(path)
    return [(f"{path} env {key}", header_names(block[key]))
            for key in claude_settings.plaintext_headers(block)]
