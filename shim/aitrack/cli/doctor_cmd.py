"""`aitrack doctor`: every check on one screen, PASS/WARN/FAIL, with the fix."""

from __future__ import annotations

import shutil
import sys
import textwrap

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
    from aitrack import __version__
    from aitrack.install import doctor as doc

    checks = doc.run(debug=bool((ctx.obj or {}).get("debug")))
    failed = doc.worst(checks) == doc.FAIL
    if as_json:
        echo_json({"aitrack": __version__, "python": sys.executable, "ok": not failed,
                   "status": doc.worst(checks), "checks": [c.as_dict() for c in checks]})
        raise SystemExit(1 if failed else 0)
    click.echo(f"aitrack {__version__} doctor ({sys.executable})")
    width = max(len(c.name) for c in checks)
    indent = " " * (4 + 2 + width + 2)
    columns = max(shutil.get_terminal_size((100, 24)).columns, 60)

    def say(first: str, text: str, more: str = indent, status: str | None = None) -> None:
        out = textwrap.fill(text, columns, initial_indent=first, subsequent_indent=more,
                            break_on_hyphens=False, break_long_words=False)
        if status:  # coloured after wrapping: escape codes have no width
            out = out.replace(status, click.style(status, fg=COLOURS[status],
                                                  bold=status != "PASS"), 1)
        click.echo(out)

    for c in checks:
        say(f"{c.status}  {c.name:<{width}}  ", c.summary, status=c.status)
        if c.status != "PASS":
            for line in c.details:
                say(f"{indent}- ", line, indent + "  ")
        if c.fix:
            say(f"{indent}fix: ", c.fix, indent + "     ")
    counts = {s: sum(c.status == s for c in checks) for s in ("FAIL", "WARN")}
    if any(counts.values()):
        click.echo(f"\n{counts['FAIL']} FAIL, {counts['WARN']} WARN: follow the fix lines above.")
    else:
        click.echo("\nall checks passed")
    raise SystemExit(1 if failed else 0)


def register(cli: click.Group) -> None:
    cli.add_command(doctor)
