"""`aitrack doctor`: what is wrong with this machine's aitrack, and how to fix it.

Each check is a plain function returning a `Check` (PASS, WARN or FAIL, a one-line summary
and, unless it passed, a one-line fix). Checks that wait on something (the endpoint, the
tools' `--version`) run in parallel. Nothing here prints or returns the token or a header
value: a token only goes into the auth header of the probe to its own signal's URL, and
header values found in files or the environment are reported by header name.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

from aitrack.capture.loopback import SECRET_HEADER
from aitrack.config.paths import Paths
from aitrack.config.profile import Profile
from aitrack.install import shims

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
PROBE_TIMEOUT_S = 10.0
VERSION_TIMEOUT_S = 5.0
STALE_BACKLOG_S = 3600.0  # a payload pending longer than this is a backlog, not in flight
OUTBOX_FULL = 0.8  # of endpoint.outbox_max_mb: the size bound is about to evict payloads
OTLP_HEADER_VARS = tuple(f"OTEL_EXPORTER_OTLP_{s}HEADERS"
                         for s in ("", "METRICS_", "LOGS_", "TRACES_"))
_OTLP_REDIRECT = re.compile(r"OTEL_EXPORTER_OTLP_(?:(?:METRICS|LOGS|TRACES)_)?(?:ENDPOINT|HEADERS)")
_SECRET_NAME = re.compile(r"auth|key|token|secret|passw|team|cookie|signature|credential", re.I)
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")
_RC_FILES = (".zshenv", ".zprofile", ".zshrc", ".bash_profile", ".bash_login", ".bashrc",
             ".profile", ".config/fish/config.fish")
_RC_ASSIGN = re.compile(r"^\s*(?:export\s+|setenv\s+|set\s+(?:-\w+\s+)*)?"
                        r"(OTEL_EXPORTER_OTLP_(?:(?:METRICS|LOGS|TRACES)_)?HEADERS)(?:=|\s+)(.*)")


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


def run(env: Mapping[str, str] | None = None, debug: bool = False) -> list[Check]:
    """Every check, in display order. With `debug`, a check that crashes raises."""
    from aitrack.config import paths, profile

    def _guarded(name: str, fn: Callable[[], Check]) -> Check:
        """A check that crashes is a FAIL naming the crash, not a traceback over the others."""
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001
            if debug:
                raise
            return Check(name, FAIL, f"the check itself failed: {type(exc).__name__}: {exc}",
                         "run `aitrack --debug doctor` and report it")

    env = os.environ if env is None else env
    locations = paths.resolve(env)
    ctx = Context(env, locations, profile.load(locations, dict(env)),
                  Path(env.get("HOME") or os.path.expanduser("~")))
    checks = [_guarded("profile", lambda: check_profile(ctx)),
              _guarded("profile-integrity", lambda: check_profile_integrity(ctx)),
              _guarded("keychain", lambda: check_keychain(ctx))]
    slow = [("endpoint", lambda: check_endpoint(ctx))]
    slow += [(tool, lambda t=tool: check_tool(ctx, t)) for tool in shims.TOOLS]
    with ThreadPoolExecutor(len(slow)) as pool:
        checks += list(pool.map(lambda item: _guarded(*item), slow))
    ctx.tokens = {}
    for name, fn in (("shims", check_shims), ("claude-settings", check_claude_settings),
                     ("plaintext-tokens", check_plaintext_tokens), ("ledger", check_ledger),
                     ("disk", check_disk), ("outbox", check_outbox), ("prices", check_prices)):
        checks.append(_guarded(name, lambda fn=fn: fn(ctx)))
    checks.append(_guarded("private-files", lambda: check_private_files(ctx)))
    for name, fn in (("agent", check_agent), ("agent-settings", check_agent_settings)):
        checks.append(_guarded(name, lambda fn=fn: fn(ctx)))
    return checks


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return text


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


# ---------------------------------------------------------------- profile


def check_profile(ctx: Context) -> Check:
    from aitrack.config import managed
    from aitrack.config.schema import ProfileError, read_file

    p, paths = ctx.profile, ctx.paths
    details: list[str] = []
    broken_managed: list[str] = []
    sources: list[tuple[str, Callable[[], object]]] = []
    if paths.managed_plist is not None:
        sources.append((f"managed plist {paths.managed_plist}",
                        lambda: managed.read_plist(paths.managed_plist)))
    reader = managed.registry_reader()
    if reader is not None:
        sources.append((f"managed registry {managed.REGISTRY_SOURCE}",
                        lambda: managed.read_registry(reader)))
    sources.append((f"managed TOML {paths.managed_profile}",
                    lambda: read_file(paths.managed_profile)))
    sources.append((f"user TOML {paths.user_profile}", lambda: read_file(paths.user_profile)))
    user_problems: list[str] = []
    for label, read in sources:
        try:
            data = read()
        except ProfileError as exc:
            details.append(f"{label}: INVALID: {exc.problems[0]}"
                           + (f" (+{len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""))
            (user_problems if label.startswith("user") else broken_managed).append(label)
            continue
        if data:
            details.append(f"{label}: ok ({', '.join(sorted(data))})")
        else:
            details.append(f"{label}: not present")
    details += [f"ignored: {line}" for line in p.shadowed]
    if p.endpoint is not None:
        # "default" when only per-signal URLs are set (profiles/cloudwatch.toml has no url)
        origins = (p.origins.get("endpoint.url", "default"),
                   *(v for k, v in p.origins.items() if k.startswith("endpoint.")))
        origin = next((v for v in origins if v != "default"), "")
        if p.endpoint.url:
            where = f"{', '.join(p.endpoint.signals)} to {shown_url(p.endpoint.url)}"
        else:
            where = ", ".join(f"{s} to {shown_url(p.endpoint.signal_url(s))}"
                              for s in p.endpoint.signals)
        m = re.fullmatch(r"(\w+) \((.*)\)", origin)
        mode = f"forwarding {where}" + (f" (endpoint from the {m[1]} profile {m[2]})" if m
                                        else "")
    else:
        mode = "local-only: no endpoint configured, usage stays in the local ledger"
    data = {"mode": "forwarding" if p.endpoint else "local-only",
            "endpoint_url": shown_url(p.endpoint.url) if p.endpoint else None,
            "signal_urls": {s: shown_url(p.endpoint.signal_url(s)) for s in p.endpoint.signals}
            if p.endpoint else {}}
    if broken_managed:
        where = broken_managed[0].split(" ", 2)[2]
        return Check("profile", FAIL, f"the managed profile is invalid, so aitrack runs "
                     f"local-only and forwards nothing ({where})",
                     f"IT: fix {where} (check a TOML file with `aitrack profile validate FILE`); "
                     "`aitrack profile show` lists every problem", details, data)
    if user_problems:
        where = user_problems[0].split(" ", 2)[2]
        return Check("profile", WARN, f"your profile {where} is invalid and ignored; {mode}",
                     f"fix it (`aitrack profile validate {where}`) or delete it", details, data)
    return Check("profile", PASS, mode, None, details, data)


def check_profile_integrity(ctx: Context) -> Check:
    """Whether this machine's runs follow IT's managed sources (what
    `aitrack.profile.integrity` marks on forwarded telemetry when they do not)."""
    from aitrack.config import managed
    from aitrack.config.schema import INTEGRITY_KEY

    overridden = managed.overrides(ctx.paths, ctx.env)
    refused = [p for source, problems in ctx.profile.broken.items()
               if source.startswith("user profile setting ignored") for p in problems]
    details = [detail for _, detail in overridden] + refused
    if ctx.env.get("AITRACK_MANAGED_PLIST") and sys.platform != "darwin":
        details.append(f"AITRACK_MANAGED_PLIST is ignored: managed preferences exist only on "
                       f"macOS, not on {sys.platform}")
    data = {"overridden": [reason for reason, _ in overridden], "refused": refused}
    if overridden:
        what = "; ".join(detail for _, detail in overridden)
        return Check("profile-integrity", WARN, f"{what}: the managed settings IT deployed are "
                     f"not the ones in effect, and forwarded telemetry carries {INTEGRITY_KEY}="
                     f"{','.join(data['overridden'])}",
                     "unset the variable unless IT asked you to set it (staging, tests)",
                     details, data)
    if refused:
        return Check("profile-integrity", WARN, "your profile sets identity attributes that only "
                     "IT or the OS may set on a managed machine; they are ignored",
                     f"remove them from {ctx.paths.user_profile}", details, data)
    return Check("profile-integrity", PASS, "the settings in effect are the managed sources' "
                 "(no managed source replaced)", None, details, data)


# ---------------------------------------------------------------- keychain and endpoint


def check_keychain(ctx: Context) -> Check:
    from aitrack.config import keychain

    endpoint = ctx.profile.endpoint
    if endpoint is None:
        return Check("keychain", PASS, "not needed: local-only (no endpoint to send a token to)")
    accounts = endpoint.accounts()
    try:
        backend = keychain.backend_name()
        found = {account: keychain.get_token(account) for account in accounts}
    except keychain.KeychainUnavailable as exc:
        why = re.sub(r",? (?:then )?(?:or )?run `aitrack doctor`", "", str(exc))
        return Check("keychain", FAIL, f"cannot read the token: {why}",
                     "make a keychain available and unlocked, then `aitrack token set`",
                     data={"account": endpoint.keychain_account, "backend": None,
                           "token_present": False})
    ctx.tokens = {account: token for account, token in found.items() if token is not None}
    missing = [account for account in accounts if account not in ctx.tokens]
    data = {"account": endpoint.keychain_account, "backend": backend,
            "token_present": not missing,
            "accounts": [{"account": a, "signals": list(s), "token_present": a in ctx.tokens}
                         for a, s in accounts.items()]}

    def named(names: list[str]) -> str:  # the signals only when they differ by account
        return ", ".join(f"{a!r} ({', '.join(accounts[a])})" if len(accounts) > 1 else repr(a)
                         for a in names)

    if missing:
        lost = ("nothing can be forwarded" if len(missing) == len(accounts) else
                f"{' and '.join(s for a in missing for s in accounts[a])} cannot be forwarded")
        return Check("keychain", FAIL, f"no token for account{'s' if len(missing) > 1 else ''} "
                     f"{named(missing)} in {backend}: {lost}",
                     f"run {', '.join(f'`{keychain.set_command(a)}`' for a in missing)} (IT: "
                     "pipe it in from the MDM's user-context script, see installers/README.md)",
                     data=data)
    plural = "s" if len(accounts) > 1 else ""
    return Check("keychain", PASS, f"token{plural} present for account{plural} "
                 f"{named(list(accounts))} in {backend}", data=data)


def check_endpoint(ctx: Context) -> Check:
    """An empty export to each forwarded signal's URL, with that signal's token; one probe
    per distinct URL and account."""
    endpoint = ctx.profile.endpoint
    if endpoint is None:
        return Check("endpoint", PASS, "not checked: local-only, nothing is forwarded")
    targets: dict[tuple[str | None, str], str] = {}  # (url, account) -> its first signal
    for signal in sorted(endpoint.signals, key=lambda s: s != "metrics"):  # metrics first
        targets.setdefault((endpoint.signal_url(signal), endpoint.signal_account(signal)),
                           signal)
    with ThreadPoolExecutor(len(targets)) as pool:  # a hung host costs one timeout, not one each
        probes = list(pool.map(lambda t: _probe(ctx, t[1], *t[0]), targets.items()))
    if len(probes) == 1:
        return probes[0]
    fixes = [c.fix for c in probes if c.fix]
    return Check("endpoint", worst(probes), "; ".join(c.summary for c in probes),
                 "; ".join(dict.fromkeys(fixes)) or None,
                 data={**probes[0].data, "probes": [c.data for c in probes]})


def _probe(ctx: Context, signal: str, url: str | None, account: str) -> Check:
    from aitrack.config.keychain import set_command
    from aitrack.egress import transport

    endpoint = ctx.profile.endpoint
    json_body = endpoint.protocol == "http/json"
    # An empty Export<Signal>ServiceRequest: b"" in protobuf, {} in JSON.
    body, content_type = (b"{}", "application/json") if json_body else (
        b"", "application/x-protobuf")
    probe = replace(endpoint, timeout_s=min(endpoint.timeout_s, PROBE_TIMEOUT_S))
    token = ctx.tokens.get(account)
    answer = transport.post(probe, url, body, content_type, token)
    ms = round(answer.elapsed_s * 1000)
    secrets = [*ctx.tokens.values(), *endpoint.headers.values()]
    where = shown_url(url)
    data = {"url": where, "signal": signal, "account": account, "protocol": endpoint.protocol,
            "http_status": answer.status, "elapsed_ms": ms, "token_sent": token is not None}
    error = redact(answer.error or "", secrets)
    status = answer.status
    set_token = f"`{set_command(account)}`"
    if status is not None and 200 <= status < 300:
        what = "accepted the token" if token else "accepted a request without a token"
        return Check("endpoint", PASS if token else WARN,
                     f"{where} {what} (HTTP {status} in {ms} ms)",
                     None if token else f"run {set_token}", data=data)
    if status is None:
        return Check("endpoint", FAIL, f"{where} unreachable after {ms} ms: {error}",
                     "check the network or VPN, the proxy (HTTPS_PROXY), endpoint.url, and for "
                     "TLS errors endpoint.ca_bundle; payloads wait in the outbox meanwhile",
                     data=data)
    if status in (401, 403):
        if token is None:
            return Check("endpoint", WARN, f"{where} is reachable but wants a token "
                         f"(HTTP {status} in {ms} ms) and none is stored for account {account!r}",
                         f"run {set_token}", data=data)
        return Check("endpoint", FAIL, f"{where} rejected the token (HTTP {status} in {ms} ms; "
                     f"account {account!r})",
                     f"store a valid token with {set_token} (ask IT whether it was "
                     f"revoked); check endpoint.auth_header ({endpoint.auth_header}) and "
                     "auth_scheme", data=data)
    if status in (404, 405, 415):
        fix = ("check endpoint.protocol" if status == 415 else
               f"check endpoint.url or endpoint.{signal}_url (the full /v1/{signal} path)")
        return Check("endpoint", FAIL, f"{where} answered HTTP {status} in {ms} ms: {error}",
                     fix, data=data)
    if status == 429 or status >= 500:
        return Check("endpoint", WARN, f"{where} is temporarily unavailable (HTTP {status} in "
                     f"{ms} ms)", "nothing to do if it passes: aitrack retries; "
                     "otherwise tell IT", data=data)
    return Check("endpoint", WARN, f"{where} answered an empty export with HTTP {status} in "
                 f"{ms} ms: {error}", "if real payloads fail too, `aitrack flush --json` shows "
                 "the endpoint's answers; tell IT", data=data)


# ---------------------------------------------------------------- the tools and the shims


def check_tool(ctx: Context, name: str) -> Check:
    from aitrack import adapters
    from aitrack.capture import launcher

    override = adapters.load(name).BIN_ENV
    binary = launcher.find_real_binary(name, override, str(ctx.paths.shim_dir), dict(ctx.env))
    if ctx.env.get(override) and not (binary and os.path.isfile(binary)):
        return Check(name, FAIL, f"{override}={ctx.env[override]} does not exist",
                     f"point {override} at the {name} executable or unset it")
    if binary is None:
        return Check(name, WARN, f"{name} is not installed (not on PATH)",
                     f"install {name} if you use it (or set {override})", data={"path": None})
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True,
                             timeout=VERSION_TIMEOUT_S, stdin=subprocess.DEVNULL,
                             env=_without_redirection(ctx.env), errors="replace")
    except subprocess.TimeoutExpired:
        return Check(name, FAIL, f"{binary} --version did not answer in {VERSION_TIMEOUT_S:g} s",
                     f"reinstall {name}", data={"path": binary})
    except OSError as exc:
        return Check(name, FAIL, f"{binary} cannot run: {exc.strerror or exc}",
                     f"reinstall {name}", data={"path": binary})
    first = (out.stdout.strip() or out.stderr.strip()).splitlines()
    version = first[0][:80] if first else ""
    if out.returncode != 0:
        return Check(name, FAIL, f"{binary} --version failed (exit {out.returncode})"
                     + (f": {version}" if version else ""), f"reinstall {name}",
                     data={"path": binary, "version": None})
    return Check(name, PASS, f"{binary} ({version or 'version unknown'})",
                 data={"path": binary, "version": version})


def _without_redirection(env: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if not _OTLP_REDIRECT.fullmatch(k)}


def shim_dirs(paths: Paths) -> list[Path]:
    """Where aitrack's own installs put shims: per user, and next to this aitrack's venv."""
    return [paths.shim_dir, Path(sys.prefix).parent / "shims"]


def check_shims(ctx: Context) -> Check:
    env = dict(ctx.env)
    states = shims.status(ctx.paths.shim_dir, env)
    relevant = [s for s in states if s.real or s.tracked]
    details, data = [], {}
    broken, untracked = [], []
    for s in states:
        data[s.name] = {"resolves_to": s.resolves_to, "tracked": s.tracked}
        if s not in relevant:
            continue
        if s.tracked and not s.shim_python_ok:
            broken.append(s)
            details.append(f"{s.name} -> {s.resolves_to}: its aitrack {s.shim_python} is missing")
        elif s.tracked:
            details.append(f"{s.name} -> {s.resolves_to} (shim, tracked)")
        else:
            untracked.append(s)
            details.append(f"{s.name} -> {s.resolves_to} (not a shim: runs untracked)")
    if not relevant:
        return Check("shims", PASS, "no claude or codex on PATH: nothing to shim", data=data)
    if broken:
        names = ", ".join(s.name for s in broken)
        return Check("shims", FAIL, f"the {names} shim runs a missing aitrack, so the tool runs "
                     "untracked with a warning", "run `aitrack shims install` (with --dir "
                     f"{Path(broken[0].resolves_to).parent}) from a working aitrack",
                     details, data)
    if untracked:
        names = ", ".join(f"`{s.name}`" for s in untracked)
        installed = next((d for d in shim_dirs(ctx.paths)
                          if any(shims.is_shim(d / n) for s in untracked
                                 for n in shims.files_for(s.name))), None)
        fix = (f"put {installed} first on PATH: {shims.path_line(installed)} (at the end of "
               "~/.zshrc or ~/.bashrc), then open a new shell" if installed else
               "run `aitrack shims install` and follow its PATH hint")
        return Check("shims", WARN, f"{names} run{'s' if len(untracked) == 1 else ''} without "
                     "aitrack: usage typed as a plain command is not tracked", fix, details, data)
    return Check("shims", PASS, "claude and codex resolve to aitrack shims"
                 if len(relevant) == 2 else f"{relevant[0].name} resolves to an aitrack shim",
                 None, details, data)


# ---------------------------------------------------------------- settings that bypass aitrack


def claude_managed_settings(env: Mapping[str, str]) -> Path:
    from aitrack.adapters.claude import settings

    return settings.managed_file(env)


def check_claude_settings(ctx: Context) -> Check:
    path = claude_managed_settings(ctx.env)
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Check("claude-settings", PASS, f"no Claude Code managed settings ({path})")
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not valid JSON"
        return Check("claude-settings", WARN, f"cannot read Claude Code's managed settings "
                     f"{path}: {reason}", "IT: fix or remove the file; Claude Code may ignore it")
    env = settings.get("env") if isinstance(settings, dict) else None
    env = env if isinstance(env, dict) else {}
    redirecting = sorted(k for k in env if _OTLP_REDIRECT.fullmatch(str(k)))
    data = {"path": str(path), "redirecting_keys": redirecting}
    agent_url = f"http://127.0.0.1:{ctx.profile.agent.port}"  # `aitrack agent print-settings`
    if redirecting and all(k.endswith("ENDPOINT") and str(env[k]).rstrip("/").startswith(
            agent_url) for k in redirecting):
        return Check("claude-settings", PASS, f"{path} sends Claude Code's telemetry to the "
                     f"aitrack agent ({agent_url})", data=data)
    if redirecting:
        secret = any(k.endswith("HEADERS") for k in redirecting)
        return Check("claude-settings", FAIL, f"{path} sets {', '.join(redirecting)}: Claude Code "
                     "then sends its telemetry there instead of to aitrack, so its usage is "
                     "not tracked" + ("; the headers are a plaintext secret" if secret else ""),
                     f"IT: remove {', '.join(redirecting)} from the env block of {path} "
                     "(aitrack forwards to the org endpoint itself)", data=data)
    off = [f"{k}={env[k]}" for k in ("CLAUDE_CODE_ENABLE_TELEMETRY",) if
           str(env.get(k, "1")).strip().lower() in ("0", "false")]
    off += [f"{k}={env[k]}" for k in ("OTEL_METRICS_EXPORTER",)
            if k in env and "otlp" not in str(env[k])]
    if off:
        return Check("claude-settings", WARN, f"{path} sets {', '.join(off)}: Claude Code reports "
                     "no usage to aitrack", f"IT: remove it from the env block of {path}",
                     data=data)
    return Check("claude-settings", PASS, f"{path} leaves telemetry to aitrack", data=data)


def header_names(value: str) -> list[str]:
    """Names in an OTLP headers value (`k=v,k2=v2`); the values are never kept. A part that
    is not `name=value` may be a bare token: it is named "?" and counts as a secret."""
    names = []
    for item in value.split(","):
        name, sep, _ = item.partition("=")
        if item.strip():
            names.append(name.strip() if sep and _HEADER_NAME.fullmatch(name.strip()) else "?")
    return names


def _finding(where: str, names: list[str]) -> tuple[str, bool]:
    secret = not names or any(n == "?" or _SECRET_NAME.search(n) for n in names)
    return f"{where}: header{'s' if len(names) != 1 else ''} {', '.join(names) or '?'}", secret


def check_plaintext_tokens(ctx: Context) -> Check:
    findings: list[tuple[str, bool]] = []
    problems: list[str] = []
    for var in OTLP_HEADER_VARS:
        value = ctx.env.get(var, "")
        if value.strip():
            findings.append(_finding(f"environment variable {var}", header_names(value)))
    for rc in _RC_FILES:
        path = ctx.home / rc
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            m = _RC_ASSIGN.match(line)
            if m and m.group(2).strip().strip("'\""):
                findings.append(_finding(f"~/{rc} line {number} sets {m.group(1)}",
                                         header_names(m.group(2).strip().strip("'\""))))
    codex = codex_config(ctx.env, ctx.home)
    try:
        import tomllib

        config = tomllib.loads(codex.read_text(encoding="utf-8"))
    except FileNotFoundError:
        config = {}
    except (OSError, ValueError) as exc:
        config = {}
        problems.append(f"cannot read {codex}: {getattr(exc, 'strerror', None) or 'invalid TOML'}")
    otel = config.get("otel") if isinstance(config.get("otel"), dict) else {}
    for where, headers in _headers_in(otel, "otel"):
        # the agent's own key is there by design (`aitrack agent install`; agent-settings)
        names = [n if _HEADER_NAME.fullmatch(str(n)) else "?" for n in headers
                 if n != SECRET_HEADER]
        if names:
            findings.append(_finding(f"{codex} [{where}]", names))
    from aitrack.adapters.claude import settings as claude_settings

    claude_user = claude_settings.user_file(ctx.env)
    block, _ = claude_settings.read_env(claude_user)
    for key in claude_settings.plaintext_headers(block):
        findings.append(_finding(f"{claude_user} env {key}", header_names(block[key])))
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
                 f"or {codex}", None, details, data)


def codex_config(env: Mapping[str, str], home: Path) -> Path:
    base = env.get("CODEX_HOME")
    return Path(base) / "config.toml" if base else home / ".codex" / "config.toml"


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


# ---------------------------------------------------------------- the per-user agent


def check_agent(ctx: Context) -> Check:
    """Whether the agent runs on its port (or something else holds it)."""
    from aitrack.capture import agent
    from aitrack.install import service, wiring

    port = ctx.profile.agent.port
    try:
        secret = agent.secret_file(ctx.paths).read_text(encoding="ascii").strip() or None
    except (OSError, UnicodeDecodeError):
        secret = None
    wired = wiring.installed(ctx.paths)
    pointed = [t for t in wiring.TOOLS
               if wiring.settings_module(t).points_at_agent(port, ctx.env)]
    found = agent.probe(port, secret)
    data = {"port": port, "port_owner": found, "installed_for": wired,
            "points_at_agent": pointed}
    if found == "other":  # a FAIL only for a user whose tools count on the agent
        return Check("agent", FAIL if wired or pointed else WARN,
                     f"port {port} is used by another program, not aitrack's "
                     "agent, so the agent cannot run"
                     + (f" ({', '.join(pointed)} send their telemetry there)" if pointed else ""),
                     "stop that program, or choose another port with `[agent] port = N` in "
                     "your profile (IT: the managed profile), then `aitrack agent install`",
                     data=data)
    if found == "agent":
        return Check("agent", PASS, f"running on {agent.url(port)}", data=data)
    if not wired and not pointed:
        return Check("agent", PASS, "not installed (optional: `aitrack agent install` also "
                     "records runs started from IDEs and desktop apps)", data=data)
    manager = service.detect(ctx.env)
    why = (f" ({manager.how_to_debug(ctx.paths)} says why it stopped)"
           if manager is not None and manager.installed(ctx.paths) else "")
    if not wired:
        return Check("agent", WARN, f"{', '.join(pointed)} send their telemetry to "
                     f"{agent.url(port)} (machine settings), but your agent is not installed",
                     "run `aitrack agent install`", data=data)
    return Check("agent", WARN, "the agent is not running: runs started outside aitrack "
                 "(IDEs, desktop apps) are not recorded until it is back",
                 f"run `aitrack agent start`{why}; `aitrack claude|codex` also starts it",
                 data=data)


def check_agent_settings(ctx: Context) -> Check:
    """The tools' settings still point at the agent, and Codex's file with its key is private."""
    from aitrack.config import private_files
    from aitrack.install import wiring

    port = ctx.profile.agent.port
    wired = wiring.installed(ctx.paths)
    problems, fixes, details = [], [], []
    status = PASS
    for tool in wiring.TOOLS:
        mod = wiring.settings_module(tool)
        why = mod.diagnose(port, ctx.env)
        details.append(f"{tool}: " + (f"not pointed at the agent: {why}" if why else
                                      "sends its telemetry to the agent"))
        if why and tool in wired:
            status = WARN
            problems.append(f"{mod.TITLE}'s settings no longer send its telemetry to the "
                            f"agent: {why}")
            fixes.append("run `aitrack agent install` again")
    from aitrack.adapters.codex import settings as codex_settings

    codex = codex_settings.user_file(ctx.env)
    try:
        holds_key = SECRET_HEADER in codex.read_text(encoding="utf-8", errors="replace")
    except OSError:
        holds_key = False
    if holds_key and private_files.POSIX:
        st = os.stat(codex)
        if st.st_uid != os.geteuid():
            status = FAIL
            problems.append(f"{codex} holds the agent's key but belongs to uid {st.st_uid}")
            fixes.append(f"`sudo chown $USER {codex}` and `chmod 600 {codex}`")
        elif st.st_mode & 0o077:
            status = FAIL
            problems.append(f"{codex} holds the agent's key and other users can read it "
                            f"(mode {st.st_mode & 0o777:o})")
            fixes.append(f"`chmod 600 {codex}`")
    data = {"installed_for": wired, "codex_config_holds_key": holds_key}
    if problems:
        return Check("agent-settings", status, "; ".join(problems), "; ".join(
            dict.fromkeys(fixes)), details, data)
    if not wired:
        return Check("agent-settings", PASS, "aitrack has not wired the tools' settings "
                     "(`aitrack agent install`)", None, details, data)
    return Check("agent-settings", PASS, "Claude Code and Codex send their telemetry to the "
                 "agent" + (" (Codex's config.toml, which holds its key, is 0600)"
                            if holds_key else ""), None, details, data)


# ---------------------------------------------------------------- the ledger and the outbox


def _open_ledger(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=5)


def check_ledger(ctx: Context) -> Check:
    from aitrack.store.migrations import MIGRATIONS

    path = ctx.paths.ledger
    current = len(MIGRATIONS)
    if not path.exists():
        return Check("ledger", PASS, f"no ledger yet at {path}: the first tracked run creates it",
                     data={"path": str(path), "exists": False})
    data: dict = {"path": str(path), "exists": True, "schema": None, "current_schema": current}
    # first: on a read-only file system even reading a WAL ledger fails ("unable to open")
    if not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
        return Check("ledger", FAIL, f"{path} is not writable: usage cannot be recorded",
                     f"give yourself write access to {path} and its directory", data=data)
    try:
        db = _open_ledger(path)
        try:
            version = db.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0] or 0
            quick = [r[0] for r in db.execute("PRAGMA quick_check").fetchall()]
        finally:
            db.close()
    except sqlite3.Error as exc:
        return Check("ledger", FAIL, f"{path} cannot be read: {exc}",
                     f"move it aside (`mv {path} {path}.broken`): the next run starts a new "
                     "ledger; the old file keeps the usage recorded so far", data=data)
    data["schema"] = version
    if quick != ["ok"]:
        first = "; ".join(line.strip("* ") for line in str(quick[0]).splitlines()
                          if line.strip("* ") and "in database" not in line)
        return Check("ledger", FAIL, f"{path} is damaged: {first or quick[0]}"
                     + (f" (+{len(quick) - 1} more)" if len(quick) > 1 else ""),
                     f"move it aside (`mv {path} {path}.broken`) and try "
                     f"`sqlite3 {path}.broken .recover`; the next run starts a new ledger",
                     data=data)
    if version > current:
        return Check("ledger", WARN, f"{path} has schema v{version}, newer than this aitrack's "
                     f"v{current}", "upgrade aitrack", data=data)
    if version < current:
        return Check("ledger", PASS, f"{path} ok (schema v{version}; the next run upgrades it "
                     f"to v{current})", data=data)
    return Check("ledger", PASS, f"{path} ok (schema v{version}, integrity check passed)",
                 data=data)


DISK_FULL_BYTES = 1024 * 1024
DISK_LOW_BYTES = 64 * 1024 * 1024


def check_disk(ctx: Context) -> Check:
    """Room on the file system that holds the ledger (and the outbox inside it)."""
    from aitrack.egress.forward_log import size

    directory = ctx.paths.ledger.parent
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    try:
        st = os.statvfs(directory)
    except (OSError, AttributeError):  # no statvfs on Windows
        return Check("disk", PASS, f"not checked: cannot measure the free space of {directory}")
    free = st.f_bavail * st.f_frsize
    data = {"path": str(directory), "free_bytes": free}
    if free < DISK_FULL_BYTES:
        return Check("disk", FAIL, f"the disk holding {directory} is full ({size(free)} free): "
                     "usage cannot be recorded nor telemetry queued",
                     f"free some space on it (`df -h {directory}` shows it), then run "
                     "`aitrack doctor` again", data=data)
    if free < DISK_LOW_BYTES:
        return Check("disk", WARN, f"the disk holding {directory} is nearly full "
                     f"({size(free)} free)", f"free some space on it (`df -h {directory}`)",
                     data=data)
    return Check("disk", PASS, f"{size(free)} free on the disk holding {directory}", data=data)


def check_private_files(ctx: Context) -> Check:
    """aitrack's files hold emails, directories and payloads: no other user may read them."""
    from aitrack.config import private_files

    paths = ctx.paths
    dirs = [paths.config_dir, paths.data_dir, paths.state_dir, paths.log_dir, paths.cache_dir]
    files = [paths.ledger.with_name(paths.ledger.name + s) for s in ("", "-wal", "-shm")]
    files += [paths.log_dir / "forwarder.log", paths.cache_dir / "startup.bin"]
    links = [str(f) for f in files if f.is_symlink()]
    loose = [str(p) for p in dirs + files
             if str(p) not in links and p.exists() and private_files.loose(p)]
    data = {"loose": loose, "links": links}
    if links:
        more = f" (+{len(links) - 1} more)" if len(links) > 1 else ""
        return Check("private-files", FAIL, f"{links[0]} is a symbolic link, which aitrack "
                     f"refuses to write through{more}",
                     f"remove the link (`rm {links[0]}`); the next run creates the file",
                     links + loose, data)
    if loose:
        return Check("private-files", WARN, f"{len(loose)} of aitrack's files or directories "
                     f"can be read by other users (e.g. {loose[0]})",
                     "the next tracked run makes them private; or now: `chmod -R go-rwx "
                     + " ".join(str(d) for d in dirs if d.exists()) + "`", loose, data)
    return Check("private-files", PASS, "aitrack's files are private (0600 files in 0700 "
                 "directories)", data=data)


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _age(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def check_outbox(ctx: Context, now: float | None = None) -> Check:
    path = ctx.paths.ledger
    if not path.exists():
        return Check("outbox", PASS, "empty (no ledger yet)")
    from aitrack.egress import outbox
    from aitrack.egress.forward_log import size

    try:
        db = _open_ledger(path)
        try:
            c = outbox.counts(db)
        finally:
            db.close()
    except sqlite3.Error as exc:
        return Check("outbox", WARN, f"cannot read the outbox in {path}: {exc}",
                     "see the ledger check; the next aitrack run upgrades an old ledger")
    now = time.time() if now is None else now
    endpoint = ctx.profile.endpoint
    bound = (endpoint.outbox_max_mb if endpoint else 256) * 1024 * 1024
    data = {"pending": c.pending, "dead": c.dead, "pending_bytes": c.pending_bytes,
            "dead_bytes": c.dead_bytes, "oldest_pending_at": c.oldest_pending_at,
            "evicted": c.evicted, "bound_bytes": bound}
    details = []
    if c.evicted:
        details.append(f"{_count(c.evicted, 'payload')} ({size(c.evicted_bytes)}) dropped by "
                       "the size bound so far (their usage is still in the ledger)")
    held = c.pending_bytes + c.dead_bytes
    if held >= OUTBOX_FULL * bound:
        return Check("outbox", FAIL, f"nearly full: {size(held)} of {size(bound)} "
                     "(endpoint.outbox_max_mb); at the bound the oldest payloads are dropped",
                     "fix what blocks delivery (the endpoint and keychain checks above), then "
                     "run `aitrack flush`", details, data)
    problems = []
    age = now - c.oldest_pending_at if c.oldest_pending_at is not None else 0.0
    if c.pending and (age > STALE_BACKLOG_S or endpoint is None):
        problems.append(f"{_count(c.pending, 'payload')} ({size(c.pending_bytes)}) waiting, "
                        f"the oldest for {_age(age)}")
    if c.dead:
        problems.append(f"{_count(c.dead, 'dead letter')} ({size(c.dead_bytes)}) the "
                        "endpoint refused")
    if problems:
        fixes = []
        if endpoint is None:
            fixes.append("no endpoint is configured any more, so they will not be sent: ask "
                         "IT, or ignore them (the ledger has their usage)")
        else:
            if c.pending:
                fixes.append("run `aitrack flush` once the endpoint check passes")
            if c.dead:
                fixes.append("`aitrack flush --json` shows why the endpoint refused them; "
                             "`aitrack flush --retry-dead` re-sends them")
        return Check("outbox", WARN, "; ".join(problems), "; ".join(fixes), details, data)
    summary = (f"{_count(c.pending, 'payload')} in flight ({size(c.pending_bytes)})"
               if c.pending else "empty: everything was delivered")
    return Check("outbox", PASS, summary, None, details, data)


# ---------------------------------------------------------------- prices


def check_prices(ctx: Context, today: date | None = None) -> Check:
    """WARN when the built-in price table is stale or a model in the ledger has no price."""
    from aitrack.domain import pricing

    table = pricing.load(ctx.profile.prices)
    stale = pricing.stale_line(table.as_of, today)
    try:
        models = pricing.ledger_models(ctx.paths.ledger)
    except sqlite3.Error:
        models = []  # the ledger check says what is wrong with it
    unpriced = [m for m in models if table.price_for(m) is None]
    data = {"as_of": table.as_of, "stale": stale is not None, "unpriced": unpriced}
    problems = [stale] if stale else []
    if unpriced:
        problems.append(f"no price for {', '.join(unpriced)} (in your ledger): where the "
                        "tool reported no cost of its own, the cost shows as n/a")
    if problems:
        return Check("prices", WARN, " ".join(problems),
                     "`aitrack prices` shows the price each of your models gets and the "
                     "profile snippet that adds a missing one", data=data)
    priced = f"; {_count(len(models), 'model')} in your ledger, all priced" if models else ""
    return Check("prices", PASS, f"built-in prices as of {table.as_of}{priced}", data=data)
