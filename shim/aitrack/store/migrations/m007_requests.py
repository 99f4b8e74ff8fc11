"""m007: requests as the unit of counting (shipped: never edit)."""

from __future__ import annotations

import sqlite3

from aitrack.store.migrations.script import run_script
from aitrack.store.migrations.summaries import PRICED, TOKENS

# m004's token types of the summaries: m002's plus the subsets (tokens.py), for pricing
_SUBSETS = ("cache_creation_1h", "long_input", "long_output", "long_cache_read",
            "long_cache_creation", "long_cache_creation_1h")
_TYPES = (*TOKENS, *_SUBSETS)
_UNPRICED = (*PRICED, *_SUBSETS)
_HOUR = "CAST(s.started_at AS INTEGER) / 3600"


def _each(template: str, names: tuple[str, ...]) -> str:
    return ", ".join(template.format(n) for n in names)


def m007_requests(db: sqlite3.Connection) -> None:
    """Requests as the unit: per-request records, session totals as a floor, learnt aliases.

    Until m006 a session's figure of record was, per model and token type, the largest of its
    sources' figures, which drops a request one source saw and the other did not, and counts
    one request twice when two sources name its model differently. From here on:

    - `requests`: one row per billed request of a session that telemetry reported request by
      request (the transcripts' own record of a request is transcript_responses; for such a
      session each of those has a row here too, `tkey`). Sources meet on the request's id
      (`rid`: reading.request_number of it), else on session and figures; `sources` holds
      which saw it (1 telemetry, 2 transcript). `model` is the model that answered,
      `requested` the name asked for when a source said and it differed; `cost` the tool's
      own cost of the request, when it said.
    - `session_totals`: what a source states as a session's totals without telling its
      requests apart (Claude Code's metrics, its transcripts' `cost-state`): per source,
      model as that source names it, and figure (token types, `cost_usd`). A floor: the part
      the session's known requests do not explain is counted, once, as a remainder.
    - `model_aliases`: a requested model name and the name the answer carried, learnt from
      requests that named both (or from a session total that equals one model's requests).
    - `session_prompts`: the last prompt of each session, as telemetry reported it, to tie a
      side conversation a tool starts on a prompt to its session (Codex's title requests).
    - `session_notes`: what a session's sources cannot show (a known gap), for the report,
      unless the sources in `unless` saw the session.
    - Summaries: usage and reported-cost rows can now be removed (a remainder that moved, a
      cost that no longer covers the session's tokens): delete triggers keep the hourly and
      daily sums equal to the rows.

    Existing figures stay as they are. Each source's token figures so far (the old maxima's
    inputs) become that source's session totals, so a session recorded before this migration
    that grows later never falls below what was recorded; the reported costs likewise.
    """
    run_script(
        db,
        """
        CREATE TABLE requests (
            id INTEGER PRIMARY KEY,
            session_id TEXT NOT NULL REFERENCES sessions (id),
            identity TEXT,                  -- the request's id as a source gave it
            rid INTEGER NOT NULL,           -- reading.request_number(identity), 0 if none
            tkey INTEGER,                   -- transcript_responses.key: the transcript's record
            at REAL,                        -- when it was answered, if a source said
            requested TEXT,                 -- the model asked for, when it differs from model
            model TEXT NOT NULL,            -- the model that answered
            input INTEGER NOT NULL,
            output INTEGER NOT NULL,
            cache_read INTEGER NOT NULL,
            cache_creation INTEGER NOT NULL,
            cache_creation_1h INTEGER NOT NULL,
            reasoning INTEGER NOT NULL,
            long INTEGER NOT NULL,          -- 1: a long-context request
            cost REAL,                      -- the tool's own cost of it, when it said
            sources INTEGER NOT NULL        -- 1 telemetry, 2 transcript
        );
        CREATE INDEX requests_session ON requests (session_id, rid);
        CREATE UNIQUE INDEX requests_tkey ON requests (tkey) WHERE tkey IS NOT NULL;

        CREATE TABLE session_totals (
            session_id TEXT NOT NULL REFERENCES sessions (id),
            source TEXT NOT NULL,           -- telemetry | transcript
            model TEXT NOT NULL,            -- as that source names it
            name TEXT NOT NULL,             -- a token type, or cost_usd
            value REAL NOT NULL,
            PRIMARY KEY (session_id, source, model, name)
        ) WITHOUT ROWID;

        CREATE TABLE model_aliases (
            tool TEXT NOT NULL,
            requested TEXT NOT NULL,
            answered TEXT NOT NULL,
            learnt_at REAL NOT NULL,
            how TEXT NOT NULL,              -- request | figures
            PRIMARY KEY (tool, requested, answered)
        ) WITHOUT ROWID;

        CREATE TABLE session_prompts (
            session_id TEXT PRIMARY KEY,
            at REAL NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX session_prompts_at ON session_prompts (at);

        CREATE TABLE session_notes (
            session_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            note TEXT NOT NULL,
            unless_sources INTEGER NOT NULL,  -- sessions.sources bits that fill the gap
            PRIMARY KEY (session_id, kind)
        ) WITHOUT ROWID;

        INSERT INTO session_totals SELECT session_id, source, model, name, value
            FROM source_figures WHERE source IN ('telemetry', 'transcript')
            AND name IN ('input', 'output', 'cache_read', 'cache_creation', 'reasoning',
                         'cost_usd');
        DELETE FROM source_figures WHERE name = 'cost_usd'
        """
    )
    # the pair (session, model) loses its reported cost: its tokens are to be priced again
    db.execute(f"""CREATE TRIGGER usage_hourly_cost_delete AFTER DELETE ON session_metrics
        WHEN OLD.name = 'cost_usd' BEGIN
            UPDATE usage_hourly SET cost_reported = cost_reported - OLD.value,
                cost_pairs = cost_pairs - 1,
                pairs = pairs - (p.n = 0),
                {_each("u_{0} = u_{0} + p.{0}", _UNPRICED)}
            FROM sessions s, (
                SELECT COUNT(*) AS n, {_each(
                    "COALESCE(SUM(CASE u.token_type WHEN '{0}' THEN u.tokens END), 0) AS {0}",
                    _UNPRICED)}
                FROM usage u WHERE u.session_id = OLD.session_id AND u.model = OLD.model) AS p
            WHERE s.id = OLD.session_id AND (usage_hourly.hour, usage_hourly.tool,
                usage_hourly.model) = ({_HOUR}, s.tool, OLD.model);
        END""")
    # a usage row removed: its tokens go, and the pair with its last row (unless a cost stays)
    by_type = _each("{0} = {0} - CASE OLD.token_type WHEN '{0}' THEN OLD.tokens ELSE 0 END",
                    _TYPES)
    unpriced = _each("u_{0} = u_{0} - CASE WHEN OLD.token_type = '{0}' AND NOT EXISTS ("
                     "SELECT 1 FROM session_metrics c WHERE c.session_id = OLD.session_id "
                     "AND c.model = OLD.model AND c.name = 'cost_usd') THEN OLD.tokens ELSE 0 "
                     "END", _UNPRICED)
    db.execute(f"""CREATE TRIGGER usage_hourly_delete AFTER DELETE ON usage BEGIN
            UPDATE usage_hourly SET {by_type}, {unpriced},
                pairs = pairs - (NOT EXISTS (SELECT 1 FROM usage o WHERE
                    o.session_id = OLD.session_id AND o.model = OLD.model) AND NOT EXISTS (
                    SELECT 1 FROM session_metrics c WHERE c.session_id = OLD.session_id
                    AND c.model = OLD.model AND c.name = 'cost_usd'))
            FROM sessions s WHERE s.id = OLD.session_id AND (usage_hourly.hour,
                usage_hourly.tool, usage_hourly.model) = ({_HOUR}, s.tool, OLD.model);
        END""")
