"""The runs shims recorded in the spool (capture/spool.py), taken by the agent as it takes a
Python wrapper's run events (server.py `_run_event`), then linked as those are.

A start is taken as soon as its shim pokes (SIGUSR1): the run is recorded (every run's, as
the wrapper's: linking must see runs at once in one folder), and for a tool that reports no
commits of its own, git's HEAD is noted now, a few milliseconds after the tool started, as
the wrapper's own thread noted it (a start taken later than GIT_LATE_S gets no git figures:
HEAD may have moved). What the end needs waits in `<id>.started`. An end is recorded durably
(a pending end: the linker thread takes it) and the run's files go. A start whose shim is
gone without an end (it was killed) loses its files: a killed wrapper leaves no end either,
and its open run ages out of linking alike (linking.STALE_RUN_S).

The spool is read at the agent's start, at each poke and at the agent's periodic tick (a
poke is lost while the agent restarts). Only regular files of this user's, at most
MAX_RECORD bytes each, are read; anything else there that looks like a record is removed
with a log line. Shims write only while the agent's beacon is there, so the spool holds the
runs in progress and little else.
"""

from __future__ import annotations

import json
import os
import re
import stat
import threading
import time
from collections.abc import Callable

from aitrack import adapters
from aitrack.capture import commits, spool
from aitrack.capture.runs import TOOL_ENV
from aitrack.config.private_files import NOFOLLOW, private_dir, write_private
from aitrack.domain.projects import project_of

RUN_ID = re.compile(r"[0-9a-f]{32}")
MAX_RECORD = 16 * 1024
UNFINISHED_S = 60.0  # a record still without its last line by then was abandoned mid-write
GIT_LATE_S = 5.0


class BadRecord(ValueError):
    """A file in the spool that is not a shim's record: removed."""


class ShimRuns:
    """The agent's reader of the spool: `record(path, event)` is the agent's run events."""

    def __init__(self, state_dir, record: Callable[[str, dict], dict],
                 log: Callable[[str], None]):
        self.dir = spool.directory(state_dir)
        self.state_dir = state_dir
        self.record = record
        self.log = log
        self.lock = threading.Lock()
        self.beacon: str | None = None
        # a pipe, not an Event: poke() runs in a signal handler, where a lock could deadlock
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)

    def poke(self) -> None:
        """A shim wrote a record (SIGUSR1), or the agent's tick: read the spool soon."""
        try:
            os.write(self.wake_w, b"\0")
        except OSError:  # the pipe is full: a read is due anyway
            pass

    def start(self) -> None:
        """Read what the spool holds, then take shims' pokes: the beacon goes up last."""
        if os.path.islink(self.dir):
            raise OSError(f"{self.dir} is a symbolic link: the shims run the Python wrapper")
        private_dir(self.dir)
        for name in os.listdir(self.dir):  # the tickets named the agent before this one
            if name.endswith(spool.TICKET):
                _unlink(self.dir / name)
        threading.Thread(target=self._serve, name="aitrack-shim-runs", daemon=True).start()
        self.poke()
        self.beacon = spool.beacon_line(os.getpid())
        if self.beacon is not None:
            write_private(self.dir / spool.BEACON, f"{self.beacon}\n".encode())

    def withdraw(self) -> None:
        """The agent stops: no shim takes the spool's way from now on; what is there is read
        once more (the rest at the next start)."""
        if self.beacon is not None and spool.read_beacon(self.state_dir) == self.beacon:
            _unlink(self.dir / spool.BEACON)
        self.beacon = None
        self.scan()

    def _serve(self) -> None:
        while True:
            try:
                os.read(self.wake_r, 4096)
            except OSError:
                return
            try:
                self.scan()
            except Exception as exc:  # noqa: BLE001 - the next poke or tick tries again
                self.log(f"cannot read the shims' runs: {type(exc).__name__}: {exc}")

    # ------------------------------------------------------------ reading the spool

    def scan(self) -> None:
        with self.lock:
            if self.beacon is not None and not self._private():
                self.log(f"{self.dir} is no longer private (this user's, 0700, no link): "
                         "the shims run the Python wrapper until the agent restarts")
                _unlink(self.dir / spool.BEACON)
                self.beacon = None
            try:
                names = os.listdir(self.dir)
            except OSError:
                return
            found: dict[str, set[str]] = {}
            for name in names:
                run_id, _, kind = name.partition(".")
                if RUN_ID.fullmatch(run_id) and kind in ("start", "started", "end"):
                    found.setdefault(kind, set()).add(run_id)
                elif name.endswith(spool.TICKET):
                    self._expire(name)
            for kind, take in (("start", self._begin), ("end", self._end),
                               ("started", self._gone)):
                for run_id in sorted(found.get(kind, ())):
                    try:
                        take(run_id)
                    except (BadRecord, ValueError, KeyError, TypeError, IndexError) as exc:
                        self.log(f"run {run_id}: a shim's record cannot be read ({exc}); "
                                 "removed")
                        for suffix in ("start", "started", "end"):
                            _unlink(self.dir / f"{run_id}.{suffix}")

    def _private(self) -> bool:
        """The spool as start() made it: a shim can check its owner and links, not its mode."""
        try:
            st = os.lstat(self.dir)
        except OSError:
            return False
        return (stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()
                and not stat.S_IMODE(st.st_mode) & 0o077)

    def _begin(self, run_id: str) -> None:
        taken = self._take(f"{run_id}.start", spool.START_HEAD, run_id)
        if taken is None:
            return
        (tool, shim, session, cwd, *env_lines), started = taken
        if tool not in adapters.TOOLS or session not in ("0", "1") or len(shim.split()) != 2:
            raise BadRecord("not a run of a known tool")
        cwd = os.path.realpath(cwd) if cwd else ""  # the shim's $PWD; the wrapper's getcwd()
        adapter = adapters.load(tool)
        start = {"id": run_id, "tool": tool, "started_at": started, "cwd": cwd,
                 "project": project_of(cwd)}
        self.record("/aitrack/run/start", start)  # runs at once in one folder: linking sees them
        git = None
        if cwd and not getattr(adapter, "REPORTS_CONTRIBUTIONS", True) and \
                time.time() - started < GIT_LATE_S:
            try:
                found = commits.start(cwd, started)
            except Exception:  # noqa: BLE001 - no figures, as in the wrapper
                found = None
            if found is not None:
                git = {"cwd": found.cwd, "at": found.at, "head": found.head,
                       "by_files": found.by_files}
        env = {k: v for k, _, v in (line.partition("=") for line in env_lines) if k in TOOL_ENV}
        kept = {"start": start, "is_session": session == "1", "env": env,
                "shim": shim.split(), "git_start": git}
        write_private(self.dir / f"{run_id}.started", json.dumps(kept).encode())
        _unlink(self.dir / f"{run_id}.start")

    def _end(self, run_id: str) -> None:
        if (self.dir / f"{run_id}.start").exists():
            return  # its start is still being written: both are taken at the next read
        taken = self._take(f"{run_id}.end", spool.END_HEAD, run_id)
        if taken is None:
            return
        (status,), ended = taken
        try:
            kept = json.loads(_read(self.dir / f"{run_id}.started")[0])
        except FileNotFoundError:
            raise BadRecord("an end without its start") from None
        start = kept["start"]
        exit_code = int(status)
        if not 0 <= exit_code <= 255:
            raise BadRecord(f"exit status {exit_code}")
        self.record("/aitrack/run/end", {
            "id": run_id, "tool": start["tool"], "cwd": start["cwd"],
            "started": start["started_at"], "ended": ended, "exit_code": exit_code,
            "is_session": kept["is_session"], "git_start": kept["git_start"],
            "env": kept["env"], "start": start})
        _unlink(self.dir / f"{run_id}.end")
        _unlink(self.dir / f"{run_id}.started")

    def _gone(self, run_id: str) -> None:
        """A started run whose shim is no longer there, and which has no end: dropped."""
        path = self.dir / f"{run_id}.started"
        try:
            pid, start = json.loads(_read(path)[0])["shim"]
        except FileNotFoundError:
            return  # ended meanwhile
        if spool.process_start(int(pid)) == start or (self.dir / f"{run_id}.end").exists():
            return
        self.log(f"run {run_id}: its shim was killed before the run ended; its end is unknown")
        _unlink(path)

    def _take(self, name: str, head: str, run_id: str) -> tuple[list[str], float] | None:
        """A record's lines after its head and run id, and its mtime; None when it is still
        being written (or is gone)."""
        path = self.dir / name
        try:
            data, mtime = _read(path)
        except FileNotFoundError:
            return None
        lines = os.fsdecode(data).split("\n")
        if len(lines) < 4 or lines[-1] != "" or lines[-2] != spool.LAST_LINE:
            if time.time() - mtime > UNFINISHED_S:
                raise BadRecord("never finished")
            return None
        if lines[0] != head or lines[1] != run_id:
            raise BadRecord("not a shim's record")
        return lines[2:-2], mtime

    def _expire(self, name: str) -> None:
        try:
            if time.time() - os.stat(self.dir / name).st_mtime > spool.TICKET_TTL_S:
                _unlink(self.dir / name)
        except OSError:
            pass


def _read(path) -> tuple[bytes, float]:
    """A record's bytes and mtime: a regular file of this user's, never through a link."""
    try:
        fd = os.open(path, os.O_RDONLY | NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise
    except OSError as exc:  # a link (ELOOP), a file it may not read...
        raise BadRecord(exc.strerror or str(exc)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            raise BadRecord("not a file of this user's")
        data = os.read(fd, MAX_RECORD + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_RECORD:
        raise BadRecord("too long")
    return data, st.st_mtime_ns / 1e9


def _unlink(path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
