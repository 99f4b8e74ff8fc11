"""One tracked run of a tool: its profile, receiver, ledger rows and forwarding.

Any failure inside aitrack degrades to "the tool runs anyway" plus one line on stderr.
Lines raised while the child owns the terminal are held back and printed after it exits.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from aitrack.adapters import Sink
from aitrack.loopback import SECRET_HEADER, Listener, bind

RECEIVER_DRAIN_S = 2.0
LEDGER_WAIT_S = 10.0


class Notices:
    """One-line messages for the user, each printed once."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.lock = threading.Lock()

    def add(self, line: str) -> None:
        with self.lock:
            if line not in self.lines:
                self.lines.append(line)

    def print_now(self) -> None:
        with self.lock:
            lines, self.lines = self.lines, []
        for line in lines:
            print(f"aitrack: {line}", file=sys.stderr, flush=True)


class Session:
    """Before the spawn only `__init__` and `child_command` run: keep them import-free."""

    def __init__(self, tool: str, adapter, started: float, settings: dict | None):
        self.id = os.urandom(16).hex()
        self.tool = tool
        self.adapter = adapter
        self.started = started
        self.settings = settings
        self.notices = Notices()
        self.paths = None
        self.profile = None
        self.listener: Listener | None = None
        self.receiver = None
        self.db = None
        self.db_lock = threading.Lock()
        self.ready = threading.Event()
        self.forwarder = None
        self.attributes: dict[str, str] = {}
        if settings is not None:
            for line in settings["notices"]:
                self.notices.add(line)
            try:
                self.listener = bind()
            except OSError as exc:
                self.notices.add(f"cannot open the loopback receiver ({exc.strerror or exc}); "
                                 "running without telemetry: run `aitrack doctor`")
        self.notices.print_now()

    def child_command(self, args: list[str]) -> tuple[list[str], dict[str, str]]:
        env = dict(os.environ)
        env["AITRACK_SESSION_ID"] = self.id
        if self.listener is None or self.settings is None:
            return args, env
        from aitrack.adapters import otel_env

        leaked = otel_env.scrub(env)
        if leaked:
            print(f"aitrack: {', '.join(leaked)} in your environment may hold a plaintext token; "
                  "aitrack ignores it: remove it from your shell profile and use "
                  "`aitrack token set`", file=sys.stderr, flush=True)
        sink = Sink(self.listener.base_url, SECRET_HEADER, self.listener.secret,
                    tuple(self.settings["signals"]), self.settings["attributes"],
                    self.settings["telemetry"])
        return self.adapter.prepare(list(args), env, sink)

    def abandon(self) -> None:
        if self.listener is not None:
            self.listener.close()

    # ------------------------------------------------------------ while it runs

    def begin(self) -> None:
        """Start the receiver first (the child may already be sending), then the ledger."""
        if self.listener is None:
            return
        try:
            from aitrack import paths
            from aitrack.receiver import Receiver

            self.paths = paths.from_strings(self.settings["paths"])
            self.attributes = self.settings["enforced_attributes"]
            self.receiver = Receiver(self.listener, self._store, self._store_failed).start()
            self._open_ledger()
            self._start_forwarder()
        except Exception as exc:  # noqa: BLE001 - never let aitrack break the tool
            self.notices.add(f"telemetry capture failed to start ({type(exc).__name__}: {exc}); "
                             "run `aitrack doctor`")
        finally:
            self.ready.set()

    def _open_ledger(self) -> None:
        import sqlite3
        from pathlib import Path

        from aitrack import ledger

        try:
            db = ledger.connect(self.paths.ledger)
            ledger.start_session(db, ledger.SessionStart(
                self.id, self.tool, self.started, os.getcwd(), _project(Path.cwd()),
                self.attributes))
        except (sqlite3.Error, OSError) as exc:
            self.notices.add(f"cannot write the ledger {self.paths.ledger} ({exc}): "
                             "usage of this run is not recorded; run `aitrack doctor`")
            return
        self.db = db

    def _start_forwarder(self) -> None:
        if not self.settings["forward_signals"] or self.db is None:
            return
        from aitrack import profile
        from aitrack.forwarder import Forwarder

        self.profile = profile.load(self.paths)
        if self.profile.local_only:
            return
        self.forwarder = Forwarder.start(self.paths, self.profile, self.notices.add,
                                         session_id=self.id)

    def _store(self, signal: str, request, raw: bytes) -> None:
        """Receiver callback: count and queue one payload durably, or raise StoreUnavailable."""
        import hashlib
        import sqlite3

        from aitrack import ledger, otlp
        from aitrack.receiver import StoreUnavailable

        if not self.ready.wait(LEDGER_WAIT_S) or self.db is None:
            raise StoreUnavailable("aitrack's ledger is not available")
        otlp.enforce_resource(request, self.attributes)
        payload = ledger.Accepted(
            signal=signal,
            body=request.SerializeToString(),
            digest=hashlib.sha256(f"{self.id}\0{signal}\0".encode() + raw).digest(),
            tool_version=otlp.resource_value(request, "service.version"),
        )
        if signal == "metrics":
            payload.points = list(otlp.points(request))
        if signal in ("metrics", "logs"):
            payload.tool_session_ids = {
                t for t in map(self.adapter.tool_session_id, otlp.attribute_sets(request)) if t}
        queue = signal in self.settings["forward_signals"]
        try:
            with self.db_lock:
                ledger.accept(self.db, self.id, payload, self.adapter.contributions, queue=queue)
        except sqlite3.Error as exc:
            self.notices.add(f"cannot write the ledger {self.paths.ledger} ({exc}); "
                             "run `aitrack doctor`")
            raise StoreUnavailable("ledger write failed") from None
        if queue and self.forwarder is not None:
            self.forwarder.notify()

    def _store_failed(self, exc: Exception) -> None:
        self.notices.add(f"a payload could not be recorded ({type(exc).__name__}: {exc}): "
                         "a bug in aitrack, please report it")

    # ------------------------------------------------------------ after it exits

    def end(self, exit_code: int) -> None:
        try:
            self._finish(exit_code)
        except KeyboardInterrupt:
            self.notices.add("interrupted while finishing: pending telemetry stays in the "
                             "outbox and goes with the next run or `aitrack flush`")
        except Exception as exc:  # noqa: BLE001
            self.notices.add(f"finishing the session failed ({type(exc).__name__}: {exc})")
        self.notices.print_now()

    def _finish(self, exit_code: int) -> None:
        exited = time.monotonic()
        if self.receiver is not None:
            self.receiver.stop(RECEIVER_DRAIN_S)
        if self.db is not None:
            from aitrack import ledger

            with self.db_lock:
                ledger.end_session(self.db, self.id, time.time(), exit_code)
        if self.forwarder is not None:
            # the flush bound counts from the child's exit, the receiver's drain included
            spent = time.monotonic() - exited
            self.forwarder.finish(max(0.0, self.profile.endpoint.flush_timeout_s - spent))


def _project(cwd) -> str:
    """The repository's name when inside a git work tree, else the directory's name."""
    for directory in (cwd, *cwd.parents):
        if (directory / ".git").exists():
            return directory.name
    return cwd.name
