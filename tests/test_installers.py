"""installers/: the Linux installer run for real into a temporary root; the macOS and
Windows files checked as far as Linux can (syntax, and their settings through aitrack's own
readers)."""

from __future__ import annotations

import hashlib
import os
import plistlib
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from aitrack.config import managed
from aitrack.config.schema import FREE_TABLES, SCHEMA
from aitrack.install import shims
from fixtures import fake_tool
from fixtures.registry import FakeRegistry

REPO = Path(__file__).resolve().parent.parent
INSTALLERS = REPO / "installers"
LINUX = INSTALLERS / "linux" / "install.sh"
PREFIX = "/opt/aitrack"
# What a Linux system has before aitrack arrives (FHS); the installer adds only below these.
SYSTEM_DIRS = ("etc", "etc/profile.d", "opt", "usr", "usr/local", "usr/local/bin")
PROFILE = '[attributes]\n"team.id" = "platform-eng"\ncost_center = "CC-4200"\n'

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="runs the Linux installer and login shells")


def shell_scripts() -> list[Path]:
    found = [p for p in INSTALLERS.rglob("*") if p.is_file() and (
        p.suffix == ".sh" or p.read_bytes().startswith(b"#!/bin/sh"))]
    assert len(found) >= 4, found  # install.sh, build-pkg.sh, postinstall, uninstall.sh
    return found


# ---------------------------------------------------------------- Linux, for real


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """A copy of the source tree: building from source writes build/ into the tree."""
    source = tmp_path_factory.mktemp("checkout")
    shutil.copytree(REPO / "shim" / "aitrack", source / "shim" / "aitrack",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "installers/linux/install.sh"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, source / name)
    return source


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory, checkout) -> Path:
    """aitrack's wheel and every dependency (and setuptools, to build from source) offline."""
    directory = tmp_path_factory.mktemp("wheelhouse")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet",
                             "--disable-pip-version-check", "--wheel-dir", str(directory),
                             str(checkout), "setuptools>=68"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return directory


def new_root(tmp_path: Path, name: str = "root") -> Path:
    root = tmp_path / name
    for d in SYSTEM_DIRS:
        (root / d).mkdir(parents=True, exist_ok=True)
    return root


def install_sh(root: Path, *args: str, script: Path = LINUX) -> subprocess.CompletedProcess:
    env = {**os.environ, "DESTDIR": str(root)}
    return subprocess.run(["sh", str(script), "--python", sys.executable, *args], env=env,
                          capture_output=True, text=True, timeout=300)


def tree(root: Path) -> dict[str, str | None]:
    """Every path under root: file -> sha256 (a link -> its target), directory -> None."""
    out: dict[str, str | None] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if "__pycache__" in path.parts:
            continue
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[rel] = None
    return out


def login_shell(shell: str, root: Path, home_dir: Path, command: str,
                **env: str) -> subprocess.CompletedProcess:
    """A login shell as a user gets it: the system's /etc/profile, then ~/.profile, which
    here sources the temporary root's /etc/profile.d/*.sh exactly as /etc/profile does for
    the real /etc/profile.d. The user's own bin directory (with the real tool) was already
    on PATH before profile.d ran, as /usr/local/bin is."""
    (home_dir / ".profile").write_text(
        f'PATH="{home_dir / "bin"}:$PATH"\n'
        f'for i in "{root}"/etc/profile.d/*.sh; do\n'
        '    if [ -r "$i" ]; then . "$i"; fi\n'
        "done\n")
    return subprocess.run([shell, "-l", "-c", command], capture_output=True, text=True,
                          timeout=60, cwd=home_dir,
                          env={"HOME": str(home_dir), "TERM": "dumb", "LANG": "C.UTF-8",
                               "AITRACK_HOME": str(home_dir / "aitrack"), **env})


@linux_only
def test_linux_install_rerun_and_uninstall(tmp_path, wheelhouse):
    root = new_root(tmp_path)
    before = tree(root)
    profile = tmp_path / "org-profile.toml"
    profile.write_text(PROFILE)
    [wheel] = wheelhouse.glob("aitrack-*.whl")
    installed = install_sh(root, "--wheel", str(wheel), "--wheelhouse", str(wheelhouse),
                           "--profile", str(profile))
    assert installed.returncode == 0, installed.stderr
    home = root / PREFIX.lstrip("/")
    shim_dir = home / "shims"

    # what was installed, where
    link = root / "usr/local/bin/aitrack"
    assert os.readlink(link) == str(home / "venv/bin/aitrack")
    version = subprocess.run([str(link), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and "0.1.0" in version.stdout
    for name in ("claude", "codex"):
        assert shims.is_shim(shim_dir / name)
        assert shims.shim_python(shim_dir / name) == str(home / "venv/bin/python")
    assert (root / "etc/aitrack/profile.toml").read_text() == PROFILE
    assert (root / "etc/aitrack/profile.toml").stat().st_mode & 0o777 == 0o644
    profile_d = root / "etc/profile.d/aitrack.sh"
    assert f'PATH="{shim_dir}${{PATH:+:$PATH}}"' in profile_d.read_text()

    # a login shell finds the shim first, and the shim reaches the real tool through aitrack
    user = tmp_path / "user"
    fake_tool.write(user / "bin", "claude")
    for shell in ("bash", "sh"):
        found = login_shell(shell, root, user, "command -v claude; command -v codex")
        assert found.stdout.split() == [str(shim_dir / "claude"), str(shim_dir / "codex")], \
            (shell, found.stdout, found.stderr)
    dump = tmp_path / "dump.json"
    ran = login_shell("bash", root, user, 'claude -p "hello there" --max-turns 1',
                      DUMP_TO=str(dump), EXIT_WITH="5")
    assert ran.returncode == 5, ran.stderr
    child = fake_tool.dumped(dump)
    assert child["argv"] == ["-p", "hello there", "--max-turns", "1"]
    assert child["env"]["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http://127.0.0.1:")
    assert child["env"]["CLAUDE_CODE_ENABLE_TELEMETRY"] == "1"
    attributes = child["env"]["OTEL_RESOURCE_ATTRIBUTES"].split(",")
    assert "team.id=platform-eng" in attributes  # from the installed managed profile
    # sourcing profile.d again (a nested login shell) does not stack the directory
    twice = login_shell("sh", root, user, f'. "{profile_d}"; echo "$PATH"')
    assert twice.stdout.strip().split(":").count(str(shim_dir)) == 1

    # a second run changes nothing (and keeps the profile without --profile)
    after_install = tree(root)
    again = install_sh(root, "--wheel", str(wheel), "--wheelhouse", str(wheelhouse))
    assert again.returncode == 0, again.stderr
    assert tree(root) == after_install

    # an invalid profile stops the run and changes nothing
    bad = tmp_path / "bad.toml"
    bad.write_text('[endpoint]\nurl = "http://collector.example.com"\n')
    refused = install_sh(root, "--wheel", str(wheel), "--wheelhouse", str(wheelhouse),
                         "--profile", str(bad))
    assert refused.returncode == 1
    assert "endpoint.url" in refused.stderr and "nothing else was changed" in refused.stderr
    assert tree(root) == after_install

    # --uninstall leaves exactly the system's own directories
    removed = install_sh(root, "--uninstall")
    assert removed.returncode == 0, removed.stderr
    assert "aitrack token delete" in removed.stderr
    assert tree(root) == before
    gone = login_shell("bash", root, user, "command -v claude")
    assert gone.stdout.strip() == str(user / "bin" / "claude")


@linux_only
def test_linux_install_with_the_agent_settings(tmp_path, wheelhouse):
    """--agent: the machine-wide snippets of `aitrack agent print-settings`, with the
    installed profile's port, and `aitrack agent install` at each graphical login."""
    import configparser
    import json
    import tomllib

    root = new_root(tmp_path)
    before = tree(root)
    profile = tmp_path / "org-profile.toml"
    profile.write_text(PROFILE + "\n[agent]\nport = 47555\n")
    [wheel] = wheelhouse.glob("aitrack-*.whl")
    installed = install_sh(root, "--wheel", str(wheel), "--wheelhouse", str(wheelhouse),
                           "--profile", str(profile), "--agent")
    assert installed.returncode == 0, installed.stderr
    dropin = root / "etc/claude-code/managed-settings.d/aitrack.json"
    settings = json.loads(dropin.read_text())
    assert settings["env"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:47555"
    assert "/aitrack/agent/otel-headers" in settings["otelHeadersHelper"]
    codex = root / "etc/codex/config.toml"
    otel = tomllib.loads(codex.read_text())["otel"]
    assert otel["metrics_exporter"]["otlp-http"]["endpoint"] == \
        "http://127.0.0.1:47555/v1/metrics"
    assert "headers" not in otel["exporter"]["otlp-http"]  # no user's key in a shared file
    desktop = configparser.ConfigParser(interpolation=None)
    desktop.optionxform = str
    desktop.read_string((root / "etc/xdg/autostart/aitrack-agent.desktop").read_text())
    assert desktop["Desktop Entry"]["Exec"] == f"{root}/usr/local/bin/aitrack agent install"
    assert all(oct(p.stat().st_mode)[-3:] == "644" for p in (dropin, codex))

    after = tree(root)  # a re-run without --agent keeps them: the agent is the default
    again = install_sh(root, "--wheel", str(wheel), "--wheelhouse", str(wheelhouse))
    assert again.returncode == 0, again.stderr
    assert tree(root) == after
    declined = install_sh(root, "--wheel", str(wheel), "--wheelhouse", str(wheelhouse),
                          "--no-agent")  # issue 23: the agent by default, with an opt-out
    assert declined.returncode == 0, declined.stderr
    assert "no agent (--no-agent)" in declined.stderr
    assert not dropin.exists() and not codex.exists()
    assert not (root / "etc/xdg/autostart/aitrack-agent.desktop").exists()
    assert install_sh(root, "--wheel", str(wheel), "--wheelhouse", str(wheelhouse)
                      ).returncode == 0
    assert tree(root) == after

    removed = install_sh(root, "--uninstall")
    assert removed.returncode == 0, removed.stderr
    assert tree(root) == before

    # IT's own /etc/codex/config.toml is never replaced
    (root / "etc/codex").mkdir(parents=True)
    codex.write_text('model = "gpt-5"\n')
    installed = install_sh(root, "--wheel", str(wheel), "--wheelhouse", str(wheelhouse),
                           "--agent")
    assert installed.returncode == 0, installed.stderr
    assert codex.read_text() == 'model = "gpt-5"\n'
    assert "aitrack agent print-settings codex" in installed.stderr
    assert install_sh(root, "--uninstall").returncode == 0
    assert codex.read_text() == 'model = "gpt-5"\n' and not dropin.exists()


@linux_only
def test_linux_install_from_the_source_tree(tmp_path, wheelhouse, checkout):
    """No --wheel: the source tree the script is part of, offline from a wheelhouse."""
    root = new_root(tmp_path)
    installed = install_sh(root, "--wheelhouse", str(wheelhouse), "--prefix", "/srv/ai",
                           "--bindir", "/usr/bin", script=checkout / "installers/linux/install.sh")
    assert installed.returncode == 0, installed.stderr
    aitrack = root / "usr/bin/aitrack"
    assert os.readlink(aitrack) == str(root / "srv/ai/venv/bin/aitrack")
    assert shims.is_shim(root / "srv/ai/shims/claude")
    status = subprocess.run([str(aitrack), "shims", "status", "--dir", str(root / "srv/ai/shims"),
                             "--json"], capture_output=True, text=True,
                            env={**os.environ, "PATH": f"{root / 'srv/ai/shims'}:/usr/bin:/bin"})
    assert '"on_path_first": true' in status.stdout
    assert install_sh(root, "--uninstall", "--prefix", "/srv/ai").returncode == 0
    assert not (root / "srv/ai").exists() and not aitrack.exists()
    assert not (root / "etc/profile.d/aitrack.sh").exists()


@linux_only
def test_linux_install_refuses_to_replace_another_aitrack(tmp_path):
    root = new_root(tmp_path)
    other = root / "usr/local/bin/aitrack"
    other.write_text("#!/bin/sh\necho pipx aitrack\n")
    result = install_sh(root)
    assert result.returncode == 1
    assert f"{other} exists and is not this installation's link" in result.stderr
    assert other.read_text() == "#!/bin/sh\necho pipx aitrack\n"
    assert not (root / "opt/aitrack").exists()  # refused before anything was made


@linux_only
def test_linux_install_help_and_bad_options(tmp_path):
    helped = subprocess.run(["sh", str(LINUX), "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "--uninstall" in helped.stdout
    assert "DESTDIR" in helped.stdout and not helped.stdout.startswith("#")
    bad = install_sh(new_root(tmp_path), "--prefix", "relative/path")
    assert bad.returncode == 1 and "absolute" in bad.stderr


@linux_only
def test_macos_postinstall_builds_the_venv_offline(tmp_path, wheelhouse):
    """The package's postinstall, on Linux, with the target volume a temporary root."""
    root = new_root(tmp_path)
    home = root / PREFIX.lstrip("/")
    shutil.copytree(wheelhouse, home / "wheelhouse")
    (home / "python/bin").mkdir(parents=True)
    (home / "python/bin/python3").symlink_to(sys.executable)  # as a bundled Python would be
    script = INSTALLERS / "macos/scripts/postinstall"
    result = subprocess.run(["sh", str(script), "pkg", "/", str(root), "/"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (root / "etc/paths.d/aitrack").read_text() == f"{home / 'shims'}\n"
    assert os.readlink(root / "usr/local/bin/aitrack") == str(home / "venv/bin/aitrack")
    assert shims.shim_python(home / "shims/claude") == str(home / "venv/bin/python")
    again = subprocess.run(["sh", str(script), "pkg", "/", str(root), "/"],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert not (root / "Library/LaunchAgents").exists()

    # a package built with --agent: Claude Code's machine settings and the login step
    (home / "agent-settings").touch()
    agent = subprocess.run(["sh", str(script), "pkg", "/", str(root), "/"],
                           capture_output=True, text=True, timeout=300)
    assert agent.returncode == 0, agent.stdout + agent.stderr
    import json

    dropin = root / "Library/Application Support/ClaudeCode/managed-settings.d/aitrack.json"
    helper = json.loads(dropin.read_text())["otelHeadersHelper"]
    assert "$HOME/Library/Application Support/aitrack/agent/otel-headers" in helper
    login = plistlib.loads((root / "Library/LaunchAgents/io.aitrack.agent-install.plist")
                           .read_bytes())
    assert login["ProgramArguments"] == [str(home / "venv/bin/aitrack"), "agent", "install"]
    assert login["RunAtLoad"] is True and "KeepAlive" not in login


# ---------------------------------------------------------------- syntax of every script


@pytest.mark.parametrize("script", shell_scripts(), ids=lambda p: str(p.relative_to(INSTALLERS)))
def test_shell_scripts_parse(script):
    result = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert os.access(script, os.X_OK), f"{script} is not executable"


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
@pytest.mark.parametrize("script", shell_scripts(), ids=lambda p: str(p.relative_to(INSTALLERS)))
def test_shell_scripts_pass_shellcheck(script):
    result = subprocess.run(["shellcheck", "-s", "sh", str(script)], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout


# ---------------------------------------------------------------- macOS configuration profile


def test_the_mobileconfig_delivers_settings_the_profile_loader_accepts(tmp_path):
    config = plistlib.loads((INSTALLERS / "macos/io.aitrack.mobileconfig").read_bytes())
    assert config["PayloadType"] == "Configuration" and config["PayloadScope"] == "System"
    [payload] = [p for p in config["PayloadContent"] if p["PayloadType"] == "io.aitrack"]
    uuids = {config["PayloadUUID"], payload["PayloadUUID"]}
    assert len(uuids) == 2 and all(uuid.UUID(u) for u in uuids)
    settings = {k: v for k, v in payload.items() if not k.startswith("Payload")}
    assert set(settings) <= set(SCHEMA) | set(FREE_TABLES)
    assert set(settings["endpoint"]) <= set(SCHEMA["endpoint"])
    assert set(settings["telemetry"]) == set(SCHEMA["telemetry"])  # every switch, spelled out
    # what macOS writes to /Library/Managed Preferences/io.aitrack.plist, through aitrack
    written = tmp_path / "io.aitrack.plist"
    written.write_bytes(plistlib.dumps(payload, fmt=plistlib.FMT_BINARY))
    data = managed.read_plist(written)
    assert data == settings
    assert data["telemetry"]["log_user_prompts"] is False
    assert data["endpoint"]["signals"] == ["metrics", "logs"]


# ---------------------------------------------------------------- Windows files


def parse_reg(text: str) -> dict[str, dict[str, object]]:
    """A .reg file (regedit 5.00): key path -> {value name: REG_SZ str | REG_DWORD int |
    REG_MULTI_SZ list}."""
    lines, pending = [], ""
    for line in text.splitlines():
        if line.endswith("\\"):
            pending += line[:-1].strip()
            continue
        lines.append(pending + line.strip())
        pending = ""
    assert lines[0] == "Windows Registry Editor Version 5.00"
    keys: dict[str, dict[str, object]] = {}
    current = None
    for line in lines[1:]:
        if not line or line.startswith(";"):
            continue
        if line.startswith("["):
            current = line[1:-1]
            keys[current] = {}
            continue
        m = re.fullmatch(r'"((?:[^"\\]|\\.)*)"=(.*)', line)
        assert m and current, line
        name, raw = m.group(1), m.group(2)
        if raw.startswith('"'):
            value: object = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        elif raw.startswith("dword:"):
            value = int(raw[6:], 16)
        elif raw.startswith("hex(7):"):
            value = [s for s in bytes.fromhex(raw[7:].replace(",", "")).decode("utf-16-le")
                     .split("\0") if s]
        else:
            raise AssertionError(f"unexpected value type: {line}")
        keys[current][name] = value
    return keys


def test_the_reg_template_maps_onto_valid_profile_keys():
    raw = (INSTALLERS / "windows/aitrack-policy.reg").read_bytes()
    assert raw.isascii() and b"\r\n" in raw  # what regedit reads without a BOM
    keys = parse_reg(raw.decode())
    base = "HKEY_LOCAL_MACHINE\\" + managed.REGISTRY_KEY
    assert all(k == base or k.startswith(base + "\\") for k in keys)
    tree: dict = {}
    for path, values in keys.items():
        node = tree
        for part in path[len(base):].split("\\")[1:]:
            node = node.setdefault(part, {})
        node.update(values)
    data = managed.read_registry(FakeRegistry(tree))  # raises on any invalid key or value
    assert set(data["endpoint"]) <= set(SCHEMA["endpoint"])
    assert data["endpoint"]["signals"] == ["metrics", "logs"]
    assert data["endpoint"]["timeout_s"] == 10 and data["endpoint"]["outbox_max_mb"] == 256
    assert data["telemetry"]["log_user_prompts"] is False
    assert data["telemetry"]["metric_export_interval_ms"] == 60000
    assert data["prices"]["internal-model-1"] == {"input": 2.5, "output": 10, "cache_read": 0.25}


def test_the_powershell_scripts_exist_and_are_documented():
    readme = (INSTALLERS / "README.md").read_text()
    for name in ("install.ps1", "set-token.ps1"):
        assert (INSTALLERS / "windows" / name).is_file()
        assert f"windows/{name}" in readme
    install = (INSTALLERS / "windows/install.ps1").read_text()
    assert "shims install --dir" in install and "profile validate" in install
    assert "agent print-settings claude --os windows" in install and "-NoAgent" in readme
    token = (INSTALLERS / "windows/set-token.ps1").read_text()
    assert "RedirectStandardInput" in token and "token set" in token  # stdin, not an argument


def test_the_readme_documents_tokens_and_offboarding_per_platform():
    readme = (INSTALLERS / "README.md").read_text()
    for words in ("aitrack token set", "aitrack token delete", "Jamf", "Kandji", "Intune",
                  "launchctl asuser", "logged on credentials", "DBUS_SESSION_BUS_ADDRESS",
                  "aitrack agent install", "aitrack agent print-settings claude",
                  "aitrack agent uninstall", "managed-settings.d"):
        assert words in readme, words
