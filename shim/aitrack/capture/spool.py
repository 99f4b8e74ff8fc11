"""The shims' spool: a wrapped run with the agent, recorded without starting Python.

With the per-user agent running, Python's start-up was most of what a wrapped run cost (a
`codex exec` against a local stub: ~19 ms of ~345, measured here). So a POSIX shim runs
the tool itself when a ticket says it may (install/shim_fast.py), writes the run's start
and end as two small files in the agent's spool, and pokes the agent with SIGUSR1; the agent
records them as it records a wrapper's HTTP run events (capture/agent/shim_runs.py), and
links the run afterwards, as it always did.

The spool is `<state>/agent/runs`: 0700, the user's; every file in it 0600 (the shim sets
umask 077 around its writes).
- `agent`: the beacon, "PID START" (START is the process's start time in clock ticks, field
  22 of /proc/PID/stat: with the pid, it names one process for the life of the machine).
  The agent writes it once it takes pokes and holds its port, and removes it first when it
  stops.
- `<tool>.ticket`: the Python wrapper's decision, kept for the shim. After a run that went
  the agent's way (its settings name the agent; the port's listener is this user's agent,
  which took the run's end; no notice to print), the wrapper writes what that decision
  rested on, one item per line:
      aitrack-ticket 1
      PID START            the agent that held the port
      BINARY               the real tool the wrapper ran
      @SPOOL               this spool's path: the shim found the ticket where it must be
      =NAME=VALUE | =NAME  an environment variable's value, or unset (the start-up cache's
                           variables, PATH, the tool's override and home variables)
      +PATH | -PATH        a file that existed and must not be newer than the ticket (the
                           profiles, the tool's settings, the port file, the PATH entries
                           up to the binary), or that did not exist and must not now
  The wrapper takes its decision again at the run's end (the start-up settings, the binary),
  and the ticket's mtime is set a second before that moment: `test -nt` may compare whole
  seconds, so any change made after the decision is newer than the ticket. The shim takes the
  ticket when every line holds and the agent named is alive (its pid and start time) and
  its beacon is there; anything else, and the Python wrapper runs and decides again. A ticket
  lives at most TICKET_TTL_S (the agent removes older ones): what `test -nt` cannot see (an
  edit that restores an older mtime) is seen by then.
- `<run id>.start` and `<run id>.end`: written by the shim (START_HEAD, END_HEAD); their mtimes
  are the run's start and end.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

TICKET_HEAD = "aitrack-ticket 1"
START_HEAD = "aitrack-run 1"
END_HEAD = "aitrack-end 1"
LAST_LINE = "end"  # a record without it is still being written
BEACON = "agent"
TICKET = ".ticket"
TICKET_TTL_S = 600.0
LINUX = sys.platform.startswith("linux")


def directory(state_dir: str | os.PathLike) -> Path:
    return Path(state_dir) / "agent" / "runs"


def ticket_file(state_dir: str | os.PathLike, tool: str) -> Path:
    return directory(state_dir) / f"{tool}{TICKET}"


def process_start(pid: int) -> str | None:
    """A process's start time in clock ticks since boot (Linux), as the shim reads it."""
    try:
        with open(f"/proc/{int(pid)}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rpartition(") ")[2].split()
    except (OSError, ValueError):
        return None
    return fields[19] if len(fields) > 19 else None


def beacon_line(pid: int) -> str | None:
    start = process_start(pid)
    return f"{pid} {start}" if start else None


def read_beacon(state_dir: str | os.PathLike) -> str | None:
    try:
        with open(directory(state_dir) / BEACON, encoding="ascii") as fh:
            return fh.readline().rstrip("\n")
    except (OSError, UnicodeDecodeError):
        return None


def remove(state_dir: str | os.PathLike) -> None:
    """The agent's uninstall: its beacon and the tickets go, then the spool if nothing else is
    in it (a run not recorded yet stays, for an agent installed again)."""
    spool = directory(state_dir)
    try:
        names = os.listdir(spool)
    except OSError:
        return
    for name in names:
        if name == BEACON or name.endswith(TICKET):
            try:
                os.unlink(spool / name)
            except OSError:
                pass
    try:
        spool.rmdir()
    except OSError:
        pass


class Ticket:
    """What a shim checks before it runs a tool without Python (see the module docstring)."""

    def __init__(self, agent: str, binary: str, spool_dir: str):
        self.agent = agent  # "PID START"
        self.binary = binary
        self.spool = spool_dir  # where the shim must have looked: the same directory
        self.lines: list[str] = []

    def env(self, names, environ) -> None:
        for name in dict.fromkeys(names):
            self.lines.append(f"={name}={environ[name]}" if name in environ else f"={name}")

    def files(self, paths) -> None:
        for path in dict.fromkeys(paths):
            self.lines.append(("+" if os.path.exists(path) else "-") + path)

    def text(self) -> str | None:
        """The ticket, or None when a line could not say what it must (a newline in it)."""
        lines = [TICKET_HEAD, self.agent, self.binary, f"@{self.spool}", *self.lines]
        if any("\n" in line or "\r" in line or not line for line in lines):
            return None
        return "\n".join(lines) + "\n"


def path_candidates(executable: str, binary: str, path: str) -> list[str] | None:
    """`executable` in each PATH entry up to the one the binary was found in: what the
    launcher looked at before choosing it. None when an entry is not absolute (what it
    names depends on the working directory) or the binary is not among them."""
    out = []
    for entry in path.split(os.pathsep):
        if not entry:
            continue  # the launcher skips empty entries too
        if not os.path.isabs(entry):
            return None
        candidate = os.path.join(entry, executable)
        out.append(candidate)
        if candidate == binary:
            return out
    return None


def write_ticket(state_dir: str | os.PathLike, tool: str, text: str, decided_at: float
                 ) -> None:
    """Replace the tool's ticket, dated at least a second before `decided_at`."""
    from aitrack.config.private_files import open_private  # at the run's exit, agent way only

    target = ticket_file(state_dir, tool)
    if not target.parent.is_dir():
        return  # the agent makes the spool: none, no shim run to spare Python for
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = open_private(tmp, os.O_WRONLY | os.O_TRUNC)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        stamp = math.floor(decided_at) - 1
        os.utime(tmp, (stamp, stamp))
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
