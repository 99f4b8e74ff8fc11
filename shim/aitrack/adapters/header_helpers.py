"""What every headers-helper script shares (a command a tool runs to get its OTLP headers:
Claude Code's `otelHeadersHelper`, and the like): it prints the agent's key only when the
agent's port is held by this user.

Any local user can bind the port while the agent is down and receive what is sent there,
so before printing the key a helper asks the OS who listens (not the listener, which could
answer anything). The check runs without Python (a tool waits for its helper at start):
- Linux: awk over /proc/net/tcp and tcp6, the LISTEN rows (state 0A) on the port, their
  uid column; every one must be this user's (`id -u`).
- macOS (untested): lsof, which sees this user's processes only: one of them must listen.
- Windows (untested): netstat's listening rows on the port (foreign address 0.0.0.0:0 or
  [::]:0: the state column is translated), each owning pid looked up with tasklist under
  this user's name.
A helper that finds the port not this user's prints `{}`: the tool then sends without the
key, and a foreign listener learns nothing it could use.
"""

from __future__ import annotations

REFUSE_SH = "echo '{}'; exit 0"


def port_guard_sh(port: int, refuse: str = REFUSE_SH) -> list[str]:
    """POSIX sh lines that run `refuse` unless this user listens on loopback `port`."""
    return [
        f"# the key only for this user's own listener on port {port}: another user could",
        "# hold the port while the agent is down (the OS says whose it is, not the answer)",
        "aitrack_port_mine() {",
        "    me=$(id -u) || return 1",
        "    owners=",
        "    if [ -r /proc/net/tcp ]; then",
        f"        owners=$(awk -v port=':{port:04X}' 'FNR > 1 && $4 == \"0A\" && "
        "substr($2, length($2) - 4) == port { print $8 }' /proc/net/tcp /proc/net/tcp6 "
        "2>/dev/null)",
        "    else",
        "        for lsof in /usr/sbin/lsof /usr/bin/lsof; do",
        f"            [ -x \"$lsof\" ] && \"$lsof\" -nP -a -u \"$me\" -iTCP:{port} "
        "-sTCP:LISTEN -t >/dev/null 2>&1 && owners=$me && break",
        "        done",
        "    fi",
        "    [ -n \"$owners\" ] || return 1",
        "    for uid in $owners; do [ \"$uid\" = \"$me\" ] || return 1; done",
        "}",
        f"aitrack_port_mine || {{ {refuse}; }}",
    ]


def port_guard_cmd(port: int, refuse: str = "(echo {}& exit /b 0)") -> list[str]:
    """cmd.exe lines (untested: Windows) that run `refuse` unless every process listening
    on `port` runs as this user."""
    me = "%USERDOMAIN%\\%USERNAME%"
    return [
        f"rem the key only for this user's own listener on port {port}",
        'set "listening="',
        'set "foreign="',
        "for /f \"tokens=2,3,5\" %%a in ('netstat -ano 2^>nul') do (",
        f'    echo(%%a| findstr /e /c:":{port}" >nul && (',
        '        if "%%b"=="0.0.0.0:0" call :aitrack_owner %%c',
        '        if "%%b"=="[::]:0" call :aitrack_owner %%c',
        "    )",
        ")",
        f"if not defined listening {refuse}",
        f"if defined foreign {refuse}",
        "goto :aitrack_port_checked",
        ":aitrack_owner",
        'set "listening=1"',
        f'tasklist /fi "PID eq %1" /fi "USERNAME eq {me}" /fo csv /nh 2>nul '
        '| findstr /c:"\\"%1\\"" >nul || set "foreign=1"',
        "exit /b 0",
        ":aitrack_port_checked",
    ]
