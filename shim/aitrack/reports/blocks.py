"""`aitrack report blocks`: usage in each tool's billing windows (5 hours for Claude and
Codex subscriptions), as ccusage's `blocks` shows them, per tool.

A window starts at the hour of its first session (UTC, as the providers count) and lasts
the tool's BILLING_WINDOW_H (adapters); a session that starts after it ends, or after that
long without any, opens the next. The ledger keeps usage per session, not per request, so a
session counts whole in the window it started in (as every report counts it on the day it
started). The window open now is `active`: its burn rate is its usage over the time since
it opened, and the projection adds that rate until it closes. `--token-limit N|max` compares
each window with N tokens, or with the largest window so far.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from aitrack import adapters
from aitrack.domain.pricing import PriceTable
from aitrack.reports.exports import amount
from aitrack.reports.layout import Column, Style, draw
from aitrack.reports.periods import Options, time_range
from aitrack.reports.queries import model_sql, where_clause
from aitrack.reports.readonly import START_HINT, is_empty, open_ledger, reading
from aitrack.reports.rows import TOKEN_FIELDS, Figures
from aitrack.reports.sessions import session_rows
from aitrack.reports.text import duration, short, usd

HOUR = 3600


@dataclass
class Block:
    tool: str
    start: float  # UTC seconds, on the hour
    end: float
    last: float  # the last session start in it
    figures: Figures = field(default_factory=Figures)
    active: bool = False

    def burn(self, now: float) -> tuple[float, float | None] | None:
        """Tokens per minute and USD per hour since the window opened (active ones only)."""
        if not self.active:
            return None
        minutes = max(1.0, (now - self.start) / 60)
        cost = self.figures.cost_usd
        return self.figures.total / minutes, None if cost is None else cost / minutes * 60

    def projected(self, now: float) -> tuple[int, float | None] | None:
        """Tokens and cost when the window closes, at the burn rate."""
        rate = self.burn(now)
        if rate is None:
            return None
        left = max(0.0, self.end - now) / 60
        cost = self.figures.cost_usd
        return (round(self.figures.total + rate[0] * left),
                None if cost is None or rate[1] is None else cost + rate[1] * left / 60)


def window_hours(tool: str) -> float | None:
    """The tool's billing window (adapters), None for a tool that has none."""
    return adapters.load(tool).BILLING_WINDOW_H if tool in adapters.TOOLS else None


def build(db, opts: Options, prices: PriceTable, now: float) -> list[Block]:
    """Every window of the sessions the options select, oldest first, tool by tool."""
    lo, hi = time_range(opts)
    where, params = where_clause(opts, lo, hi)
    matching = f"FROM sessions s WHERE {where} {model_sql(opts)['session_model']}"
    facts, rows, _ = session_rows(db, replace(opts, breakdown=False), prices, matching, params)
    by_tool: dict[str, list[tuple[float, Figures]]] = {}
    for sid, fig, _ in rows:
        f = facts[sid]
        by_tool.setdefault(f["tool"], []).append((f["started_at"], fig))
    out: list[Block] = []
    for tool, sessions in sorted(by_tool.items()):
        hours = window_hours(tool)
        if hours:
            out += _windows(tool, sorted(sessions, key=lambda s: s[0]), hours * HOUR, now)
    return sorted(out, key=lambda b: (b.start, b.tool))


def _windows(tool: str, sessions: list[tuple[float, Figures]], span: float,
             now: float) -> list[Block]:
    blocks: list[Block] = []
    for started, fig in sessions:
        current = blocks[-1] if blocks else None
        if current is None or started >= current.end or started - current.last >= span:
            opened = math.floor(started / HOUR) * HOUR
            current = Block(tool, opened, opened + span, started)
            blocks.append(current)
        current.figures.add(fig)
        current.last = started
    if blocks and blocks[-1].start <= now < blocks[-1].end:
        blocks[-1].active = True
    return blocks


def limit_of(blocks: list[Block], token_limit: str | None) -> dict[str, int] | None:
    """Per tool, the token limit to compare with: N, or `max` (its largest closed window)."""
    if token_limit is None:
        return None
    if token_limit != "max":
        return {b.tool: int(token_limit) for b in blocks}
    found: dict[str, int] = {}
    for b in blocks:
        if not b.active:
            found[b.tool] = max(found.get(b.tool, 0), b.figures.total)
    return {t: n for t, n in found.items() if n}


def to_json(blocks: list[Block], opts: Options, now: float,
            limits: dict[str, int] | None) -> dict:
    def iso(ts: float) -> str:
        return datetime.fromtimestamp(ts, opts.tz).isoformat(timespec="seconds")

    out = []
    for b in blocks:
        f = b.figures
        rate, projected = b.burn(now), b.projected(now)
        row = {"tool": b.tool, "start": iso(b.start), "end": iso(b.end),
               "last_session_at": iso(b.last), "active": b.active,
               "remaining_s": round(b.end - now) if b.active else None,
               "sessions": f.sessions,
               "tokens": {**{k: f.tokens[k] for k in TOKEN_FIELDS}, "total": f.total},
               "cost_usd": amount(f.cost_usd), "cost_source": f.cost_source,
               "models": sorted(f.models),
               "burn_rate": None if rate is None else {
                   "tokens_per_minute": round(rate[0], 1),
                   "cost_usd_per_hour": None if rate[1] is None else round(rate[1], 6)},
               "projection": None if projected is None else {
                   "total_tokens": projected[0], "cost_usd": amount(projected[1])}}
        limit = (limits or {}).get(b.tool)
        if limit:
            row["token_limit"] = {
                "limit": limit, "used_percent": round(100 * f.total / limit, 1),
                "projected_percent": None if projected is None else
                round(100 * projected[0] / limit, 1),
                "exceeded": f.total > limit or bool(projected and projected[0] > limit)}
        out.append(row)
    return {"blocks": out, "timezone": opts.tz_name}


def render(blocks: list[Block], opts: Options, now: float, limits: dict[str, int] | None,
           width: int | None, color: bool) -> str:
    if not blocks:
        return "No billing windows: no session of a tool that has them (claude, codex).\n"
    style = Style(color)

    def local(ts: float) -> str:
        return datetime.fromtimestamp(ts, opts.tz).strftime("%Y-%m-%d %H:%M")

    cells: dict[str, list[str]] = {k: [] for k in (
        "Window", "Tool", "Status", "Sessions", "Tokens", "Cost (USD)", "Burn rate",
        "Projected", "Limit")}
    styles: list[dict] = []
    for b in blocks:
        rate, projected = b.burn(now), b.projected(now)
        limit = (limits or {}).get(b.tool)
        cells["Window"].append(f"{local(b.start)}-{local(b.end)[11:]}")
        cells["Tool"].append(b.tool)
        cells["Status"].append(f"active, {duration(b.end - now)} left" if b.active else "done")
        cells["Sessions"].append(f"{b.figures.sessions:,}")
        cells["Tokens"].append(short(b.figures.total))
        cells["Cost (USD)"].append(usd(b.figures))
        cells["Burn rate"].append("" if rate is None else f"{short(rate[0])} tok/min" + (
            "" if rate[1] is None else f", ${rate[1]:,.2f}/h"))
        cells["Projected"].append("" if projected is None else f"{short(projected[0])}" + (
            "" if projected[1] is None else f", ${projected[1]:,.2f}"))
        over = bool(limit and (b.figures.total > limit or (projected and projected[0] > limit)))
        cells["Limit"].append("" if not limit else f"{100 * b.figures.total / limit:.0f}%" + (
            "" if projected is None else f" (projected {100 * projected[0] / limit:.0f}%)"))
        styles.append({"fg": "red"} if over else {"fg": "green"} if b.active else {})
    left = ("Window", "Tool", "Status", "Burn rate", "Projected")
    drop = {"Burn rate": 3, "Projected": 2, "Sessions": 1}
    columns = [Column(name, values, values, drop.get(name, 0), name in left,
                      styles=styles if name == "Status" else [])
               for name, values in cells.items() if any(values) or name == "Status"]
    table, hidden = draw(columns, width, style, bold_last=False, dim_rows=set())
    notes = ["", "A window opens at the hour of its first session and lasts "
             f"{_hours(blocks)}; a session counts whole in the window it started in."]
    if hidden:
        notes.append(f"Hidden to fit {width} columns: {', '.join(hidden)} (--json has all).")
    return "\n".join(table + notes) + "\n"


def _hours(blocks: list[Block]) -> str:
    spans = sorted({round((b.end - b.start) / HOUR, 2) for b in blocks})
    return " or ".join(f"{h:g} hours" for h in spans)


def run(ledger: Path, opts: Options, prices: PriceTable, fmt: str, active_only: bool,
        token_limit: str | None, width: int | None, color: bool, stream=None,
        now: float | None = None) -> None:
    stream = stream or sys.stdout
    now = time.time() if now is None else now
    db = open_ledger(ledger)
    with reading(ledger):
        if is_empty(db):
            if fmt == "table":
                stream.write(START_HINT + "\n")
                return
            found: list[Block] = []
        else:
            found = build(db, opts, prices, now)
    limits = limit_of(found, token_limit)
    if active_only:
        found = [b for b in found if b.active]
    if fmt == "json":
        stream.write(json.dumps(to_json(found, opts, now, limits), indent=2) + "\n")
    else:
        stream.write(render(found, opts, now, limits, width, color))
