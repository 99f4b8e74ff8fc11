"""m002: the per-hour and per-day sums `aitrack report` reads (shipped: never edit)."""

from __future__ import annotations

import sqlite3

from aitrack.store.migrations.summaries import hourly_schema


def m002_hourly_summaries(db: sqlite3.Connection) -> None:
    """Per-hour sums that `aitrack report` reads instead of grouping every usage row.

    `hour` is whole UTC hours since the epoch of the session's start (usage is attributed to
    the session's start, as the report does), computed as CAST(started_at AS INTEGER) / 3600
    so that it is exact: `started_at >= h * 3600` exactly when `hour >= h`. A zone whose
    offsets are whole hours cuts its days on hour boundaries, so its days, weeks and months
    are sums of hours.

    usage_hourly, per (hour, tool, model): token sums; `pairs` counts the (session, model)
    pairs with usage or a reported cost, `cost_pairs` those with a reported cost (summed in
    `cost_reported`); u_* sum the tokens of the pairs without one, which the report prices.
    usage_daily holds the same sums per UTC day (hour / 24): a year is 365 rows per tool and
    model instead of 8,760, and the report reads hours only where local days cut UTC days.
    sessions_hourly counts sessions; contrib_hourly sums Claude's contribution figures.

    Triggers keep them in step with every writer: inserts into sessions, usage and
    session_metrics, and the updates of `usage.tokens` and `session_metrics.value` that the
    ledger's upserts make; usage_daily follows usage_hourly. Rows are never deleted or
    re-keyed (no writer does), and a row's session exists before it (foreign keys). The
    existing rows are backfilled here.
    """
    for statement in hourly_schema():
        db.execute(statement)
