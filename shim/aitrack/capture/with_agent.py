"""A wrapped run whose tool sends its telemetry to the per-user agent (tracked_run's "agent"
way): who holds the agent's port, asked before the spawn; the run's start and end told to
the agent, which records them (it has the ledger open) and links the run afterwards; and,
once the agent took the end, the ticket that lets the next runs of the tool go without
Python at all (spool.py).

Imported before the spawn: the standard minimum only (see tracked_run).
"""

from __future__ import annotations

import os
import sys
import threading
import time

from aitrack.capture.listener import Owner, listener_owner
from aitrack.capture.loopback import post, to_json
from aitrack.domain.projects import project_of

AGENT_END_S = 3.0  # the agent links the run's sessions and reads its commits (git: 1 s)
AGENT_TOOK = {"/aitrack/run/start": b'{"recorded": "start"}',  # the agent's answers (server.py)
              "/aitrack/run/end": b'{"recorded": "end"}'}


def wired(adapter, settings: dict) -> bool:
    """The tool's own settings send its telemetry to the agent (the start-up cache says)."""
    return bool(((settings.get("agent") or {}).get("wired") or {}).get(adapter.NAME))


def takes_agent_way(adapter, settings: dict) -> bool:
    """The tool's settings name the agent, and its wrapped runs leave it to them (a tool
    whose runs always have a receiver of their own, WITH_AGENT "receiver", does not)."""
    return wired(adapter, settings) and getattr(adapter, "WITH_AGENT", "agent") == "agent"


def nobody_listens(port: int) -> bool:
    try:
        return listener_owner(port) is None
    except Exception:  # noqa: BLE001 - cannot tell: leave the agent to `aitrack agent start`
        return False


class AgentWay:
    """The agent's side of one wrapped run (`run` is its TrackedRun)."""

    def __init__(self, run):
        self.run = run
        self.port: int = run.settings["agent"]["port"]
        self.owner: Owner | None = None

    def port_is_usable(self) -> bool:
        """Before the spawn: who holds the port the tool's settings name. False when it is
        another user: nothing may reach it, so the run is captured as without an agent."""
        try:
            self.owner = owner = listener_owner(self.port)
        except Exception as exc:  # noqa: BLE001 - never break the tool; the agent way, as before
            self.run.notices.add(f"cannot tell who holds the agent's port {self.port} "
                                 f"({type(exc).__name__}: {exc}); run `aitrack doctor`")
            return True
        if owner is None or owner.mine:
            return True
        self.run.notices.add(f"the agent's port {self.port} is held by {owner.named()}, "
                             "another user: nothing is sent there and aitrack records this "
                             "run itself; run `aitrack doctor`")
        return False

    def tell_start(self) -> None:
        """The agent records the run (this process need not import any of the ledger). If
        the agent is down it is started, and told at the run's end."""
        if self.owner is None:  # nothing listened just before the spawn
            from aitrack.capture import agent  # after the spawn, the agent down: rare
            from aitrack.config import paths  # after the spawn

            agent.spawn_detached(paths.resolve())
            return
        # every run's start, so that runs in one folder at once are seen as such (linking);
        # in a thread: the tool runs meanwhile, and the end's event carries the start too
        threading.Thread(target=self._tell, args=("/aitrack/run/start", self.start_event()),
                         name="aitrack-run-start", daemon=True).start()

    def tell_end(self, exit_code: int) -> bool:
        """True when the agent took the run's end (then it links the run's sessions)."""
        event = {**self.run.run_end(exit_code).as_dict(), "start": self.start_event()}
        return self._tell("/aitrack/run/end", event, timeout=AGENT_END_S)

    def _tell(self, path: str, event: dict, timeout: float = 1.0) -> bool:
        try:
            with open(os.path.join(self.run.settings["paths"]["state_dir"], "agent", "secret"),
                      encoding="ascii") as fh:
                secret = fh.read().strip()
        except OSError:
            return False
        # nothing is sent unless this user's process holds the port (post checks, connected)
        answer = post(self.port, path, secret, to_json(event), timeout)
        # the agent's own answer; or sent to this user's listener but unanswered: the agent
        # has it (recording it here too would count twice)
        return answer is not None and (answer == (0, b"") or (
            answer[0] == 200 and answer[1] == AGENT_TOOK[path]))

    def start_event(self) -> dict:
        run = self.run
        return {"id": run.id, "tool": run.tool, "started_at": run.started, "cwd": run.cwd,
                "project": project_of(run.cwd)}  # the agent adds the profile's attributes

    # ------------------------------------------------------------ the shims' ticket

    def leave_ticket(self, binary: str) -> None:
        """After a run the agent took: the ticket for the tool's shim (spool.py), when this
        run's way is one a shim can take (Linux, the port held by the agent's own process,
        nothing said to the user). Never fails the run: without it, shims run Python."""
        run = self.run
        if not (sys.platform.startswith("linux") and self.owner is not None
                and self.owner.mine and not run.notices.said
                and not os.environ.get("AITRACK_SHIM_FALLBACK")):
            return
        try:
            self._write_ticket(binary)
        except Exception:  # noqa: BLE001 - the next run through Python tries again
            pass

    def _write_ticket(self, binary: str) -> None:
        # at the exit, the agent having taken the end
        from aitrack.capture import launcher, runs, spool, startup

        run, adapter = self.run, self.run.adapter
        decided = time.time()
        # the wrapper's decision taken again, now: a file the run itself changed (Codex's
        # TUI writes its config.toml) is then older than the ticket, and any change made
        # after this moment is newer than it
        settings = startup.settings()
        state_dir = settings["paths"]["state_dir"]
        if not (takes_agent_way(adapter, settings) and settings["agent"]["port"] == self.port
                and not settings["notices"]
                and state_dir == run.settings["paths"]["state_dir"]
                and launcher.find_real_binary(adapter.EXECUTABLE, adapter.BIN_ENV,
                                              settings["shim_dir"]) == binary):
            return
        beacon = spool.read_beacon(state_dir) or ""
        pid = int(beacon.split()[0]) if beacon[:1].isdigit() else 0
        holder = listener_owner(self.port, (pid,)) if pid else None
        agent = spool.beacon_line(pid) if holder and holder.mine and holder.pid == pid else None
        if agent is None or agent != beacon:
            return  # what holds the port is not the agent that reads the spool
        if not (adapter.BIN_ENV and adapter.EXECUTABLE):
            return  # not a registered tool's run: no shim of its own
        ticket = spool.Ticket(agent, binary, str(spool.directory(state_dir)))
        ticket.env((*startup.ENV_KEYS, "PATH", adapter.BIN_ENV, *runs.TOOL_ENV), os.environ)
        ticket.files(settings["files"])
        if not os.environ.get(adapter.BIN_ENV):
            found = spool.path_candidates(adapter.EXECUTABLE, binary,
                                          os.environ.get("PATH", os.defpath))
            if found is None or any(
                    os.path.lexists(c) and (os.path.islink(c) or not launcher.is_shim(c))
                    for c in found[:-1]):
                # what the launcher passed over must be a shim (a link can be retargeted, a
                # mode changed, and neither makes it newer than the ticket)
                return
            ticket.files(found)
        text = ticket.text()
        if text is not None and os.path.isabs(binary):
            spool.write_ticket(state_dir, run.tool, text, decided)
