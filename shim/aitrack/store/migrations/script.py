"""Running a migration's SQL script inside the runner's transaction."""

from __future__ import annotations

import sqlite3


def run_script(db: sqlite3.Connection, script: str) -> None:
    """Execute statements one by one: executescript() would commit the open transaction."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)
