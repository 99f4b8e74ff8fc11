"""The shims' fast way (Linux): with the per-user agent running, a shim and `aitrack TOOL`
run the tool themselves, with no Python at all, when the ticket the last run through Python
left still holds (capture/spool.py says what a ticket holds and why it is enough); else the
shim runs the Python wrapper, as without the fast way. A wrapped run then costs a shell's
start, the ticket's checks, two small files, a signal to the agent and env(1): ~5 ms for a
tool that exits at once, measured on a loaded 2-core machine (Python's start-up and the
wrapper: tens of ms); `codex exec` through the shim is within 1.03x of a direct one
(bench/wrapped.py).
The tool is started as the Python wrapper starts it:
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

RELAYED = ("INT", "TERM", "HUP", "WINCH", "QUIT", "USR1", "USR2")  # launcher.py's
# the tool's signal dispositions, as under the Python wrapper (see the module's docstring)
DISPOSITIONS = (f"--default-signal={','.join(RELAYED)}", "--ignore-signal=PIPE,XFSZ")


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
    # a relayed signal the caller ignores (nohup, `&` in a script) cannot be trapped by a
    # shell; the Python wrapper relays it
    case $aitrack_ignored in ''|*[!0-9]*) return 0 ;; esac
    [ "$(( aitrack_ignored & {relayed_bits} ))" = 0 ] || return 0
    aitrack_k=
    { read -r aitrack_k && read -r aitrack_k aitrack_mask; } < "/proc/$$/status" 2>/dev/null
    [ "$aitrack_k" = Umask: ] && [ -n "$aitrack_mask" ] || return 0
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
                aitrack_v=
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
    aitrack_ignored=${31-}  # its 33rd, the signals it ignores (1 to 31 are exact there)
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


def functions(env: str | None) -> str:
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


def not_session(tool: str, arg: str) -> str:
    """sh: aitrack_session=0 when `arg` (a "$1") is one of the adapter's NOT_SESSIONS (its
    is_session(args) looks at args[0] only: a test checks they agree)."""
    words = sorted(adapters.load(tool).NOT_SESSIONS)  # sorted: the same text each install
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
