"""`aitrack import`: usage history from the tools' own transcripts and databases."""

from __future__ import annotations

import sqlite3

import click

from aitrack.cli.common import (
    UserError,
    echo_json,
    load_profile,
    parse_date,
    say,
    storage_problem,
)
from aitrack.config import paths
from aitrack.egress import normalized
from aitrack.store import importer
from aitrack.store.importing import readers


@click.command("import")
@click.option("--tool", type=click.Choice(readers.tools()),
              help="Only this tool's files (default: every tool's).")
@click.option("--since", callback=parse_date, metavar="YYYY-MM-DD",
              help="Only transcripts written to on or after this day (whole sessions).")
@click.option("--dry-run", is_flag=True, help="Count what would be imported; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable figures.")
def import_(tool: str | None, since, dry_run: bool, as_json: bool) -> None:
    """Import usage from the files Claude Code, Codex, Gemini CLI and Qwen Code keep on disk.

    Reads ~/.claude/projects (or $CLAUDE_CONFIG_DIR/projects, and ~/.config/claude/projects),
    ~/.codex/sessions and archived_sessions (or $CODEX_HOME's), ~/.gemini/tmp/*/chats (or
    $GEMINI_CLI_HOME's), ~/.qwen/projects/*/chats and ~/.qwen/usage (or $QWEN_HOME's,
    $QWEN_RUNTIME_DIR's), Copilot CLI's ~/.copilot/session-state (or $COPILOT_HOME's) and
    OTel export files, and opencode's database (~/.local/share/opencode/opencode.db, or
    $XDG_DATA_HOME's): history from before
    aitrack, and runs whose telemetry was lost. Each API response counts once, however
    many files repeat it; a session known from telemetry too stays one session, with the
    larger figure of the two per model and token type. Only what was added since the last
    import is read, so running it again is cheap (`aitrack report` does, first). The tools'
    files are never written to. Claude Code deletes transcripts after 30 days by default:
    import before then.

    \b
    Examples:
      aitrack import                          # everything new, one summary line
      aitrack import --tool codex --since 2026-01-01
      aitrack import --dry-run --json         # what would be imported, as JSON
    """


    profile = load_profile()
    ledger_path = paths.resolve().ledger
    try:
        db = importer.open_ledger(ledger_path, dry_run)
    except (sqlite3.Error, OSError) as exc:
        raise UserError(storage_problem(exc) or f"cannot open the ledger {ledger_path} ({exc}): "
                        "run `aitrack doctor`") from None
    try:
        result = importer.run(db, profile, tools=[tool] if tool else None, since=since,
                              dry_run=dry_run)
        if not dry_run and profile.endpoint is not None:
            _queue_usage_metrics(db, profile)
    except sqlite3.Error as exc:
        raise UserError(storage_problem(exc) or f"cannot write the ledger {ledger_path} ({exc}): "
                        "run `aitrack doctor`") from None
    finally:
        db.close()
    if as_json:
        echo_json(result.as_dict())
    else:
        say(result.summary())


def _queue_usage_metrics(db, profile) -> None:
    """aitrack's usage metrics for what is now due (imported sessions only where the profile
    sets `forward_imported`); they leave with the next run, the agent or `aitrack flush`."""

    try:
        normalized.emit(db, profile)
    except Exception as exc:  # noqa: BLE001 - the import itself is done and kept
        say(f"aitrack: cannot queue usage metrics ({type(exc).__name__}: {exc}); the "
            "agent or the next run queues them", err=True)


def register(cli: click.Group) -> None:
    cli.add_command(import_)
