"""The running agent (`aitrack agent run`): its receiver, run records, timers and delivery.

Besides receiving, it imports the tools' transcripts every `[agent] import_interval_s`
(they delete old ones), takes over payloads that a crashed run left in the inbox, records
wrapped runs' starts and ends (the wrapper stays light; a shim's, from the spool it pokes
with SIGUSR1: shim_runs.py) and links ended runs to their sessions, and reloads the profile
when it changes. It waits on events and timers: no busy
polling. Decoding happens in a worker process (worker.py), never in this one.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import signal
import socket
import sys
import threading
import time

from aitrack import __version__, adapters
from aitrack.capture import intake, linking, runs, spool
from aitrack.capture.agent import (
    activation,
    check_port,
    choose,
    ensure_secret,
    held_by,
    pid_file,
    rotate_session_key,
    url,
)
from aitrack.capture.agent.shim_runs import ShimRuns
from aitrack.capture.agent.worker import Worker
from aitrack.capture.receiver import Receiver
from aitrack.config import identity
from aitrack.config.paths import Paths
from aitrack.config.private_files import write_private
from aitrack.config.profile import Profile
from aitrack.config.profile import load as load_profile
from aitrack.domain import pricing
from aitrack.egress import normalized, policy
from aitrack.egress.forward_log import ForwardLog
from aitrack.egress.forwarder import Forwarder
from aitrack.store import importer, ledger

PROFILE_CHECK_S = 30.0
EMIT_INTERVAL_S = 60.0  # aitrack's own metrics for the sessions that changed (normalized.py)
FORWARDER_RECYCLE_S = 900.0  # a new forwarder re-reads the tokens (set since, or rotated)


def run_foreground(paths: Paths, profile: Profile) -> int:
    """`aitrack agent run`: serve until SIGTERM/SIGINT; the exit status."""
    return Agent(paths, profile).serve()


class Agent:
    def __init__(self, paths: Paths, profile: Profile):
        self.paths = paths
        self.profile = profile
        self.log = ForwardLog(paths.log_dir, "agent.log")
        self.stopping = threading.Event()
        self.started = time.time()
        self.received = 0
        self.forwarder: Forwarder | None = None
        self.forwarder_started = 0.0
        self.prices = None  # the profile's price table, loaded when first needed
        self._attributes: dict[str, str] | None = None
        self.span_services = tuple(n.encode() for n in adapters.services_counting("traces"))
        # the shims' spool: Linux only, where shims take the fast way (install/shim_fast.py)
        self.shim_runs = ShimRuns(paths.state_dir, self._run_event, self.log) \
            if spool.LINUX else None

    @property
    def attributes(self) -> dict[str, str]:
        """What the profile enforces, on wrapped runs' records too: the attributes a wrapper
        knows come from its start-up cache, which the user can edit."""
        if self._attributes is None:
            self._attributes = identity.resource_attributes(self.profile)
        return self._attributes

    # ------------------------------------------------------------ lifetime

    def serve(self) -> int:
        if self.shim_runs is not None:  # before the port: a shim pokes what holds it
            signal.signal(signal.SIGUSR1, lambda *_: self.shim_runs.poke())
        port = choose(self.paths, self.profile)
        secret = ensure_secret(self.paths)
        sock = self._socket(port, secret)
        if sock is None:
            return self.exit_code
        session_keys = rotate_session_key(self.paths)  # the helper tools' key, new each start
        self.db = ledger.connect(self.paths.ledger)
        self.worker = Worker(self.paths, on_queued=self._queued, log=self.log)
        self.inbox = intake.Inbox(ledger.connect(self.paths.ledger), "agent", self._put)
        self.runs_db = ledger.connect(self.paths.ledger)
        self.runs_lock = threading.Lock()
        self.link_db = ledger.connect(self.paths.ledger)  # the linker's own: git may take 1 s
        self.link_lock = threading.Lock()
        self.to_link = threading.Event()
        self.to_link.set()  # ends a stopped or crashed agent left unlinked
        threading.Thread(target=self._link_runs, name="aitrack-runs", daemon=True).start()
        self.receiver = Receiver(sock, secret, self.inbox.put, status=self.status,
                                 runs=self._run_event, kept=self._kept,
                                 also=tuple(k for k in session_keys if k),
                                 own_peers=True).start()
        self._write_pid(port)
        self._start_forwarder()
        intake.release_claims(self.db, "agent")  # what its killed worker held: taken now
        self.worker.kick()  # what a crash or a stopped agent left in the inbox
        self._start_shim_runs()
        self.log(f"agent started: pid {os.getpid()}, {url(port)}")
        for sig in (signal.SIGTERM, signal.SIGINT) + ((signal.SIGHUP,)
                                                       if hasattr(signal, "SIGHUP") else ()):
            signal.signal(sig, lambda *_: self.stopping.set())
        try:
            self._loop()
        finally:
            self._shutdown()
        return 0

    def _socket(self, port: int, secret: str) -> socket.socket | None:
        """The listening socket: the service manager's (it held the port from login), else
        bound now. None (and exit_code set) when the port is not to be had."""
        self.exit_code = 1
        passed = activation.inherited()
        if passed is not None:
            problem = activation.check(passed, port)
            if problem is None:
                return passed
            passed.close()
            print(f"aitrack: {problem}", file=sys.stderr)
            return None
        try:
            return _bind(port)
        except OSError as exc:
            found = check_port(port, secret, self.paths)
            line = (f"the agent is already running on {url(port)}" if found.state == "agent"
                    else held_by(found, port) if found.state != "free"
                    else f"cannot listen on {url(port)}: {exc.strerror or exc}")
            print(f"aitrack: {line}", file=sys.stderr)
            self.exit_code = 0 if found.state == "agent" else 1
            return None

    def _loop(self) -> None:
        """Timers for the periodic work; waiting, never polling."""
        interval = self.profile.agent.import_interval_s
        next_import = time.monotonic() + 5.0  # soon after start: history since last time
        next_profile = time.monotonic() + PROFILE_CHECK_S
        next_emit = time.monotonic() + EMIT_INTERVAL_S
        signature = self._profile_signature()
        while not self.stopping.is_set():
            now = time.monotonic()
            if now >= next_import:
                self._import()
                next_import = time.monotonic() + interval
            if now >= next_emit:
                self._emit()
                next_emit = time.monotonic() + EMIT_INTERVAL_S
            if now >= next_profile:
                fresh = self._profile_signature()
                if fresh != signature:
                    signature = fresh
                    self._reload()
                elif time.time() - self.forwarder_started > FORWARDER_RECYCLE_S:
                    self._start_forwarder()
                next_profile = time.monotonic() + PROFILE_CHECK_S
                if self.shim_runs is not None:  # ends whose poke was lost, old tickets
                    self.shim_runs.poke()
                _release_memory()
            self.stopping.wait(max(0.05, min(next_import, next_profile, next_emit)
                                   - time.monotonic()))

    def _shutdown(self) -> None:
        if self.shim_runs is not None:
            try:
                self.shim_runs.withdraw()  # first: no shim may count on this agent any longer
            except Exception as exc:  # noqa: BLE001 - read at the next start
                self.log(f"cannot read the shims' runs: {type(exc).__name__}: {exc}")
            # a late poke must not kill an agent on its way out
            signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        self.receiver.stop(2.0)
        self.to_link.set()
        try:
            self.link_pending()
        except Exception as exc:  # noqa: BLE001 - linked at the next start
            self.log(f"cannot link ended runs: {type(exc).__name__}: {exc}")
        self.worker.finish(10.0)
        self._emit()  # what the last payloads added goes with the last delivery
        if self.forwarder is not None:
            self.forwarder.finish(2.0)
        try:
            pid_file(self.paths).unlink()
        except OSError:
            pass
        self.log("agent stopped")

    # ------------------------------------------------------------ receiving

    def _kept(self, signal: str, body: bytes) -> bool:
        """Metrics and logs are counted. Traces are kept when the profile forwards them, or
        when they come from a tool whose spans carry its usage (Copilot CLI): the payload
        names that tool's service. The others count nothing and are not stored (Codex sends
        hundreds of spans at exit and waits for the answer)."""
        if signal != "traces":
            return True
        endpoint = self.profile.endpoint
        if endpoint and "traces" in endpoint.signals and policy.of(self.profile).raw:
            return True
        # a plain search of the decompressed body (protobuf or JSON carry the name as is):
        # one that merely mentions the name costs a decode, and is counted for no one
        return any(name in body for name in self.span_services)

    def _put(self) -> None:
        self.received += 1
        self.worker.kick()

    def _queued(self) -> None:
        if self.forwarder is not None:
            self.forwarder.notify()

    def status(self) -> dict:
        pending = failed = None
        try:
            pending, failed = self.inbox.db.execute(
                "SELECT COUNT(*) - COUNT(failed), COUNT(failed) FROM inbox").fetchone()
        except Exception:  # noqa: BLE001 - a status must answer
            pass
        return {"aitrack_agent": True, "pid": os.getpid(), "version": __version__,
                "uptime_s": round(time.time() - self.started, 1), "received": self.received,
                "processed": self.worker.processed, "failed": failed, "pending": pending}

    # ------------------------------------------------------------ wrapped runs

    def _run_event(self, path: str, event: dict) -> dict:
        """A wrapped run's start or end (`aitrack claude|codex` with the tool's settings
        pointing here): recorded here, where the ledger is open, so the wrapper stays light.
        An end is written durably and answered at once; linking it to its sessions (their
        transcripts, git) follows in the linker thread, or after a restart."""
        def begun(e: dict) -> ledger.Run:
            return ledger.Run(str(e["id"]), str(e["tool"]), float(e["started_at"]), e.get("cwd"),
                              e.get("project"), self.attributes, "agent")

        with self.runs_lock:
            if path.endswith("/start"):
                ledger.start_run(self.runs_db, begun(event))
                return {"recorded": "start"}
            run = runs.RunEnd.from_dict(event)  # checked now: a bad event is the wrapper's 400
            # with its start, in case that never came (the agent was starting)
            ledger.note_run_end(self.runs_db, begun(event["start"]), run.ended, run.exit_code,
                                json.dumps(run.as_dict()))
        self.to_link.set()
        return {"recorded": "end"}

    def _link_runs(self) -> None:
        """The linker thread: ended runs to their sessions and commits, as they come."""
        while not self.stopping.is_set():
            self.to_link.wait()
            self.to_link.clear()
            try:
                self.link_pending()
            except Exception as exc:  # noqa: BLE001 - kept pending: the next end or start
                self.log(f"cannot link ended runs: {type(exc).__name__}: {exc}")

    def link_pending(self) -> int:
        with self.link_lock:  # the linker thread, or the shutdown
            pending = ledger.pending_run_ends(self.link_db)
            for run_id, account in pending:
                try:
                    run = runs.RunEnd.from_dict(json.loads(account))
                except (ValueError, KeyError, TypeError) as exc:  # never blocks the others
                    self.log(f"run {run_id}: its end cannot be linked ({exc}); left unlinked")
                    ledger.forget_run_end(self.link_db, run_id)
                    continue
                self._count_commits(run, linking.end(self.link_db, run))
        return len(pending)

    def _count_commits(self, run: runs.RunEnd, ids: list[str]) -> None:
        try:
            linking.count_commits(self.link_db, run, ids, 1.0)
        except Exception as exc:  # noqa: BLE001 - the run's end is linked already
            self.log(f"cannot read run {run.id}'s commits: {type(exc).__name__}: {exc}")

    def _start_shim_runs(self) -> None:
        if self.shim_runs is None:
            return
        try:
            self.shim_runs.start()
        except OSError as exc:  # no beacon: the shims run the Python wrapper, as before
            self.log(f"cannot open the shims' spool: {exc}")

    # ------------------------------------------------------------ periodic work

    def _start_forwarder(self) -> None:
        """(Re)start delivery: a new forwarder reads the tokens again."""
        old, self.forwarder = self.forwarder, None
        if old is not None:
            old.finish(2.0)
        self.forwarder_started = time.time()
        if self.profile.endpoint is not None:
            self.forwarder = Forwarder.start(self.paths, self.profile, self.log)

    def _reload(self) -> None:
        self.profile = load_profile(self.paths)
        self.prices = self._attributes = None
        self.worker.finish(10.0)  # the next payload starts a worker with the new profile
        self._start_forwarder()
        self.log("profile changed: reloaded")

    def _profile_signature(self) -> tuple:
        files = [self.paths.managed_profile, self.paths.user_profile, self.paths.managed_plist]
        out = []
        for f in files:
            try:
                st = os.stat(f) if f else None
                out.append((st.st_mtime_ns, st.st_size, st.st_ino) if st else None)
            except OSError:
                out.append(None)
        return tuple(out)

    def _import(self) -> None:
        try:
            importer.run(self.db, self.profile)
        except Exception as exc:  # noqa: BLE001 - the next round tries again
            self.log(f"transcript import failed: {type(exc).__name__}: {exc}")
        self._emit()  # imported sessions, where the profile forwards them (forward_imported)

    def _emit(self) -> None:
        """aitrack's own metrics for the sessions whose figures changed (normalized.py)."""
        try:
            if self.prices is None:
                self.prices = pricing.load(self.profile.prices)
            done = normalized.emit(self.db, self.profile, receiver="agent", prices=self.prices)
        except Exception as exc:  # noqa: BLE001 - the next round tries again
            self.log(f"aitrack's usage metrics not queued: {type(exc).__name__}: {exc}")
            return
        if done.rows:
            self._queued()

    def _write_pid(self, port: int) -> None:
        write_private(pid_file(self.paths), json.dumps(
            {"pid": os.getpid(), "port": port, "started_at": self.started,
             "version": __version__}).encode())


def _bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if sys.platform != "win32":  # a restart must not wait out TIME_WAIT; Windows' flag differs
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def _release_memory() -> None:
    """Give freed memory back after a burst (a Codex export decodes to tens of MB)."""
    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None).malloc_trim(0)
        except (OSError, AttributeError):
            pass
