"""`aitrack setup`: a developer's whole set-up in one command: `aitrack`, `claude` and
`codex` on PATH (the shims), then the agent, unless declined.

It runs the two commands that do the work (`aitrack shims install`, `aitrack agent
install`) with their options, so what it says and how it fails are theirs.
"""

from __future__ import annotations

from pathlib import Path

import click

from aitrack.cli import agent_cmd, shims_cmd
from aitrack.cli.common import UserError


@click.command("setup")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help=shims_cmd.DIR_HELP)
@click.option("--no-agent", is_flag=True,
              help="Go without the agent: only runs through `aitrack` or the shims are "
                   "recorded (`aitrack doctor` stops suggesting it).")
@click.option("--no-service", is_flag=True,
              help="Install no service for the agent: start it now; the wrapper starts it "
                   "later.")
@click.option("--adopt-endpoint", is_flag=True,
              help="As `aitrack agent install --adopt-endpoint`: the collector the tools' "
                   "settings send to becomes your profile's endpoint.")
@click.option("--keep-local", is_flag=True,
              help="As `aitrack agent install --keep-local`.")
@click.option("--statusline", is_flag=True,
              help="As `aitrack agent install --statusline`: costs under Claude Code's prompt.")
@click.pass_context
def setup(ctx: click.Context, directory: Path | None, no_agent: bool, no_service: bool,
          adopt_endpoint: bool, keep_local: bool, statusline: bool) -> None:
    """Set aitrack up: `aitrack`, `claude` and `codex` on PATH, and the agent.

    Writes the shims (`aitrack shims install`: prints the PATH line to add when their
    folder is not first on PATH), then points Claude Code's and Codex's own settings at the
    per-user agent and starts it (`aitrack agent install`), so runs from IDEs and desktop
    apps are recorded too. --no-agent skips that and remembers the choice. Safe to run
    again.

    \b
    Examples:
      aitrack setup
      aitrack setup --no-agent
    """
    from aitrack.config import paths  # lazy: click loads every command for any command
    from aitrack.install import wiring  # lazy: as above

    if no_agent and (adopt_endpoint or keep_local or no_service or statusline):
        raise UserError("--no-agent installs no agent: --adopt-endpoint, --keep-local, "
                        "--no-service and --statusline are for the agent")
    ctx.invoke(shims_cmd.install, directory=directory)
    if no_agent:
        wiring.choose_agent(paths.resolve(), False)
        click.echo("aitrack: no agent, as asked: runs through `aitrack` or the shims are "
                   "recorded; `aitrack agent install` adds the others any time", err=True)
        return
    try:
        ctx.invoke(agent_cmd.install_cmd, no_service=no_service, adopt_endpoint=adopt_endpoint,
                   keep_local=keep_local, account="default",
                   statusline=True if statusline else None, as_json=False)
    except UserError as exc:
        raise UserError(f"the shims are installed, the agent is not: {exc.message}") from None


def register(cli: click.Group) -> None:
    cli.add_command(setup)
