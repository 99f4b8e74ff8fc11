"""The agent's processor, in a process of its own: the agent's handle on it, and its main.

A big JSON export decodes for a few hundred ms of pure Python, which in the agent's own
process would hold up the answers to the tools. So the agent starts
`python -m aitrack.capture.agent.worker` when payloads arrive; it empties the inbox
(intake.Processor) and exits once idle, so big decodes leave no memory behind in the agent.
Each byte on its stdin means "a payload arrived"; stdin closing means the agent is gone. On
its stdout: `q` once payloads were queued for the org, `p N` when N more were counted,
`e <line>` for a line worth logging.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from aitrack.capture.intake import Context, Processor
from aitrack.config import identity, paths, profile
from aitrack.config.private_files import open_private, private_dir
from aitrack.domain import pricing
from aitrack.egress import policy
from aitrack.store import ledger

IDLE_S = 20.0  # a worker with nothing to do for this long exits; the next put starts one
SETTLE_S = 0.25  # payloads ledgered once none came for this long...
SETTLE_MAX_S = 2.0  # ...or after this, under a steady stream


class Worker:
    """The agent's handle: starts the worker process when a payload arrives and none runs."""

    def __init__(self, locations: paths.Paths, on_queued: Callable[[], None],
                 log: Callable[[str], None]):
        self.paths = locations
        self.on_queued = on_queued
        self.log = log
        self.proc: subprocess.Popen | None = None
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
        except subprocess.TimeoutExpired:  # it is stuck
            proc.kill()

    def _spawn(self) -> None:
        private_dir(self.paths.log_dir)
        err = open_private(self.paths.log_dir / "agent.out", os.O_WRONLY | os.O_APPEND)
        try:
            self.proc = subprocess.Popen([sys.executable, "-m", "aitrack.capture.agent.worker",
                                          "agent"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=err, close_fds=True)
        finally:
            os.close(err)
        threading.Thread(target=self._relay, args=(self.proc,), name="aitrack-worker-out",
                         daemon=True).start()

    def _relay(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            text = line.decode("utf-8", "replace").rstrip("\n")
            if text == "q":
                self.on_queued()
            elif text.startswith("p ") and text[2:].isdigit():
                self.processed += int(text[2:])
            elif text.startswith("e "):
                self.log(text[2:])


# ---------------------------------------------------------------- the worker process


def main(receiver: str) -> int:
    """Process the inbox until idle for a while (see the module's docstring)."""
    locations = paths.resolve()
    p = profile.load(locations)
    endpoint = p.endpoint
    context = Context(identity.resource_attributes(p),
                      tuple(endpoint.signals) if endpoint else (), pricing.load(p.prices),
                      policy.of(p))
    out = sys.stdout

    def tell(line: str) -> None:
        try:
            out.write(line + "\n")
            out.flush()
        except (OSError, ValueError):
            pass

    processor = Processor(ledger.connect(locations.ledger), receiver, context,
                          on_queued=lambda: tell("q"), on_error=lambda line: tell(f"e {line}"))
    kicked = threading.Event()
    gone = threading.Event()

    def listen() -> None:
        while True:
            try:
                data = os.read(sys.stdin.fileno(), 4096)
            except OSError:
                data = b""
            if not data:
                gone.set()
                kicked.set()
                return
            kicked.set()

    threading.Thread(target=listen, name="aitrack-worker-stdin", daemon=True).start()
    told = 0
    while True:
        # Start once the payloads stop coming: a tool sends its last exports as it exits and
        # waits for their answers; decoding meanwhile would compete with it for the CPU.
        settle_until = time.monotonic() + SETTLE_MAX_S
        while time.monotonic() < settle_until and kicked.wait(SETTLE_S):
            kicked.clear()
        while processor.batch(orphans=True):
            pass
        if processor.processed > told:
            tell(f"p {processor.processed - told}")
            told = processor.processed
        if gone.is_set():
            return 0
        if not kicked.wait(IDLE_S):
            return 0
        kicked.clear()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "agent"))
