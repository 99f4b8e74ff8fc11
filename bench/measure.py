"""Wall time and peak RSS of one whole process, as the benchmarks in bench/ report them.

Linux starts a child's ru_maxrss from its parent's RSS at fork, and exec keeps that high
mark: measured from a benchmark that holds a 100 MB ledger, `/bin/true` "peaks" at 100 MB.
So the command is spawned by a minimal launcher (`python -S`, about 8 MB) that reports
the child's rusage and its own timing of spawn-to-exit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass

_LAUNCHER = """
import json, os, sys, time
out, argv = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
pid = os.posix_spawnp(argv[0], argv, os.environ)
_, status, usage = os.wait4(pid, 0)
elapsed = time.perf_counter() - start
with open(out, "w") as fh:
    json.dump({"elapsed_s": elapsed, "peak_rss_kb": usage.ru_maxrss,
               "returncode": os.waitstatus_to_exitcode(status)}, fh)
"""


@dataclass
class Measured:
    elapsed_s: float  # spawn to exit, whole process
    peak_rss_kb: int  # the command's own high-water mark (KiB on Linux)
    returncode: int
    stdout: str
    stderr: str

    @property
    def peak_rss_mb(self) -> float:
        return self.peak_rss_kb / 1024


def run(argv: list[str], env: dict[str, str] | None = None, stdin: str | None = None,
        timeout: float = 300) -> Measured:
    """Run `argv` to completion (POSIX only) and measure it."""
    with tempfile.NamedTemporaryFile(suffix=".json") as result:
        proc = subprocess.run([sys.executable, "-S", "-c", _LAUNCHER, result.name, *argv],
                              env=env if env is not None else os.environ, input=stdin,
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode:
            raise RuntimeError(f"launcher failed: {proc.stderr.strip()}")
        figures = json.loads(open(result.name).read())
    return Measured(figures["elapsed_s"], figures["peak_rss_kb"], figures["returncode"],
                    proc.stdout, proc.stderr)
