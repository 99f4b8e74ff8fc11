"""What the suite must not do to the machine it runs on: leave processes running, or depend on
which AI tools the developer has installed.

- `processes_under(roots)`: processes of this user that belong to a test, because their
  command line, executable, working directory or environment points into a test's temporary
  directory (a test's HOME, say). The session check in conftest.py fails on any still alive
  when the suite ends, and stops them.
- `clean_path(path, tools)`: the PATH the tests run with: every directory that holds one of the
  wrapped tools (a developer's real `claude`, say) is replaced by a directory of links to its
  other programs (node, git...), so a test sees only the tools it puts on PATH itself.
"""

from __future__ import annotations

import os
from pathlib import Path

import psutil

# multiprocessing's helpers of this process: they end when it does (they watch its pipe)
_OWN_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


def processes_under(roots: list[Path]) -> list[psutil.Process]:
    """This user's processes tied to any of `roots` (never this process or its ancestors)."""
    marks = [str(r) for r in roots]
    mine = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
    found = []
    for proc in psutil.process_iter(["pid", "ppid", "uids", "cmdline", "exe", "cwd", "environ"]):
        info = proc.info
        if info["pid"] in mine or not info["uids"] or info["uids"].real != os.getuid():
            continue
        if info["ppid"] == os.getpid() and any(
                helper in " ".join(info["cmdline"] or []) for helper in _OWN_HELPERS):
            continue
        texts = [*(info["cmdline"] or []), info["exe"] or "", info["cwd"] or "",
                 *(info["environ"] or {}).values()]
        if any(mark in text for text in texts for mark in marks):
            found.append(proc)
    return found


def describe(proc: psutil.Process) -> str:
    try:
        return f"pid {proc.pid}: {' '.join(proc.cmdline())[:300]}"
    except psutil.Error:
        return f"pid {proc.pid} (gone)"


def stop(procs: list[psutil.Process], timeout: float = 5.0) -> None:
    """Terminate, then kill what is left; waits for them to go."""
    for proc in procs:
        try:
            proc.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=timeout)


def clean_path(path: str, tools: tuple[str, ...], shadow: Path) -> str:
    """`path` without the wrapped tools: a directory holding one is replaced by `shadow`,
    which links every other program of those directories (first one on PATH wins)."""
    shadow.mkdir(parents=True, exist_ok=True)
    out: list[str] = []
    for entry in path.split(os.pathsep):
        if not entry:
            continue
        directory = Path(entry)
        if not any(_runnable(directory / tool) for tool in tools):
            out.append(entry)
            continue
        for program in _programs(directory):
            link = shadow / program.name
            if program.name not in tools and not link.exists() and not link.is_symlink():
                link.symlink_to(program.resolve())
        if str(shadow) not in out:
            out.append(str(shadow))
    return os.pathsep.join(out)


def _runnable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _programs(directory: Path) -> list[Path]:
    try:
        return [p for p in directory.iterdir() if _runnable(p)]
    except OSError:
        return []
