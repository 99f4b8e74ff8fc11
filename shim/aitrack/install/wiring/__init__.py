"""`aitrack agent install|uninstall`: the tools' own settings pointed at the agent, and back.

Install sets aitrack's keys in each tool's user settings file (what and where: the tools'
`adapters/<tool>/settings.py`), writes Claude Code's headers helper, and installs the
per-user service (install/service.py), or starts the agent detached where there is no
service manager. It is idempotent: a second install changes nothing and says so.

Uninstall puts the files back. A private state file (`<agent dir>/wiring.json`, 0600)
keeps, per file, its original bytes and mode and, per key aitrack set, the value it had
before (its text, as written in the file) and the value aitrack gave it. A file that is
still exactly as aitrack left it gets its original bytes back; one the user edited since
loses only aitrack's keys (a key the user changed is left, and said so); a file that did
not exist is removed again, with the directories aitrack made for it. The original bytes
may hold a token the user had there (a CloudWatch header, say): hence 0600.

What a tool's `adapters/<tool>/settings.py` provides (the wiring names no tool):
  TITLE, MISSING, SettingsError  its name; "no such key"; a file it cannot edit safely
  user_file(env) -> Path         the user's settings file aitrack edits
  settings_files(env) -> [str]   every file whose change may change `points_at_agent`
  parse(text, path) -> doc       a document with get/raw/set_raw/delete/keys/value/text
  raw(value) -> str              a value as the file's format writes it
  wanted(link) -> {path: value}  the keys that send its telemetry to the agent (AgentLink:
                                 port, key header, the key or the tool's headers helper)
  found(doc, link) -> Found      what the first install replaces (for a note, no values)
  diagnose(port, env), points_at_agent(port, env)
                                 whether the effective settings reach the agent, and why not
  stored_headers(env, own)       header names (never values) held in the user file: doctor
optional:
  TAKES_KEY                      False: its settings hold no header (the link's key is
                                 None; the agent admits it by the sender's user, peer uid)
  HOLDS_SECRET                   the file holds the agent's key: kept 0600 and the user's
  helper_name(), helper_script(link, secret_path)
                                 the tool reads its headers from a helper command: one script
                                 per tool, which prints the key (never written in its file)
  WIRED                          what `doctor` says of it once wired (default: it sends
                                 its telemetry to the agent)
  machine_snippet(link, os_name) what IT deploys machine-wide (no key: every user reads it)
  managed_file(env), managed_env(path), telemetry_off(env)
                                 its machine-wide settings file, for doctor

Settings that already send telemetry somewhere (a team's collector) are not cut off
silently: with a local-only profile install refuses, unless told to keep that telemetry
local (--keep-local) or to adopt that endpoint as the profile's (--adopt-endpoint); the
state file remembers what was replaced, and `aitrack doctor` warns while a local-only
profile keeps it. Install ends by saying where the telemetry goes.

This module does the whole of it (settings, then the service; the service, then the
settings); the parts:
  plan     wiring the settings: each file's new bytes and its record, then the writes
  adopt    the endpoint the settings sent to, made the profile's (its token to the keychain)
  restore  unwiring them from the records
  state    the state file, the wired tools, what a step reports
  files    reading and writing settings files safely
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from aitrack import adapters
from aitrack.capture import agent, spool
from aitrack.config import profile as profiles
from aitrack.config.paths import Paths
from aitrack.config.profile import Profile
from aitrack.install import service
from aitrack.install.wiring.adopt import make_profile_endpoint
from aitrack.install.wiring.plan import destination, wire, write_helper
from aitrack.install.wiring.restore import unwire
from aitrack.install.wiring.state import (
    TOOLS,
    Outcome,
    WiringError,
    choose_agent,
    helper_file,
    installed,
    lock_file,
    opted_out,
    settings_module,
    state_file,
    titles,
)

__all__ = ["TOOLS", "Outcome", "WiringError", "choose_agent", "helper_file", "install",
           "installed", "opted_out", "settings_module", "state_file", "uninstall", "unwire",
           "wire", "write_helper"]


def install(paths: Paths, profile: Profile, env: Mapping[str, str] | None = None,
            use_service: bool = True, keep_local: bool = False, adopt_endpoint: bool = False,
            account: str = "default", statusline: bool | None = None) -> Outcome:
    """Wire every tool, then install and start the per-user service (or, with no service
    manager or `use_service` False, start the agent detached). Settings that send telemetry
    elsewhere are refused with a local-only profile, unless `keep_local`, or
    `adopt_endpoint` makes that endpoint the profile's (its token in keychain `account`)."""
    env = os.environ if env is None else env
    url = agent.url(agent.choose(paths, profile))  # this user's port (chosen now if new)
    adopted: list[str] = []
    if adopt_endpoint:
        adopted = make_profile_endpoint(paths, env, url, account)
        profile = profiles.load(paths, dict(env))
    out = wire(paths, profile, env, keep_local=keep_local, statusline=statusline)
    choose_agent(paths, True)
    out.lines[:0] = adopted
    out.changed |= bool(adopted)
    manager = service.detect(env) if use_service else None
    out.data["service"] = manager.name if manager else None
    if manager is not None:
        try:
            changed, lines = manager.install(paths, profile)
        except service.ServiceError as exc:
            raise WiringError(f"{exc}; the settings are wired: run `aitrack agent install` "
                              "again once it is fixed, or `aitrack agent start`") from None
        out.changed |= changed
        if changed or out.changed:
            out.lines += lines
    else:
        out.add(_start_detached(paths, profile, use_service))
    if not out.changed:
        out.lines = ["already installed: nothing changed (the tools' settings point at the "
                     f"agent on {url}, and it is running)"]
    out.lines.append(f"from now on the telemetry of {titles()} goes to the agent on {url}, "
                     f"which records it in your ledger and {destination(profile)}")
    out.data["forwards_to"] = profile.endpoint.url if profile.endpoint else None
    return out


def _start_detached(paths: Paths, profile: Profile, use_service: bool) -> Outcome:
    """No service: the agent started now, and by the wrapper whenever it is down."""
    try:
        line = agent.start_detached(paths, profile)
    except agent.AgentError as exc:
        raise WiringError(f"{exc} (the settings are wired)") from None
    if "already running" in line:
        return Outcome()
    why = "no service manager here (a container or CI?)" if use_service else \
        "no service (--no-service)"
    wrapped = " or ".join(f"`aitrack {tool}`" for tool in adapters.TOOLS)
    return Outcome(True, [line, f"{why}: the next {wrapped} starts the agent whenever it is "
                          "down; so does `aitrack agent start`"])


def uninstall(paths: Paths, env: Mapping[str, str] | None = None) -> Outcome:
    """Stop the agent, remove the service, put the settings files back."""
    env = os.environ if env is None else env
    out = Outcome()
    manager = service.for_platform(env)
    if manager is not None and manager.installed(paths):
        if manager.available():
            try:
                changed, lines = manager.uninstall(paths)
            except service.ServiceError as exc:
                out.lines.append(f"{exc}: remove {manager.file(paths)} by hand")
                changed, lines = False, []
        else:  # its manager is not running here: the files are all there is
            for made in manager.made(paths):
                made.unlink(missing_ok=True)
            changed, lines = True, [f"removed {manager.file(paths)}"]
        out.changed |= changed
        out.lines += lines
    if agent.stop(paths):
        out.changed = True
        out.lines.append("stopped the agent")
    out.add(unwire(paths, env))
    secret = agent.secret_file(paths)
    if secret.exists():  # the agent's keys: nothing may use them once the settings are back
        secret.unlink()
        out.changed = True
        out.lines.append(f"removed the agent's key ({secret})")
    for leftover in (agent.session_key_file(paths), lock_file(paths)):
        leftover.unlink(missing_ok=True)  # the per-start key; the lock of the last install
    spool.remove(paths.state_dir)  # the shims' tickets: the tools' runs go through Python
    try:
        agent.agent_dir(paths).rmdir()  # gone when nothing else of the agent's is in it
    except OSError:
        pass
    return out
