"""PATH shims: `claude` and `codex` scripts that run the tool through aitrack, and `aitrack`
itself, so the directory that puts the shims on PATH puts aitrack there too.

A shim runs `aitrack <tool> ARGS` with the interpreter aitrack was installed with, named by
an absolute path. It never stands in the developer's way: when that interpreter is gone
(checked with one `test -x`, before exec) or aitrack fails to import, it runs the real tool
(the next one on PATH that is not a shim) untracked, with one warning line on stderr.

Each shim carries SHIM_MARKER in its first 512 bytes, so the launcher and the fallback skip
every shim wherever it is. POSIX systems get sh scripts; Windows gets `.cmd` scripts and one
Python helper next to them (a `.cmd` file cannot hold a try/except).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import aitrack
from aitrack import adapters
from aitrack.capture import launcher

SHIM_MARKER = "aitrack-shim"  # launcher.SHIM_MARKER is the same bytes
TOOLS = adapters.TOOLS  # a shim for each tool with an adapter of its own
COMMAND = "aitrack"  # aitrack's own command, next to the tools' shims
FALLBACK_VAR = "AITRACK_SHIM_FALLBACK"  # set while a shim falls back; never set it yourself
WINDOWS_HELPER = "aitrack-shim.py"

assert launcher.SHIM_MARKER == SHIM_MARKER.encode()


class ShimError(Exception):
    """A shim cannot be written or removed; the message names the fix."""


# ---------------------------------------------------------------- the scripts

# Runs inside `python -I -c`; argv: -c SHIM ARGS... No single quote may appear in it.
_POSIX_ENTRY = """\
import sys
try:
    from aitrack.entry import main
except Exception as exc:
    import os
    why = (str(exc).splitlines() or [""])[0]
    os.environ["{var}"] = "aitrack cannot start (%s: %s)" % (type(exc).__name__, why)
    os.execv("/bin/sh", ["/bin/sh"] + sys.argv[1:])
main(["{tool}"] + sys.argv[2:])"""

_POSIX = """\
#!/bin/sh
# {marker}: v1 {tool}
# Runs `aitrack {tool}` so that {tool}'s usage is tracked. Written by `aitrack shims install`,
# removed by `aitrack shims uninstall`; do not edit. When aitrack cannot run, this runs the
# real {tool} (the next one on PATH that is not a shim) untracked, with one warning line.
aitrack_python={python}
if [ -z "${{{var}:-}}" ] && [ -x "$aitrack_python" ]; then
    exec "$aitrack_python" {flags} -c '{entry}' "$0" "$@"
fi
aitrack_why=${{{var}:-"aitrack is missing ($aitrack_python not found)"}}
unset {var}
case $0 in */*) aitrack_self=${{0%/*}} ;; *) aitrack_self=. ;; esac
aitrack_self=$(cd -P -- "$aitrack_self" 2>/dev/null && pwd) || aitrack_self=
aitrack_path=$PATH
aitrack_found=
set -f
IFS=:
for aitrack_dir in $aitrack_path; do
    aitrack_real=$(cd -P -- "${{aitrack_dir:-.}}" 2>/dev/null && pwd) || continue
    [ "$aitrack_real" = "$aitrack_self" ] && continue
    aitrack_tool=${{aitrack_dir:-.}}/{tool}
    if [ ! -f "$aitrack_tool" ] || [ ! -x "$aitrack_tool" ]; then continue; fi
    dd if="$aitrack_tool" bs=512 count=1 2>/dev/null | grep -q {marker} && continue
    aitrack_found=$aitrack_tool
    break
done
unset IFS
set +f
if [ -n "$aitrack_found" ]; then
    echo "aitrack: $aitrack_why; running $aitrack_found untracked: reinstall aitrack" >&2
    exec "$aitrack_found" "$@"
fi
echo "aitrack: {tool}: command not found on PATH (and $aitrack_why)" >&2
exit 127
"""

_CMD = """\
@echo off
rem {marker}: v1 {tool}
rem Runs `aitrack {tool}` so that {tool}'s usage is tracked. Written by `aitrack shims install`,
rem removed by `aitrack shims uninstall`; do not edit. When aitrack cannot run, this runs the
rem real {tool} (the next one on PATH that is not a shim) untracked, with one warning line.
setlocal
set "AITRACK_PYTHON={python}"
if not exist "%AITRACK_PYTHON%" goto fallback
"%AITRACK_PYTHON%" {flags} "%~dp0{helper}" {tool} %*
exit /b %ERRORLEVEL%
:fallback
for /f "delims=" %%T in ('where {tool} 2^>nul') do (
    if /i not "%%~dpT"=="%~dp0" (
        findstr /m /c:"{marker}" "%%T" >nul 2>&1 || (
            echo aitrack: %AITRACK_PYTHON% is missing; running %%T untracked 1>&2
            endlocal & "%%T" %*
            exit /b
        )
    )
)
echo aitrack: {tool}: command not found on PATH ^(and aitrack is missing^) 1>&2
exit /b 127
"""

# The Windows helper: import aitrack, or find and run the real tool. Untested: Windows.
_HELPER = '''\
# {marker}: v1 helper for the .cmd shims; written by `aitrack shims install`, do not edit.
import os
import subprocess
import sys

tool, args = sys.argv[1], sys.argv[2:]
try:
    from aitrack.entry import main
except Exception as exc:
    why = "aitrack cannot start (%s: %s)" % (type(exc).__name__, (str(exc).splitlines() or [""])[0])
    here = os.path.normcase(os.path.realpath(os.path.dirname(os.path.abspath(__file__))))
    exts = os.environ.get("PATHEXT", ".COM;.EXE;.BAT;.CMD").split(";")
    for d in os.environ.get("PATH", "").split(os.pathsep):
        if not d or os.path.normcase(os.path.realpath(d)) == here:
            continue
        for ext in exts:
            cand = os.path.join(d, tool + ext)
            if not os.path.isfile(cand):
                continue
            with open(cand, "rb") as fh:
                if b"{marker}" in fh.read(512):
                    continue
            print("aitrack: %s; running %s untracked: reinstall aitrack" % (why, cand),
                  file=sys.stderr)
            sys.exit(subprocess.call([cand] + args))
    print("aitrack: %s: command not found on PATH (and %s)" % (tool, why), file=sys.stderr)
    sys.exit(127)
main([tool] + args)
'''


_POSIX_COMMAND = """\
#!/bin/sh
# {marker}: v1 {command}
# Runs aitrack with the interpreter it was installed with. Written by `aitrack shims install`,
# removed by `aitrack shims uninstall`; do not edit.
aitrack_python={python}
if [ -x "$aitrack_python" ]; then
    exec "$aitrack_python" {flags} -m aitrack "$@"
fi
echo "aitrack: $aitrack_python is missing: reinstall aitrack (then \\`aitrack shims install\\`)" >&2
exit 127
"""

_CMD_COMMAND = """\
@echo off
rem {marker}: v1 {command}
rem Runs aitrack with the interpreter it was installed with. Written by `aitrack shims
rem install`, removed by `aitrack shims uninstall`; do not edit.
if not exist "{python}" (echo aitrack: {python} is missing: reinstall aitrack 1>&2 & exit /b 127)
"{python}" {flags} -m aitrack %*
"""


def render_command(python: str, flags: list[str], windows: bool) -> str:
    """The `aitrack` command itself (`aitrack.cmd` on Windows)."""
    if windows:
        return _CMD_COMMAND.format(marker=SHIM_MARKER, command=COMMAND,
                                   python=python.replace("%", "%%"),
                                   flags=" ".join(flags)).replace("\n", "\r\n")
    return _POSIX_COMMAND.format(marker=SHIM_MARKER, command=COMMAND, python=shlex.quote(python),
                                 flags=" ".join(flags))


def render_posix(tool: str, python: str, flags: list[str]) -> str:
    entry = _POSIX_ENTRY.format(var=FALLBACK_VAR, tool=tool)
    assert "'" not in entry
    return _POSIX.format(marker=SHIM_MARKER, tool=tool, python=shlex.quote(python),
                         flags=" ".join(flags), var=FALLBACK_VAR, entry=entry)


def render_cmd(tool: str, python: str, flags: list[str]) -> str:
    text = _CMD.format(marker=SHIM_MARKER, tool=tool, python=python.replace("%", "%%"),
                       flags=" ".join(flags), helper=WINDOWS_HELPER)
    return text.replace("\n", "\r\n")


def render_helper() -> str:
    return _HELPER.format(marker=SHIM_MARKER)


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


def files_for(tool: str, windows: bool = sys.platform == "win32") -> list[str]:
    return [f"{tool}.cmd"] if windows else [tool]


def rendered(python: str, flags: list[str], windows: bool = sys.platform == "win32",
             ) -> dict[str, str]:
    """File name -> content for every shim file."""
    out: dict[str, str] = {name: render_command(python, flags, windows)
                           for name in files_for(COMMAND, windows)}
    for tool in TOOLS:
        for name in files_for(tool, windows):
            out[name] = (render_cmd if windows else render_posix)(tool, python, flags)
    if windows:
        out[WINDOWS_HELPER] = render_helper()
    return out


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


def shim_python_text(head: str) -> str | None:
    for line in head.splitlines():
        if line.startswith("aitrack_python="):
            parts = shlex.split(line.split("=", 1)[1])
            return parts[0] if parts else None
        if line.lower().startswith('set "aitrack_python='):
            return line.split("=", 1)[1].rstrip('"').replace("%%", "%")
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
    files = rendered(python, interpreter_flags(python))
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
