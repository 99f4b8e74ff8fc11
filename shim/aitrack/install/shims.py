"""PATH shims: `claude` and `codex` scripts that run the tool through aitrack, and `aitrack`
itself, so the directory that puts the shims on PATH puts aitrack there too.

A shim runs `aitrack <tool> ARGS` with the interpreter aitrack was installed with, named by
an absolute path. It never stands in the developer's way: when that interpreter is gone
(checked with one `test -x`, before exec) or aitrack fails to import, it runs the real tool
(the next one on PATH that is not a shim) untracked, with one warning line on stderr.

Each shim carries SHIM_MARKER in its first 512 bytes, so the launcher and the fallback skip
every shim wherever it is. POSIX systems get sh scripts; Windows gets `.cmd` scripts and one
Python helper next to them (a `.cmd` file cannot hold a try/except). The scripts are
shim_scripts.py's; how a POSIX shim runs the tool without Python while the agent runs is
shim_fast.py's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import aitrack
from aitrack import adapters
from aitrack.capture import launcher
from aitrack.install.shim_fast import fast_way_env
from aitrack.install.shim_scripts import (  # noqa: F401 - the shims' API, written there
    COMMAND,
    FALLBACK_VAR,
    SHIM_MARKER,
    WINDOWS_HELPER,
    files_for,
    render_cmd,
    render_command,
    render_helper,
    render_posix,
    rendered,
    shim_python_text,
)

TOOLS = adapters.TOOLS  # a shim for each tool with an adapter of its own

assert launcher.SHIM_MARKER == SHIM_MARKER.encode()


class ShimError(Exception):
    """A shim cannot be written or removed; the message names the fix."""


def interpreter_flags(python: str) -> list[str]:
    """Interpreter options under which `python` imports this very aitrack package.

    -I keeps a developer's PYTHONPATH, user site-packages and current directory (a checkout
    with an `aitrack/` folder, say) from breaking or replacing aitrack; -P alone still allows
    user site-packages, for a `pip install --user` aitrack.
    """
    ours = os.path.realpath(aitrack.__file__)
    for flags in (["-I"], ["-P"]):
        try:
            out = subprocess.run([python, *flags, "-c", "import aitrack; print(aitrack.__file__)"],
                                 capture_output=True, text=True, timeout=30,
                                 stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError):
            continue
        if out.returncode == 0 and os.path.realpath(out.stdout.strip()) == ours:
            return flags
    raise ShimError(f"{python} cannot import this aitrack ({ours}) without PYTHONPATH: install "
                    "aitrack into a virtualenv (or with pipx) and run `aitrack shims install` "
                    "from there")



# ---------------------------------------------------------------- install / uninstall


def is_shim(path: str | os.PathLike) -> bool:
    return launcher.is_shim(str(path))


def shim_python(path: str | os.PathLike) -> str | None:
    """The interpreter a shim runs aitrack with."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return shim_python_text(fh.read(4096))
    except OSError:
        return None



@dataclass
class Installed:
    directory: Path
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    python: str = ""
    kept: list[str] = field(default_factory=list)  # an `aitrack` that is not a shim: left


def listed(names: list[str]) -> str:
    """"a", "a and b", "a, b and c": for messages."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def install(directory: Path, python: str | None = None) -> Installed:
    """Write the shims into `directory`; idempotent. Refuses to replace a file that is not
    an aitrack shim, before writing anything."""
    python = python or sys.executable
    # the fast way where this system runs it (shim_fast.py), the Python wrapper elsewhere
    files = rendered(python, interpreter_flags(python), env=fast_way_env())
    foreign = [n for n in files if (directory / n).exists() and not is_shim(directory / n)]
    # an `aitrack` there already (pipx's, a system link) is aitrack: kept, not in the way
    kept = [n for n in foreign if n in files_for(COMMAND)]
    foreign = [n for n in foreign if n not in kept]
    if foreign:
        names = listed([str(directory / n) for n in foreign])
        raise ShimError(f"{names} already exists and is not an aitrack shim: move it away or "
                        "choose another --dir" if len(foreign) == 1 else
                        f"{names} already exist and are not aitrack shims: move them away or "
                        "choose another --dir")
    directory.mkdir(parents=True, exist_ok=True)
    result = Installed(directory, python=python, kept=kept)
    for name, text in files.items():
        path = directory / name
        if name in kept:
            continue
        try:
            if path.read_text(encoding="utf-8") == text and os.access(path, os.X_OK):
                result.unchanged.append(name)
                continue
        except OSError:
            pass
        tmp = directory / f".{name}.{os.getpid()}.tmp"
        tmp.write_text(text, encoding="utf-8", newline="")
        tmp.chmod(0o755)
        os.replace(tmp, path)
        result.written.append(name)
    return result


def uninstall(directory: Path, remove_empty_dir: bool = False) -> tuple[list[str], list[str]]:
    """Remove the aitrack shims in `directory`: (removed, kept because not ours)."""
    removed: list[str] = []
    kept: list[str] = []
    names = {n for tool in (*TOOLS, COMMAND) for w in (False, True) for n in files_for(tool, w)}
    for name in sorted(names | {WINDOWS_HELPER}):
        path = directory / name
        if not path.exists():
            continue
        if is_shim(path):
            path.unlink()
            removed.append(name)
        else:
            kept.append(name)
    if remove_empty_dir:
        try:
            directory.rmdir()
        except OSError:
            pass
    return removed, kept


# ---------------------------------------------------------------- where things resolve


def resolve(name: str, env: dict[str, str] | None = None) -> str | None:
    """What the shell runs for `name`: the first match on PATH, shims included."""
    env = os.environ if env is None else env
    return shutil.which(name, path=env.get("PATH", os.defpath))


@dataclass
class ToolStatus:
    name: str
    resolves_to: str | None  # what typing the name runs
    tracked: bool  # it is an aitrack shim (this directory's or another's)
    shim: str | None  # this directory's shim, if installed
    shim_python: str | None
    shim_python_ok: bool
    real: str | None  # what aitrack would run

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def status(directory: Path, env: dict[str, str] | None = None) -> list[ToolStatus]:
    env = os.environ if env is None else env
    out = []
    for tool in TOOLS:
        resolved = resolve(tool, env)
        shim = next((directory / n for n in files_for(tool) if is_shim(directory / n)), None)
        active = resolved if resolved and is_shim(resolved) else (str(shim) if shim else None)
        target = shim_python(active) if active else None
        out.append(ToolStatus(
            name=tool,
            resolves_to=resolved,
            tracked=bool(resolved and is_shim(resolved)),
            shim=str(shim) if shim else None,
            shim_python=target,
            shim_python_ok=bool(target and os.access(target, os.X_OK)),
            real=launcher.find_real_binary(tool, adapters.load(tool).BIN_ENV, str(directory),
                                           env),
        ))
    return out


def command_on_path(directory: Path, env: dict[str, str] | None = None) -> str | None:
    """Where typing `aitrack` leads (any aitrack: this directory's command or another
    install's), or None when a shell would say "command not found"."""
    return resolve(COMMAND, env)


def on_path_first(directory: Path, env: dict[str, str] | None = None) -> bool:
    """True when `directory` is on PATH and no tool name resolves to a non-shim before it."""
    env = os.environ if env is None else env
    entries = [e for e in env.get("PATH", "").split(os.pathsep) if e]
    try:
        if not any(os.path.samefile(e, directory) for e in entries if os.path.isdir(e)):
            return False
    except OSError:
        return False
    return all(r is None or is_shim(r) for r in (resolve(t, env) for t in TOOLS))


def path_line(directory: Path) -> str:
    """The one line that puts `directory` first on PATH, for the user's shell profile."""
    if sys.platform == "win32":
        d = str(directory).replace("'", "''")
        return ("[Environment]::SetEnvironmentVariable('Path', '" + d + ";' + "
                "[Environment]::GetEnvironmentVariable('Path', 'User'), 'User')")
    quoted = "".join("\\" + c if c in '"$`\\' else c for c in str(directory))
    return f'export PATH="{quoted}:$PATH"'
