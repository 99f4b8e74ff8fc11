"""`aitrack statusline`: Claude Code's status line from the ledger.

Run directly by entry.py, before click (Claude Code waits for it at every update); this
command is its help and its place in `aitrack --help`.
"""

from __future__ import annotations

import sys

import click


@click.command("statusline")
def statusline() -> None:
    """Claude Code's status line: this session's cost, today's, and your budget.

    Claude Code runs it with the session's details as JSON on stdin and shows what it
    prints under the prompt: `$0.42 this session · $3.10 today · 16% of the $20.00 daily
    budget`. The figures are the ledger's, as `aitrack report` counts them; the budget is
    the profile's `[budget] daily_usd` and `monthly_usd`. `aitrack agent install
    --statusline` sets it as Claude Code's `statusLine`.

    \b
    Example:
      echo '{"session_id": "84f0c2d4-..."}' | aitrack statusline
    """
    from aitrack.reports.statusline import main  # lazy: click loads every command

    raise SystemExit(main([], sys.stdin, sys.stdout))


def register(cli: click.Group) -> None:
    cli.add_command(statusline)
