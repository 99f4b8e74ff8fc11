"""Which loopback port this user's agent listens on: one agent per user, never one per
machine (on a shared dev server every user needs one, and a fixed port lets the first
comer take everyone's).

The rule, first that applies:
1. `[agent] port = N` in a profile: that port (a single-user machine, or IT's choice).
2. `[agent] port_base = N` (IT, for shared machines): N + (uid mod PORT_SPAN); set in the
   managed profile it wins over a user's own `port`. Two users
   whose uids differ by a multiple of PORT_SPAN share a port; the second one's `aitrack
   doctor` says so. Windows has no uid: the RID of the user's SID stands for it (its last
   part: 1001 for a first local account).
3. The port `aitrack agent install` chose and remembered (`<state>/agent/port`): a free
   one from CHOICE_FIRST on, the first tried being CHOICE_FIRST + (uid mod PORT_SPAN).
4. Nothing chosen yet, but the tools were wired by an aitrack from before this rule: the
   one port every user had then (LEGACY_PORT).
Otherwise there is no agent port: nothing was installed.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from aitrack.capture import listener
from aitrack.config.paths import Paths
from aitrack.config.private_files import private_dir, write_private
from aitrack.config.profile import Profile
from aitrack.config.schema import PORT_SPAN

LEGACY_PORT = 47318
CHOICE_FIRST = 20000  # 20000-29999: below every OS's ephemeral range (Linux from 32768)
CHOICE_TRIES = 64


def agent_dir(paths: Paths) -> Path:
    return paths.state_dir / "agent"


def port_file(paths: Paths) -> Path:
    """Where the chosen port is remembered (a start-up cache signature names it)."""
    return agent_dir(paths) / "port"


def legacy_marker(paths: Paths) -> Path:
    """The wiring record an aitrack from before per-user ports left (install/wiring)."""
    return agent_dir(paths) / "wiring.json"


def uid_part() -> int:
    """This user's uid mod PORT_SPAN (Windows: the SID's RID)."""
    return (listener.my_uid() or 0) % PORT_SPAN


def agent_port(paths: Paths, profile: Profile) -> int | None:
    """This user's agent port by the rule above, or None when none was ever chosen."""
    port, base = profile.agent.port, profile.agent.port_base
    if port is not None and (base is None or _managed(profile, "port")
                             or not _managed(profile, "port_base")):
        return port
    if base is not None:  # IT's base over a user's own port
        return base + uid_part()
    remembered = read_port(paths)
    if remembered is not None:
        return remembered
    return LEGACY_PORT if legacy_marker(paths).exists() else None


def _managed(profile: Profile, key: str) -> bool:
    return profile.origins.get(f"agent.{key}", "").startswith("managed")


def read_port(paths: Paths) -> int | None:
    try:
        text = port_file(paths).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() and 1024 <= int(text) <= 65535 else None


def choose(paths: Paths, profile: Profile) -> int:
    """The agent's port, chosen and remembered now when the rule gives none: the first
    that nothing listens on and that can be bound."""
    port = agent_port(paths, profile)
    if port is not None:
        return port
    first = CHOICE_FIRST + uid_part()
    span = range(CHOICE_FIRST, CHOICE_FIRST + PORT_SPAN)
    candidates = [first] + [span[int.from_bytes(os.urandom(2), "big") % len(span)]
                            for _ in range(CHOICE_TRIES)]
    port = next((p for p in candidates if _free(p)), first)
    private_dir(agent_dir(paths))
    write_private(port_file(paths), f"{port}\n".encode())
    return port


def _free(port: int) -> bool:
    if listener.listener_owner(port) is not None:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
