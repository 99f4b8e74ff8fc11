"""Wiring the tools' settings to the agent: for each tool, a plan (the file's new bytes and
mode, and the record uninstall needs), made for every tool before any file is written, so a
file aitrack must not touch leaves everything as it was.

The keys and values are the adapters' (`settings.wanted`); what the first install replaces
is said in a note, never with a value.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from aitrack.adapters.endpoints import Destination, shown
from aitrack.capture import agent
from aitrack.config.paths import Paths
from aitrack.config.private_files import private_dir
from aitrack.config.profile import Profile
from aitrack.install.wiring import files
from aitrack.install.wiring.files import SECRET_MODE, SettingsFile, home_relative
from aitrack.install.wiring.restore import put_back
from aitrack.install.wiring.state import (
    TOOLS,
    Outcome,
    WiringError,
    helper_file,
    load_state,
    save_state,
    settings_module,
    titles,
)


@dataclass
class Plan:
    tool: str
    mod: ModuleType
    file: SettingsFile
    record: dict
    new: bytes
    mode: int
    notes: list[str]


def wire(paths: Paths, profile: Profile, env: Mapping[str, str] | None = None,
         keep_local: bool = False, statusline: bool | None = None) -> Outcome:
    """Point every tool's user settings at the agent (idempotent).

    Settings that send telemetry somewhere else (a team's collector) are not silently cut
    off: with a local-only profile this refuses, unless `keep_local` says the user wants that
    telemetry kept on this machine from now on (`aitrack agent install --keep-local`), or the
    profile has an endpoint (`--adopt-endpoint` writes one from those settings).
    `statusline` sets (True) or removes (False) `aitrack statusline` as the tools' status
    line, where a tool has one (Claude Code); None keeps what an earlier install chose."""
    env = os.environ if env is None else env
    url = agent.url(profile.agent.port)
    elsewhere = sent_elsewhere(env, url)
    if elsewhere and profile.endpoint is None and not keep_local:
        raise WiringError(refusal(elsewhere))
    secret = agent.ensure_secret(paths)
    state = load_state(paths)
    plans, problems = [], []
    for tool in TOOLS:
        mod = settings_module(tool)
        path = mod.user_file(env)
        record = state["files"].get(str(path))
        try:
            keys = wanted_keys(tool, mod, paths, profile, secret)
            if hasattr(mod, "STATUS_LINE_KEY") and (
                    statusline if statusline is not None else _had_status_line(mod, record)):
                keys[(mod.STATUS_LINE_KEY,)] = mod.status_line(statusline_command())
            plans.append(plan(tool, mod, path, keys, json.loads(json.dumps(record))
                              if record else None, env, agent.url(profile.agent.port)))
        except mod.SettingsError as exc:
            problems.append(str(exc))
    if problems:
        raise WiringError("; ".join(problems) + " (nothing was changed)")
    out = Outcome(data={"files": {}})
    out.changed = write_helper(paths, agent.secret_file(paths))
    for step in plans:
        _carry_out(step, paths, state, env, out)
    if elsewhere:  # doctor warns while a local-only profile keeps what went there
        replaced = {(r["tool"], r["endpoint"]): r for r in state.get("replaced", [])}
        for title, where, dest in elsewhere:
            replaced[(title, shown(dest.url))] = {"tool": title, "file": where,
                                                  "endpoint": shown(dest.url)}
        state["replaced"] = list(replaced.values())
    save_state(paths, state)
    if not out.changed:
        out.lines.append(f"the settings of {titles()} already point at the agent")
    return out


def _carry_out(step: Plan, paths: Paths, state: dict, env: Mapping[str, str],
               out: Outcome) -> None:
    """Write one planned file (unless it is already so) and record it for uninstall."""
    path, file = step.file.path, step.file
    where = home_relative(path, env)
    out.data["files"][str(path)] = step.tool
    if step.new == file.data and step.mode == file.mode:
        state["files"][str(path)] = step.record
        return
    made = files.write(file.target, step.new, step.mode)
    step.record["dirs"] = step.record.get("dirs", []) + made
    step.record["written"] = files.digest(step.new)
    state["files"][str(path)] = step.record
    save_state(paths, state)  # after each file: an interrupted install can be undone
    out.changed = True
    if step.new == file.data:
        out.lines.append(f"made {where} private (0600): it holds the agent's key")
    else:
        what = f"{step.mod.TITLE} sends its telemetry to the agent"
        out.lines.append(f"{what}: {'wrote' if file.data is None else 'updated'} {where}"
                         + (" (0600: it holds the agent's key)"
                            if getattr(step.mod, "HOLDS_SECRET", False) else ""))
    out.lines += step.notes


def _had_status_line(mod: ModuleType, record: dict | None) -> bool:
    """An earlier install set the status line (a plain install keeps it so)."""
    return any(k["path"] == [mod.STATUS_LINE_KEY] and "after" in k
               for k in (record or {}).get("keys", []))


def statusline_command() -> str:
    """`aitrack statusline` by this aitrack's console script (no `python -m`: a few ms less
    at each of Claude Code's updates), else through its interpreter."""
    script = Path(sys.executable).with_name("aitrack.exe" if sys.platform == "win32" else
                                            "aitrack")
    if script.exists():
        return f"{shlex.quote(str(script))} statusline"
    return f"{shlex.quote(sys.executable)} -m aitrack statusline"


def wanted_keys(tool: str, mod: ModuleType, paths: Paths, profile: Profile,
                secret: str) -> dict:
    """Key path -> value for the tool's user settings. Claude Code takes its key from the
    headers helper; Codex's exporters hold it (the adapters' `wanted` differ in this)."""
    url = agent.url(profile.agent.port)
    if tool == "claude":
        return mod.wanted(url, str(helper_file(paths)), profile.telemetry)
    return mod.wanted(url, {agent.SECRET_HEADER: secret}, profile.telemetry,
                      profile.attributes.get("environment"))


def plan(tool: str, mod: ModuleType, path: Path, wanted: dict, record: dict | None,
         env: Mapping[str, str], url: str) -> Plan:
    """The file with aitrack's keys set (and keys it set before but wants no more put back),
    and the record that undoes it; `record` is the one saved by an earlier install."""
    file = files.read(mod, path)
    doc = mod.parse(files.decode(mod, file.data or b"", path), path)
    if record is not None and files.digest(file.data) != record.get("written"):
        if file.data is None:
            record = None  # the user removed the file since: start afresh
        else:
            record["exact"] = False  # edited since: only key by key from now on
    if record is None:
        record = {"tool": tool, "existed": file.data is not None, "exact": True,
                  "original": base64.b64encode(file.data).decode() if file.data is not None
                  else None, "mode": file.mode, "keys": [], "created": [], "dirs": []}
    notes = found_before(tool, mod, doc, path, env, url) if not record["keys"] else []
    line_key = (getattr(mod, "STATUS_LINE_KEY", None),)
    if line_key in wanted and doc.get(line_key) not in (mod.MISSING, wanted[line_key]) and \
            not any(k["path"] == list(line_key) for k in record["keys"]):
        notes.append(f"replaced your {line_key[0]} in {home_relative(path, env)} with "
                     "`aitrack statusline` (put back at uninstall)")
    for key_path in {p[:-1] for p in wanted if len(p) > 1}:
        if doc.get(key_path) is mod.MISSING and list(key_path) not in record["created"]:
            record["created"].append(list(key_path))
    record["keys"] = _set_keys(mod, doc, wanted, record["keys"])
    mode = SECRET_MODE if getattr(mod, "HOLDS_SECRET", False) else (
        file.mode if file.mode is not None else files.default_mode())
    return Plan(tool, mod, file, record, doc.text().encode("utf-8"), mode, notes)


def _set_keys(mod: ModuleType, doc, wanted: dict, recorded: list[dict]) -> list[dict]:
    """Set (or remove) each wanted key in `doc`; the keys' records, each with the value it
    had before aitrack's first install."""
    keys = {tuple(k["path"]): k for k in recorded}
    for key_path, value in wanted.items():
        current = doc.get(key_path)
        entry = keys.get(key_path) or {"path": list(key_path), "before": doc.raw(key_path)}
        if value is mod.MISSING:
            if current is mod.MISSING and key_path not in keys:
                continue  # nothing to remove, nothing to put back
            entry.pop("after", None)
            entry["removed"] = True
            if current is not mod.MISSING:
                doc.delete(key_path)
        else:
            entry.pop("removed", None)
            entry["after"] = value
            if current != value:
                doc.set_raw(key_path, mod.raw(value))
        keys[key_path] = entry
    for key_path in [p for p in keys if p not in wanted]:  # no longer set (profile changed)
        put_back(mod, doc, keys.pop(key_path))
    return list(keys.values())


def found_before(tool: str, mod: ModuleType, doc, path: Path, env: Mapping[str, str],
                 url: str) -> list[str]:
    """What the first install replaces that the user should know of (never a value)."""
    where = home_relative(path, env)
    notes = []
    data = doc.value()
    if tool == "claude":
        block = data.get("env") if isinstance(data.get("env"), dict) else {}
        leaked = mod.plaintext_headers(block)
        if data.get(mod.HELPER_KEY):
            notes.append(f"replaced your {mod.HELPER_KEY} in {where} (put back at uninstall)")
    else:
        otel = data.get("otel") if isinstance(data.get("otel"), dict) else {}
        leaked = [f"[otel] {k} headers" for k in mod.plaintext_headers(otel, agent.SECRET_HEADER)]
    for url_sent in dict.fromkeys(shown(d.url) for d in mod.destinations(data, url)):
        notes.append(f"{mod.TITLE} sent its telemetry to {url_sent} ({where}); it now goes to "
                     "the agent instead (put back at uninstall)")
    if leaked:
        notes.append(f"a plaintext token was found in {where} ({', '.join(leaked)}) and is no "
                     "longer used: the agent forwards with the token in your keychain "
                     "(`aitrack token set`); consider rotating the old one")
    return notes


Elsewhere = list[tuple[str, str, Destination]]  # (tool's title, its file, where it sends)


def sent_elsewhere(env: Mapping[str, str], url: str) -> Elsewhere:
    """Where the tools' user settings send telemetry now, other than the agent at `url`. A
    file aitrack cannot read says nothing here: planning it says what is wrong."""
    found: Elsewhere = []
    for tool in TOOLS:
        mod = settings_module(tool)
        path = mod.user_file(env)
        try:
            data = files.read(mod, path).data
            doc = mod.parse(files.decode(mod, data or b"", path), path)
        except (mod.SettingsError, OSError):
            continue
        found += [(mod.TITLE, home_relative(path, env), d)
                  for d in mod.destinations(doc.value(), url)]
    return found


def refusal(elsewhere: Elsewhere) -> str:
    """Why install stops: the telemetry's present destination would be cut off."""
    sent = "; ".join(dict.fromkeys(f"{title} sends its telemetry to {shown(d.url)} ({where})"
                                   for title, where, d in elsewhere))
    those = "that endpoint" if len({shown(d.url) for _, _, d in elsewhere}) == 1 else \
        "those endpoints"
    return (f"{sent}, and your profile has no endpoint: with the agent, that telemetry would "
            f"stay on this machine and {those} would receive nothing more from it. "
            "Nothing was changed. Run `aitrack agent install --adopt-endpoint` to have the "
            "agent forward there (a profile of yours names that endpoint and its token moves "
            "to your keychain), or `aitrack agent install --keep-local` to keep the telemetry "
            "on this machine (or ask IT for a profile with the org's endpoint)")


def destination(profile: Profile) -> str:
    """Where the agent sends what it receives, in words."""
    endpoint = profile.endpoint
    if endpoint is None:
        return ("keeps it on this machine (your profile has no endpoint: local-only, nothing "
                "is forwarded)")
    where = endpoint.url or ", ".join(f"{s} to {endpoint.signal_url(s)}"
                                      for s in endpoint.signals)
    origin = profile.origins.get("endpoint.url") or next(
        (v for k, v in profile.origins.items() if k.startswith("endpoint.") and v != "default"),
        "")
    return f"forwards it to {shown(where) if endpoint.url else where}" + (
        f" (the endpoint of the {origin.replace(' (', ' profile ', 1).rstrip(')')})"
        if origin and origin != "default" else "")


def write_helper(paths: Paths, secret_path: Path) -> bool:
    """Claude Code's headers helper, which prints the agent's key (0700); whether it changed."""
    mod = settings_module("claude")
    text = mod.helper_script(secret_path, agent.SECRET_HEADER, agent.RUN_HEADER).encode()
    target = helper_file(paths)
    private_dir(target.parent)
    try:
        if target.read_bytes() == text and stat.S_IMODE(target.stat().st_mode) == 0o700:
            return False
    except OSError:
        pass
    files.write(target, text, 0o700)
    return True
