#!/usr/bin/env bash
# Install what the tests need, then run them against a real keychain and the real agents.
#
#   bash tests/run.sh [PYTEST ARGS...]
#
# - a virtualenv (.venv, or $AITRACK_VENV) with aitrack and its `test` extra;
# - Debian's gnome-keyring, dbus, shellcheck and chromium when apt is available and missing;
# - the pinned `claude`, `codex`, `gemini`, `qwen`, `copilot` and `opencode` from npm, in
#   $AITRACK_E2E_CACHE
#   (~/.cache/aitrack-e2e);
# then the import-linter contracts (pyproject.toml), then pytest inside a private D-Bus session
# with a throwaway, unlocked gnome-keyring, so the keychain tests use the real Secret Service
# and never touch your own login keyring.
set -euo pipefail

CLAUDE_VERSION=2.1.328
CODEX_VERSION=0.169.0
GEMINI_VERSION=0.61.0
QWEN_VERSION=0.24.4
CCUSAGE_VERSION=20.0.24  # the transcript reader `aitrack import` is compared with
COPILOT_VERSION=1.0.102
OPENCODE_VERSION=1.18.33

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
venv=${AITRACK_VENV:-$repo/.venv}
cache=${AITRACK_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aitrack-e2e}

say() { printf 'tests/run.sh: %s\n' "$*" >&2; }

install_debian_packages() {
    command -v gnome-keyring-daemon >/dev/null && command -v dbus-run-session >/dev/null &&
        command -v shellcheck >/dev/null && command -v chromium >/dev/null &&
        command -v tmux >/dev/null && return
    command -v apt-get >/dev/null ||
        { say "no apt-get: install gnome-keyring, dbus, shellcheck, chromium and tmux yourself"
          return; }
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    say "installing gnome-keyring, dbus, shellcheck, chromium and tmux"
    $sudo apt-get update -qq || true
    # chromium: the dashboard tests open it headless (Playwright's own download cannot work);
    # tmux: the terminal UI tests (the real codex TUI)
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq gnome-keyring dbus shellcheck \
        chromium tmux \
        >/dev/null
}

install_python() {
    # The install is editable: only a changed pyproject.toml (dependencies) needs pip again.
    local stamp="$venv/.aitrack-test-install" want
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    want=$(cksum < "$repo/pyproject.toml")
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! "$venv/bin/python" -c "import aitrack" 2>/dev/null; then
        "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "${repo}[test]"
        printf '%s\n' "$want" > "$stamp"
    fi
}

_npm_version() {
    sed -n 's/^  "version": "\(.*\)",$/\1/p' "$1" 2>/dev/null | head -n 1 || true
}

install_agents() {
    if ! command -v npm >/dev/null; then
        say "no npm: the end-to-end tests with the real tools will not run"
        return
    fi
    local have_claude have_codex have_ccusage have_gemini have_qwen
    have_claude=$("$cache/node_modules/.bin/claude" --version 2>/dev/null || true)
    have_codex=$("$cache/node_modules/.bin/codex" --version 2>/dev/null || true)
    have_ccusage=$("$cache/node_modules/.bin/ccusage" --version 2>/dev/null || true)
    # gemini and qwen start a whole CLI for --version (seconds): their package.json says it
    have_gemini=$(_npm_version "$cache/node_modules/@google/gemini-cli/package.json")
    have_qwen=$(_npm_version "$cache/node_modules/@qwen-code/qwen-code/package.json")
    if [[ "$have_claude" != "$CLAUDE_VERSION "* || "$have_codex" != *" $CODEX_VERSION" ||
          "$have_ccusage" != *" $CCUSAGE_VERSION" || "$have_gemini" != "$GEMINI_VERSION" ||
          "$have_qwen" != "$QWEN_VERSION" ]]; then
        say "installing claude $CLAUDE_VERSION, codex $CODEX_VERSION, gemini $GEMINI_VERSION," \
            "qwen $QWEN_VERSION and ccusage $CCUSAGE_VERSION into $cache"
        mkdir -p "$cache"
        # one command for all of them: npm removes what an install into the prefix leaves out
        npm install --prefix "$cache" --no-save --no-audit --no-fund --loglevel=error \
            "@anthropic-ai/claude-code@$CLAUDE_VERSION" "@openai/codex@$CODEX_VERSION" \
            "@google/gemini-cli@$GEMINI_VERSION" "@qwen-code/qwen-code@$QWEN_VERSION" \
            "ccusage@$CCUSAGE_VERSION" >/dev/null
    fi
    # each further tool in a prefix of its own: an npm install into a shared prefix removes
    # what an install with another package list put there
    local bins="$cache/node_modules/.bin"
    install_tool copilot @github/copilot "$COPILOT_VERSION" "GitHub Copilot CLI $COPILOT_VERSION"
    install_tool opencode opencode-ai "$OPENCODE_VERSION" "$OPENCODE_VERSION"
    bins="$bins:$cache/copilot/node_modules/.bin:$cache/opencode/node_modules/.bin"
    export AITRACK_E2E_BIN_DIR="$bins"
}

install_tool() {  # NAME PACKAGE VERSION WHAT-`NAME --version`-STARTS-WITH
    local have
    have=$("$cache/$1/node_modules/.bin/$1" --version 2>/dev/null | head -n 1 || true)
    [[ "$have" == "$4"* ]] && return
    say "installing $1 $3 into $cache/$1"
    mkdir -p "$cache/$1"
    npm install --prefix "$cache/$1" --no-save --no-audit --no-fund --loglevel=error \
        "$2@$3" >/dev/null
}

install_debian_packages
install_python
install_agents

# The architecture (pyproject.toml [tool.importlinter]): layers, independent tools, no cycles.
contracts=$(PYTHONPATH="$repo/shim" "$venv/bin/lint-imports" --no-cache "$repo/pyproject.toml" \
    2>&1) || { printf '%s\n' "$contracts" | tail -n 40 >&2; say "import contracts broken"; exit 1; }

keyring_home=$(mktemp -d)
trap 'rm -rf "$keyring_home"' EXIT
export AITRACK_TEST_KEYRING_HOME="$keyring_home"
export PATH="$venv/bin:$PATH"
if [ "${AITRACK_TEST_TOOLS_ON_PATH:-}" = 1 ] && [ -n "${AITRACK_E2E_BIN_DIR:-}" ]; then
    # as on a developer's machine: the real tools first on PATH (the suite must not care)
    export PATH="$AITRACK_E2E_BIN_DIR:$PATH"
fi
if command -v dbus-run-session >/dev/null && command -v gnome-keyring-daemon >/dev/null; then
    # The daemon keeps its keyring files under XDG_DATA_HOME: a temporary one.
    status=0
    # shellcheck disable=SC2016 # expanded by the inner sh
    dbus-run-session -- sh -c '
        printf pw | XDG_DATA_HOME="$AITRACK_TEST_KEYRING_HOME" \
            gnome-keyring-daemon --unlock --components=secrets >/dev/null
        exec python -m pytest "$@"' sh "$@" || status=$?
    exit "$status"
fi
say "no dbus-run-session/gnome-keyring-daemon: keychain tests will skip"
python -m pytest "$@"
