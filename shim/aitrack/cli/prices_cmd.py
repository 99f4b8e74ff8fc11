"""`aitrack prices`: the price a model gets, and the price-table row and rule behind it."""

from __future__ import annotations

import sqlite3
from typing import Any

import click

from aitrack import adapters
from aitrack.cli.common import UserError, echo_json, load_profile, say, storage_problem
from aitrack.config import paths
from aitrack.domain import pricing
from aitrack.domain.display import MAX_LINE, safe
from aitrack.domain.pricing import PriceTable
from aitrack.reports import queries
from aitrack.reports.readonly import LedgerError, open_ledger

KEYS = ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h")


def usd(value: float) -> str:
    """A per-million price with at least two decimals and no float noise: 0.005, 3.125, 4.00."""
    text = f"{value:.4f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def _rates(p: Any) -> dict[str, float]:
    return {key: getattr(p, key) for key in KEYS}


def describe(table: PriceTable, model: str, origins: dict[str, str] | None = None,
             reported_by: list[str] | None = None) -> dict:
    """What `aitrack prices` says about one model, as the JSON it prints; `reported_by`: the
    tools that reported a cost of their own for it, in the ledger."""

    price = table.price_for(model)
    out: dict[str, Any] = {"model": model, "priced": price is not None,
                           "reported_by": list(reported_by or [])}
    if price is None:
        found = table.resolve(model)
        name = found.row if found else table.canonical(model)
        if found:
            reason = (f'your profile\'s [prices."{found.row}"] needs both an input and an '
                      "output price")
        elif name.endswith("-fast") and table.price_for(name.removesuffix("-fast")):
            reason = (f"no row for this fast mode ({name.removesuffix('-fast')}'s standard "
                      "price does not apply to it)")
        else:
            reason = "no price row matches this name"
        out.update(row=found.row if found else None, rule=found.rule if found else None,
                   reason=reason, snippet=None if found else pricing.snippet(name))
        return out
    out.update(row=price.row, rule=price.rule, source=price.source, party=price.party,
               ref=price.ref, checked=price.checked, note=price.note,
               profile_keys=list(price.profile_keys),
               profile_origin=(origins or {}).get(f"prices.{price.row}"),
               usd_per_million=_rates(price),
               long_context=None if price.long is None else {
                   "above_prompt_tokens": price.long.above, "usd_per_million": _rates(price.long)})
    return out


def render(entries: list[dict], as_of: str | None, stale: str | None) -> str:
    lines = [f"Prices in USD per million tokens; built-in table as of {as_of}."]
    if stale:
        lines.append(stale)
    for e in entries:
        lines += ["", safe(e["model"])]
        if not e["priced"]:
            lines.append(f"  unpriced  {e['reason']}: reports show its cost as `unpriced`, "
                         "never $0")
            for tool in e["reported_by"]:
                lines.append(f"  reported  {_title(tool)} reported a cost for it: that is "
                             f"{_title(tool)}'s own estimate, which reports count (aitrack "
                             "has no price to check it against)")
            if e["row"]:
                lines.append(f"  matched   row {e['row']} ({e['rule']})")
            if e["snippet"]:
                lines.append("  add its list prices to your profile (`aitrack paths` shows "
                             "where):")
                lines += [f"    {line}" for line in e["snippet"].splitlines()]
            continue
        rule = "exact name" if e["rule"] == "exact" else e["rule"]
        lines.append(f"  row       {e['row']} ({rule})")
        lines.append(f"  price     {_line(e['usd_per_million'])}")
        if e["long_context"]:
            tier = e["long_context"]
            lines.append(f"  long      {_line(tier['usd_per_million'])} for a request whose "
                         f"prompt is above {tier['above_prompt_tokens']:,} tokens")
        lines.append(f"  source    {_source(e)}")
        if e["note"]:
            lines.append(f"  note      {e['note']}")
    # model names come from transcripts and telemetry: escaped and capped (display.py)
    return "\n".join(safe(line, MAX_LINE) for line in lines)


def _title(tool: str) -> str:
    """A tool as people call it ("Claude Code"), from its adapter; else its name."""
    settings = adapters.part(tool, "settings") if tool in adapters.TOOLS else None
    return getattr(settings, "TITLE", tool)


def _line(r: dict[str, float]) -> str:
    writes = (f"cache write {usd(r['cache_write_5m'])}"
              if r["cache_write_5m"] == r["cache_write_1h"] else
              f"cache write {usd(r['cache_write_5m'])} (5 min), {usd(r['cache_write_1h'])} (1 h)")
    return (f"input {usd(r['input'])}, output {usd(r['output'])}, "
            f"cache read {usd(r['cache_read'])}, {writes}")


def _source(e: dict) -> str:
    shipped = (f"{e['party']}, {e['ref']}, checked {e['checked']}" if e["party"]
               else "no built-in row")
    if e["source"] != "profile":
        return f"built-in, {shipped}"
    where = f"profile, {e['profile_origin']}" if e["profile_origin"] else "profile"
    if e["party"]:
        return f"{where}, sets {', '.join(e['profile_keys'])}; the rest built-in, {shipped}"
    return where


@click.command("prices", context_settings={"max_content_width": 100})
@click.argument("models", nargs=-1, metavar="[MODEL]...")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def prices(models: tuple[str, ...], as_json: bool) -> None:
    """The price each MODEL gets, and the price-table row and rule that matched it.

    Without MODEL: every model in your ledger. Profile prices ([prices."MODEL"]) apply and
    are shown as such. A model without a price shows as unpriced, with the profile snippet
    that adds it: until then reports show its cost as `unpriced`, never $0.

    \b
    Examples:
      aitrack prices                                   # every model you have used
      aitrack prices claude-opus-5-5 gpt-6.1-sol
      aitrack prices us.anthropic.claude-sonnet-4-5-20250929-v1:0
      aitrack prices --json | jq '.models[] | select(.priced | not)'
    """

    profile = load_profile()
    table = pricing.load(profile.prices)
    ledger = paths.resolve().ledger
    names = list(models)
    try:
        db = open_ledger(ledger)
        try:
            reported = queries.reported_by(db)
            if not names:
                names = queries.models(db)
        finally:
            if db is not None:
                db.close()
    except (sqlite3.Error, LedgerError) as exc:
        if not names:
            why = storage_problem(exc) or f"cannot read the ledger {ledger}: {exc} " \
                "(`aitrack doctor` checks it)"
            raise UserError(f"{why}; name models instead: aitrack prices MODEL...") from None
        reported = {}  # named models: their prices do not need the ledger
    entries = [describe(table, name, profile.origins, reported.get(name, []))
               for name in names]
    stale = pricing.stale_line(table.as_of)
    if as_json:
        echo_json({"prices_as_of": table.as_of, "stale": stale,
                   "ledger": None if models else str(ledger), "models": entries})
        return
    if not entries:
        say(f"No models yet: your ledger ({ledger}) has no usage. Name models to see "
            "their prices: aitrack prices MODEL...")
        return
    say(render(entries, table.as_of, stale))


def register(cli: click.Group) -> None:
    cli.add_command(prices)
