"""The ledger's schema, as numbered migrations recorded in the database.

Add a migration by appending a function; never edit one that has shipped.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = []


def migration(fn: Callable[[sqlite3.Connection], None]):
    MIGRATIONS.append(fn)
    return fn


@migration
def m001_ledger_and_outbox(db: sqlite3.Connection) -> None:
    _run(
        db,
        """
        -- one row per aitrack run, times in unix seconds (UTC)
        CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            tool TEXT NOT NULL,
            tool_version TEXT,
            started_at REAL NOT NULL,
            ended_at REAL,
            exit_code INTEGER,
            cwd TEXT,
            project TEXT,
            attributes TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX sessions_started_at ON sessions (started_at);
        CREATE INDEX sessions_project ON sessions (project);

        -- the tool's own session ids (claude: session.id on datapoints)
        CREATE TABLE tool_sessions (
            session_id TEXT NOT NULL REFERENCES sessions (id),
            tool_session_id TEXT NOT NULL,
            PRIMARY KEY (session_id, tool_session_id)
        ) WITHOUT ROWID;

        -- tokens per session, model and type (input, output, cache_read,
        -- cache_creation, reasoning), reasoning being part of output
        CREATE TABLE usage (
            session_id TEXT NOT NULL REFERENCES sessions (id),
            model TEXT NOT NULL,
            token_type TEXT NOT NULL,
            tokens INTEGER NOT NULL,
            PRIMARY KEY (session_id, model, token_type)
        ) WITHOUT ROWID;

        -- other figures the tool reports: cost_usd (per model), lines_added,
        -- lines_removed, commits, pull_requests, active_time_s (model '')
        CREATE TABLE session_metrics (
            session_id TEXT NOT NULL REFERENCES sessions (id),
            model TEXT NOT NULL,
            name TEXT NOT NULL,
            value REAL NOT NULL,
            PRIMARY KEY (session_id, model, name)
        ) WITHOUT ROWID;

        -- last value of each cumulative series, to turn it into deltas
        CREATE TABLE cumulative_series (
            session_id TEXT NOT NULL,
            series TEXT NOT NULL,
            start_time INTEGER NOT NULL,
            value REAL NOT NULL,
            PRIMARY KEY (session_id, series)
        ) WITHOUT ROWID;

        -- digests of accepted payloads, so the same bytes are counted once
        CREATE TABLE payloads (
            digest BLOB PRIMARY KEY,
            session_id TEXT NOT NULL,
            received_at REAL NOT NULL
        ) WITHOUT ROWID;

        -- payloads waiting for the org endpoint (protobuf, resource attributes enforced)
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            session_id TEXT NOT NULL,
            signal TEXT NOT NULL,
            body BLOB NOT NULL,
            size INTEGER NOT NULL,
            created_at REAL NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending',   -- pending | dead
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL NOT NULL DEFAULT 0,
            claimed_by TEXT,
            claimed_until REAL NOT NULL DEFAULT 0,
            last_error TEXT
        );
        CREATE INDEX outbox_ready ON outbox (state, next_attempt_at);
        """
    )



@migration
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
    for statement in _hourly_schema():
        db.execute(statement)


# m002's schema, below: part of a shipped migration once released, so never edit it either.
_TOKENS = ("input", "output", "cache_read", "cache_creation", "reasoning")
_PRICED = ("input", "output", "cache_read", "cache_creation")  # reasoning is inside output
_CONTRIB = ("lines_added", "lines_removed", "commits", "pull_requests")
_USAGE_SUMS = (*_TOKENS, "cost_reported", "cost_pairs", "pairs", *(f"u_{t}" for t in _PRICED))
_HOUR = "CAST(s.started_at AS INTEGER) / 3600"
# `c`: the pair's cost_usd row, LEFT JOINed by usage_upsert() below
_PAIR_IS_NEW = ("c.session_id IS NULL AND NOT EXISTS (SELECT 1 FROM usage o WHERE "
                "o.session_id = NEW.session_id AND o.model = NEW.model "
                "AND o.token_type != NEW.token_type)")


def _each(template: str, names: tuple[str, ...]) -> str:
    return ", ".join(template.format(n) for n in names)


def _hourly_schema(tokens_: tuple[str, ...] = _TOKENS, priced: tuple[str, ...] = _PRICED,
                   ) -> list[str]:
    """m002's statements; m004 re-creates the usage triggers with more token types."""
    _TOKENS, _PRICED = tokens_, priced  # noqa: N806 - the names the templates below use
    _USAGE_SUMS = (*_TOKENS, "cost_reported", "cost_pairs", "pairs",  # noqa: N806
                   *(f"u_{t}" for t in _PRICED))
    usage_cols = "hour, tool, model, " + ", ".join(_USAGE_SUMS)
    add_usage = _each("{0} = {0} + excluded.{0}", _USAGE_SUMS)
    add_contrib = _each("{0} = {0} + excluded.{0}", _CONTRIB)
    contrib_names = _each("'{}'", _CONTRIB)

    def usage_upsert(tokens: str, pairs: str) -> str:
        """Add `tokens` of NEW's type (to u_* too while the pair has no reported cost)."""
        by_type = _each(f"CASE NEW.token_type WHEN '{{}}' THEN {tokens} ELSE 0 END", _TOKENS)
        unpriced = _each(f"CASE WHEN NEW.token_type = '{{}}' AND c.session_id IS NULL "
                         f"THEN {tokens} ELSE 0 END", _PRICED)
        return f"""
            INSERT INTO usage_hourly ({usage_cols})
            SELECT {_HOUR}, s.tool, NEW.model, {by_type}, 0, 0, {pairs}, {unpriced}
            FROM sessions s LEFT JOIN session_metrics c ON c.session_id = NEW.session_id
                 AND c.model = NEW.model AND c.name = 'cost_usd'
            WHERE s.id = NEW.session_id
            ON CONFLICT (hour, tool, model) DO UPDATE SET {add_usage};"""

    return [
        """CREATE TABLE usage_hourly (
            hour INTEGER NOT NULL,
            tool TEXT NOT NULL,
            model TEXT NOT NULL,
            input INTEGER NOT NULL DEFAULT 0,
            output INTEGER NOT NULL DEFAULT 0,
            cache_read INTEGER NOT NULL DEFAULT 0,
            cache_creation INTEGER NOT NULL DEFAULT 0,
            reasoning INTEGER NOT NULL DEFAULT 0,
            cost_reported REAL NOT NULL DEFAULT 0,
            cost_pairs INTEGER NOT NULL DEFAULT 0,
            pairs INTEGER NOT NULL DEFAULT 0,
            u_input INTEGER NOT NULL DEFAULT 0,
            u_output INTEGER NOT NULL DEFAULT 0,
            u_cache_read INTEGER NOT NULL DEFAULT 0,
            u_cache_creation INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (hour, tool, model)
        ) WITHOUT ROWID""",
        f"""CREATE TABLE usage_daily (
            day INTEGER NOT NULL,
            tool TEXT NOT NULL,
            model TEXT NOT NULL,
            {_each("{} INTEGER NOT NULL DEFAULT 0", _TOKENS)},
            cost_reported REAL NOT NULL DEFAULT 0,
            {_each("{} INTEGER NOT NULL DEFAULT 0", _USAGE_SUMS[len(_TOKENS) + 1:])},
            PRIMARY KEY (day, tool, model)
        ) WITHOUT ROWID""",
        # usage_hourly's rows only ever gain: new rows and increments (also while backfilling)
        f"""CREATE TRIGGER usage_daily_insert AFTER INSERT ON usage_hourly BEGIN
            INSERT INTO usage_daily (day, tool, model, {", ".join(_USAGE_SUMS)})
            VALUES (NEW.hour / 24, NEW.tool, NEW.model, {_each("NEW.{}", _USAGE_SUMS)})
            ON CONFLICT (day, tool, model) DO UPDATE SET {add_usage};
        END""",
        f"""CREATE TRIGGER usage_daily_update AFTER UPDATE ON usage_hourly BEGIN
            UPDATE usage_daily SET {_each("{0} = {0} + (NEW.{0} - OLD.{0})", _USAGE_SUMS)}
            WHERE day = NEW.hour / 24 AND tool = NEW.tool AND model = NEW.model;
        END""",
        """CREATE TABLE sessions_hourly (
            hour INTEGER NOT NULL,
            tool TEXT NOT NULL,
            sessions INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (hour, tool)
        ) WITHOUT ROWID""",
        """CREATE TABLE contrib_hourly (
            hour INTEGER NOT NULL,
            tool TEXT NOT NULL,
            lines_added REAL NOT NULL DEFAULT 0,
            lines_removed REAL NOT NULL DEFAULT 0,
            commits REAL NOT NULL DEFAULT 0,
            pull_requests REAL NOT NULL DEFAULT 0,
            PRIMARY KEY (hour, tool)
        ) WITHOUT ROWID""",
        """CREATE TRIGGER sessions_hourly_insert AFTER INSERT ON sessions BEGIN
            INSERT INTO sessions_hourly (hour, tool, sessions)
            VALUES (CAST(NEW.started_at AS INTEGER) / 3600, NEW.tool, 1)
            ON CONFLICT (hour, tool) DO UPDATE SET sessions = sessions + 1;
        END""",
        # the pair's first usage row makes a new pair, unless its cost came first
        f"""CREATE TRIGGER usage_hourly_insert AFTER INSERT ON usage BEGIN
            {usage_upsert("NEW.tokens", _PAIR_IS_NEW)}
        END""",
        f"""CREATE TRIGGER usage_hourly_update AFTER UPDATE OF tokens ON usage BEGIN
            {usage_upsert("(NEW.tokens - OLD.tokens)", "0")}
        END""",
        # a reported cost: counted, and the pair's tokens so far are no longer to be priced
        f"""CREATE TRIGGER usage_hourly_cost_insert AFTER INSERT ON session_metrics
        WHEN NEW.name = 'cost_usd' BEGIN
            INSERT INTO usage_hourly ({usage_cols})
            SELECT {_HOUR}, s.tool, NEW.model, {_each("0", _TOKENS)}, NEW.value, 1, p.n = 0,
                   {_each("-p.{}", _PRICED)}
            FROM sessions s, (
                SELECT COUNT(*) AS n, {_each(
                    "COALESCE(SUM(CASE u.token_type WHEN '{0}' THEN u.tokens END), 0) AS {0}",
                    _PRICED)}
                FROM usage u WHERE u.session_id = NEW.session_id AND u.model = NEW.model) AS p
            WHERE s.id = NEW.session_id
            ON CONFLICT (hour, tool, model) DO UPDATE SET {add_usage};
        END""",
        f"""CREATE TRIGGER usage_hourly_cost_update AFTER UPDATE OF value ON session_metrics
        WHEN NEW.name = 'cost_usd' BEGIN
            UPDATE usage_hourly SET cost_reported = cost_reported + (NEW.value - OLD.value)
            WHERE (hour, tool, model) = (SELECT {_HOUR}, s.tool, NEW.model FROM sessions s
                                         WHERE s.id = NEW.session_id);
        END""",
        f"""CREATE TRIGGER contrib_hourly_insert AFTER INSERT ON session_metrics
        WHEN NEW.model = '' AND NEW.name IN ({contrib_names}) BEGIN
            INSERT INTO contrib_hourly (hour, tool, {", ".join(_CONTRIB)})
            SELECT {_HOUR}, s.tool,
                   {_each("CASE NEW.name WHEN '{}' THEN NEW.value ELSE 0 END", _CONTRIB)}
            FROM sessions s WHERE s.id = NEW.session_id
            ON CONFLICT (hour, tool) DO UPDATE SET {add_contrib};
        END""",
        f"""CREATE TRIGGER contrib_hourly_update AFTER UPDATE OF value ON session_metrics
        WHEN NEW.model = '' AND NEW.name IN ({contrib_names}) BEGIN
            UPDATE contrib_hourly SET {_each(
                "{0} = {0} + CASE NEW.name WHEN '{0}' THEN NEW.value - OLD.value ELSE 0 END",
                _CONTRIB)}
            WHERE (hour, tool) = (SELECT {_HOUR}, s.tool FROM sessions s
                                  WHERE s.id = NEW.session_id);
        END""",
        # backfill: the rows written before this migration
        f"""INSERT INTO sessions_hourly (hour, tool, sessions)
        SELECT {_HOUR}, s.tool, COUNT(*) FROM sessions s GROUP BY 1, 2""",
        f"""INSERT INTO contrib_hourly (hour, tool, {", ".join(_CONTRIB)})
        SELECT {_HOUR}, s.tool, {_each("TOTAL(CASE m.name WHEN '{}' THEN m.value END)", _CONTRIB)}
        FROM sessions s JOIN session_metrics m ON m.session_id = s.id
        WHERE m.model = '' AND m.name IN ({contrib_names})
        GROUP BY 1, 2""",
        f"""INSERT INTO usage_hourly ({usage_cols})
        SELECT hour, tool, model, {_each("SUM({})", _TOKENS)},
               TOTAL(cost), COUNT(cost), COUNT(*),
               {_each("SUM(CASE WHEN cost IS NULL THEN {} ELSE 0 END)", _PRICED)}
        FROM (
            SELECT {_HOUR} AS hour, s.tool AS tool, p.model AS model, {_each("p.{}", _TOKENS)},
                   (SELECT c.value FROM session_metrics c WHERE c.session_id = p.session_id
                    AND c.model = p.model AND c.name = 'cost_usd') AS cost
            FROM (
                SELECT u.session_id, u.model, {_each(
                    "SUM(CASE u.token_type WHEN '{0}' THEN u.tokens ELSE 0 END) AS {0}",
                    _TOKENS)}
                FROM usage u GROUP BY u.session_id, u.model
                UNION ALL
                -- a reported cost for a model the session has no token counts for
                SELECT c.session_id, c.model, 0, 0, 0, 0, 0
                FROM session_metrics c WHERE c.name = 'cost_usd' AND NOT EXISTS (
                    SELECT 1 FROM usage u WHERE u.session_id = c.session_id
                    AND u.model = c.model)
            ) AS p JOIN sessions s ON s.id = p.session_id
        )
        GROUP BY hour, tool, model""",
    ]


def _run(db: sqlite3.Connection, script: str) -> None:
    """Execute statements one by one: executescript() would commit the open transaction."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def migrate(db: sqlite3.Connection) -> int:
    """Apply pending migrations; returns the schema version."""
    db.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
               "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)")
    done = {row[0] for row in db.execute("SELECT version FROM schema_migrations")}
    if len(done) >= len(MIGRATIONS):
        return len(MIGRATIONS)
    db.execute("BEGIN IMMEDIATE")
    try:
        done = {row[0] for row in db.execute("SELECT version FROM schema_migrations")}
        for version, fn in enumerate(MIGRATIONS, 1):
            if version not in done:
                fn(db)
                db.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)",
                           (version, fn.__name__, time.time()))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return len(MIGRATIONS)


@migration
def m003_outbox_delivery(db: sqlite3.Connection) -> None:
    """Indexes that let the forwarder work without reading payloads, and an eviction record.

    In an outbox row the payload blob comes before the claim columns, so a query that
    filters on claimed_until or sums size from the table itself walks every payload's
    overflow pages. outbox_due covers the claim scan (and supersedes outbox_ready, its
    prefix), outbox_bytes covers the counts and the size bound's oldest-first order, and
    outbox_session finds one run's own rows. outbox_evicted keeps what the size bound
    removed, so `aitrack flush` and `aitrack doctor` can say so.
    """
    _run(
        db,
        """
        DROP INDEX outbox_ready;
        CREATE INDEX outbox_due ON outbox
            (state, next_attempt_at, claimed_until, signal, created_at, size);
        CREATE INDEX outbox_bytes ON outbox (state, signal, created_at, size);
        CREATE INDEX outbox_session ON outbox (session_id, state);
        CREATE TABLE outbox_evicted (
            evicted_at REAL NOT NULL,
            state TEXT NOT NULL,
            signal TEXT NOT NULL,
            rows INTEGER NOT NULL,
            bytes INTEGER NOT NULL,
            oldest_created_at REAL NOT NULL,
            newest_created_at REAL NOT NULL
        );
        """
    )


# m004's token types for the summaries: m002's plus the subsets of tokens.py, for pricing.
_SUBSETS = ("cache_creation_1h", "long_input", "long_output", "long_cache_read",
            "long_cache_creation", "long_cache_creation_1h")
_USAGE_TRIGGERS = ("usage_daily_insert", "usage_daily_update", "usage_hourly_insert",
                   "usage_hourly_update", "usage_hourly_cost_insert")


@migration
def m004_tool_sessions_sources_and_inbox(db: sqlite3.Connection) -> None:
    """Sessions by the tool's own id, from several sources; runs; the inbox; tool decisions.

    - A session is now the tool's session (Claude `session.id`, Codex thread id), whichever way
      aitrack saw it: a wrapper run, the per-user agent, or the tool's transcripts. `sources`
      holds bit flags (1 telemetry, 2 transcript, 4 wrapper); `run_id` the wrapper run that ran
      it last; `entrypoint` where it ran (cli, sdk-cli, claude-vscode, codex_exec...). Earlier
      sessions were wrapper runs with telemetry; their single tool id moves into the row.
    - `runs`: one row per wrapper invocation, with what only the wrapper knows.
    - `source_figures`: each source's own figure per (session, model, token type or metric);
      `usage` and `session_metrics` keep the figure of record, the largest of them.
    - `inbox`: payloads acknowledged to the tool and not yet ledgered (receivers only spool).
    - `tool_decisions`: accepted and rejected tool uses.
    - The summaries gain the token subsets (1-hour cache writes, long-context parts) so that
      reports can price them.
    """
    _run(
        db,
        """
        ALTER TABLE sessions ADD COLUMN tool_session_id TEXT;
        ALTER TABLE sessions ADD COLUMN run_id TEXT;
        ALTER TABLE sessions ADD COLUMN entrypoint TEXT;
        ALTER TABLE sessions ADD COLUMN sources INTEGER NOT NULL DEFAULT 0;
        UPDATE sessions SET sources = 5, run_id = id;
        UPDATE sessions SET tool_session_id = (
            SELECT MIN(t.tool_session_id) FROM tool_sessions t WHERE t.session_id = sessions.id)
        WHERE (SELECT COUNT(*) FROM tool_sessions t WHERE t.session_id = sessions.id) = 1
          AND NOT EXISTS (
            SELECT 1 FROM tool_sessions t JOIN tool_sessions o
                ON o.tool_session_id = t.tool_session_id AND o.session_id != t.session_id
            JOIN sessions e ON e.id = o.session_id AND e.tool = sessions.tool
                AND (e.started_at, e.id) < (sessions.started_at, sessions.id)
            WHERE t.session_id = sessions.id);
        CREATE UNIQUE INDEX sessions_tool_session ON sessions (tool, tool_session_id)
            WHERE tool_session_id IS NOT NULL;
        CREATE INDEX sessions_run ON sessions (run_id) WHERE run_id IS NOT NULL;

        CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            tool TEXT NOT NULL,
            started_at REAL NOT NULL,
            ended_at REAL,
            exit_code INTEGER,
            cwd TEXT,
            project TEXT,
            attributes TEXT NOT NULL DEFAULT '{}',
            mode TEXT NOT NULL,             -- agent | receiver | transcript
            pending_end TEXT                -- the wrapper's account of the end (JSON), until
                                            -- the agent has linked the run to its sessions
        );
        INSERT INTO runs SELECT id, tool, started_at, ended_at, exit_code, cwd, project,
                                attributes, 'receiver', NULL FROM sessions;

        CREATE TABLE source_figures (
            session_id TEXT NOT NULL REFERENCES sessions (id),
            model TEXT NOT NULL,
            name TEXT NOT NULL,             -- a token type, or a metric such as cost_usd
            source TEXT NOT NULL,           -- telemetry | transcript | git
            value REAL NOT NULL,
            PRIMARY KEY (session_id, model, name, source)
        ) WITHOUT ROWID;
        INSERT INTO source_figures SELECT session_id, model, token_type, 'telemetry', tokens
                                   FROM usage;
        INSERT INTO source_figures SELECT session_id, model, name, 'telemetry', value
                                   FROM session_metrics;

        CREATE TABLE inbox (
            id INTEGER PRIMARY KEY,
            received_at REAL NOT NULL,
            receiver TEXT NOT NULL,         -- 'agent', or the run id of a per-run receiver
            run_id TEXT,                    -- the wrapper run the sender belongs to, if known
            signal TEXT NOT NULL,
            content_type TEXT NOT NULL,
            body BLOB NOT NULL,             -- decompressed, as the sender's content type
            attempts INTEGER NOT NULL DEFAULT 0,
            claimed_by TEXT,
            claimed_until REAL NOT NULL DEFAULT 0,
            failed TEXT                     -- why it could not be ledgered (kept, not retried)
        );

        CREATE TABLE tool_decisions (
            session_id TEXT NOT NULL REFERENCES sessions (id),
            tool_name TEXT NOT NULL,
            decision TEXT NOT NULL,         -- accept | reject
            count INTEGER NOT NULL,
            PRIMARY KEY (session_id, tool_name, decision)
        ) WITHOUT ROWID
        """
    )
    for table in ("usage_hourly", "usage_daily"):
        for name in (*_SUBSETS, *(f"u_{t}" for t in ("cache_creation_1h", *_SUBSETS[1:]))):
            db.execute(f"ALTER TABLE {table} ADD COLUMN {name} INTEGER NOT NULL DEFAULT 0")
    for trigger in _USAGE_TRIGGERS:
        db.execute(f"DROP TRIGGER {trigger}")
    wanted = tuple(f"CREATE TRIGGER {t} " for t in _USAGE_TRIGGERS)
    for statement in _hourly_schema((*_TOKENS, *_SUBSETS), (*_PRICED, *_SUBSETS)):
        if statement.strip().startswith(wanted):
            db.execute(statement)


@migration
def m005_transcript_import(db: sqlite3.Connection) -> None:
    """What `aitrack import` has read of the tools' transcripts, so the next import reads on.

    - `transcript_files`: per file, the byte offset after the last complete line read and the
      file's identity then (device, inode, size, mtime, a hash of its first bytes): an
      unchanged file is not opened, an appended one is read from the offset, a rewritten one
      (compaction) from the start.
    - `transcript_sessions`: per tool session, what its transcripts said so far (start, end,
      cwd, entrypoint, version) and the adapter's reading state (Codex: the cumulative total
      and model; Claude: its cost-state), and its transcript figures: the sums of its rows
      below, kept as they change.
    - `transcript_responses`: every API response counted, once, under a hash of its identity
      (Claude: message id; Codex: response id or cumulative total), with the figures of its
      largest line in ledger token types. Rows are never deleted and a row's figures only
      grow, so what was imported stays imported.
    - An index on `tool_sessions (tool_session_id)`, which `ledger.session_for` searches.
    """
    _run(
        db,
        """
        CREATE TABLE transcript_files (
            path TEXT PRIMARY KEY,
            tool TEXT NOT NULL,
            device INTEGER NOT NULL,
            inode INTEGER NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            offset INTEGER NOT NULL,        -- bytes read: the end of the last complete line
            head INTEGER NOT NULL,          -- hash of the first min(offset, 4096) bytes
            context TEXT NOT NULL DEFAULT '{}'
        ) WITHOUT ROWID;

        CREATE TABLE transcript_sessions (
            id INTEGER PRIMARY KEY,
            tool TEXT NOT NULL,
            tool_session_id TEXT NOT NULL,
            started_at REAL,
            ended_at REAL,
            cwd TEXT,
            entrypoint TEXT,
            tool_version TEXT,
            state TEXT NOT NULL DEFAULT '{}',
            usage TEXT NOT NULL DEFAULT '{}',   -- model -> token type -> sum of its responses
            UNIQUE (tool, tool_session_id)
        );

        CREATE TABLE transcript_responses (
            key INTEGER PRIMARY KEY,        -- 64-bit hash of the response's identity
            rid INTEGER NOT NULL,           -- CRC-32 of Claude's request id + 1, 0 if none
            session INTEGER NOT NULL,       -- transcript_sessions.id
            model TEXT NOT NULL,
            input INTEGER NOT NULL,
            output INTEGER NOT NULL,
            cache_read INTEGER NOT NULL,
            cache_creation INTEGER NOT NULL,
            cache_creation_1h INTEGER NOT NULL,
            reasoning INTEGER NOT NULL,
            long INTEGER NOT NULL,          -- 1: a long-context request (priced at its tier)
            side INTEGER NOT NULL           -- 1: seen only on a sidechain (a subagent's line)
        ) WITHOUT ROWID;

        -- ledger.session_for looks sessions up by the tool's id here too (ledgers from
        -- before m004): unindexed, a first import of thousands of sessions went quadratic
        CREATE INDEX tool_sessions_tool_session_id ON tool_sessions (tool_session_id)
        """
    )


# m006: the figures aitrack's own metric family sends (aitrack/normalized.py)
_EMITTED_TOKENS = ("input", "output", "cache_read", "cache_creation", "reasoning")


@migration
def m006_normalized_emission(db: sqlite3.Connection) -> None:
    """What aitrack has sent of its own metrics, so that each session's figures go once.

    - `emitted`: per (session, model, name) the figure of record as last sent: a token type,
      `cost_usd`, or (model '') `session.count` = 1 once the session was counted. Only the
      increase of the ledger's figure over it is ever sent, in the transaction that raises it.
    - `emission_due`: sessions to look at: new, or whose usage or reported cost changed since
      (triggers on sessions, usage and session_metrics keep it). A session leaves it once its
      figures are sent and it has been counted.
    - `emission_state`: `instance_id` (the ledger's service.instance.id) and `last_ns` (the end
      of the last interval sent: delta intervals follow one another).
    Everything the ledger held before this migration counts as sent: history is never sent
    again stamped with today's date. A missing `cost_usd` row for a pair whose tokens were
    sent means the cost of those tokens was sent (see normalized.py).
    """
    import uuid

    types = ", ".join(f"'{t}'" for t in _EMITTED_TOKENS)
    _run(
        db,
        f"""
        CREATE TABLE emitted (
            session_id TEXT NOT NULL,
            model TEXT NOT NULL,
            name TEXT NOT NULL,             -- a token type, cost_usd, or session.count
            value REAL NOT NULL,
            PRIMARY KEY (session_id, model, name)
        ) WITHOUT ROWID;
        CREATE TABLE emission_due (session_id TEXT PRIMARY KEY) WITHOUT ROWID;
        CREATE TABLE emission_state (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;

        INSERT INTO emitted SELECT session_id, model, token_type, tokens FROM usage
            WHERE token_type IN ({types});
        INSERT INTO emitted SELECT session_id, model, name, value FROM session_metrics
            WHERE name = 'cost_usd';
        INSERT INTO emitted SELECT id, '', 'session.count', 1 FROM sessions
        """
    )
    # One statement each: _run() splits on semicolons, which trigger bodies contain. Not
    # INSERT OR IGNORE: inside a trigger the outer statement's conflict policy wins, and the
    # ledger's upserts would then fail on a session already due.
    due = ("INSERT INTO emission_due SELECT NEW.{0} WHERE NOT EXISTS "
           "(SELECT 1 FROM emission_due WHERE session_id = NEW.{0})")
    for name, event, when, column in (
            ("session", "INSERT ON sessions", "", "id"),
            ("usage_insert", "INSERT ON usage", "", "session_id"),
            ("usage_update", "UPDATE OF tokens ON usage", "", "session_id"),
            ("cost_insert", "INSERT ON session_metrics", "WHEN NEW.name = 'cost_usd'",
             "session_id"),
            ("cost_update", "UPDATE OF value ON session_metrics", "WHEN NEW.name = 'cost_usd'",
             "session_id")):
        db.execute(f"CREATE TRIGGER emission_due_{name} AFTER {event} {when} BEGIN "
                   f"{due.format(column)}; END")
    db.execute("INSERT INTO emission_state VALUES ('instance_id', ?)", (str(uuid.uuid4()),))
