"""The per-user agent: one loopback receiver that the tools' own settings point at.

It sees every run from every front end (terminal, IDE extensions, desktop apps, Codex's
background server), not only the runs that go through `aitrack claude|codex`. It is built
from the same parts as a wrapped run's receiver: the receiver (secret header, loopback
Host), the inbox and its processor (durable before 200, then attributes enforced, ledgered
and queued), the outbox and the forwarder. Only its lifetime and wiring differ: it listens
on a fixed port (`[agent] port`) for as long as the user is logged in, and its secret is a
per-user one kept in a 0600 file in a 0700 directory, never in an argument.

Besides receiving, it imports the tools' transcripts every `[agent] import_interval_s`
(they delete old ones), takes over payloads that a crashed run left in the inbox, and
reloads the profile when it changes. It waits on events and timers: no busy polling.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from aitrack.capture.loopback import SECRET_HEADER, is_listening
from aitrack.capture.receiver import RUN_HEADER, STATUS_PATH

DEFAULT_PORT = 47318
PROFILE_CHECK_S = 30.0
EMIT_INTERVAL_S = 60.0  # aitrack's own metrics for the sessions that changed (normalized.py)
FORWARDER_RECYCLE_S = 900.0  # a new forwarder re-reads the tokens (set since, or rotated)
START_WAIT_S = 5.0
__all__ = ["DEFAULT_PORT", "RUN_HEADER", "SECRET_HEADER", "Agent", "agent_dir", "ensure_secret",
           "is_listening", "probe", "run_foreground", "secret_file", "spawn_detached",
           "start_detached", "status", "stop", "url"]


class AgentError(Exception):
    """One line for the user: what is wrong with the agent and how to fix it."""


def url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def agent_dir(paths) -> Path:
    return paths.state_dir / "agent"


def secret_file(paths) -> Path:
    return agent_dir(paths) / "secret"


def pid_file(paths) -> Path:
    return agent_dir(paths) / "agent.json"


def read_secret(paths) -> str | None:
    try:
        return secret_file(paths).read_text(encoding="ascii").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def ensure_secret(paths) -> str:
    """The per-user secret, made once (0600 in a 0700 directory)."""
    from aitrack.config.private_files import private_dir, tighten, write_private

    private_dir(agent_dir(paths))
    secret = read_secret(paths)
    if secret:
        tighten(secret_file(paths))
        return secret
    secret = os.urandom(24).hex()
    write_private(secret_file(paths), secret.encode())
    return secret


def probe(port: int, secret: str | None, timeout: float = 1.0) -> str:
    """"free" (nothing listens), "agent" (this user's aitrack agent answers its status with
    this secret) or "other" (something else holds the port)."""
    import http.client

    if not is_listening(port, timeout):
        return "free"
    if secret is None:
        return "other"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", STATUS_PATH, headers={SECRET_HEADER: secret})
        answer = conn.getresponse()
        body = answer.read(65536)
        ok = answer.status == 200 and json.loads(body).get("aitrack_agent") is True
    except (OSError, ValueError, http.client.HTTPException, AttributeError):
        ok = False
    finally:
        conn.close()
    return "agent" if ok else "other"


def _status_of(port: int, secret: str, timeout: float = 1.0) -> dict | None:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", STATUS_PATH, headers={SECRET_HEADER: secret})
        answer = conn.getresponse()
        data = json.loads(answer.read(65536)) if answer.status == 200 else None
    except (OSError, ValueError, http.client.HTTPException):
        data = None
    finally:
        conn.close()
    return data if isinstance(data, dict) and data.get("aitrack_agent") else None


def _command() -> list[str]:
    return [sys.executable, "-m", "aitrack", "agent", "run"]


def spawn_detached(paths) -> int:
    """Start `aitrack agent run` in a session of its own, without waiting for it."""
    import subprocess

    from aitrack.config.private_files import open_private, private_dir

    private_dir(paths.log_dir)
    log = open_private(paths.log_dir / "agent.out", os.O_WRONLY | os.O_APPEND)
    env = {k: v for k, v in os.environ.items() if k != "AITRACK_SESSION_ID"}
    kw: dict = {"start_new_session": True}
    if sys.platform == "win32":  # untested here
        kw = {"creationflags": subprocess.DETACHED_PROCESS |
              subprocess.CREATE_NEW_PROCESS_GROUP}
    try:
        proc = subprocess.Popen(_command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                env=env, close_fds=True, cwd=str(Path.home()), **kw)
    finally:
        os.close(log)
    return proc.pid


def start_detached(paths, profile) -> str:
    """Start the agent unless it runs; one line saying what happened. AgentError when the
    port is held by something else or the agent does not come up."""
    port = profile.agent.port
    secret = ensure_secret(paths)
    found = probe(port, secret)
    if found == "agent":
        return f"the agent is already running on {url(port)}"
    if found == "other":
        raise AgentError(_port_taken(port))
    pid = spawn_detached(paths)
    deadline = time.monotonic() + START_WAIT_S
    while time.monotonic() < deadline:
        if probe(port, secret, 0.5) == "agent":
            return f"the agent is running on {url(port)} (pid {pid})"
        time.sleep(0.05)
    raise AgentError(f"the agent did not start within {START_WAIT_S:g} s: see "
                     f"{paths.log_dir / 'agent.out'} and run `aitrack doctor`")


def stop(paths, timeout_s: float = 5.0) -> bool:
    """Stop the running agent (SIGTERM, then wait); False when none was running."""
    info = _pid_info(paths)
    if info is None or not _is_agent_process(info.get("pid")):
        return False
    pid = info["pid"]
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        return False
    import psutil

    try:
        psutil.Process(pid).wait(timeout_s)
    except psutil.TimeoutExpired:
        os.kill(pid, signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM)
    except psutil.NoSuchProcess:
        pass
    return True


def status(paths, profile) -> dict:
    """What `aitrack agent status` shows: never the secret."""
    port = profile.agent.port
    secret = read_secret(paths)
    found = probe(port, secret) if secret else ("free" if not is_listening(port) else "other")
    out = {"running": found == "agent", "port": port, "url": url(port), "port_owner": found,
           "pid": None, "version": None, "uptime_s": None, "received": None, "processed": None,
           "failed": None, "pending": None}
    if found == "agent":
        live = _status_of(port, secret) or {}
        out.update({k: live.get(k) for k in ("pid", "version", "uptime_s", "received",
                                             "processed", "failed", "pending")})
    return out


def _port_taken(port: int) -> str:
    return (f"port {port} is used by another program, not aitrack's agent: stop it, or choose "
            "another port with `[agent] port = N` in your profile and run `aitrack agent "
            "install` again")


def _pid_info(paths) -> dict | None:
    try:
        return json.loads(pid_file(paths).read_text())
    except (OSError, ValueError):
        return None


def _is_agent_process(pid) -> bool:
    import psutil

    try:
        cmd = psutil.Process(int(pid)).cmdline()
    except (psutil.Error, TypeError, ValueError):
        return False
    return "aitrack" in " ".join(cmd) and cmd[-2:] == ["agent", "run"]


def run_foreground(paths, profile) -> int:
    """`aitrack agent run`: serve until SIGTERM/SIGINT; the exit status."""
    return Agent(paths, profile).serve()


class Agent:
    def __init__(self, paths, profile):
        from aitrack.egress.forward_log import ForwardLog

        self.paths = paths
        self.profile = profile
        self.log = ForwardLog(paths.log_dir, "agent.log")
        self.stopping = threading.Event()
        self.started = time.time()
        self.received = 0
        self.forwarder = None
        self.forwarder_started = 0.0
        self.prices = None  # the profile's price table, loaded when first needed
        self._attributes: dict[str, str] | None = None

    @property
    def attributes(self) -> dict[str, str]:
        """What the profile enforces, on wrapped runs' records too: the attributes a wrapper
        knows come from its start-up cache, which the user can edit."""
        if self._attributes is None:
            from aitrack.config.identity import resource_attributes

            self._attributes = resource_attributes(self.profile)
        return self._attributes

    # ------------------------------------------------------------ lifetime

    def serve(self) -> int:
        from aitrack.capture import intake
        from aitrack.capture.receiver import Receiver
        from aitrack.store import ledger

        port = self.profile.agent.port
        secret = ensure_secret(self.paths)
        try:
            sock = _bind(port)
        except OSError as exc:
            found = probe(port, secret)
            line = (f"the agent is already running on {url(port)}" if found == "agent"
                    else _port_taken(port) if found == "other"
                    else f"cannot listen on {url(port)}: {exc.strerror or exc}")
            print(f"aitrack: {line}", file=sys.stderr)
            return 0 if found == "agent" else 1
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
                                 runs=self._run_event, kept=self._kept).start()
        self._write_pid(port)
        self._start_forwarder()
        self.worker.kick()  # what a crash or a stopped agent left in the inbox
        self.log(f"agent started: pid {os.getpid()}, {url(port)}")
        for sig in (signal.SIGTERM, signal.SIGINT) + ((signal.SIGHUP,)
                                                       if hasattr(signal, "SIGHUP") else ()):
            signal.signal(sig, lambda *_: self.stopping.set())
        try:
            self._loop()
        finally:
            self._shutdown()
        return 0

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
                _release_memory()
            self.stopping.wait(max(0.05, min(next_import, next_profile, next_emit)
                                   - time.monotonic()))

    def _shutdown(self) -> None:
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

    # ------------------------------------------------------------ wiring

    def _kept(self, signal: str) -> bool:
        """Metrics and logs are counted; traces count nothing, so they are kept only when the
        profile forwards them (Codex sends hundreds of spans at exit and waits for the answer)."""
        from aitrack.egress import policy

        if signal != "traces":
            return True
        endpoint = self.profile.endpoint
        return bool(endpoint and "traces" in endpoint.signals
                    and policy.of(self.profile).raw)

    def _put(self) -> None:
        self.received += 1
        self.worker.kick()

    def _run_event(self, path: str, event: dict) -> dict:
        """A wrapped run's start or end (`aitrack claude|codex` with the tool's settings
        pointing here): recorded here, where the ledger is open, so the wrapper stays light.
        An end is written durably and answered at once; linking it to its sessions (their
        transcripts, git) follows in the linker thread, or after a restart."""
        import json

        from aitrack.capture import runs
        from aitrack.store import ledger

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
        import json

        from aitrack.capture import runs
        from aitrack.store import ledger

        with self.link_lock:  # the linker thread, or the shutdown
            pending = ledger.pending_run_ends(self.link_db)
            for run_id, account in pending:
                try:
                    run = runs.RunEnd.from_dict(json.loads(account))
                except (ValueError, KeyError, TypeError) as exc:  # never blocks the others
                    self.log(f"run {run_id}: its end cannot be linked ({exc}); left unlinked")
                    ledger.forget_run_end(self.link_db, run_id)
                    continue
                self._count_commits(run, runs.end(self.link_db, run))
        return len(pending)

    def _count_commits(self, run, ids: list[str]) -> None:
        from aitrack.capture import runs

        try:
            runs.count_commits(self.link_db, run, ids, 1.0)
        except Exception as exc:  # noqa: BLE001 - the run's end is linked already
            self.log(f"cannot read run {run.id}'s commits: {type(exc).__name__}: {exc}")

    def _queued(self) -> None:
        if self.forwarder is not None:
            self.forwarder.notify()

    def _start_forwarder(self) -> None:
        """(Re)start delivery: a new forwarder reads the tokens again."""
        from aitrack.egress.forwarder import Forwarder

        old, self.forwarder = self.forwarder, None
        if old is not None:
            old.finish(2.0)
        self.forwarder_started = time.time()
        if self.profile.endpoint is not None:
            self.forwarder = Forwarder.start(self.paths, self.profile, self.log)

    def _reload(self) -> None:
        from aitrack.config import profile

        self.profile = profile.load(self.paths)
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
        from aitrack.store import importer

        try:
            importer.run(self.db, self.profile)
        except Exception as exc:  # noqa: BLE001 - the next round tries again
            self.log(f"transcript import failed: {type(exc).__name__}: {exc}")
        self._emit()  # imported sessions, where the profile forwards them (forward_imported)

    def _emit(self) -> None:
        """aitrack's own metrics for the sessions whose figures changed (normalized.py)."""
        from aitrack.domain import pricing
        from aitrack.egress import normalized

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
        from aitrack import __version__
        from aitrack.config.private_files import write_private

        write_private(pid_file(self.paths), json.dumps(
            {"pid": os.getpid(), "port": port, "started_at": self.started,
             "version": __version__}).encode())

    def status(self) -> dict:
        from aitrack import __version__

        pending = failed = None
        try:
            pending, failed = self.inbox.db.execute(
                "SELECT COUNT(*) - COUNT(failed), COUNT(failed) FROM inbox").fetchone()
        except Exception:  # noqa: BLE001 - a status must answer
            pass
        return {"aitrack_agent": True, "pid": os.getpid(), "version": __version__,
                "uptime_s": round(time.time() - self.started, 1), "received": self.received,
                "processed": self.worker.processed, "failed": failed, "pending": pending}


class Worker:
    """The agent's processor, in a process of its own (see intake.worker): started when a
    payload arrives, gone once idle, so decoding never delays an answer and big decodes
    leave no memory behind in the agent."""

    def __init__(self, paths, on_queued, log):
        self.paths = paths
        self.on_queued = on_queued
        self.log = log
        self.proc = None
        self.lock = threading.Lock()
        self.processed = 0  # payloads counted, as the workers said

    def kick(self) -> None:
        with self.lock:
            for _ in range(2):
                if self.proc is None or self.proc.poll() is not None:
                    self._spawn()
                try:
                    self.proc.stdin.write(b"\n")
                    self.proc.stdin.flush()
                    return
                except (OSError, ValueError):  # it exited meanwhile: start another
                    self.proc = None

    def finish(self, timeout_s: float) -> None:
        """Let the worker empty the inbox and exit (bounded)."""
        with self.lock:
            proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            proc.stdin.close()
            proc.wait(timeout_s)
        except (OSError, ValueError):
            pass
        except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired: it is stuck
            proc.kill()

    def _spawn(self) -> None:
        import subprocess

        from aitrack.config.private_files import open_private, private_dir

        private_dir(self.paths.log_dir)
        err = open_private(self.paths.log_dir / "agent.out", os.O_WRONLY | os.O_APPEND)
        try:
            self.proc = subprocess.Popen([sys.executable, "-m", "aitrack.capture.intake", "agent"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=err, close_fds=True)
        finally:
            os.close(err)
        threading.Thread(target=self._relay, args=(self.proc,), name="aitrack-worker-out",
                         daemon=True).start()

    def _relay(self, proc) -> None:
        for line in proc.stdout:
            text = line.decode("utf-8", "replace").rstrip("\n")
            if text == "q":
                self.on_queued()
            elif text.startswith("p ") and text[2:].isdigit():
                self.processed += int(text[2:])
            elif text.startswith("e "):
                self.log(text[2:])


def _bind(port: int):
    import socket

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
    import gc

    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None).malloc_trim(0)
        except (OSError, AttributeError):
            pass
