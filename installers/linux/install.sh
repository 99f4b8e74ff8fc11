#!/bin/sh
# Install aitrack system-wide on Linux: its own virtualenv, the `aitrack` command, the
# `claude`/`codex` shims first on every login shell's PATH, and optionally IT's profile.
#
#   sudo sh install.sh [--profile FILE] [--wheel FILE | --source DIR] [--wheelhouse DIR]
#   sudo sh install.sh --uninstall
#
# Options:
#   --prefix DIR      where aitrack lives (default /opt/aitrack): DIR/venv, DIR/shims
#   --bindir DIR      where the `aitrack` command is linked (default /usr/local/bin)
#   --python PY       interpreter for the virtualenv, 3.11 or newer (default python3)
#   --wheel FILE      install this aitrack wheel
#   --source DIR      install from this source tree (default: the wheel next to this script,
#                     else the source tree this script is part of)
#   --wheelhouse DIR  install offline: every wheel needed is in DIR (no package index)
#   --profile FILE    managed profile, validated, then installed as /etc/aitrack/profile.toml
#   --no-agent        do not capture runs that do not go through aitrack (IDEs, desktop
#                     apps). By default they are: Claude Code's machine settings point at
#                     each user's agent (/etc/claude-code/managed-settings.d/aitrack.json),
#                     Codex's too when /etc/codex/config.toml does not exist yet, and every
#                     graphical login runs `aitrack agent install` for its user
#                     (/etc/xdg/autostart). A re-run with --no-agent removes those files.
#   --agent           the default (kept for older scripts)
#   --uninstall       remove everything this script installed (not users' own data or tokens)
# Environment:
#   DESTDIR=DIR       install under DIR as an alternate root (CI, tests): paths written into
#                     the installed files point into DIR, so the result runs from there.
#                     A virtualenv cannot be moved, so this is not a packaging stage.
#
# Re-running is safe: it upgrades aitrack in place, rewrites the shims and keeps the
# installed profile unless --profile is given. Exit status 0 on success.
set -eu

prefix=/opt/aitrack
bindir=/usr/local/bin
python=python3
wheel=
source=
wheelhouse=
profile=
agent=1
uninstall=
root=${DESTDIR:-}
root=${root%/}
here=$(cd -P -- "$(dirname -- "$0")" && pwd)

say() { printf 'aitrack install: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
need_arg() { if [ $# -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value (see --help)"; fi; }

while [ $# -gt 0 ]; do
    case $1 in
        --prefix) need_arg "$@"; prefix=$2; shift 2 ;;
        --bindir) need_arg "$@"; bindir=$2; shift 2 ;;
        --python) need_arg "$@"; python=$2; shift 2 ;;
        --wheel) need_arg "$@"; wheel=$2; shift 2 ;;
        --source) need_arg "$@"; source=$2; shift 2 ;;
        --wheelhouse) need_arg "$@"; wheelhouse=$2; shift 2 ;;
        --profile) need_arg "$@"; profile=$2; shift 2 ;;
        --agent) agent=1; shift ;;
        --no-agent) agent=; shift ;;
        --uninstall) uninstall=1; shift ;;
        -h|--help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
case $prefix in /*) ;; *) die "--prefix must be an absolute path" ;; esac
case $bindir in /*) ;; *) die "--bindir must be an absolute path" ;; esac
prefix=${prefix%/}
bindir=${bindir%/}

# What this script owns. The manifest lists files outside the prefix, for --uninstall.
home=$root$prefix
venv=$home/venv
shims=$home/shims
manifest=$home/installed-files
link=$root$bindir/aitrack
profile_d=$root/etc/profile.d/aitrack.sh
managed_dir=$root/etc/aitrack
managed=$managed_dir/profile.toml
marker="# aitrack: installed by installers/linux/install.sh"
claude_dropin=$root/etc/claude-code/managed-settings.d/aitrack.json
codex_machine=$root/etc/codex/config.toml
autostart=$root/etc/xdg/autostart/aitrack-agent.desktop

umask 022  # the venv and shims must be readable by every user, whatever root's umask is

remove_if_ours() {  # FILE: remove it if its first lines carry our marker
    [ -f "$1" ] || return 0
    if head -n 3 "$1" | grep -q "^$marker"; then rm -f "$1"; fi
}

do_uninstall() {
    if [ -f "$manifest" ]; then
        while IFS= read -r path; do
            case $path in
                "$link"|"$root"*/aitrack)  # the command link: only if it points into the prefix
                    if [ -L "$path" ]; then
                        case $(readlink "$path") in "$home"/*) rm -f "$path" ;; esac
                    fi ;;
                "$profile_d"|"$codex_machine"|"$autostart") remove_if_ours "$path" ;;
                "$managed"|"$claude_dropin") rm -f "$path" ;;
            esac
        done < "$manifest"
        for dir in "${claude_dropin%/*}" "$root/etc/claude-code" "$root/etc/codex" \
                "${autostart%/*}" "$root/etc/xdg"; do
            rmdir "$dir" 2>/dev/null || true
        done
    else  # no manifest (an interrupted install): the default locations
        if [ -L "$link" ]; then
            case $(readlink "$link") in "$home"/*) rm -f "$link" ;; esac
        fi
        remove_if_ours "$profile_d"
    fi
    rmdir "$managed_dir" 2>/dev/null || true
    rm -rf "$home"
    say "removed aitrack from $home (users' ledgers, keychain tokens and agents are theirs: run" \
        "\`aitrack token delete\` in each user's session before uninstalling to revoke them)"
}

if [ -n "$uninstall" ]; then
    do_uninstall
    exit 0
fi

# ------------------------------------------------------------------ checks before changing anything

[ -z "$profile" ] || [ -f "$profile" ] || die "--profile $profile: no such file"
if [ -z "$wheel" ] && [ -z "$source" ]; then
    for candidate in "$here"/aitrack-*.whl; do
        [ -f "$candidate" ] && wheel=$candidate
    done
    [ -n "$wheel" ] || source=$(cd -P -- "$here/../.." && pwd)
fi
if [ -n "$wheel" ]; then
    [ -f "$wheel" ] || die "--wheel $wheel: no such file"
    package=$wheel
else
    [ -f "$source/pyproject.toml" ] || die "$source is not aitrack's source tree (no pyproject.toml): give --wheel or --source"
    package=$source
fi
[ -z "$wheelhouse" ] || [ -d "$wheelhouse" ] || die "--wheelhouse $wheelhouse: no such directory"
command -v "$python" >/dev/null 2>&1 || die "$python not found: install Python 3.11 or newer, or give --python"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$python is Python $("$python" -c 'import platform; print(platform.python_version())'), aitrack needs 3.11 or newer: give --python"
if [ -e "$link" ] && ! { [ -L "$link" ] && case $(readlink "$link") in "$home"/*) true ;; *) false ;; esac; }; then
    die "$link exists and is not this installation's link: remove it or give --bindir"
fi
for dir in "$root$bindir" "$root/etc/profile.d" "$(dirname -- "$home")"; do
    if ! mkdir -p "$dir" 2>/dev/null || [ ! -w "$dir" ]; then
        die "cannot write to $dir: run as root (sudo), or set DESTDIR or --prefix/--bindir"
    fi
done

# ------------------------------------------------------------------ the virtualenv

fresh=
if ! "$venv/bin/python" -c '' >/dev/null 2>&1; then  # missing, or its interpreter is gone
    rm -rf "$venv"
    fresh=1
    "$python" -m venv "$venv" || die "cannot create a virtualenv with $python (Debian/Ubuntu: apt-get install python3-venv)"
fi
set -- --disable-pip-version-check --no-input --quiet
[ -z "$wheelhouse" ] || set -- "$@" --no-index --find-links "$wheelhouse"
"$venv/bin/python" -m pip install "$@" --upgrade "$package" \
    || die "pip could not install $package into $venv (offline? give --wheelhouse DIR)"
aitrack=$venv/bin/aitrack
"$aitrack" --version >/dev/null || die "the installed aitrack does not run: see the error above"

if [ -n "$profile" ]; then
    if ! "$aitrack" profile validate "$profile"; then
        [ -z "$fresh" ] || rm -rf "$home"
        die "$profile is not a valid profile (problems above): nothing else was changed"
    fi
fi

# ------------------------------------------------------------------ what users see

# its PATH hint is for a per-user install: the profile.d script below does that here
err=$("$aitrack" shims install --dir "$shims" 2>&1 >/dev/null) || die "cannot install the shims: $err"

ln -sfn "$venv/bin/aitrack" "$link"

tmp=$profile_d.tmp.$$
cat > "$tmp" <<EOF
$marker
# Puts the claude and codex shims first on PATH, so both are tracked by aitrack.
case \${PATH:-} in
    "$shims"|"$shims":*) ;;
    *) PATH="$shims\${PATH:+:\$PATH}"; export PATH ;;
esac
EOF
if [ -n "$root" ]; then  # an alternate root: the installed aitrack reads its profile there
    printf 'AITRACK_MANAGED_PROFILE=%s; export AITRACK_MANAGED_PROFILE\n' "$managed" >> "$tmp"
fi
chmod 0644 "$tmp"
mv -f "$tmp" "$profile_d"

if [ -n "$profile" ]; then
    mkdir -p "$managed_dir"
    cp "$profile" "$managed.tmp.$$"
    chmod 0644 "$managed.tmp.$$"
    mv -f "$managed.tmp.$$" "$managed"
fi

# the agent (unless --no-agent): the tools' machine settings name each user's agent
codex_ours=
if [ -z "$agent" ]; then  # --no-agent: what an earlier run wrote for it goes
    if grep -qxF "$claude_dropin" "$manifest" 2>/dev/null; then rm -f "$claude_dropin"; fi
    remove_if_ours "$codex_machine"
    remove_if_ours "$autostart"
    for dir in "${claude_dropin%/*}" "$root/etc/claude-code" "$root/etc/codex" \
            "${autostart%/*}" "$root/etc/xdg"; do
        rmdir "$dir" 2>/dev/null || true
    done
fi
if [ -n "$agent" ]; then
    settings() {  # TOOL: `aitrack agent print-settings TOOL` with the installed profile
        AITRACK_MANAGED_PROFILE=$managed "$aitrack" agent print-settings "$1" --os linux
    }
    mkdir -p "${claude_dropin%/*}"
    settings claude > "$claude_dropin.tmp.$$" || die "aitrack agent print-settings claude failed"
    chmod 0644 "$claude_dropin.tmp.$$"
    mv -f "$claude_dropin.tmp.$$" "$claude_dropin"
    if [ -e "$codex_machine" ] && ! head -n 1 "$codex_machine" | grep -q "^$marker"; then
        say "left $codex_machine as it is: add the [otel] table of \`aitrack agent print-settings codex\` to it yourself"
    elif ! codex_otel=$(settings codex 2>/dev/null); then
        # per-user ports: Codex's machine [otel] cannot name them; each user's own
        # config.toml does (`aitrack agent install`)
        say "no [agent] port in $managed: Codex's [otel] is left to each user's config.toml"
    else
        mkdir -p "${codex_machine%/*}"
        printf '%s\n%s\n' "$marker" "$codex_otel" > "$codex_machine.tmp.$$" ||
            die "cannot write $codex_machine"
        chmod 0644 "$codex_machine.tmp.$$"
        mv -f "$codex_machine.tmp.$$" "$codex_machine"
        codex_ours=1
    fi
    mkdir -p "${autostart%/*}"
    cat > "$autostart.tmp.$$" <<EOF
$marker
[Desktop Entry]
Type=Application
Name=aitrack agent
Comment=Points Claude Code and Codex at this user's aitrack agent and keeps it running
Exec=$link agent install
NoDisplay=true
X-GNOME-Autostart-enabled=true
EOF
    chmod 0644 "$autostart.tmp.$$"
    mv -f "$autostart.tmp.$$" "$autostart"
fi

{
    printf '%s\n' "$link" "$profile_d"
    if [ -n "$profile" ] || grep -qxF "$managed" "$manifest" 2>/dev/null; then
        printf '%s\n' "$managed"
    fi
    if [ -n "$agent" ]; then
        printf '%s\n' "$claude_dropin" "$autostart"
        [ -z "$codex_ours" ] || printf '%s\n' "$codex_machine"
    fi
} > "$manifest.tmp.$$"
mv -f "$manifest.tmp.$$" "$manifest"

say "installed $("$aitrack" --version) in $home"
say "command: $link; shims: $shims (first on PATH in new login shells via $profile_d)"
[ -z "$profile" ] || say "managed profile: $managed"
[ -n "$agent" ] || say "no agent (--no-agent): only runs through aitrack or its shims are recorded"
[ -z "$agent" ] || say "agent: Claude Code's machine settings $claude_dropin$([ -z "$codex_ours" ] || printf ' and Codex'"'"'s %s' "$codex_machine"); \`aitrack agent install\` runs at each graphical login ($autostart)"
say "next, in each user's session: printf %s \"\$TOKEN\" | aitrack token set; then \`aitrack doctor\`"
