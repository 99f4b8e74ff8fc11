"""`aitrack agent`: the per-user agent that the tools' own settings send telemetry to.

The imports marked `lazy` load a command's work when it runs: click imports every command
module for any `aitrack` command, and the install layer would add ~75 ms to each.
"""

from __future__ import annotations

import sys

import click

from aitrack import adapters
from aitrack.cli.common import UserError, echo_json, load_profile, say

OS_NAMES = ("linux", "macos", "windows")


def _say(line: str) -> None:
    say(f"aitrack: {line}", err=True)


def _this_os() -> str:
    return "macos" if sys.platform == "darwin" else "windows" if sys.platform == "win32" \
        else "linux"


def _paths():
    from aitrack.config import paths  # lazy

    return paths.resolve()


@click.group("agent")
def agent_group() -> None:
    """The per-user agent: captures Claude Code and Codex runs from every front end.

    `aitrack agent install` points the tools' own settings at a small receiver on
    127.0.0.1 (your own port: chosen at install, or `[agent] port`) that runs as you, so
    runs started from
    VS Code, JetBrains, the desktop apps or Codex's background server are recorded and
    forwarded as well as those started through `aitrack claude|codex`.

    \b
    Examples:
      aitrack agent install          # wire both tools, install and start the service
      aitrack agent status --json
      aitrack agent uninstall        # settings files back exactly as they were
    """


@agent_group.command("run")
def run_cmd() -> None:
    """Run the agent in the foreground (what the service managers start).

    \b
    Example:
      aitrack agent run
    """
    from aitrack.capture.agent import server  # lazy

    raise SystemExit(server.run_foreground(_paths(), load_profile()))


@agent_group.command("start")
def start_cmd() -> None:
    """Start the agent in the background, unless it is running (its service when installed).

    \b
    Example:
      aitrack agent start
    """
    from aitrack.capture import agent  # lazy
    from aitrack.install import service  # lazy

    paths, profile = _paths(), load_profile()
    manager = service.detect()
    if manager is not None and manager.installed(paths):
        try:
            manager.start()
        except service.ServiceError as exc:
            raise UserError(str(exc)) from None
        _say(f"started the agent's {manager.name} service")
        return
    try:
        _say(agent.start_detached(paths, profile))
    except agent.AgentError as exc:
        raise UserError(str(exc)) from None


@agent_group.command("stop")
def stop_cmd() -> None:
    """Stop the agent (its service too, until the next login or `aitrack agent start`).

    While it is stopped both tools keep working; what they export meanwhile is lost, and
    recovered from their transcripts where they keep them.

    \b
    Example:
      aitrack agent stop
    """
    from aitrack.capture import agent  # lazy
    from aitrack.install import service  # lazy

    paths = _paths()
    manager = service.detect()
    stopped = False
    if manager is not None and manager.installed(paths) and manager.active():
        try:
            manager.stop()
            stopped = True
        except service.ServiceError as exc:
            _say(str(exc))
    stopped = agent.stop(paths) or stopped
    _say("stopped the agent" if stopped else "the agent was not running")


@agent_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status_cmd(as_json: bool) -> None:
    """Whether the agent runs, on which port, and what it has received.

    Exits 0 when it is running, 1 otherwise.

    \b
    Example:
      aitrack agent status --json
    """
    from aitrack.capture import agent, listener  # lazy
    from aitrack.install import service, wiring  # lazy

    paths, profile = _paths(), load_profile()
    info = dict(agent.status(paths, profile))
    manager = service.detect()
    info["service"] = ({"manager": manager.name, "installed": manager.installed(paths)}
                       if manager else None)
    port = info["port"]
    info["wired"] = {tool: bool(port) and wiring.settings_module(tool).points_at_agent(port)
                     for tool in wiring.TOOLS}
    if as_json:
        echo_json(info)
        raise SystemExit(0 if info["running"] else 1)
    if info["running"]:
        say(f"running on {info['url']} (pid {info.get('pid')}, version "
            f"{info.get('version')}, up {_uptime(info.get('uptime_s'))})")
        say(f"received {_payloads(info.get('received'))} from the tools since it "
            f"started; {_payloads(info.get('pending'))} waiting to be recorded"
            + (f", {_payloads(info.get('failed'))} it could not read"
               if info.get("failed") else ""))
    elif port is None:
        say("not installed: no port chosen yet (`aitrack agent install`)")
    elif info["port_owner"] in ("foreign", "other"):
        holder = info["holder"] or {}
        check = agent.PortCheck(info["port_owner"], listener.Owner(
            holder.get("uid"), holder.get("pid"), info["port_owner"] == "other"))
        say(f"FAIL: not running: {agent.held_by(check, port)}")
    else:
        say(f"not running (port {port})")
    if manager is not None:
        say(f"service: {manager.describe(paths)}"
            + ("" if info["service"]["installed"] else " (not installed)"))
    else:
        say("service: no service manager here (the wrapper starts the agent)")
    for tool, wired in info["wired"].items():
        say(f"{tool}: {'settings point at the agent' if wired else 'not wired'}")
    raise SystemExit(0 if info["running"] else 1)


def _payloads(n) -> str:
    return "? telemetry payloads" if n is None else \
        f"{n:,} telemetry payload{'' if n == 1 else 's'}"


def _uptime(seconds) -> str:
    if seconds is None:
        return "?"
    s = int(seconds)
    return f"{s} s" if s < 120 else f"{s // 60} min" if s < 7200 else f"{s // 3600} h"


def _report(outcome, as_json: bool) -> None:
    if as_json:
        echo_json({"changed": outcome.changed, "messages": outcome.lines, **outcome.data})
        return
    for line in outcome.lines:
        _say(line)


@agent_group.command("install")
@click.option("--no-service", is_flag=True,
              help="Install no service: start the agent now; the wrapper starts it later.")
@click.option("--adopt-endpoint", is_flag=True,
              help="Where the tools' settings send telemetry now (a team's collector) becomes "
                   "your profile's endpoint, its token moved to the keychain: the agent "
                   "forwards there.")
@click.option("--keep-local", is_flag=True,
              help="Where the tools' settings send telemetry now receives nothing more: with "
                   "a local-only profile it stays on this machine.")
@click.option("--account", default="default", show_default=True, metavar="NAME",
              help="Keychain account for the adopted endpoint's token.")
@click.option("--statusline/--no-statusline", default=None,
              help="Show `aitrack statusline` (this session's cost, today's, your budget) "
                   "under Claude Code's prompt, or stop (default: as the last install did).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def install_cmd(no_service: bool, adopt_endpoint: bool, keep_local: bool, account: str,
                statusline: bool | None, as_json: bool) -> None:
    """Point Claude Code's and Codex's own settings at the agent, and keep it running.

    Sets telemetry keys in the `env` block and `otelHeadersHelper` of
    ~/.claude/settings.json and the `[otel]` table of ~/.codex/config.toml (made 0600: it
    holds the agent's key), then installs the per-user service (systemd --user, a
    LaunchAgent, a logon Scheduled Task) and starts it. Idempotent; undone exactly by
    `aitrack agent uninstall`. Says where the telemetry goes from then on.

    When those settings send telemetry elsewhere already (a team's collector) and your
    profile has no endpoint, it refuses and changes nothing: --adopt-endpoint forwards there
    through the agent, --keep-local stops sending there.

    \b
    Examples:
      aitrack agent install
      aitrack agent install --adopt-endpoint   # keep feeding the collector you had
      aitrack agent install --statusline       # costs under Claude Code's prompt
      aitrack agent install --no-service       # containers, or your own supervisor
    """
    from aitrack.install import wiring  # lazy

    if adopt_endpoint and keep_local:
        raise UserError("choose one of --adopt-endpoint and --keep-local")
    try:
        outcome = wiring.install(_paths(), load_profile(), use_service=not no_service,
                                 keep_local=keep_local, adopt_endpoint=adopt_endpoint,
                                 account=account, statusline=statusline)
    except wiring.WiringError as exc:
        raise UserError(str(exc)) from None
    _report(outcome, as_json)


@agent_group.command("uninstall")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def uninstall_cmd(as_json: bool) -> None:
    """Stop the agent, remove its service and restore both tools' settings files.

    A file aitrack's keys were the only change to is restored byte for byte; in a file you
    edited since, only aitrack's keys go (a value you changed yourself stays, and is named).

    \b
    Example:
      aitrack agent uninstall
    """
    from aitrack.install import wiring  # lazy

    outcome = wiring.uninstall(_paths())
    _report(outcome, as_json)


@agent_group.command("print-settings")
@click.argument("tool", type=click.Choice(adapters.TOOLS))
@click.option("--port", type=click.IntRange(1024, 65535),
              help="The agent's port (default: the profile's [agent] port).")
@click.option("--os", "os_name", type=click.Choice(OS_NAMES),
              help="The machines' OS (default: this one's); it decides the helper's path.")
def print_settings_cmd(tool: str, port: int | None, os_name: str | None) -> None:
    """Print the machine-level settings IT deploys by MDM for every user of a machine.

    claude: the content of managed-settings.json, or better a drop-in
    managed-settings.d/aitrack.json next to it (Claude Code 2.1.83+). Its
    otelHeadersHelper runs each user's own helper from their home (written by `aitrack
    agent install` in their session), and sends no key for a user who has none.

    codex: an [otel] table for /etc/codex/config.toml. It carries no key (every user reads
    that file): see its comments and installers/README.md.

    \b
    Examples:
      aitrack agent print-settings claude > /etc/claude-code/managed-settings.d/aitrack.json
      aitrack agent print-settings codex --port 47400

    With per-user ports (no `[agent] port`), the claude snippet names no endpoint (each
    user's own settings do); codex needs one port: give --port.
    """
    from aitrack.adapters.endpoints import AgentLink  # lazy
    from aitrack.capture import agent  # lazy

    profile = load_profile()
    port = port or profile.agent.port  # one port for every user of the machine, or none
    if port is None and tool == "codex":
        raise UserError("Codex's machine-wide [otel] names one port for every user: set "
                        "`[agent] port = N` in the managed profile, or give --port")
    # a file every user reads: it names no key and no user's helper
    link = AgentLink(port, agent.SECRET_HEADER, None, None,
                     agent.RUN_HEADER, profile.telemetry, profile.attributes.get("environment"))
    settings = adapters.part(tool, "settings")
    if not hasattr(settings, "machine_snippet"):
        raise UserError(f"{tool} has no machine-wide settings aitrack can write")
    click.echo(settings.machine_snippet(link, os_name or _this_os()), nl=False)


def register(cli: click.Group) -> None:
    cli.add_command(agent_group)
