"""One wrapped run of a tool: how its telemetry is captured, and what only the wrapper knows.

Three ways, chosen before the spawn from the start-up settings:
- agent: the tool's own settings send its telemetry to the per-user agent. The child gets
  the user's arguments and environment untouched (plus AITRACK_SESSION_ID, this run's id,
  which Claude Code's headers helper passes on to the agent); the agent is started if it is
  down. The port must be free or held by this user (listener.py): when another user holds
  it, the run is captured as without an agent, and the child is told to send nothing
  there (its own settings overridden: `Sink.replaces_settings`, or the adapter's `mute`).
- receiver: a per-run loopback receiver, told to the child through the environment
  (Claude Code without an agent, `aitrack run`).
- transcript: nothing is told to the child (Codex without an agent: its `-c` overrides
  would put a secret in its argv); its rollout is read when it exits.
A tool whose environment wins over its settings and whose settings cannot carry the agent's
key or name its endpoint (WITH_AGENT = "receiver": Gemini CLI, Qwen Code, Copilot CLI) takes
the receiver way even when its settings point at the agent: the run is counted by itself,
never waits on a closed port (8 s and retry lines on stdout for Gemini CLI) and never depends
on how the agent admits a sender without a key. When its settings point at an agent that is
down, the agent is started once the child has exited, for the runs started outside aitrack.
In every way the run is recorded (start, end, exit status, working directory), linked to
the tool sessions it ran, and its transcripts are imported at exit, so a run whose
telemetry was lost still counts, once. At its end it also reads the commits it made from git
(for tools that report none) and queues aitrack's own metrics for its sessions. The agent's
side of a run is with_agent.py's; once the agent took a run, the tool's next runs through its
shim go without Python (spool.py).

Any failure inside aitrack degrades to "the tool runs anyway" plus one line on stderr.
Lines raised while the child owns the terminal are held back and printed after it exits.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from aitrack import adapters
from aitrack.adapters import Sink
from aitrack.capture.loopback import SECRET_HEADER, Listener, bind
from aitrack.capture.with_agent import AgentWay, nobody_listens, takes_agent_way, wired
from aitrack.domain.projects import project_of

RECEIVER_DRAIN_S = 2.0
GIT_START_WAIT_S = 0.25  # for HEAD noted at the start: a run that short made no commits
GIT_END_S = 1.0  # for the commits at the end
PROCESS_DRAIN_S = 3.0
LEDGER_WAIT_S = 10.0


class Notices:
    """One-line messages for the user, each printed once."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.lock = threading.Lock()
        self.said = False  # any line at all, printed or not

    def add(self, line: str) -> None:
        with self.lock:
            self.said = True
            if line not in self.lines:
                self.lines.append(line)

    def print_now(self) -> None:
        with self.lock:
            lines, self.lines = self.lines, []
        if lines:
            from aitrack.domain.display import MAX_LINE, safe  # start-up path: on a notice only

            for line in lines:  # paths and errors from outside: escaped (display.py)
                print(f"aitrack: {safe(line, MAX_LINE)}", file=sys.stderr, flush=True)


class TrackedRun:
    """Before the spawn only `__init__` and `child_command` run: keep them import-free.

    This module is imported before the spawn, so what the run needs later is imported where
    it is needed: after the spawn, and only in the ways (agent, receiver, transcript) that
    need it (an agent-mode run loads no ledger while the agent answers)."""

    def __init__(self, tool: str, adapter, started: float, settings: dict | None):
        self.id = os.urandom(16).hex()
        self.tool = tool
        self.adapter = adapter
        self.started = started
        self.settings = settings
        self.args: list[str] = []
        self.cwd = _cwd()
        self.notices = Notices()
        self.mode = "untracked" if settings is None else _mode(adapter, settings)
        self.away = False  # the tool's settings name a port another user holds
        self.agent: AgentWay | None = None
        self.binary = ""  # the real tool, once wrap found it
        if self.mode == "agent":
            self.agent = AgentWay(self)
            if not self.agent.port_is_usable():
                self.mode, self.away = adapter.WITHOUT_AGENT, True
        self.wake_agent = False  # its settings name the agent, which is down: start it
        if settings is not None and self.mode != "agent" and wired(adapter, settings):
            port = settings["agent"]["port"]
            self.wake_agent = port is not None and nobody_listens(port)
        self.listener: Listener | None = None
        self.paths = self.profile = self.db = None
        self.receiver = self.processor = self.forwarder = None
        self.prices = None
        self.git_start: list = []  # commits.Start, noted in a thread once the child runs
        self.git_thread: threading.Thread | None = None
        self.sessions = None  # sampler.OpenSessions: the sessions its processes hold open
        self.owned: list = []  # what it found: (tool session id, file)
        self.ready = threading.Event()
        if settings is not None:
            for line in settings["notices"]:
                self.notices.add(line)
        if self.mode == "receiver":
            try:
                self.listener = bind()
            except OSError as exc:
                self.notices.add(f"cannot open the loopback receiver ({exc.strerror or exc}); "
                                 "running without telemetry: run `aitrack doctor`")
                self.mode = "transcript"
        self.notices.print_now()

    def child_command(self, args: list[str]) -> tuple[list[str], dict[str, str]]:
        self.args = list(args)
        env = dict(os.environ)
        env["AITRACK_SESSION_ID"] = self.id
        if self.mode != "receiver":
            if self.away:  # its own settings name another user's port: it must not send
                return self.adapter.mute(list(args), env)
            return args, env  # the tool's own settings, or nothing at all: untouched
        from aitrack.adapters import otel_env  # the receiver way only, before the spawn

        leaked = otel_env.scrub(env)
        if leaked:
            print(f"aitrack: {', '.join(leaked)} in your environment may hold a plaintext token; "
                  "aitrack ignores it: remove it from your shell profile and use "
                  "`aitrack token set`", file=sys.stderr, flush=True)
        sink = Sink(self.listener.base_url, SECRET_HEADER, self.listener.secret,
                    tuple(self.settings["signals"]), self.settings["attributes"],
                    self.settings["telemetry"], replaces_settings=self.away)
        return self.adapter.prepare(list(args), env, sink)

    def abandon(self) -> None:
        if self.listener is not None:
            self.listener.close()

    # ------------------------------------------------------------ while it runs

    def begin(self, pid: int | None = None) -> None:
        """The child (`pid`) runs: serve its receiver first (it may already be sending), then
        the ledger, the run's record and forwarding; with an agent, make sure it is up."""
        if self.mode == "untracked":
            return
        try:
            self._note_git_start()  # first: the tool may commit soon
            self._watch_sessions(pid)
            if self.mode == "agent":
                self.agent.tell_start()
                return
            if self.listener is not None:
                self._serve()
            self._open()
        except Exception as exc:  # noqa: BLE001 - never let aitrack break the tool
            self.notices.add(f"telemetry capture failed to start ({type(exc).__name__}: {exc}); "
                             "run `aitrack doctor`")
        finally:
            self.ready.set()

    def _serve(self) -> None:
        import socket  # after the spawn (see the class): ~4 ms

        from aitrack.capture.receiver import Receiver  # after the spawn

        sock = socket.socket(fileno=self.listener.sock.detach())
        self.receiver = Receiver(sock, self.listener.secret, self._deliver,
                                 run_id=self.id).start()

    def _open(self) -> None:
        import sqlite3  # after the spawn, with the profile, identity and ledger below

        from aitrack.config import identity, paths, profile  # after the spawn: tens of ms
        from aitrack.config.private_files import LinkRefused  # after the spawn
        from aitrack.store import ledger  # after the spawn (agent mode: only if it is gone)

        self.paths = paths.resolve()  # never the cache's word for where the ledger is
        self.profile = profile.load(self.paths)
        self.attributes = identity.resource_attributes(self.profile)
        try:
            self.db = ledger.connect(self.paths.ledger)
            ledger.start_run(self.db, ledger.Run(
                self.id, self.tool, self.started, self.cwd, project_of(self.cwd),
                self.attributes, self.mode))
        except (sqlite3.Error, OSError, LinkRefused) as exc:
            self.db = None
            self.notices.add(f"cannot write the ledger {self.paths.ledger} ({exc}): "
                             "usage of this run is not recorded; run `aitrack doctor`")
            return
        if self.receiver is not None:
            self._start_processing()

    def _start_processing(self) -> None:
        from aitrack.capture import intake  # after the spawn, with a receiver only
        from aitrack.domain import pricing  # after the spawn
        from aitrack.egress import policy  # after the spawn
        from aitrack.store import ledger  # after the spawn

        endpoint = self.profile.endpoint
        forwarded = tuple(endpoint.signals) if endpoint else ()
        self.prices = pricing.load(self.profile.prices)
        context = intake.Context(self.attributes, forwarded, self.prices,
                                 policy.of(self.profile))
        if forwarded:
            from aitrack.egress.forwarder import Forwarder  # ssl, protobuf: with an endpoint only

            self.forwarder = Forwarder.start(self.paths, self.profile, self.notices.add,
                                             session_id=self.id)
        notify = self.forwarder.notify if self.forwarder else None
        self.processor = intake.Processor(ledger.connect(self.paths.ledger), self.id, context,
                                          on_queued=notify, on_error=self.notices.add).start()
        self.inbox = intake.Inbox(ledger.connect(self.paths.ledger), self.id,
                                  self.processor.notify)

    def _deliver(self, delivery) -> None:
        """Receiver callback: the payload durably in the inbox, or StoreUnavailable (503)."""
        from aitrack.capture.intake import StoreUnavailable  # loaded by _serve already

        if not self.ready.wait(LEDGER_WAIT_S) or self.processor is None:
            raise StoreUnavailable("aitrack's ledger is not available")
        self.inbox.put(delivery)

    def _watch_sessions(self, pid: int | None) -> None:
        """For a tool whose sessions' files its processes hold open (its `locate` says which),
        watch the child's open files: they identify this run's sessions."""
        locate = adapters.part(self.tool, "locate") if self.tool in adapters.TOOLS else None
        if pid is None or locate is None or not hasattr(locate, "open_sessions"):
            return
        from aitrack.capture import sampler  # after the spawn: psutil, ~10 ms

        self.sessions = sampler.OpenSessions(pid, locate).start()

    def _note_git_start(self) -> None:
        """For a tool that reports no commits of its own: the work tree's HEAD now, read in a
        thread (the tool never waits for git); its commits are read at the run's end."""
        if not self.cwd or getattr(self.adapter, "REPORTS_CONTRIBUTIONS", True):
            return
        # after the spawn, and here, not in the thread: imports racing in two threads can
        # see half a module
        from aitrack.capture import commits

        def note() -> None:
            try:
                found = commits.start(self.cwd, self.started)
            except Exception:  # noqa: BLE001 - no figures, never a traceback on the terminal
                return
            if found is not None:
                self.git_start.append(found)

        self.git_thread = threading.Thread(target=note, name="aitrack-git", daemon=True)
        self.git_thread.start()

    def _wake_agent(self) -> None:
        """The agent, started for the runs to come (this one had its own receiver)."""
        from aitrack.capture import agent  # after the spawn, the agent down: rare

        if self.paths is None:
            return
        try:
            agent.spawn_detached(self.paths)
        except OSError as exc:
            self.notices.add(f"cannot start the agent ({exc.strerror or exc}): run "
                             "`aitrack agent start`")

    def run_end(self, exit_code: int):
        from aitrack.capture import runs  # at the exit: light, an agent-mode run needs it

        if self.git_thread is not None:
            self.git_thread.join(GIT_START_WAIT_S)
        if self.sessions is not None:
            self.owned = self.sessions.stop()
            self.sessions = None
        return runs.RunEnd(self.id, self.tool, self.cwd, self.started, time.time(), exit_code,
                           self.adapter.is_session(self.args),
                           self.git_start[0] if self.git_start else None,
                           {k: os.environ[k] for k in runs.TOOL_ENV if k in os.environ},
                           self.owned)

    # ------------------------------------------------------------ after it exits

    def end(self, exit_code: int) -> None:
        try:
            self._finish(exit_code)
        except KeyboardInterrupt:
            self.notices.add("interrupted while finishing: pending telemetry stays in the "
                             "outbox and goes with the next run or `aitrack flush`")
        except Exception as exc:  # noqa: BLE001
            self.notices.add(f"finishing the run failed ({type(exc).__name__}: {exc})")
        self.notices.print_now()

    def _finish(self, exit_code: int) -> None:
        exited = time.monotonic()
        if self.receiver is not None:
            self.receiver.stop(RECEIVER_DRAIN_S)
        if self.processor is not None:
            left = self.processor.drain(PROCESS_DRAIN_S)
            self.processor.stop()
            if left:
                self.notices.add(f"{left} payload(s) of this run are not counted yet; the next "
                                 "aitrack run or `aitrack report` counts them")
        if self.mode == "agent" and self.agent.tell_end(exit_code):
            self.agent.leave_ticket(self.binary)
            return
        if self.mode == "agent":  # the agent is not there to record it: record it here
            self._open()
        if self.db is not None:
            self._record_end(exit_code)
        if self.wake_agent:  # after the child: its start would have competed for the CPU
            self._wake_agent()
        if self.forwarder is not None:
            # the flush bound counts from the child's exit, the receiver's drain included
            spent = time.monotonic() - exited
            self.forwarder.finish(max(0.0, self.profile.endpoint.flush_timeout_s - spent))

    def _record_end(self, exit_code: int) -> None:
        from aitrack.capture import linking  # at the exit: the ledger is loaded already

        run = self.run_end(exit_code)
        found = linking.find(self.db, run)
        self._import(found.read)
        ids = linking.end(self.db, run, found)
        for step, what in ((lambda: linking.count_commits(self.db, run, ids, GIT_END_S),
                            "read this run's commits from git"),
                           (lambda: self._emit(ids), "queue aitrack's usage metrics")):
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - the run's end and its flush go on
                self.notices.add(f"cannot {what} ({type(exc).__name__}: {exc}); run "
                                 "`aitrack doctor`")

    def _emit(self, session_ids: list[str]) -> None:
        """aitrack's own metrics for the run's sessions (egress/normalized.py), queued now and
        sent within the flush bound: by this run's forwarder, or one started for them when
        the run had none (a Codex run read from its rollout). With the agent, the agent
        sends them once it has ledgered the run's last payloads (within a minute): now, the
        session would be counted before its figures and entry point arrived."""
        if self.mode == "agent":
            return
        from aitrack.egress import normalized  # at the exit, not in an agent-mode run

        done = normalized.emit(self.db, self.profile, session_ids, receiver=self.id,
                               prices=self.prices, attributes=self.attributes)
        if not done.rows:
            return
        if self.forwarder is not None:
            self.forwarder.notify()
        elif self.profile.endpoint is not None:
            from aitrack.egress.forwarder import Forwarder  # a run that had none: only now

            self.forwarder = Forwarder.start(self.paths, self.profile, self.notices.add,
                                             session_id=self.id)

    def _import(self, files: list) -> None:
        """The run's own transcripts, now: a run whose telemetry was lost still counts."""
        if not files:
            return
        from aitrack.store import importer  # at the exit, when the run left transcripts

        try:
            importer.import_files(self.db, self.tool, files, self.profile)
        except Exception as exc:  # noqa: BLE001 - the next report imports them again
            self.notices.add(f"cannot read this run's transcripts ({type(exc).__name__}: "
                             f"{exc}); `aitrack report` tries again")


def _mode(adapter, settings: dict) -> str:
    """agent, receiver or transcript: see the module's docstring. A tool whose wrapped runs
    always have a receiver of their own (WITH_AGENT "receiver") is never left to its settings."""
    if takes_agent_way(adapter, settings):
        return "agent"
    return adapter.WITHOUT_AGENT


def _cwd() -> str:
    try:
        return os.getcwd()
    except OSError:  # the directory was removed under the shell
        return ""
