"""Which tool sessions a wrapped run's own processes hold open: what identifies its sessions.

A tool that writes its session's file while the session runs (Codex's rollout, checked with
0.169.0: open from the thread's start until the process exits) shows which sessions are this
run's in the open files of the processes the run started: not a guess from the folder and the
time, which concurrent runs in one folder share. The wrapper looks while the child runs, in a
thread, often at first (a short `codex exec` lasts under a second), then less often. A
process the tool shares with other runs (Codex's background server) is left out: its files
are not this run's alone. The adapter's `locate` part says which files are sessions
(`open_sessions`) and which processes are shared (`run_process`).
"""

from __future__ import annotations

import threading
from pathlib import Path

import psutil

FAST_S = 0.1  # between looks while the run is young
SLOW_S = 1.0  # between looks after FAST_FOR_S
FAST_FOR_S = 3.0


class OpenSessions:
    """Looks at the open files of a child process and its descendants until stopped."""

    def __init__(self, pid: int, locate):
        self.pid = pid
        self.locate = locate
        self.found: dict[str, Path] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="aitrack-sessions", daemon=True)

    def start(self) -> OpenSessions:
        self.thread.start()
        return self

    def stop(self) -> list[tuple[str, Path]]:
        """Stop looking (one last look first); the sessions seen, with their files."""
        self.stopping.set()
        self.thread.join(2.0)
        return sorted(self.found.items())

    def _run(self) -> None:
        waited = 0.0
        while True:
            self.look()
            pause = FAST_S if waited < FAST_FOR_S else SLOW_S
            if self.stopping.wait(pause):
                return
            waited += pause

    def look(self) -> None:
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        paths = []
        for proc in procs:
            try:
                if not self.locate.run_process(proc.cmdline()):
                    continue
                paths += [f.path for f in proc.open_files()]
            except psutil.Error:
                continue  # gone, or not ours to look at
        for tsid, path in self.locate.open_sessions(paths):
            self.found.setdefault(tsid, Path(path))
