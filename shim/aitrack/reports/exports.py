"""A report as JSON or CSV: every row, whatever the terminal's width.

The JSON shape is documented in README.md ("Report JSON") and only ever grows; CSV is the
same rows, one header line first.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, tzinfo

from aitrack.reports.rows import CONTRIB_FIELDS, TOKEN_FIELDS, Decisions, Figures, Report
from aitrack.reports.sessions import duration_s, resume_command, source_names


def _iso(ts: float | None, tz: tzinfo) -> str | None:
    """A time as ISO 8601; None when unknown or beyond what a date can say (an end time an
    older aitrack took from a hostile transcript: 1e300)."""
    if ts is None:
        return None
    try:
        return datetime.fromtimestamp(ts, tz).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return None


def amount(value: float | None) -> float | None:
    """A cost as JSON gives it: rounded to 6 places; null when unknown."""
    return None if value is None else round(value, 6)


def _contrib(fig: Figures) -> dict:
    """Contribution figures; null where they are unknown (a model's: they are per session)."""
    if not fig.has_contrib:
        return {**dict.fromkeys(CONTRIB_FIELDS), "cost_per_commit": None}
    return {**{k: int(fig.contrib[k]) for k in CONTRIB_FIELDS},
            "cost_per_commit": amount(fig.cost_per_commit)}


def _flat(fig: Figures) -> dict:
    return {
        "sessions": fig.sessions,
        **{k: fig.tokens[k] for k in TOKEN_FIELDS},
        "total": fig.total,
        "cost_usd": amount(fig.cost_usd),
        "cost_source": fig.cost_source,
        "unpriced_models": sorted(fig.unpriced),
        **_contrib(fig),
    }


def _tokens(fig: Figures) -> dict:
    return {**{k: fig.tokens[k] for k in TOKEN_FIELDS}, "total": fig.total}


def _session_row(report: Report, sid: str, fig: Figures, models: list) -> dict:
    facts = report.sessions.get(sid, {})
    tz = report.opts.tz
    row = {
        "id": sid,
        "tool": facts.get("tool"),
        "tool_version": facts.get("tool_version"),
        "started_at": _iso(facts.get("started_at"), tz),
        "ended_at": _iso(facts.get("ended_at"), tz),
        "duration_s": duration_s(facts),
        "exit_code": facts.get("exit_code"),
        "project": facts.get("project"),
        "cwd": facts.get("cwd"),
        "models": sorted(fig.models),
        "tokens": _tokens(fig),
        "cost_usd": amount(fig.cost_usd),
        "cost_source": fig.cost_source,
        "unpriced_models": sorted(fig.unpriced),
        **_contrib(fig),
        "entrypoint": facts.get("entrypoint"),
        "sources": source_names(facts.get("sources")),
        "requested_as": {m: report.requested[m] for m in sorted(fig.models)
                         if m in report.requested},
        "notes": report.notes.get(sid, []),
        "tool_figures": facts.get("tool_figures", {}),  # README: what each one means
        "tool_session_id": facts.get("tool_session_id"),
        "resume": resume_command(facts),
    }
    if report.opts.breakdown:
        row["breakdown"] = [{"model": m, "tokens": _tokens(f), "cost_usd": amount(f.cost_usd),
                             "cost_source": f.cost_source} for m, f in models]
    return row


def acceptance_json(decisions: list[Decisions]) -> list[dict]:
    """Per tool: accepted and rejected tool uses, the rate, and the same per tool name."""
    def counts(accepted: int, rejected: int) -> dict:
        return {"accepted": accepted, "rejected": rejected,
                "acceptance_rate": Decisions.rate(accepted, rejected)}

    return [{"tool": d.tool, **counts(d.accepted, d.rejected),
             "tool_names": [{"tool_name": name, **counts(*n)} for name, n in d.by_name.items()]}
            for d in decisions]


def to_json(report: Report) -> dict:
    """The documented JSON shape (README, "Report JSON")."""
    meta = {"timezone": report.opts.tz_name, "prices_as_of": report.prices_as_of,
            "unpriced_models": sorted(report.totals.unpriced)}
    if report.kind == "session":
        return {
            "sessions": [_session_row(report, *r) for r in report.rows],
            "totals": {"sessions": report.totals.sessions, "tokens": _tokens(report.totals),
                       "cost_usd": amount(report.totals.cost_usd),
                       "cost_source": report.totals.cost_source},
            **meta,
        }
    rows = []
    for label, fig, models in report.rows:
        row = {"period": label, **_flat(fig), "models": sorted(fig.models)}
        if report.kind == "model":
            row["requested_as"] = report.requested.get(label, [])
        if report.opts.breakdown and report.kind != "model":
            row["breakdown"] = [{"model": m, **_flat(f)} for m, f in models]
        if report.opts.by_tool and report.kind in ("daily", "weekly", "monthly"):
            row["tools"] = [{"tool": t, **_flat(f), "models": sorted(f.models)}
                            for t, f in report.tools.get(label, [])]
        rows.append(row)
    key = {"model": "models", "project": "projects"}.get(report.kind, report.kind)
    out = {key: rows, "totals": _flat(report.totals), **meta}
    if report.decisions is not None:
        out["acceptance"] = acceptance_json(report.decisions)
    return out


CSV_PERIOD_FIELDS = ("period", "model", "sessions", *TOKEN_FIELDS, "total", "cost_usd",
                     "cost_source", *CONTRIB_FIELDS, "cost_per_commit", "tool")
CSV_SESSION_FIELDS = ("id", "model", "tool", "tool_version", "started_at", "ended_at",
                      "duration_s", "exit_code", "project", *TOKEN_FIELDS, "total", "cost_usd",
                      "cost_source", *CONTRIB_FIELDS, "cost_per_commit", "entrypoint",
                      "sources", "tool_session_id")


def to_csv(report: Report) -> str:
    """One header line, then one line per row (and per model with --breakdown).

    `model` is empty on a period's own line and names the model on breakdown lines.
    """
    data = to_json(report)
    out = io.StringIO()
    if report.kind == "session":
        writer = csv.DictWriter(out, CSV_SESSION_FIELDS, extrasaction="ignore",
                                lineterminator="\n")
        writer.writeheader()
        for row in data["sessions"]:
            flat = {**row, **row["tokens"], "model": ";".join(row["models"]),
                    "sources": ";".join(row["sources"])}
            writer.writerow(flat)
            for sub in row.get("breakdown", []):
                writer.writerow({"id": row["id"], "model": sub["model"], **sub["tokens"],
                                 "cost_usd": sub["cost_usd"], "cost_source": sub["cost_source"]})
        return out.getvalue()
    writer = csv.DictWriter(out, CSV_PERIOD_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in data[next(iter(data))]:
        writer.writerow({**row, "model": row["period"] if report.kind == "model" else ""})
        for sub in row.get("breakdown", []):
            writer.writerow({**sub, "period": row["period"]})
        for sub in row.get("tools", []):  # --by-tool: `tool` names the tool
            writer.writerow({**sub, "period": row["period"], "model": ""})
    return out.getvalue()
