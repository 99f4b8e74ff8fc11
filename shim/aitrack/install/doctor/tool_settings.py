"""Checks of the settings that send a tool's telemetry around aitrack or hold an OTLP token
in plaintext: the environment, the shell profiles, the tools' own settings files (what each
holds is its adapter's knowledge: `settings.stored_headers`, `managed_file`, `managed_env`,
`telemetry_off`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from aitrack import adapters
from aitrack.adapters.endpoints import agent_url, header_names
from aitrack.capture.loopback import SECRET_HEADER
from aitrack.capture.ports import agent_port
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
    return [tool for tool in adapters.with_part("settings")
            if hasattr(adapters.part(tool, "settings"), "managed_file")]


def check_managed_settings(ctx: Context, tool: str) -> Check:
    """The tool's machine-wide settings leave its telemetry to aitrack (or send it to the
    agent): a key there wins over the environment aitrack gives the tool."""
    mod = adapters.part(tool, "settings")
    name, title, path = f"{tool}-settings", mod.TITLE, mod.managed_file(ctx.env)
    try:
        env = mod.managed_env(path)
    except FileNotFoundError:
        return Check(name, PASS, f"no {title} managed settings ({path})")
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not valid JSON"
        return Check(name, WARN, f"cannot read {title}'s managed settings {path}: {reason}",
                     f"IT: fix or remove the file; {title} may ignore it")
    redirecting = sorted(k for k in env if OTLP_REDIRECT.fullmatch(str(k)))
    data = {"path": str(path), "redirecting_keys": redirecting}
    port = agent_port(ctx.paths, ctx.profile)
    url = agent_url(port) if port else "-"  # as `aitrack agent print-settings` sets it
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
    off = mod.telemetry_off(env)
    if off:
        return Check(name, WARN, f"{path} sets {', '.join(off)}: {title} reports no usage to "
                     f"aitrack", f"IT: remove it from the env block of {path}", data=data)
    return Check(name, PASS, f"{path} leaves telemetry to aitrack", data=data)


# ---------------------------------------------------------------- plaintext tokens


def _finding(where: str, names: list[str]) -> Finding:
    secret = not names or any(n == "?" or _SECRET_NAME.search(n) for n in names)
    return f"{where}: header{'s' if len(names) != 1 else ''} {', '.join(names) or '?'}", secret


def check_plaintext_tokens(ctx: Context) -> Check:
    findings = _in_environment(ctx.env) + _in_shell_profiles(ctx.home)
    problems: list[str] = []
    for tool in adapters.with_part("settings"):
        stored, unreadable = adapters.part(tool, "settings").stored_headers(ctx.env,
                                                                            SECRET_HEADER)
        findings += [_finding(where, names) for where, names in stored]
        problems += unreadable
    details = [f for f, _ in findings] + problems
    data = {"findings": details}
    if any(secret for _, secret in findings):
        return Check("plaintext-tokens", FAIL, "an OTLP token is stored in plaintext (aitrack "
                     "ignores it and uses the keychain)",
                     "remove it from the places listed (shell profile, the tools' settings "
                     "files: `aitrack agent install` does it for those), keep it only in the "
                     "keychain (`aitrack token set`), and ask IT to rotate it if it was shared",
                     details, data)
    if findings or problems:
        return Check("plaintext-tokens", WARN, "OTLP headers are set outside aitrack, which "
                     "ignores them", "remove them unless another tool needs them", details, data)
    return Check("plaintext-tokens", PASS, "no OTLP headers in the environment, shell profiles "
                 "or the tools' settings files", None, details, data)


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
