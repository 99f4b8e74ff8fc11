"""`aitrack report`: usage and cost summaries from the local ledger."""

from __future__ import annotations

import click

from aitrack.cli.common import UserError, load_profile

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _date(ctx: click.Context, param: click.Parameter, value: str | None):
    if value is None:
        return None
    from datetime import date

    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2026-01-31") from None


@click.command("report", context_settings={"max_content_width": 100})
@click.argument("kind", required=False, default="daily",
                type=click.Choice(["daily", "weekly", "monthly", "session", "model"]))
@click.option("--since", callback=_date, metavar="YYYY-MM-DD", help="First day (inclusive).")
@click.option("--until", callback=_date, metavar="YYYY-MM-DD", help="Last day (inclusive).")
@click.option("--last", type=click.IntRange(min=1), metavar="N",
              help="The last N days, today included.")
@click.option("--tool", metavar="NAME", help="Only this tool: claude, codex, or a run --name.")
@click.option("--model", metavar="PATTERN", help="Only models matching this glob, e.g. 'claude-*'.")
@click.option("--project", metavar="DIR|NAME",
              help="Only sessions run in this directory (or its git work tree), or with this "
                   "project name.")
@click.option("--timezone", "tz_name", metavar="IANA",
              help="Cut days in this zone, e.g. Europe/Berlin (default: the system zone).")
@click.option("--breakdown", is_flag=True, help="A sub-row per model.")
@click.option("--json", "as_json", is_flag=True, help="JSON (documented in the README).")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with one header line.")
@click.option("--order", type=click.Choice(["asc", "desc"]),
              help="Row order (default: oldest first; sessions newest first; models by cost).")
@click.option("--limit", type=click.IntRange(min=0), metavar="N",
              help="At most N rows, the first in the report's order; the totals still cover "
                   "every match. 0: all. Default: all, but the newest 50 in a session table.")
@click.option("--week-start", type=click.Choice(WEEKDAYS), default="monday", show_default=True,
              help="First day of a week for `weekly`.")
def report(kind: str, since, until, last: int | None, tool: str | None, model: str | None,
           project: str | None, tz_name: str | None, breakdown: bool, as_json: bool,
           as_csv: bool, order: str | None, limit: int | None, week_start: str) -> None:
    """Token usage and cost per day, week, month, session or model.

    Costs are what the tool reported (Claude) or estimated from list prices (Codex);
    models without a price show n/a and are named below the table.

    \b
    Examples:
      aitrack report                          # daily, all time
      aitrack report weekly --last 28         # the last four weeks
      aitrack report monthly --since 2026-01-01 --breakdown
      aitrack report session --last 7 --tool codex
      aitrack report session --last 30 --limit 0   # every session, not the newest 50
      aitrack report model --project .        # this repository, per model
      aitrack report daily --timezone America/New_York --json
    """
    from aitrack import paths, pricing, report_build
    from aitrack import report as rep

    if as_json and as_csv:
        raise UserError("choose one of --json and --csv")
    if last is not None and (since or until):
        raise UserError("--last cannot be combined with --since/--until")
    if since and until and since > until:
        raise UserError(f"--since {since} is after --until {until}")
    if tz_name:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            tz = ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise UserError(f"unknown time zone {tz_name!r}: use an IANA name like "
                            "Europe/Berlin or UTC") from None
    else:
        tz, tz_name = report_build.system_zone()
    opts = report_build.Options(kind=kind, tz=tz, tz_name=tz_name, since=since, until=until,
                                last=last, tool=tool, model=model, project=project,
                                breakdown=breakdown, order=order, limit=limit,
                                week_start=WEEKDAYS.index(week_start))
    prices = pricing.load(load_profile().prices)
    fmt = "json" if as_json else "csv" if as_csv else "table"
    rep.run(paths.resolve().ledger, opts, prices, fmt)


def register(cli: click.Group) -> None:
    cli.add_command(report)
