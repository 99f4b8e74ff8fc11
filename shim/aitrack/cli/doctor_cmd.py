"""`aitrack doctor`: every check on one screen, PASS/WARN/FAIL, with the fix.

The import marked `lazy` loads the checks when the command runs: click imports every command
module for any `aitrack` command, and the checks would add ~75 ms to each.
"""

from __future__ import annotations

import shutil

import click

from aitrack.cli.common import echo_json

COLOURS = {"PASS": "green", "WARN": "yellow", "FAIL": "red"}


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def doctor(ctx: click.Context, as_json: bool) -> None:
    """Check this machine's aitrack: profile, token, endpoint, tools, shims, ledger.

    Each check says PASS, WARN or FAIL and, unless it passed, how to fix it. Exits 0 when
    nothing FAILs, 1 otherwise. Never shows the token or header values.

    \b
    Examples:
      aitrack doctor
      aitrack doctor --json | jq '.checks[] | select(.status != "PASS")'
    """
    from aitrack.install import doctor as doc  # lazy

    checks = doc.run(debug=bool((ctx.obj or {}).get("debug")))
    failed = doc.worst(checks) == doc.FAIL
    if as_json:
        echo_json(doc.report(checks))
        raise SystemExit(1 if failed else 0)
    columns = max(shutil.get_terminal_size((100, 24)).columns, 60)
    for line in doc.text(checks, columns, paint):
        click.echo(line)
    raise SystemExit(1 if failed else 0)


def paint(status: str) -> str:
    return click.style(status, fg=COLOURS[status], bold=status != "PASS")


def register(cli: click.Group) -> None:
    cli.add_command(doctor)
