"""The shims' text: POSIX sh scripts, and on Windows `.cmd` scripts with one Python helper
(a `.cmd` file cannot hold a try/except). shims.py writes them; this module says what
they do.

A tool's shim runs `aitrack <tool> ARGS` with the interpreter aitrack was installed with,
named by an absolute path. When that interpreter is gone (one `test -x`, before exec) or
aitrack fails to import, it runs the real tool (the next one on PATH that is not a shim)
untracked, with one warning line on stderr.

With the agent running, a POSIX shim on Linux runs the tool without Python while the ticket
the last run through Python left holds: shim_fast.py.
"""

from __future__ import annotations

import shlex
import sys

from aitrack import adapters
from aitrack.install.shim_fast import functions, not_session

SHIM_MARKER = "aitrack-shim"  # launcher.SHIM_MARKER is the same bytes
COMMAND = "aitrack"  # aitrack's own command, next to the tools' shims
FALLBACK_VAR = "AITRACK_SHIM_FALLBACK"  # set while a shim falls back; never set it yourself
WINDOWS_HELPER = "aitrack-shim.py"

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
# {marker}: v2 {tool}
# Runs `aitrack {tool}` so that {tool}'s usage is tracked. Written by `aitrack shims install`,
# removed by `aitrack shims uninstall`; do not edit. When aitrack cannot run, this runs the
# real {tool} (the next one on PATH that is not a shim) untracked, with one warning line.
aitrack_python={python}
{fast}if [ -z "${{{var}:-}}" ] && [ -x "$aitrack_python" ]; then
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

_POSIX_COMMAND = """\
#!/bin/sh
# {marker}: v2 {command}
# Runs aitrack with the interpreter it was installed with. Written by `aitrack shims install`,
# removed by `aitrack shims uninstall`; do not edit.
aitrack_python={python}
{fast}if [ -x "$aitrack_python" ]; then
    exec "$aitrack_python" {flags} -m aitrack "$@"
fi
echo "aitrack: $aitrack_python is missing: reinstall aitrack (then \\`aitrack shims install\\`)" >&2
exit 127
"""

def render_posix(tool: str, python: str, flags: list[str], env: str | None = None) -> str:
    entry = _POSIX_ENTRY.format(var=FALLBACK_VAR, tool=tool)
    assert "'" not in entry
    fast = ""
    if env is not None:
        fast = (functions(env) + not_session(tool, '"${1-}"') + "\n"
                + f'aitrack_fast {tool} "$@"\n')
    return _POSIX.format(marker=SHIM_MARKER, tool=tool, python=shlex.quote(python),
                         flags=" ".join(flags), var=FALLBACK_VAR, entry=entry, fast=fast)


def render_command(python: str, flags: list[str], windows: bool, env: str | None = None) -> str:
    """The `aitrack` command itself (`aitrack.cmd` on Windows)."""
    if windows:
        return _CMD_COMMAND.format(marker=SHIM_MARKER, command=COMMAND,
                                   python=python.replace("%", "%%"),
                                   flags=" ".join(flags)).replace("\n", "\r\n")
    fast = ""
    if env is not None:
        second = '"${2-}"'  # the tool's first argument
        cases = "".join(
            f"    {tool})\n        {not_session(tool, second)}\n"
            '        aitrack_fast "$@" ;;\n' for tool in adapters.TOOLS)
        fast = functions(env) + "case ${1-} in\n" + cases + "esac\n"
    return _POSIX_COMMAND.format(marker=SHIM_MARKER, command=COMMAND, python=shlex.quote(python),
                                 flags=" ".join(flags), fast=fast)


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

_CMD_COMMAND = """\
@echo off
rem {marker}: v1 {command}
rem Runs aitrack with the interpreter it was installed with. Written by `aitrack shims
rem install`, removed by `aitrack shims uninstall`; do not edit.
if not exist "{python}" (echo aitrack: {python} is missing: reinstall aitrack 1>&2 & exit /b 127)
"{python}" {flags} -m aitrack %*
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


def render_cmd(tool: str, python: str, flags: list[str]) -> str:
    text = _CMD.format(marker=SHIM_MARKER, tool=tool, python=python.replace("%", "%%"),
                       flags=" ".join(flags), helper=WINDOWS_HELPER)
    return text.replace("\n", "\r\n")


def render_helper() -> str:
    return _HELPER.format(marker=SHIM_MARKER)


def shim_python_text(head: str) -> str | None:
    """The interpreter a shim's first lines name."""
    for line in head.splitlines():
        if line.startswith("aitrack_python="):
            parts = shlex.split(line.split("=", 1)[1])
            return parts[0] if parts else None
        if line.lower().startswith('set "aitrack_python='):
            return line.split("=", 1)[1].rstrip('"').replace("%%", "%")
    return None


def files_for(tool: str, windows: bool = sys.platform == "win32") -> list[str]:
    return [f"{tool}.cmd"] if windows else [tool]


def rendered(python: str, flags: list[str], windows: bool = sys.platform == "win32",
             env: str | None = None) -> dict[str, str]:
    """File name -> content for every shim file; `env`: shim_fast.fast_way_env(), when the
    POSIX scripts get the fast way."""
    out: dict[str, str] = {name: render_command(python, flags, windows, env)
                           for name in files_for(COMMAND, windows)}
    for tool in adapters.TOOLS:
        for name in files_for(tool, windows):
            out[name] = (render_cmd(tool, python, flags) if windows
                         else render_posix(tool, python, flags, env))
    if windows:
        out[WINDOWS_HELPER] = render_helper()
    return out
