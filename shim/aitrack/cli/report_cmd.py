"""`aitrack report`: usage and cost summaries from the local ledger.

Every command's start imports this module (cli/__init__ registers them all), and a report's
modules cost ~45 ms: they are imported inside the functions that use them ("lazy").
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from aitrack import adapters
from aitrack.cli.common import UserError, color_option, load_profile, parse_date

if TYPE_CHECKING:
    from aitrack.config.paths import Paths
    from aitrack.domain.pricing import PriceTable
    from aitrack.reports.periods import Options

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def filter_options(command):
    """The options that choose sessions, shared by `report` and `dashboard`."""
    for option in reversed((
        click.option("--since", callback=parse_date, metavar="YYYY-MM-DD",
                     help="First day (inclusive)."),
        click.option("--until", callback=parse_date, metavar="YYYY-MM-DD",
                     help="Last day (inclusive)."),
        click.option("--last", type=click.IntRange(min=1), metavar="N",
                     help="The last N days, today included."),
        click.option("--tool", metavar="NAME",
                     help=f"Only this tool: {', '.join(adapters.TOOLS)}, or a run --name."),
        click.option("--project", metavar="DIR|NAME",
                     help="Only sessions run in this directory (or its git work tree), or "
                          "with this project name."),
        click.option("--timezone", "tz_name", metavar="IANA",
                     help="Cut days in this zone, e.g. Europe/Berlin (default: the system "
                          "zone)."),
    )):
        command = option(command)
    return command


def build_options(kind: str, since, until, last: int | None, tz_name: str | None,
                  **kw) -> Options:
    """periods.Options from the command line, or a one-line error."""
    from aitrack.reports import periods  # lazy: see the module docstring

    if last is not None and (since or until):
        raise UserError("--last cannot be combined with --since/--until")
    if since and until and since > until:
        raise UserError(f"--since {since} is after --until {until}")
    if tz_name:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # lazy: as above

        try:
            tz = ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise UserError(f"unknown time zone {tz_name!r}: use an IANA name like "
                            "Europe/Berlin or UTC") from None
    else:
        tz, tz_name = periods.system_zone()
    return periods.Options(kind=kind, tz=tz, tz_name=tz_name, since=since, until=until,
                           last=last, **kw)


def check_ledger(path: Path) -> None:
    """A ledger a report cannot read (damaged, a directory) as one line naming the fix."""
    from aitrack.reports.readonly import LedgerError, open_ledger  # lazy: as above

    try:
        db = open_ledger(path)
    except LedgerError as exc:
        raise UserError(str(exc)) from None
    if db is not None:
        db.close()


def ready_ledger(no_import: bool) -> tuple[Paths, PriceTable]:
    """aitrack's paths, the ledger checked (a damaged one: one line, before an import) and
    brought up to date with the tools' transcripts unless --no-import; the profile's prices."""
    from aitrack.config import paths  # lazy: see the module docstring
    from aitrack.domain import pricing  # lazy: as above

    where = paths.resolve()
    check_ledger(where.ledger)
    profile = load_profile()
    if not no_import:
        from aitrack.store import importer  # lazy: as above, and not for --no-import

        importer.before_report(where.ledger, profile)
    return where, pricing.load(profile.prices)


@click.command("report", context_settings={"max_content_width": 100})
@click.argument("kind", required=False, default="daily",
                type=click.Choice(["daily", "weekly", "monthly", "session", "model",
                                   "project", "blocks"]))
@filter_options
@click.option("--model", metavar="PATTERN", help="Only models matching this glob, e.g. 'claude-*'.")
@click.option("--breakdown", is_flag=True,
              help="A sub-row per model (daily, weekly, monthly, session, project).")
@click.option("--by-tool", is_flag=True,
              help="A sub-row per tool (daily, weekly, monthly): claude, codex...")
@click.option("--json", "as_json", is_flag=True, help="JSON (documented in the README).")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with one header line.")
@click.option("--order", type=click.Choice(["asc", "desc"]),
              help="Row order (default: oldest first; sessions newest first; models by cost).")
@click.option("--limit", type=click.IntRange(min=0), metavar="N",
              help="At most N rows, the first in the report's order; the totals still cover "
                   "every match. 0: all. Default: all, but the newest 50 in a session table "
                   "on a terminal (a file or a pipe gets every row).")
@click.option("--week-start", type=click.Choice(WEEKDAYS),
              help="First day of a week for `weekly` (default: monday).")
@click.option("--width", type=click.IntRange(min=20), metavar="COLUMNS",
              help="Lay the table out for this many columns (default: the terminal's width; "
                   "every column in a file or a pipe).")
@click.option("--no-import", is_flag=True,
              help="Do not import what is new in the tools' transcripts first "
                   "(`aitrack import`); show the ledger as it is.")
@click.option("--token-limit", metavar="N|max",
              help="blocks: compare each window with N tokens, or with the largest so far.")
@click.option("--active", "active_only", is_flag=True,
              help="blocks: only the windows open now.")
@color_option
def report(kind: str, since, until, last: int | None, tool: str | None, model: str | None,
           project: str | None, tz_name: str | None, breakdown: bool, as_json: bool,
           as_csv: bool, order: str | None, limit: int | None, week_start: str | None,
           width: int | None, no_import: bool, color: str, by_tool: bool,
           token_limit: str | None, active_only: bool) -> None:
    """Token usage and cost per day, week, month, session, model, project or billing window.

    Costs are what the tool reported (Claude) or estimated from list prices (Codex);
    a model without a price shows `unpriced` (or a * on a partial sum) and is named below
    the table. The session table shows each session's tool, exit status, duration, entry
    point and sources; the model report adds the tools' acceptance of tool uses.

    \b
    Examples:
      aitrack report                          # daily, all time
      aitrack report weekly --last 28         # the last four weeks
      aitrack report monthly --since 2026-01-01 --breakdown
      aitrack report session --last 7 --tool codex
      aitrack report session --last 30 --limit 0   # every session, not the newest 50
      aitrack report model --project .        # this repository, per model
      aitrack report project --last 30        # cost per project
      aitrack report weekly --by-tool         # a sub-row per tool
      aitrack report blocks --active --token-limit max   # this 5-hour window so far
      aitrack report daily --timezone America/New_York --json
      aitrack report session > sessions.txt   # a file gets every column and row
      aitrack report --color=always | less -R

    Exits 1 when --project or --tool names nothing in the ledger (the names it holds are
    listed, near matches first).
    """
    from aitrack.reports import readonly, tables  # lazy: see the module docstring
    from aitrack.reports.layout import wants_color  # lazy: as above

    if as_json and as_csv:
        raise UserError("choose one of --json and --csv")
    if kind == "blocks" or token_limit or active_only:
        _check_blocks(kind, token_limit, active_only, breakdown, by_tool, as_csv, order, limit)
    if week_start and kind != "weekly":
        raise UserError(f"--week-start applies to `aitrack report weekly` only, not {kind}")
    if breakdown and kind == "model":
        raise UserError("--breakdown gives a sub-row per model: a model report has one row "
                        "per model already")
    if width and (as_json or as_csv):
        raise UserError("--width lays out the table: JSON and CSV have no width")
    if by_tool and kind not in ("daily", "weekly", "monthly"):
        raise UserError(f"--by-tool gives a sub-row per tool in daily, weekly and monthly "
                        f"reports, not {kind}")
    if by_tool and breakdown:
        raise UserError("choose one of --by-tool and --breakdown: a sub-row per tool or per "
                        "model")
    opts = build_options(kind, since, until, last, tz_name, tool=tool, model=model,
                         project=project, breakdown=breakdown, by_tool=by_tool, order=order,
                         limit=limit,
                         week_start=WEEKDAYS.index(week_start or "monday"))
    where, prices = ready_ledger(no_import)
    fmt = "json" if as_json else "csv" if as_csv else "table"
    if kind == "blocks":
        from aitrack.reports import blocks  # lazy: as above

        try:
            blocks.run(where.ledger, opts, prices, fmt, active_only, token_limit,
                       width or (_columns() if sys.stdout.isatty() else None),
                       wants_color(sys.stdout, color))
        except readonly.LedgerError as exc:
            raise UserError(str(exc)) from None
        return
    try:
        found = tables.run(where.ledger, opts, prices, fmt, width=width,
                           color=wants_color(sys.stdout, color))
    except readonly.LedgerError as exc:
        raise UserError(str(exc)) from None
    if not found:
        raise SystemExit(1)


def register(cli: click.Group) -> None:
    cli.add_command(report)


def _columns() -> int:
    import shutil  # lazy: as above

    return shutil.get_terminal_size((80, 24)).columns


def _check_blocks(kind: str, token_limit: str | None, active_only: bool, breakdown: bool,
                  by_tool: bool, as_csv: bool, order: str | None, limit: int | None) -> None:
    """`report blocks` takes its own options, and only it takes them."""
    if kind != "blocks":
        raise UserError(f"--token-limit and --active are for `aitrack report blocks`, not {kind}")
    given = [name for name, on in (("--breakdown", breakdown), ("--by-tool", by_tool),
                                   ("--csv", as_csv), ("--order", order),
                                   ("--limit", limit is not None)) if on]
    if given:
        raise UserError(f"{', '.join(given)} do{'es' if len(given) == 1 else ''} not apply to "
                        "`aitrack report blocks` (a row per billing window, oldest first)")
    if token_limit is not None and token_limit != "max" and not (
            token_limit.isdigit() and int(token_limit) > 0):
        raise UserError(f"--token-limit {token_limit}: give a number of tokens, or max (the "
                        "largest window so far)")
