"""Checks of the per-user agent: whether it runs, and whether the tools' settings point at it."""

from __future__ import annotations

import os

from aitrack import adapters
from aitrack.capture import agent
from aitrack.capture.loopback import SECRET_HEADER
from aitrack.config import private_files
from aitrack.install import service, shims, wiring
from aitrack.install.doctor.check import FAIL, PASS, WARN, Check, Context
from aitrack.install.wiring.state import load_state


def check_agent(ctx: Context) -> Check:
    """Whether the agent runs on its port, or who else holds it (asked of the OS, never of
    what answers there)."""
    port = agent.agent_port(ctx.paths, ctx.profile)
    wired = wiring.installed(ctx.paths)
    if port is None:  # no port chosen: never installed
        return _not_installed(ctx, {"port": None, "port_owner": None, "installed_for": wired,
                                    "points_at_agent": []})
    pointed = [t for t in wiring.TOOLS
               if wiring.settings_module(t).points_at_agent(port, ctx.env)]
    check = agent.check_port(port, agent.read_secret(ctx.paths), ctx.paths)
    found = check.state
    data = {"port": port, "port_owner": found, "installed_for": wired,
            "points_at_agent": pointed,
            "holder": {"uid": check.owner.uid, "pid": check.owner.pid} if check.owner else None}
    if found == "foreign":  # always a FAIL: the tools' telemetry would go to that user
        return Check("agent", FAIL, f"port {port} is held by {check.owner.named()}, another "
                     "user, not your agent: aitrack sends it nothing"
                     + (f"; {', '.join(pointed)} send their telemetry there (without the "
                        "key where a helper gives it)" if pointed else ""),
                     "ask them (or an admin) to free the port, or give your agent another: "
                     "`[agent] port = N` in your profile (IT: `[agent] port_base` in the "
                     "managed profile), then `aitrack agent install`", data=data)
    if found == "other":  # a FAIL only for a user whose tools count on the agent
        where = f" (pid {check.owner.pid})" if check.owner and check.owner.pid else ""
        return Check("agent", FAIL if wired or pointed else WARN,
                     f"port {port} is used by another program of yours{where}, not aitrack's "
                     "agent, so the agent cannot run"
                     + (f" ({', '.join(pointed)} send their telemetry there)" if pointed else ""),
                     "stop that program, or choose another port with `[agent] port = N` in "
                     "your profile (IT: the managed profile), then `aitrack agent install`",
                     data=data)
    if found == "agent":
        return Check("agent", PASS, f"running on {agent.url(port)}", data=data)
    if not wired and not pointed:
        return _not_installed(ctx, data)
    manager = service.detect(ctx.env)
    why = (f" ({manager.how_to_debug(ctx.paths)} says why it stopped)"
           if manager is not None and manager.installed(ctx.paths) else "")
    if not wired:
        return Check("agent", WARN, f"{', '.join(pointed)} send their telemetry to "
                     f"{agent.url(port)} (machine settings), but your agent is not installed",
                     "run `aitrack agent install`", data=data)
    return Check("agent", WARN, "the agent is not running: runs started outside aitrack "
                 "(IDEs, desktop apps) are not recorded until it is back",
                 f"run `aitrack agent start`{why}; `aitrack {'|'.join(adapters.TOOLS)}` also "
                 "starts it", data=data)


def _not_installed(ctx: Context, data: dict) -> Check:
    """The agent by default: a WARN until it is installed or declined."""
    if wiring.opted_out(ctx.paths):
        return Check("agent", PASS, "not installed, as you chose (`aitrack setup "
                     "--no-agent`): only runs through `aitrack` or the shims are recorded",
                     data=data)
    return Check("agent", WARN, "not installed: runs started from IDEs and desktop apps "
                 "are not recorded, and Codex's own telemetry never reaches the org",
                 "run `aitrack agent install` (or `aitrack setup --no-agent` to go "
                 "without it)", data=data)


def check_agent_settings(ctx: Context) -> Check:
    """The tools' settings still point at the agent, and a settings file that holds its key
    is private."""
    port = agent.agent_port(ctx.paths, ctx.profile) or 0
    wired = wiring.installed(ctx.paths)
    problems, fixes, details = [], [], []
    status = PASS
    for tool in wiring.TOOLS:
        mod = wiring.settings_module(tool)
        why = mod.diagnose(port, ctx.env)
        details.append(f"{tool}: " + (f"not pointed at the agent: {why}" if why else getattr(
            mod, "WIRED", "sends its telemetry to the agent")))
        if why and tool in wired:
            status = WARN
            problems.append(f"{mod.TITLE}'s settings no longer send its telemetry to the "
                            f"agent: {why}")
            fixes.append("run `aitrack agent install` again")
    data: dict = {"installed_for": wired}
    keepers = []  # (title, file) of the settings files that hold the agent's key
    for tool in wiring.TOOLS:
        mod = wiring.settings_module(tool)
        if not getattr(mod, "HOLDS_SECRET", False):
            continue
        path = mod.user_file(ctx.env)
        holds_key, loose = _key_file(path)
        data[f"{tool}_config_holds_key"] = holds_key
        if holds_key:
            keepers.append((mod.TITLE, path))
        if loose:
            status = FAIL
            problems.append(loose[0])
            fixes.append(loose[1])
    replaced = load_state(ctx.paths).get("replaced", []) if wired else []
    if replaced and ctx.profile.endpoint is None:  # install --keep-local: say it while it lasts
        status = FAIL if status == FAIL else WARN
        sent = ", ".join(dict.fromkeys(f"{r['tool']} to {r['endpoint']}" for r in replaced))
        problems.append(f"the telemetry these settings sent elsewhere ({sent}) goes to the "
                        "agent, which keeps it on this machine (your profile has no endpoint): "
                        "that endpoint receives nothing from here")
        fixes.append("`aitrack agent install --adopt-endpoint` forwards there again (ask IT "
                     "for a profile with the org's endpoint otherwise); `aitrack agent "
                     "uninstall` puts the settings back")
        data["replaced"] = replaced
    if problems:
        return Check("agent-settings", status, "; ".join(problems), "; ".join(
            dict.fromkeys(fixes)), details, data)
    if not wired:
        return Check("agent-settings", PASS, "aitrack has not wired the tools' settings "
                     "(`aitrack agent install`)", None, details, data)
    titles = [wiring.settings_module(tool).TITLE for tool in wiring.TOOLS]
    kept = "".join(f" ({title}'s {path.name}, which holds its key, is 0600)"
                   for title, path in keepers)
    return Check("agent-settings", PASS, f"{shims.listed(titles)} send their telemetry to the "
                 f"agent{kept}", None, details, data)


def _key_file(path) -> tuple[bool, tuple[str, str] | None]:
    """Whether a settings file holds the agent's key, and if others can read or own it, the
    problem and its fix."""
    try:
        holds_key = SECRET_HEADER in path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        holds_key = False
    if not (holds_key and private_files.POSIX):
        return holds_key, None
    st = os.stat(path)
    if st.st_uid != os.geteuid():
        return True, (f"{path} holds the agent's key but belongs to uid {st.st_uid}",
                      f"`sudo chown $USER {path}` and `chmod 600 {path}`")
    if st.st_mode & 0o077:
        return True, (f"{path} holds the agent's key and other users can read it "
                      f"(mode {st.st_mode & 0o777:o})", f"`chmod 600 {path}`")
    return True, None
