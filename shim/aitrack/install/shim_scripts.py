"""The shims' text: POSIX sh scripts, and on Windows `.cmd` scripts with one Python helper
(a `.cmd` file cannot hold a try/except). shims.py writes them; this module says what
they do.

A tool's shim runs `aitrack <tool> ARGS` with the interpreter aitrack was installed with,
named by an absolute path. When that interpreter is gone (one `test -x`, before exec) or
aitrack fails to import, it runs the real tool (the next one on PATH that is not a shim)
untracked, with one warning line on stderr.

The fast way (FAST, Linux): with the per-user agent running, a shim and `aitrack TOOL` run
the tool themselves, with no Python at all, when the ticket the last run through Python left
still holds (capture/spool.py says what a ticket holds and why it is enough). A wrapped run
then costs a shell's start, two small files and a signal to the agent: ~1 ms, where Python's
start-up and the wrapper took ~19 ms (a `codex exec` of ~345 ms against a local stub,
measured here; bench/wrapped.py). The tool is started as the Python wrapper starts it:
- its argv is the user's, its environment the user's plus AITRACK_SESSION_ID (the run's id:
  32 hex digits from the kernel's random UUID), its process group the shell's, so the
  terminal's signals reach it directly, and its stdin the shim's (an asynchronous list would
  get /dev/null: stdin is passed through fd 3);
- it is waited for with `wait`, which a trapped signal interrupts (a trap is deferred while
  the shell waits for a foreground command), so SIGTERM, SIGHUP, SIGUSR1/2 sent to the shim
  are relayed at once, and SIGINT, SIGQUIT and SIGWINCH too unless the shim's process group
  holds the terminal (the tool has them already), as launcher.py relays them;
- an asynchronous list starts with SIGINT and SIGQUIT ignored in a non-interactive shell, and
  a shell cannot undo that for its child: `env --default-signal` (GNU coreutils 8.31+) does,
  and the fast way is written only where it works (`fast_way_env`). The tool starts with the
  signal dispositions the Python wrapper gives it: the relayed signals at their defaults (the
  wrapper's handlers do not survive its posix_spawn, whatever the caller ignored), SIGPIPE
  and SIGXFSZ ignored (Python ignores them at its start-up, and posix_spawn keeps that);
- its exit status is the shim's, 128 + N when signal N killed it, and goes to the agent.
"""

from __future__ import annotations

import shlex
import shutil
import signal
import subprocess
import sys

from aitrack import adapters
from aitrack.capture import runs, spool

SHIM_MARKER = "aitrack-shim"  # launcher.SHIM_MARKER is the same bytes
COMMAND = "aitrack"  # aitrack's own command, next to the tools' shims
FALLBACK_VAR = "AITRACK_SHIM_FALLBACK"  # set while a shim falls back; never set it yourself
WINDOWS_HELPER = "aitrack-shim.py"
RELAYED = ("INT", "TERM", "HUP", "WINCH", "QUIT", "USR1", "USR2")  # launcher.py's
# the tool's signal dispositions, as under the Python wrapper (see the module's docstring)
DISPOSITIONS = (f"--default-signal={','.join(RELAYED)}", "--ignore-signal=PIPE,XFSZ")

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

# The fast way's functions (see the module's docstring). `aitrack_fast TOOL ARGS...` returns
# when the run must go through Python, and otherwise runs the tool and exits with its status.
_FAST = r"""# With aitrack's agent running, the tool runs from here without Python while the ticket
# the last run through Python left still holds (aitrack/capture/spool.py); else Python runs.
# shellcheck disable=SC3013,SC3045  # -nt, -ef, -O: in dash, bash, busybox sh and ksh alike
aitrack_fast() {
    aitrack_tool=$1
    shift
    [ -z "${AITRACK_SHIM_FALLBACK:-}" ] && [ -x {env} ] || return 0
    if [ -n "${AITRACK_HOME:-}" ]; then
        aitrack_spool=$AITRACK_HOME/state/agent/runs
    elif [ -n "${XDG_STATE_HOME:-}" ]; then
        aitrack_spool=$XDG_STATE_HOME/aitrack/agent/runs
    else
        aitrack_spool=${HOME:-/nonexistent}/.local/state/aitrack/agent/runs
    fi
    case $aitrack_spool in /*) ;; *) return 0 ;; esac
    aitrack_ticket=$aitrack_spool/$aitrack_tool{ticket}
    aitrack_beacon=$aitrack_spool/{beacon}
    # this user's own, never through a link (the agent keeps the spool 0700: spool.py)
    for aitrack_l in "$aitrack_spool" "$aitrack_ticket" "$aitrack_beacon"; do
        [ -O "$aitrack_l" ] && ! [ -h "$aitrack_l" ] || return 0
    done
    [ -f "$aitrack_ticket" ] && [ -f "$aitrack_beacon" ] || return 0
    aitrack_holds < "$aitrack_ticket" || return 0
    aitrack_start_of "$aitrack_agent" && [ "$aitrack_at" = "$aitrack_agent_at" ] &&
        { IFS= read -r aitrack_l < "$aitrack_beacon"; } 2>/dev/null &&
        [ "$aitrack_l" = "$aitrack_agent $aitrack_agent_at" ] || return 0
    case $aitrack_bin in /*) ;; *) return 0 ;; esac
    case $aitrack_bin in *=*) return 0 ;; esac  # env(1) would take it for a variable
    [ -f "$aitrack_bin" ] && [ -x "$aitrack_bin" ] || return 0
    aitrack_nl='
'
    case $PWD in /*) ;; *) return 0 ;; esac
    case $PWD in *"$aitrack_nl"*) return 0 ;; esac
    [ "$PWD" -ef . ] && aitrack_start_of $$ || return 0
    aitrack_self=$aitrack_at
    aitrack_mask=
    aitrack_ign=
    { while read -r aitrack_k aitrack_v; do
        case $aitrack_k in
            Umask:) aitrack_mask=$aitrack_v ;;
            SigIgn:) aitrack_ign=$aitrack_v ;;
        esac
    done < "/proc/$$/status"; } 2>/dev/null
    [ -n "$aitrack_mask" ] && [ -n "$aitrack_ign" ] || return 0
    # a relayed signal the caller ignores (nohup, `&` in a script) cannot be trapped by a
    # shell; the Python wrapper relays it
    [ "$(( 0x$aitrack_ign & {relayed_bits} ))" = 0 ] || return 0
    { true 3<&0; } 2>/dev/null || return 0  # stdin closed: the Python wrapper passes that on
    { true <&3; } 2>/dev/null && return 0  # fd 3 is the caller's: the Python wrapper passes it
    IFS=- read -r aitrack_1 aitrack_2 aitrack_3 aitrack_4 aitrack_5 \
        < /proc/sys/kernel/random/uuid || return 0
    aitrack_id=$aitrack_1$aitrack_2$aitrack_3$aitrack_4$aitrack_5
    umask 077
    if ! printf '%s\n' "{start_head}" "$aitrack_id" "$aitrack_tool" "$$ $aitrack_self" \
            "$aitrack_session" "$PWD" {env_lines} {last} \
            2>/dev/null > "$aitrack_spool/$aitrack_id.start"; then
        umask "$aitrack_mask"
        return 0
    fi
    umask "$aitrack_mask"
    kill -s USR1 "$aitrack_agent" 2>/dev/null
    aitrack_child=
    aitrack_pending=
    for aitrack_s in {relayed}; do
        # shellcheck disable=SC2064  # the signal's name, now
        trap "aitrack_relay $aitrack_s" "$aitrack_s"
    done
    { AITRACK_SESSION_ID=$aitrack_id {env} {dispositions} "$aitrack_bin" "$@" \
        0<&3 3<&- & } 3<&0
    aitrack_child=$!
    for aitrack_s in $aitrack_pending; do aitrack_relay "$aitrack_s"; done
    while :; do
        aitrack_sig=
        wait "$aitrack_child"
        aitrack_status=$?
        # over 128 after a trap: the wait was cut short, unless the child is gone
        if [ "$aitrack_status" -le 128 ] || [ -z "$aitrack_sig" ] ||
                ! kill -0 "$aitrack_child" 2>/dev/null; then
            break
        fi
    done
    umask 077
    printf '%s\n' "{end_head}" "$aitrack_id" "$aitrack_status" {last} \
        2>/dev/null > "$aitrack_spool/$aitrack_id.end"
    aitrack_start_of "$aitrack_agent" && [ "$aitrack_at" = "$aitrack_agent_at" ] &&
        kill -s USR1 "$aitrack_agent" 2>/dev/null
    exit "$aitrack_status"
}
# shellcheck disable=SC3013  # -nt: in dash, bash, busybox sh and ksh alike
aitrack_holds() {  # every line of the ticket on stdin still holds
    IFS= read -r aitrack_l && [ "$aitrack_l" = "{ticket_head}" ] &&
        read -r aitrack_agent aitrack_agent_at && IFS= read -r aitrack_bin &&
        IFS= read -r aitrack_l && [ "$aitrack_l" = "@$aitrack_spool" ] || return 1
    while IFS= read -r aitrack_l; do
        case $aitrack_l in
            =*)
                aitrack_n=${aitrack_l#=}
                aitrack_n=${aitrack_n%%=*}
                case $aitrack_n in ''|[0-9]*|*[!A-Za-z0-9_]*) return 1 ;; esac
                eval "aitrack_v=\${$aitrack_n+=\$$aitrack_n}"
                [ "=$aitrack_n$aitrack_v" = "$aitrack_l" ] || return 1 ;;
            +*) [ -e "${aitrack_l#+}" ] && ! [ "${aitrack_l#+}" -nt "$aitrack_ticket" ] ||
                    return 1 ;;
            -*) ! [ -e "${aitrack_l#-}" ] || return 1 ;;
            *) return 1 ;;
        esac
    done
}
aitrack_start_of() {  # a process's start time, /proc/PID/stat's 22nd field: with its pid, who
    aitrack_at=
    { read -r aitrack_at < "/proc/$1/stat"; } 2>/dev/null || return 1
    # shellcheck disable=SC2086  # its fields, split
    set -- ${aitrack_at##*) }
    aitrack_at=${20-}
    [ -n "$aitrack_at" ]
}
aitrack_relay() {  # a signal for the tool, as launcher.py relays it
    aitrack_sig=1
    if [ -z "$aitrack_child" ]; then
        aitrack_pending="$aitrack_pending $1"
    elif [ "$1" != INT ] && [ "$1" != QUIT ] && [ "$1" != WINCH ] || ! aitrack_foreground; then
        kill -s "$1" "$aitrack_child" 2>/dev/null
    fi
}
aitrack_foreground() {  # our process group holds the terminal: the tool got keyboard signals
    { read -r aitrack_st < "/proc/$$/stat"; } 2>/dev/null || return 1
    # shellcheck disable=SC2086  # its fields, split: 5th (process group) and 8th (terminal's)
    set -- ${aitrack_st##*) }
    [ "$3" = "$6" ]
}
"""


def _fast(env: str | None) -> str:
    """The fast way's functions, or nothing where they cannot work."""
    if env is None:
        return ""
    env_lines = " ".join(f'${{{name}+"{name}=${name}"}}' for name in runs.TOOL_ENV)
    out = _FAST
    for key, value in (("{env}", shlex.quote(env)), ("{ticket}", spool.TICKET),
                       ("{beacon}", spool.BEACON), ("{start_head}", spool.START_HEAD),
                       ("{end_head}", spool.END_HEAD), ("{ticket_head}", spool.TICKET_HEAD),
                       ("{last}", spool.LAST_LINE), ("{env_lines}", env_lines),
                       ("{relayed}", " ".join(RELAYED)),
                       ("{relayed_bits}", hex(sum(1 << (int(getattr(signal, f"SIG{name}")) - 1)
                                                 for name in RELAYED))),
                       ("{dispositions}", " ".join(DISPOSITIONS))):
        out = out.replace(key, value)
    return out


def _not_sessions(tool: str) -> tuple[str, ...]:
    return tuple(sorted(adapters.load(tool).NOT_SESSIONS))  # sorted: the same text each install


def _not_session(words: tuple[str, ...], arg: str) -> str:
    """sh: aitrack_session=0 when `arg` (a "$1") is one of the adapter's NOT_SESSIONS (its
    is_session(args) looks at args[0] only: a test checks they agree)."""
    if not words:
        return "aitrack_session=1"
    pattern = "|".join(shlex.quote(w) for w in words)
    return f'case {arg} in {pattern}) aitrack_session=0 ;; *) aitrack_session=1 ;; esac'


def fast_way_env() -> str | None:
    """The `env` that can start a child with SIGINT and SIGQUIT at their defaults, when this
    system runs the fast way (Linux, a /bin/sh with -nt, -ef and -O), else None."""
    if not sys.platform.startswith("linux"):
        return None
    env = shutil.which("env", path="/usr/bin:/bin")
    if env is None:
        return None
    probes = ([env, *DISPOSITIONS, "true"],
              ["/bin/sh", "-c", '[ / -ef / ] && ! [ / -nt / ] && { [ -O / ]; [ $? -lt 2 ]; }'])
    for argv in probes:
        try:
            done = subprocess.run(argv, capture_output=True, timeout=10, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError):
            return None
        if done.returncode != 0:
            return None
    return env


def render_posix(tool: str, python: str, flags: list[str], env: str | None = None) -> str:
    entry = _POSIX_ENTRY.format(var=FALLBACK_VAR, tool=tool)
    assert "'" not in entry
    fast = ""
    if env is not None:
        fast = (_fast(env) + _not_session(_not_sessions(tool), '"${1-}"') + "\n"
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
            f"    {tool})\n        {_not_session(_not_sessions(tool), second)}\n"
            '        aitrack_fast "$@" ;;\n' for tool in adapters.TOOLS)
        fast = _fast(env) + "case ${1-} in\n" + cases + "esac\n"
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
    """File name -> content for every shim file; `env`: fast_way_env(), when the POSIX
    scripts get the fast way."""
    out: dict[str, str] = {name: render_command(python, flags, windows, env)
                           for name in files_for(COMMAND, windows)}
    for tool in adapters.TOOLS:
        for name in files_for(tool, windows):
            out[name] = (render_cmd(tool, python, flags) if windows
                         else render_posix(tool, python, flags, env))
    if windows:
        out[WINDOWS_HELPER] = render_helper()
    return out
