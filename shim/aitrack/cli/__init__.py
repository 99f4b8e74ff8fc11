"""The command-line surface: thin click commands over plain functions.

Each command family is a module of this package, loaded only when one of its commands runs
(or `--help` lists them): `aitrack statusline` must not pay for `doctor`'s imports. So a
command module imports its work at the top.
"""

from __future__ import annotations

import click

from aitrack import __version__, adapters
from aitrack.cli.common import AitrackGroup

# command name -> the module that registers it
COMMANDS = {
    **{tool: "wrap_cmd" for tool in (*adapters.TOOLS, "run")},
    "agent": "agent_cmd", "dashboard": "dashboard_cmd", "doctor": "doctor_cmd",
    "flush": "flush_cmd", "import": "import_cmd", "paths": "paths_cmd",
    "prices": "prices_cmd", "profile": "profile_cmd", "report": "report_cmd",
    "setup": "setup_cmd", "shims": "shims_cmd", "statusline": "statusline_cmd",
    "token": "token_cmd",
}


@click.group(cls=AitrackGroup, lazy=COMMANDS, invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="aitrack")
@click.option("--debug", is_flag=True, help="Show tracebacks for unexpected errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Run AI coding agents with usage tracking and org telemetry.

    \b
    Examples:
      aitrack claude -p "explain this repo"   # run Claude Code, tracked
      aitrack codex exec "fix the tests"      # run Codex, tracked
      aitrack report                          # your daily usage and cost
      aitrack doctor                          # what is wrong and how to fix it
    """
    ctx.obj = {"debug": debug}
    if ctx.invoked_subcommand is None:  # bare `aitrack`: the help, and no error
        click.echo(ctx.get_help())
