"""What forwarding tells: its log file, and the wording of sizes and evictions.

The forwarder, `aitrack flush` and the agent write one line per retry, dead letter,
partial success and eviction to a private log; `aitrack flush` and `doctor` show the same
sizes and eviction lines to the user.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from aitrack.config.keychain import mask
from aitrack.config.private_files import open_private, private_dir
from aitrack.egress.outbox import Eviction

MIB = 1024 * 1024
LOG_MAX_BYTES = 1 * MIB


def size(n: float) -> str:
    if n < 1024:
        return f"{n:.0f} B"
    return f"{n / 1024:.1f} KB" if n < MIB else f"{n / MIB:.1f} MB"


def eviction_line(e: Eviction) -> str:
    dropped = (f"{e.pending_rows} unsent payload(s)" if e.pending_rows == e.rows else
               f"{e.rows} payload(s) ({e.pending_rows} unsent, the rest dead letters)")
    return (f"the outbox reached its {e.bound_bytes // MIB} MiB bound (endpoint.outbox_max_mb): "
            f"dropped the oldest {dropped}, {size(e.bytes)}; your local ledger still counts "
            "them; run `aitrack flush` once the endpoint is reachable")


class ForwardLog:
    """forwarder.log under paths.log_dir: retries, dead letters, partial successes, evictions.

    Never a token (masked if an answer echoes it) nor request headers. Rotated at 1 MiB.
    """

    def __init__(self, directory: Path, name: str = "forwarder.log"):
        self.path = directory / name  # the agent keeps its own log the same way
        self.secrets: set[str] = set()

    def __call__(self, message: str) -> None:
        message = mask(message, self.secrets)  # echoed prefixes of a token too
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        line = f"{stamp} pid={os.getpid()} {' '.join(message.split())}\n".encode()
        try:
            private_dir(self.path.parent)
            try:
                if self.path.lstat().st_size > LOG_MAX_BYTES:
                    os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            except FileNotFoundError:
                pass
            fd = open_private(self.path, os.O_WRONLY | os.O_APPEND)  # 0600, never a link
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError:
            pass  # a log that cannot be written must not stop delivery
