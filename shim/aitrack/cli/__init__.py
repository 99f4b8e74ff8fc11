"""The command-line surface: thin click commands over plain functions."""

from __future__ import annotations

import click

from aitrack import __version__
from aitrack.cli import paths_cmd, profile_cmd, token_cmd, wrap_cmd
from aitrack.cli.common import AitrackGroup


@click.group(cls=AitrackGroup, invoke_without_command=True,
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


for module in (wrap_cmd, paths_cmd, profile_cmd, token_cmd):
    module.register(cli)

# One module per command family; a name without its module yet is skipped (being built).
for name in ("report_cmd", "flush_cmd", "doctor_cmd", "shims_cmd", "agent_cmd", "import_cmd",
             "prices_cmd", "dashboard_cmd", "setup_cmd", "statusline_cmd"):
    try:
        module = __import__(f"aitrack.cli.{name}", fromlist=["register"])
    except ModuleNotFoundError as exc:  # a command still being built
        if exc.name != f"aitrack.cli.{name}":
            raise
        continue
    module.register(cli)
