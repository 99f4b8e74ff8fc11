"""Help entries for the wrapped tools, one per registered tool, and `aitrack run`. Real runs
are dispatched in entry.py, before click."""

from __future__ import annotations

import click

from aitrack import adapters
from aitrack.capture.wrap import main

PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": True,
                "help_option_names": []}


def _run(tool: str, args: list[str]) -> None:
    raise SystemExit(main(tool, args))


def tool_command(tool: str) -> click.Command:
    """`aitrack TOOL ARGS...`: every argument goes to the tool (its --help too)."""
    adapter = adapters.load(tool)

    def run_tool(args: tuple[str, ...]) -> None:
        _run(tool, list(args))

    help_text = (f"Run {adapter.TITLE}, tracked. Every argument goes to {adapter.EXECUTABLE} "
                 f"unchanged.\n\n\b\nExample:\n  aitrack {tool} {adapter.EXAMPLE}\n")
    return click.command(tool, context_settings=PASS_THROUGH, help=help_text)(
        click.argument("args", nargs=-1, type=click.UNPROCESSED)(run_tool))


@click.command("run", context_settings={"ignore_unknown_options": True})
@click.option("--name", help="Tool name for the ledger (default: the command's name).")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(name: str | None, command: tuple[str, ...]) -> None:
    """Run any OTLP-emitting command with the standard OTEL_* variables, tracked.

    \b
    Example:
      aitrack run --name mytool -- mytool -p "hello"
    """
    _run("run", (["--name", name] if name else []) + ["--", *command])


def register(cli: click.Group) -> None:
    for tool in adapters.TOOLS:
        cli.add_command(tool_command(tool))
    cli.add_command(run)
