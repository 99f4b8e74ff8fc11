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
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from aitrack.adapters.endpoints import AgentLink, shown
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


def wire(paths: Paths, profile: Profile, env: Mapping[str, str] | None = None) -> Outcome:
    """Point every tool's user settings at the agent (idempotent)."""
    env = os.environ if env is None else env
    secret = agent.ensure_secret(paths)
    agent.choose(paths, profile)  # this user's port, remembered when chosen now
    try:
        with files.locked(lock_file(paths)):
            return _wire(paths, profile, env, secret)
    except TimeoutError as exc:
        raise WiringError(str(exc)) from None


def _wire(paths: Paths, profile: Profile, env: Mapping[str, str], secret: str) -> Outcome:
    state = load_state(paths)
    plans, problems = [], []
    for tool in TOOLS:
        mod = settings_module(tool)
        path = mod.user_file(env)
        record = state["files"].get(str(path))
        try:
            link = agent_link(paths, profile, tool, secret)
            plans.append(plan(tool, mod, path, mod.wanted(link), record, env, link))
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
    if found.endpoint:
        notes.append(f"{mod.TITLE} sent its telemetry to {shown(found.endpoint)} ({where}); "
                     "it now goes to the agent, which forwards to your profile's endpoint")
    for key in found.replaced or []:
        notes.append(f"replaced your {key} in {where} (put back at uninstall)")
    if found.plaintext_headers:
        notes.append(f"a plaintext token was found in {where} "
                     f"({', '.join(found.plaintext_headers)}) and is no longer used: the "
                     "agent forwards with the token in your keychain (`aitrack token set`); "
                     "consider rotating the old one")
    return notes


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
