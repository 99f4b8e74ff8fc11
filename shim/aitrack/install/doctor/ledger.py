"""Checks of what aitrack keeps on this machine: the ledger, its outbox, the disk they are on,
the privacy of its files, and the prices it counts with."""

from __future__ import annotations

import os
import sqlite3
import time
from datetime import date
from pathlib import Path

from aitrack.config import private_files
from aitrack.domain import pricing
from aitrack.egress import outbox
from aitrack.egress.forward_log import size
from aitrack.install.doctor.check import FAIL, PASS, WARN, Check, Context
from aitrack.reports import queries
from aitrack.reports.readonly import LedgerError, open_ledger
from aitrack.store import ledger
from aitrack.store.migrations import MIGRATIONS

STALE_BACKLOG_S = 3600.0  # a payload pending longer than this is a backlog, not in flight
OUTBOX_FULL = 0.8  # of endpoint.outbox_max_mb: the size bound is about to evict payloads
DISK_FULL_BYTES = 1024 * 1024
DISK_LOW_BYTES = 64 * 1024 * 1024


def _open_ledger(path: Path) -> sqlite3.Connection:
    """Read-only: the doctor never creates nor upgrades a ledger."""
    return ledger.open_readonly(path)


def check_ledger(ctx: Context) -> Check:
    path = ctx.paths.ledger
    current = len(MIGRATIONS)
    if not path.exists():
        return Check("ledger", PASS, f"no ledger yet at {path}: the first tracked run creates it",
                     data={"path": str(path), "exists": False})
    data: dict = {"path": str(path), "exists": True, "schema": None, "current_schema": current}
    # first: on a read-only file system even reading a WAL ledger fails ("unable to open")
    if not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
        return Check("ledger", FAIL, f"{path} is not writable: usage cannot be recorded",
                     f"give yourself write access to {path} and its directory", data=data)
    try:
        db = _open_ledger(path)
        try:
            version = db.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0] or 0
            quick = [r[0] for r in db.execute("PRAGMA quick_check").fetchall()]
        finally:
            db.close()
    except sqlite3.Error as exc:
        return Check("ledger", FAIL, f"{path} cannot be read: {exc}",
                     f"move it aside (`mv {path} {path}.broken`): the next run starts a new "
                     "ledger; the old file keeps the usage recorded so far", data=data)
    data["schema"] = version
    if quick != ["ok"]:
        first = "; ".join(line.strip("* ") for line in str(quick[0]).splitlines()
                          if line.strip("* ") and "in database" not in line)
        return Check("ledger", FAIL, f"{path} is damaged: {first or quick[0]}"
                     + (f" (+{len(quick) - 1} more)" if len(quick) > 1 else ""),
                     f"move it aside (`mv {path} {path}.broken`) and try "
                     f"`sqlite3 {path}.broken .recover`; the next run starts a new ledger",
                     data=data)
    if version > current:
        return Check("ledger", WARN, f"{path} has schema v{version}, newer than this aitrack's "
                     f"v{current}", "upgrade aitrack", data=data)
    if version < current:
        return Check("ledger", PASS, f"{path} ok (schema v{version}; the next run upgrades it "
                     f"to v{current})", data=data)
    return Check("ledger", PASS, f"{path} ok (schema v{version}, integrity check passed)",
                 data=data)


def check_disk(ctx: Context) -> Check:
    """Room on the file system that holds the ledger (and the outbox inside it)."""
    directory = ctx.paths.ledger.parent
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    try:
        st = os.statvfs(directory)
    except (OSError, AttributeError):  # no statvfs on Windows
        return Check("disk", PASS, f"not checked: cannot measure the free space of {directory}")
    free = st.f_bavail * st.f_frsize
    data = {"path": str(directory), "free_bytes": free}
    if free < DISK_FULL_BYTES:
        return Check("disk", FAIL, f"the disk holding {directory} is full ({size(free)} free): "
                     "usage cannot be recorded nor telemetry queued",
                     f"free some space on it (`df -h {directory}` shows it), then run "
                     "`aitrack doctor` again", data=data)
    if free < DISK_LOW_BYTES:
        return Check("disk", WARN, f"the disk holding {directory} is nearly full "
                     f"({size(free)} free)", f"free some space on it (`df -h {directory}`)",
                     data=data)
    return Check("disk", PASS, f"{size(free)} free on the disk holding {directory}", data=data)


def check_private_files(ctx: Context) -> Check:
    """aitrack's files hold emails, directories and payloads: no other user may read them."""
    paths = ctx.paths
    dirs = [paths.config_dir, paths.data_dir, paths.state_dir, paths.log_dir, paths.cache_dir,
            paths.state_dir / "agent"]
    files = [paths.ledger.with_name(paths.ledger.name + s) for s in ("", "-wal", "-shm")]
    files += [paths.log_dir / "forwarder.log", paths.cache_dir / "startup.bin"]
    links = [str(f) for f in files if f.is_symlink()]
    loose = [str(p) for p in dirs + files
             if str(p) not in links and p.exists() and private_files.loose(p)]
    data = {"loose": loose, "links": links}
    refused = _others(dirs + files)
    if refused:
        data["refused"] = [str(r) for r in refused]
        more = f" (+{len(refused) - 1} more)" if len(refused) > 1 else ""
        return Check("private-files", FAIL, f"aitrack will not use {refused[0].filename}: "
                     f"another account made it or may change it{more}",
                     refused[0].strerror.split(": ", 2)[-1], [str(r) for r in refused], data)
    if links:
        more = f" (+{len(links) - 1} more)" if len(links) > 1 else ""
        return Check("private-files", FAIL, f"{links[0]} is a symbolic link, which aitrack "
                     f"refuses to write through{more}",
                     f"remove the link (`rm {links[0]}`); the next run creates the file",
                     links + loose, data)
    if loose:
        return Check("private-files", WARN, f"{len(loose)} of aitrack's files or directories "
                     f"can be read by other users (e.g. {loose[0]})",
                     "the next tracked run makes them private; or now: `chmod -R go-rwx "
                     + " ".join(str(d) for d in dirs if d.exists()) + "`", loose, data)
    return Check("private-files", PASS, "aitrack's files are private (0600 files in 0700 "
                 "directories)", data=data)


def _others(paths: list[Path]) -> list[private_files.NotYours]:
    """What of aitrack's another account made or may change (private_files.NotYours)."""
    found = []
    for path in paths:
        try:
            st = path.lstat()
        except OSError:
            continue
        try:
            refused = private_files.not_yours(path, st)
            if refused is None and path.is_dir():
                private_files.check_way(path)
        except private_files.NotYours as exc:
            refused = exc
        if refused is not None and all(r.filename != refused.filename for r in found):
            found.append(refused)
    return found


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _age(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def check_outbox(ctx: Context, now: float | None = None) -> Check:
    path = ctx.paths.ledger
    if not path.exists():
        return Check("outbox", PASS, "empty (no ledger yet)")
    try:
        db = _open_ledger(path)
        try:
            c = outbox.counts(db)
        finally:
            db.close()
    except sqlite3.Error as exc:
        return Check("outbox", WARN, f"cannot read the outbox in {path}: {exc}",
                     "see the ledger check; the next aitrack run upgrades an old ledger")
    now = time.time() if now is None else now
    endpoint = ctx.profile.endpoint
    bound = (endpoint.outbox_max_mb if endpoint else 256) * 1024 * 1024
    data = {"pending": c.pending, "dead": c.dead, "pending_bytes": c.pending_bytes,
            "dead_bytes": c.dead_bytes, "oldest_pending_at": c.oldest_pending_at,
            "evicted": c.evicted, "bound_bytes": bound}
    details = []
    if c.evicted:
        details.append(f"{_count(c.evicted, 'payload')} ({size(c.evicted_bytes)}) dropped by "
                       "the size bound so far (their usage is still in the ledger)")
    held = c.pending_bytes + c.dead_bytes
    if held >= OUTBOX_FULL * bound:
        return Check("outbox", FAIL, f"nearly full: {size(held)} of {size(bound)} "
                     "(endpoint.outbox_max_mb); at the bound the oldest payloads are dropped",
                     "fix what blocks delivery (the endpoint and keychain checks above), then "
                     "run `aitrack flush`", details, data)
    problems = []
    age = now - c.oldest_pending_at if c.oldest_pending_at is not None else 0.0
    if c.pending and (age > STALE_BACKLOG_S or endpoint is None):
        problems.append(f"{_count(c.pending, 'payload')} ({size(c.pending_bytes)}) waiting, "
                        f"the oldest for {_age(age)}")
    if c.dead:
        problems.append(f"{_count(c.dead, 'dead letter')} ({size(c.dead_bytes)}) the "
                        "endpoint refused")
    if problems:
        return Check("outbox", WARN, "; ".join(problems), _outbox_fix(c, endpoint is None),
                     details, data)
    summary = (f"{_count(c.pending, 'payload')} in flight ({size(c.pending_bytes)})"
               if c.pending else "empty: everything was delivered")
    return Check("outbox", PASS, summary, None, details, data)


def _outbox_fix(c: outbox.Counts, local_only: bool) -> str:
    """What to do about payloads waiting or refused."""
    if local_only:
        return ("no endpoint is configured any more, so they will not be sent: ask IT, or "
                "ignore them (the ledger has their usage)")
    fixes = []
    if c.pending:
        fixes.append("run `aitrack flush` once the endpoint check passes")
    if c.dead:
        fixes.append("`aitrack flush --json` shows why the endpoint refused them; "
                     "`aitrack flush --retry-dead` re-sends them")
    return "; ".join(fixes)


# ---------------------------------------------------------------- prices


def check_prices(ctx: Context, today: date | None = None) -> Check:
    """WARN when the built-in price table is stale or a model in the ledger has no price."""
    table = pricing.load(ctx.profile.prices)
    stale = pricing.stale_line(table.as_of, today)
    try:
        db = open_ledger(ctx.paths.ledger)
        try:
            models = queries.models(db)
        finally:
            if db is not None:
                db.close()
    except (sqlite3.Error, LedgerError):
        models = []  # the ledger check says what is wrong with it
    unpriced = [m for m in models if table.price_for(m) is None]
    data = {"as_of": table.as_of, "stale": stale is not None, "unpriced": unpriced}
    problems = [stale] if stale else []
    if unpriced:
        problems.append(f"no price for {', '.join(unpriced)} (in your ledger): where the "
                        "tool reported no cost of its own, reports show it as `unpriced`")
    if problems:
        return Check("prices", WARN, " ".join(problems),
                     "`aitrack prices` shows the price each of your models gets and the "
                     "profile snippet that adds a missing one", data=data)
    priced = f"; {_count(len(models), 'model')} in your ledger, all priced" if models else ""
    return Check("prices", PASS, f"built-in prices as of {table.as_of}{priced}", data=data)
