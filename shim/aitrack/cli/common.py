"""What every command shares: one-line errors, --debug tracebacks, JSON output."""

from __future__ import annotations

import errno
import importlib
import json
import os
import sys
from datetime import date
from typing import Any

import click

from aitrack.config import paths, profile
from aitrack.config.private_files import LinkRefused, NotYours
from aitrack.domain.display import safe_lines


class UserError(click.ClickException):
    """An error the user can act on: printed as one line naming the fix."""

    def show(self, file=None) -> None:
        say(f"aitrack: {self.message}", err=True)


class AitrackGroup(click.Group):
    """Loads a command's module when the command is asked for (`lazy`: name -> module of
    aitrack.cli with a `register(group)`), turns unexpected exceptions into one line unless
    --debug is given, and lists commands with their whole summary (wrapped, never cut with
    "...")."""
    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in self.lazy:
            importlib.import_module(f"aitrack.cli.{self.lazy[name]}").register(self)
        return self.commands.get(name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, command.get_short_help_str(limit=1000))
                for name in self.list_commands(ctx)
                if (command := self.get_command(ctx, name)) is not None and not command.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        # click's main() handles a closed pipe (`aitrack report | head`) quietly
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt,
                BrokenPipeError):
            raise
        except Exception as exc:
            if "--debug" in sys.argv or (ctx.obj or {}).get("debug"):
                raise
            line = storage_problem(exc) or (f"unexpected error: {type(exc).__name__}: {exc} "
                                            "(run with --debug for details)")
            say(f"aitrack: {line}", err=True)
            ctx.exit(1)


# SQLite's primary result codes (sqlite3.Error.sqlite_errorcode & 0xFF)
SQLITE_PERM, SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY = 3, 5, 6, 8
SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_NOTADB = 10, 11, 13, 14, 26


def storage_problem(exc: BaseException) -> str | None:
    """One line saying what is wrong with the ledger or the disk under it, and the fix; None
    when `exc` is about something else."""
    if isinstance(exc, LinkRefused | NotYours):
        return exc.strerror
    disk_errors = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EROFS)
    if type(exc).__module__ != "sqlite3" and not (
            isinstance(exc, OSError) and exc.errno in disk_errors):
        return None
    ledger = paths.resolve().ledger
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    where = ledger.parent
    if code == SQLITE_FULL or (isinstance(exc, OSError) and exc.errno != errno.EROFS) or (
            code in (SQLITE_IOERR, SQLITE_CANTOPEN) and _disk_full(where)):
        return (f"the disk holding the ledger ({where}) is full, so aitrack cannot record or "
                f"queue anything: free some space (`df -h {where}`), then run this again")
    if code in (SQLITE_CORRUPT, SQLITE_NOTADB):
        return (f"the ledger {ledger} is damaged ({exc}): move it aside (`mv {ledger} "
                f"{ledger}.broken`): the next run starts a new ledger, and "
                f"`sqlite3 {ledger}.broken .recover` may save what it held")
    if code in (SQLITE_READONLY, SQLITE_PERM) or isinstance(exc, OSError):
        return (f"the ledger {ledger} is not writable ({exc}): give yourself write access to "
                "it and its directory")
    if code in (SQLITE_BUSY, SQLITE_LOCKED):
        return (f"the ledger {ledger} is busy ({exc}): another aitrack is writing to it; try "
                "again in a moment")
    return f"cannot use the ledger {ledger} ({exc}): run `aitrack doctor` for the fix"


def _disk_full(directory) -> bool:
    try:
        st = os.statvfs(directory)
    except (OSError, AttributeError):
        return False
    return st.f_bavail * st.f_frsize < 1024 * 1024


def say(text: str = "", err: bool = False) -> None:
    """Human-readable output: each line made safe (domain/display.py), since paths, names and
    an endpoint's answers come from outside. JSON goes through echo_json, exact."""
    click.echo("\n".join(safe_lines(text)), err=err)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def load_profile():
    """The effective profile, printing its problems to stderr: a line per source."""
    p = profile.load(paths.resolve())
    for line in p.problem_lines():
        say(f"aitrack: {line}", err=True)
    return p


def parse_date(ctx: click.Context, param: click.Parameter, value: str | None):
    """A click callback: an ISO date (YYYY-MM-DD), or None."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2026-01-31") from None


def color_option(command):
    """--color auto|always|never, as ccusage and `ls` take it."""
    return click.option(
        "--color", "color", type=click.Choice(["auto", "always", "never"]), default="auto",
        show_default=True,
        help="Colour: on a terminal (auto; FORCE_COLOR and NO_COLOR are honoured), always "
             "(for `less -R`) or never.")(command)
