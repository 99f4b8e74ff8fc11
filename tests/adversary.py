"""Another local user, for tests of what aitrack lets other accounts do (tests run as root).

`other_user()` creates a throwaway system account (`useradd -M -r aitrack-adv-XXXX`) and
removes it afterwards; without useradd it falls back to a uid no account uses. `run_as`
runs Python code as that user with the system interpreter (the test venv lives under
/root, which other users cannot enter), so attack scripts use the standard library only.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

SYSTEM_PYTHON = ("/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3")


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int
    python: str


@contextmanager
def other_user():
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("becoming another user needs root (the suite runs as root in CI)")
    python = next((p for p in SYSTEM_PYTHON if os.access(p, os.X_OK)), None)
    if python is None:
        pytest.skip("no system python3 another user could run")
    name = f"aitrack-adv-{os.urandom(3).hex()}"
    created = bool(shutil.which("useradd")) and subprocess.run(
        ["useradd", "-M", "-r", "-s", "/usr/sbin/nologin", name],
        capture_output=True).returncode == 0
    if created:
        entry = pwd.getpwnam(name)
        uid, gid = entry.pw_uid, entry.pw_gid
    else:  # a uid with no account is still another user to the kernel
        uid = gid = 61000 + int.from_bytes(os.urandom(2), "big") % 4000
    try:
        yield User(name if created else str(uid), uid, gid, python)
    finally:
        if created:  # -f: even if a process of the user outlived its test
            subprocess.run(["userdel", "-f", name], capture_output=True)


def run_as(user: User, code: str, *args: str, timeout: float = 120,
           **kw) -> subprocess.CompletedProcess:
    """`python -c code args...` as `user`, in /, with a minimal environment."""
    return subprocess.run([user.python, "-c", code, *args], user=user.uid, group=user.gid,
                          extra_groups=[], cwd="/", env={"PATH": "/usr/bin:/bin", "LANG": "C"},
                          capture_output=True, text=True, timeout=timeout, **kw)


def popen_as(user: User, code: str, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([user.python, "-c", code, *args], user=user.uid, group=user.gid,
                            extra_groups=[], cwd="/", env={"PATH": "/usr/bin:/bin", "LANG": "C"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
