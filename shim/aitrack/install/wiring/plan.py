"""Wiring the tools' settings to the agent: for each tool, a plan (the file's new bytes and
mode, and the record uninstall needs), made for every tool before any file is written, so a
file aitrack must not touch leaves everything as it was. All or nothing: a write that fails
puts back the files written before it. A file the tool rewrote since its plan was made is
planned again (REPLANS times), never overwritten with what the plan read.

The keys and values are the adapters' (`settings.wanted(link)`, an AgentLink: the agent's
port and key header, and each tool takes either the key itself or its headers helper); what
the first install replaces is said in a note (`settings.found`), never with a value.
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

from aitrack.adapters.endpoints import AgentLink, Destination, shown
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
    helper_tools,
    load_state,
    lock_file,
    save_state,
    settings_module,
    titles,
)

REPLANS = 5  # a file the tool keeps rewriting while aitrack plans: give up after this


@dataclass
class Plan:
    tool: str
    mod: ModuleType
    file: SettingsFile
    record: dict
    new: bytes
    mode: int
    notes: list[str]
    wanted: dict  # what it was planned from, to plan again
    earlier: dict | None
    link: AgentLink


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
    url = agent.url(agent.choose(paths, profile))  # this user's port, remembered when chosen
    elsewhere = sent_elsewhere(env, url)
    if elsewhere and profile.endpoint is None and not keep_local:
        raise WiringError(refusal(elsewhere))
    secret = agent.ensure_secret(paths)
    try:
        with files.locked(lock_file(paths)):
            return _wire(paths, profile, env, secret, elsewhere, statusline)
    except TimeoutError as exc:
        raise WiringError(str(exc)) from None


def _wire(paths: Paths, profile: Profile, env: Mapping[str, str], secret: str,
          elsewhere: Elsewhere, statusline: bool | None) -> Outcome:
    state = load_state(paths)
    plans, problems = [], []
    for tool in TOOLS:
        mod = settings_module(tool)
        path = mod.user_file(env)
        record = state["files"].get(str(path))
        try:
            link = agent_link(paths, profile, tool, secret)
            keys = mod.wanted(link)
            if hasattr(mod, "STATUS_LINE_KEY") and (
                    statusline if statusline is not None else _had_status_line(mod, record)):
                keys[(mod.STATUS_LINE_KEY,)] = mod.status_line(statusline_command())
            plans.append(plan(tool, mod, path, keys, record, env, link))
        except mod.SettingsError as exc:
            problems.append(str(exc))
    if problems:
        raise WiringError("; ".join(problems) + " (nothing was changed)")
    out = Outcome(data={"files": {}})
    for tool in helper_tools():
        out.changed |= write_helper(paths, tool, agent_link(paths, profile, tool, secret))
    before = json.loads(json.dumps(state))
    done: list[tuple[SettingsFile, list[str]]] = []  # written so far, to put back
    try:
        for step in plans:
            _carry_out(step, paths, state, env, out, done)
    except (OSError, WiringError) as exc:
        _put_back(done, paths, before)
        if isinstance(exc, WiringError):
            raise
        raise WiringError(f"cannot write {exc.filename or 'a settings file'} "
                          f"({exc.strerror or exc}): nothing was changed") from None
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


def _put_back(done: list[tuple[SettingsFile, list[str]]], paths: Paths, state: dict) -> None:
    """Undo the writes of an install that could not finish, newest first."""
    for file, made in reversed(done):
        if file.data is None:
            file.target.unlink(missing_ok=True)
            files.remove_dirs(made)
        else:
            files.write(file.target, file.data, file.mode)
    save_state(paths, state)


def _carry_out(step: Plan, paths: Paths, state: dict, env: Mapping[str, str],
               out: Outcome, done: list[tuple[SettingsFile, list[str]]]) -> None:
    """Write one planned file (unless it is already so) and record it for uninstall; a file
    changed since its plan was read is planned again first."""
    for _ in range(REPLANS):
        if files.unchanged(step.file):
            break
        step = plan(step.tool, step.mod, step.file.path, step.wanted, step.earlier, env,
                    step.link)
    else:
        raise WiringError(f"{step.file.path} kept changing while aitrack wired it (is "
                          f"{step.mod.TITLE} writing it?): nothing was changed; run this again")
    path, file = step.file.path, step.file
    where = home_relative(path, env)
    out.data["files"][str(path)] = step.tool
    if step.new == file.data and step.mode == file.mode:
        state["files"][str(path)] = step.record
        return
    made = files.write(file.target, step.new, step.mode)
    done.append((file, made))
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


def agent_link(paths: Paths, profile: Profile, tool: str, secret: str | None) -> AgentLink:
    """What `tool`'s settings need to reach this user's agent: its headers helper when the
    tool runs one (then never the key itself), else the key, unless its settings take none
    (`TAKES_KEY = False`: no header setting; the agent admits it by the sender's user)."""
    helper = helper_file(paths, tool) if tool in helper_tools() else None
    takes_key = getattr(settings_module(tool), "TAKES_KEY", True)
    return AgentLink(agent.choose(paths, profile), agent.SECRET_HEADER,
                     None if helper or not takes_key else secret,
                     str(helper) if helper else None, agent.RUN_HEADER, profile.telemetry,
                     profile.attributes.get("environment"))


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


def plan(tool: str, mod: ModuleType, path: Path, wanted: dict, earlier: dict | None,
         env: Mapping[str, str], link: AgentLink) -> Plan:
    """The file with aitrack's keys set (and keys it set before but wants no more put back),
    and the record that undoes it; `earlier` is the record an earlier install saved."""
    record = json.loads(json.dumps(earlier)) if earlier else None
    file = files.read(mod, path)
    refused = files.writable_problem(file)
    if refused:
        raise mod.SettingsError(refused)
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
    notes = found_before(mod, doc, path, env, link) if not record["keys"] else []
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
    return Plan(tool, mod, file, record, doc.text().encode("utf-8"), mode, notes, wanted,
                earlier, link)


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


def found_before(mod: ModuleType, doc, path: Path, env: Mapping[str, str],
                 link: AgentLink) -> list[str]:
    """What the first install replaces that the user should know of (never a value)."""
    where = home_relative(path, env)
    found = mod.found(doc, link)
    notes = []
    for url_sent in dict.fromkeys(shown(d.url) for d in mod.destinations(doc.value(),
                                                                      link.url)):
        notes.append(f"{mod.TITLE} sent its telemetry to {url_sent} ({where}); it now goes to "
                     "the agent instead (put back at uninstall)")
    for key in found.replaced or []:
        notes.append(f"replaced your {key} in {where} (put back at uninstall)")
    if found.plaintext_headers:
        notes.append(f"a plaintext token was found in {where} "
                     f"({', '.join(found.plaintext_headers)}) and is no longer used: the "
                     "agent forwards with the token in your keychain (`aitrack token set`); "
                     "consider rotating the old one")
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


def write_helper(paths: Paths, tool: str, link: AgentLink) -> bool:
    """A tool's headers helper, which prints the agent's key (0700); whether it changed.
    It reads the key the agent makes at each start: a tool that runs a helper reads it
    afresh, so a key that leaked once stops working at the next agent start."""
    text = settings_module(tool).helper_script(link, agent.session_key_file(paths)).encode()
    target = helper_file(paths, tool)
    private_dir(target.parent)
    try:
        if target.read_bytes() == text and stat.S_IMODE(target.stat().st_mode) == 0o700:
            return False
    except OSError:
        pass
    files.write(target, text, 0o700)
    return True
