#!/bin/sh
# Build aitrack's macOS installer package. Runs on macOS (pkgbuild and productbuild ship
# with Xcode's command line tools); it cannot run on Linux or Windows.
#
#   sh installers/macos/build-pkg.sh [--version V] [--python-tarball FILE] [--profile FILE]
#                                    [--no-agent] [--sign "Developer ID Installer: ..."] [--out DIR]
#
# The package installs offline: its payload holds a wheelhouse with aitrack and every
# dependency for both arm64 and x86_64, and the postinstall script builds the virtualenv
# from it (/opt/aitrack/venv), links /usr/local/bin/aitrack, writes the shims
# (/opt/aitrack/shims) and /etc/paths.d/aitrack.
#   --python-tarball FILE  a python-build-standalone "install_only" tarball (3.11+,
#                          aarch64/x86_64 or universal2) to ship as /opt/aitrack/python, so
#                          the Mac needs no Python of its own. Without it the postinstall
#                          uses the newest Python 3.11+ it finds (python.org, Homebrew).
#   --profile FILE         a managed profile to install as
#                          /Library/Application Support/aitrack/profile.toml (validated
#                          here first). Prefer the .mobileconfig for MDM-managed Macs.
#   --no-agent             do not capture runs that do not go through aitrack (IDEs, the
#                          desktop apps). By default they are: the postinstall writes Claude
#                          Code's machine settings (`aitrack agent print-settings claude`) to
#                          /Library/Application Support/ClaudeCode/managed-settings.d/
#                          aitrack.json, and a LaunchAgent that runs `aitrack agent install`
#                          at each user's login (/Library/LaunchAgents/io.aitrack.agent-install.plist).
#   --agent                the default (kept for older scripts)
#   --sign IDENTITY        sign the product archive (needed for notarization and most MDMs).
set -eu

here=$(cd -P -- "$(dirname -- "$0")" && pwd)
repo=$(cd -P -- "$here/../.." && pwd)
out=$repo/dist
version=
tarball=
profile=
agent=1
sign=
python=${PYTHON:-python3}

die() { printf 'build-pkg: %s\n' "$*" >&2; exit 1; }
while [ $# -gt 0 ]; do
    case $1 in
        --version) version=$2; shift 2 ;;
        --python-tarball) tarball=$2; shift 2 ;;
        --profile) profile=$2; shift 2 ;;
        --agent) agent=1; shift ;;
        --no-agent) agent=; shift ;;
        --sign) sign=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        *) die "unknown option $1" ;;
    esac
done
[ "$(uname -s)" = Darwin ] || die "run this on macOS: it needs pkgbuild and productbuild"
command -v pkgbuild >/dev/null || die "pkgbuild not found: xcode-select --install"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
payload=$work/root
wheels=$payload/opt/aitrack/wheelhouse
mkdir -p "$wheels"

# aitrack's wheel, then every dependency as binary wheels for both architectures, so
# that the postinstall needs no network and no compiler.
"$python" -m venv "$work/build"
"$work/build/bin/pip" install --quiet --upgrade pip build
"$work/build/bin/python" -m build --wheel --outdir "$wheels" "$repo"
[ -n "$version" ] || version=$("$work/build/bin/python" -c "import sys, pathlib; \
print(next(pathlib.Path(sys.argv[1]).glob('aitrack-*.whl')).name.split('-')[1])" "$wheels")
for platform in macosx_11_0_arm64 macosx_10_12_x86_64; do
    for pyver in 3.11 3.12 3.13; do
        "$work/build/bin/pip" download --quiet --only-binary=:all: --dest "$wheels" \
            --platform "$platform" --python-version "$pyver" "$wheels"/aitrack-*.whl
    done
done

if [ -n "$tarball" ]; then  # python-build-standalone unpacks to python/
    tar -xzf "$tarball" -C "$payload/opt/aitrack"
    [ -x "$payload/opt/aitrack/python/bin/python3" ] || die "$tarball has no python/bin/python3"
fi
if [ -n "$profile" ]; then
    "$work/build/bin/pip" install --quiet "$wheels"/aitrack-*.whl
    "$work/build/bin/aitrack" profile validate "$profile" || die "$profile is not a valid profile"
    mkdir -p "$payload/Library/Application Support/aitrack"
    cp "$profile" "$payload/Library/Application Support/aitrack/profile.toml"
fi

# read by the postinstall: write the agent settings (see --agent)
[ -z "$agent" ] || : > "$payload/opt/aitrack/agent-settings"

mkdir -p "$out"
pkgbuild --root "$payload" --scripts "$here/scripts" --identifier io.aitrack.pkg \
    --version "$version" --install-location / --ownership recommended "$work/aitrack-core.pkg"
set -- --package "$work/aitrack-core.pkg" --identifier io.aitrack --version "$version"
[ -z "$sign" ] || set -- "$@" --sign "$sign"
productbuild "$@" "$out/aitrack-$version.pkg"
printf 'build-pkg: %s\n' "$out/aitrack-$version.pkg"
