"""The hourly and daily summaries' schema: m002 creates it, m004 re-creates its usage
triggers with more token types. Part of shipped migrations: never edit it."""

from __future__ import annotations

TOKENS = ("input", "output", "cache_read", "cache_creation", "reasoning")
PRICED = ("input", "output", "cache_read", "cache_creation")  # reasoning is inside output
_CONTRIB = ("lines_added", "lines_removed", "commits", "pull_requests")
_HOUR = "CAST(s.started_at AS INTEGER) / 3600"
# `c`: the pair's cost_usd row, LEFT JOINed by usage_upsert() below
_PAIR_IS_NEW = ("c.session_id IS NULL AND NOT EXISTS (SELECT 1 FROM usage o WHERE "
                "o.session_id = NEW.session_id AND o.model = NEW.model "
                "AND o.token_type != NEW.token_type)")


def _each(template: str, names: tuple[str, ...]) -> str:
    return ", ".join(template.format(n) for n in names)


def hourly_schema(tokens_: tuple[str, ...] = TOKENS, priced: tuple[str, ...] = PRICED,
                  ) -> list[str]:
    """m002's statements; m004 re-creates the usage triggers with more token types."""
    TOKENS, PRICED = tokens_, priced  # noqa: N806 - the names the templates below use
    _USAGE_SUMS = (*TOKENS, "cost_reported", "cost_pairs", "pairs",  # noqa: N806
                   *(f"u_{t}" for t in PRICED))
    usage_cols = "hour, tool, model, " + ", ".join(_USAGE_SUMS)
    add_usage = _each("{0} = {0} + excluded.{0}", _USAGE_SUMS)
    add_contrib = _each("{0} = {0} + excluded.{0}", _CONTRIB)
    contrib_names = _each("'{}'", _CONTRIB)

    def usage_upsert(tokens: str, pairs: str) -> str:
        """Add `tokens` of NEW's type (to u_* too while the pair has no reported cost)."""
        by_type = _each(f"CASE NEW.token_type WHEN '{{}}' THEN {tokens} ELSE 0 END", TOKENS)
        unpriced = _each(f"CASE WHEN NEW.token_type = '{{}}' AND c.session_id IS NULL "
                         f"THEN {tokens} ELSE 0 END", PRICED)
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
            {_each("{} INTEGER NOT NULL DEFAULT 0", TOKENS)},
            cost_reported REAL NOT NULL DEFAULT 0,
            {_each("{} INTEGER NOT NULL DEFAULT 0", _USAGE_SUMS[len(TOKENS) + 1:])},
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
            SELECT {_HOUR}, s.tool, NEW.model, {_each("0", TOKENS)}, NEW.value, 1, p.n = 0,
                   {_each("-p.{}", PRICED)}
            FROM sessions s, (
                SELECT COUNT(*) AS n, {_each(
                    "COALESCE(SUM(CASE u.token_type WHEN '{0}' THEN u.tokens END), 0) AS {0}",
                    PRICED)}
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
        SELECT hour, tool, model, {_each("SUM({})", TOKENS)},
               TOTAL(cost), COUNT(cost), COUNT(*),
               {_each("SUM(CASE WHEN cost IS NULL THEN {} ELSE 0 END)", PRICED)}
        FROM (
            SELECT {_HOUR} AS hour, s.tool AS tool, p.model AS model, {_each("p.{}", TOKENS)},
                   (SELECT c.value FROM session_metrics c WHERE c.session_id = p.session_id
                    AND c.model = p.model AND c.name = 'cost_usd') AS cost
            FROM (
                SELECT u.session_id, u.model, {_each(
                    "SUM(CASE u.token_type WHEN '{0}' THEN u.tokens ELSE 0 END) AS {0}",
                    TOKENS)}
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
