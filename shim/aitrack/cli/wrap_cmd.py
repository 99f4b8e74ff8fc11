"""Help entries for the wrapped tools. Real runs are dispatched in entry.py, before click."""

from __future__ import annotations

import click

PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": True,
                "help_option_names": []}


def _run(tool: str, args: list[str]) -> None:
    from aitrack.capture.wrap import main

    raise SystemExit(main(tool, args))


@click.command("claude", context_settings=PASS_THROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def claude(args: tuple[str, ...]) -> None:
    """Run Claude Code, tracked. Every argument goes to claude unchanged.

    \b
    Example:
      aitrack claude -p "summarise the last commit" --max-turns 1
    """
    _run("claude", list(args))


@click.command("codex", context_settings=PASS_THROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def codex(args: tuple[str, ...]) -> None:
    """Run OpenAI Codex, tracked. Every argument goes to codex unchanged.

    \b
    Example:
      aitrack codex exec "fix the failing test"
    """
    _run("codex", list(args))


@click.command("run", context_settings={"ignore_unknown_options": True})
@click.option("--name", help="Tool name for the ledger (default: the command's name).")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(name: str | None, command: tuple[str, ...]) -> None:
    """Run any OTLP-emitting command with the standard OTEL_* variables, tracked.

    \b
    Example:
      aitrack run --name gemini -- gemini -p "hello"
    """
    _run("run", (["--name", name] if name else []) + ["--", *command])


def register(cli: click.Group) -> None:
    for command in (claude, codex, run):
        cli.add_command(command)
