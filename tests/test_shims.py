"""`aitrack shims`: plain `claude`/`codex` tracked, and never blocked when aitrack is broken."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aitrack import adapters
from aitrack.install import shim_scripts, shims
from fixtures import fake_tool

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX sh shims")

SYSTEM_PATH = ["/usr/bin", "/bin"]
ODD_ARGS = ["-p", "two words", "", "*", "$HOME", "a'b\"c", "--", "--help"]


def path_of(*dirs: Path | str) -> str:
    return os.pathsep.join([*map(str, dirs), *SYSTEM_PATH])


def install(home, directory: Path, path: str | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": path} if path is not None else None
    return home.run("shims", "install", "--dir", str(directory), env=env)


def run_shim(home, shim: Path, *args: str, path: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(shim), *args], env={**home.env, "PATH": path, **env},
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def real_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "real-bin"
    fake_tool.write(directory, "claude")
    fake_tool.write(directory, "codex")
    return directory


@pytest.fixture
def bare_python(tmp_path_factory) -> str:
    """An interpreter that cannot import aitrack (a venv without it)."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    assert subprocess.run([str(python), "-I", "-c", "import aitrack"]).returncode != 0
    return str(python)


def with_python(shim: Path, python: str) -> None:
    """Point an installed shim at another interpreter, as if aitrack had moved or broken."""
    lines = shim.read_text().splitlines(keepends=True)
    shim.write_text("".join(f"aitrack_python={python}\n" if line.startswith("aitrack_python=")
                            else line for line in lines))


# ---------------------------------------------------------------- install


def test_the_shim_runs_the_real_tool_through_aitrack(home, tmp_path, real_dir):
    shim_dir = tmp_path / "shims"
    result = install(home, shim_dir)
    assert result.returncode == 0, result.stderr
    for name in ("claude", "codex"):
        shim = shim_dir / name
        assert os.access(shim, os.X_OK)
        assert b"aitrack-shim" in shim.read_bytes()[:512]  # what the launcher looks for
    dump = tmp_path / "dump.json"
    # the shim directory twice and before the real one: the launcher must skip it, not loop
    path = path_of(shim_dir, shim_dir, real_dir)
    result = run_shim(home, shim_dir / "claude", *ODD_ARGS, path=path, DUMP_TO=str(dump),
                      EXIT_WITH="7")
    assert result.returncode == 7, result.stderr
    child = fake_tool.dumped(dump)
    assert child["tool"] == "claude" and child["argv"] == ODD_ARGS
    assert child["env"]["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http://127.0.0.1:")
    assert len(child["env"]["AITRACK_SESSION_ID"]) == 32
    assert result.stderr == ""
    result = run_shim(home, shim_dir / "codex", "exec", "hi", path=path, DUMP_TO=str(dump))
    assert result.returncode == 0, result.stderr
    child = fake_tool.dumped(dump)
    assert child["tool"] == "codex" and child["argv"] == ["exec", "hi"]  # no -c overrides
    sessions = home.run("report", "session", "--json")
    assert {s["tool"] for s in json.loads(sessions.stdout)["sessions"]} == {"claude", "codex"}


def test_a_checkout_with_an_aitrack_folder_does_not_replace_aitrack(home, tmp_path, real_dir):
    shim_dir = tmp_path / "shims"
    assert install(home, shim_dir).returncode == 0
    impostor = tmp_path / "work" / "aitrack"
    impostor.mkdir(parents=True)
    (impostor / "__init__.py").write_text("raise SystemExit('imported the impostor')\n")
    dump = tmp_path / "dump.json"
    result = subprocess.run([str(shim_dir / "claude"), "x"], cwd=impostor.parent,
                            env={**home.env, "PATH": path_of(shim_dir, real_dir),
                                 "PYTHONPATH": str(impostor.parent), "DUMP_TO": str(dump)},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert fake_tool.dumped(dump)["env"]["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http://127")


def test_install_is_idempotent(home, tmp_path):
    shim_dir = tmp_path / "shims"
    assert install(home, shim_dir).returncode == 0
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
              for p in shim_dir.iterdir()}
    result = install(home, shim_dir)
    assert result.returncode == 0, result.stderr
    assert "already up to date" in result.stderr
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
             for p in shim_dir.iterdir()}
    assert after == before and sorted(after) == sorted(["aitrack", *adapters.TOOLS])


def test_install_replaces_an_outdated_shim(home, tmp_path, real_dir):
    shim_dir = tmp_path / "shims"
    assert install(home, shim_dir).returncode == 0
    with_python(shim_dir / "claude", "/old/venv/bin/python")
    result = install(home, shim_dir)
    assert result.returncode == 0, result.stderr
    assert "wrote claude" in result.stderr
    assert shims.shim_python(shim_dir / "claude") == sys.executable


def test_install_refuses_to_replace_a_file_that_is_not_a_shim(home, tmp_path):
    shim_dir = tmp_path / "bin"
    shim_dir.mkdir()
    mine = shim_dir / "codex"
    mine.write_text("#!/bin/sh\necho my own codex wrapper\n")
    result = install(home, shim_dir)
    assert result.returncode == 1
    assert result.stderr == (f"aitrack: {mine} already exists and is not an aitrack shim: "
                             "move it away or choose another --dir\n")
    assert mine.read_text() == "#!/bin/sh\necho my own codex wrapper\n"
    assert not (shim_dir / "claude").exists()  # nothing written: all or nothing
    (shim_dir / "claude").write_text("#!/bin/sh\necho mine too\n")
    result = install(home, shim_dir)
    assert result.stderr == (f"aitrack: {shim_dir / 'claude'} and {mine} already exist and "
                             "are not aitrack shims: move them away or choose another --dir\n")


def test_install_prints_the_path_line_only_when_needed(home, tmp_path, real_dir):
    shim_dir = tmp_path / "my shims"  # a space, to check the quoting
    result = install(home, shim_dir, path=path_of(real_dir))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f'export PATH="{shim_dir}:$PATH"\n'
    assert "does not come first on PATH" in result.stderr
    # the printed line works in a real shell
    probe = subprocess.run(["sh", "-c", result.stdout + "command -v claude"],
                           env={"PATH": path_of(real_dir)}, capture_output=True, text=True)
    assert probe.stdout.strip() == str(shim_dir / "claude")
    # after the real tools on PATH: still not first
    assert install(home, shim_dir, path=path_of(real_dir, shim_dir)).stdout != ""
    # first: nothing to print
    result = install(home, shim_dir, path=path_of(shim_dir, real_dir))
    assert result.returncode == 0 and result.stdout == ""


def test_install_names_tools_not_installed_yet(home, tmp_path):
    result = install(home, tmp_path / "shims", path=path_of(tmp_path / "shims"))
    assert result.returncode == 0
    assert "claude is not installed yet" in result.stderr
    assert "codex is not installed yet" in result.stderr


def test_default_directory_is_the_per_user_bin(home):
    result = home.run("shims", "install")
    assert result.returncode == 0, result.stderr
    assert shims.is_shim(home.root / "data" / "bin" / "claude")
    result = home.run("shims", "uninstall")
    assert result.returncode == 0
    assert not (home.root / "data" / "bin").exists()  # ours, and empty: removed


# ---------------------------------------------------------------- fail open


def test_missing_aitrack_still_runs_the_real_tool_with_one_warning(home, tmp_path, real_dir):
    shim_dir = tmp_path / "shims"
    assert install(home, shim_dir).returncode == 0
    gone = str(tmp_path / "removed-venv" / "bin" / "python")
    with_python(shim_dir / "claude", gone)
    other_shims = tmp_path / "other-shims"  # a second shim directory is skipped too
    other_shims.mkdir()
    shutil.copy(shim_dir / "claude", other_shims / "claude")
    dump = tmp_path / "dump.json"
    result = run_shim(home, shim_dir / "claude", *ODD_ARGS, DUMP_TO=str(dump), EXIT_WITH="3",
                      path=path_of(shim_dir, other_shims, real_dir))
    assert result.returncode == 3
    child = fake_tool.dumped(dump)
    assert child["argv"] == ODD_ARGS
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in child["env"]  # untracked, as the warning says
    assert "AITRACK_SHIM_FALLBACK" not in child["env"]
    assert result.stderr.count("\n") == 1
    assert gone in result.stderr and str(real_dir / "claude") in result.stderr
    assert "untracked" in result.stderr


def test_an_aitrack_that_cannot_import_still_runs_the_real_tool(home, tmp_path, real_dir,
                                                                bare_python):
    shim_dir = tmp_path / "shims"
    assert install(home, shim_dir).returncode == 0
    with_python(shim_dir / "codex", bare_python)
    dump = tmp_path / "dump.json"
    result = run_shim(home, shim_dir / "codex", *ODD_ARGS, DUMP_TO=str(dump),
                      path=path_of(shim_dir, real_dir))
    assert result.returncode == 0, result.stderr
    assert fake_tool.dumped(dump)["argv"] == ODD_ARGS
    assert result.stderr.count("\n") == 1
    assert "ModuleNotFoundError" in result.stderr and "untracked" in result.stderr


def test_fail_open_without_a_real_tool_is_127(home, tmp_path):
    shim_dir = tmp_path / "shims"
    assert install(home, shim_dir).returncode == 0
    with_python(shim_dir / "claude", "/nonexistent/python")
    result = run_shim(home, shim_dir / "claude", path=path_of(shim_dir, shim_dir))
    assert result.returncode == 127
    assert result.stderr.count("\n") == 1 and "claude: command not found" in result.stderr


def test_a_working_aitrack_without_the_real_tool_is_127(home, tmp_path):
    shim_dir = tmp_path / "shims"
    assert install(home, shim_dir).returncode == 0
    result = run_shim(home, shim_dir / "claude", path=path_of(shim_dir))
    assert result.returncode == 127
    assert "claude: command not found" in result.stderr


# ---------------------------------------------------------------- uninstall and status


def test_uninstall_removes_only_shims(home, tmp_path):
    shim_dir = tmp_path / "bin"
    assert install(home, shim_dir).returncode == 0
    (shim_dir / "claude").unlink()
    (shim_dir / "claude").write_text("#!/bin/sh\necho mine\n")
    (shim_dir / "other").write_text("keep me")
    result = home.run("shims", "uninstall", "--dir", str(shim_dir))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in shim_dir.iterdir()) == ["claude", "other"]
    removed = ", ".join(sorted({"aitrack", *adapters.TOOLS} - {"claude"}))
    assert f"removed {removed} from {shim_dir}" in result.stderr
    assert f"left claude in {shim_dir}: not an aitrack shim\n" in result.stderr
    assert "no aitrack shims" in home.run("shims", "uninstall", "--dir", str(shim_dir)).stderr


def test_status_says_where_each_name_resolves(home, tmp_path, real_dir):
    shim_dir = tmp_path / "shims"
    assert install(home, shim_dir).returncode == 0
    behind = home.run("shims", "status", "--dir", str(shim_dir), "--json",
                      env={"PATH": path_of(real_dir, shim_dir)})
    assert behind.returncode == 1
    data = json.loads(behind.stdout)
    tools = {t["name"]: t for t in data["tools"]}
    assert data["on_path_first"] is False and data["ok"] is False
    assert tools["claude"]["resolves_to"] == str(real_dir / "claude")
    assert tools["claude"]["tracked"] is False
    assert tools["claude"]["shim"] == str(shim_dir / "claude")
    assert tools["claude"]["real"] == str(real_dir / "claude")
    first = home.run("shims", "status", "--dir", str(shim_dir), "--json",
                     env={"PATH": path_of(shim_dir, real_dir)})
    assert first.returncode == 0
    tools = {t["name"]: t for t in json.loads(first.stdout)["tools"]}
    assert tools["codex"]["resolves_to"] == str(shim_dir / "codex")
    assert tools["codex"]["tracked"] is True and tools["codex"]["shim_python_ok"] is True
    assert tools["codex"]["real"] == str(real_dir / "codex")
    text = home.run("shims", "status", "--dir", str(shim_dir),
                    env={"PATH": path_of(real_dir, shim_dir)})
    assert re.search(rf"^claude +-> {re.escape(str(real_dir / 'claude'))} \(untracked",
                     text.stdout, re.M)
    assert re.search(rf"^aitrack +-> {re.escape(str(shim_dir / 'aitrack'))}$", text.stdout, re.M)
    assert f'fix: export PATH="{shim_dir}:$PATH"' in text.stdout


def test_status_flags_a_shim_whose_aitrack_is_gone(home, tmp_path, real_dir):
    shim_dir = tmp_path / "shims"
    assert install(home, shim_dir).returncode == 0
    with_python(shim_dir / "claude", "/nonexistent/python")
    result = home.run("shims", "status", "--dir", str(shim_dir),
                      env={"PATH": path_of(shim_dir, real_dir)})
    assert result.returncode == 1
    assert "BROKEN: its aitrack /nonexistent/python is missing" in result.stdout


# ---------------------------------------------------------------- the scripts themselves


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_the_posix_shim_passes_shellcheck(tmp_path):
    path = tmp_path / "claude"
    path.write_text(shims.render_posix("claude", "/opt/ai track/venv/bin/python", ["-I"]))
    result = subprocess.run(["shellcheck", "-s", "sh", str(path)], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout
    for shell in ("sh", "bash"):
        assert subprocess.run([shell, "-n", str(path)]).returncode == 0


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_the_fast_way_scripts_pass_shellcheck(tmp_path):
    """The shims with the fast way (install/shim_fast.py), as written on Linux."""
    for name, text in (("codex", shim_scripts.render_posix("codex", "/opt/py", ["-I"],
                                                           "/usr/bin/env")),
                       ("aitrack", shim_scripts.render_command("/opt/py", ["-I"], False,
                                                               "/usr/bin/env"))):
        path = tmp_path / name
        path.write_text(text)
        result = subprocess.run(["shellcheck", "-s", "sh", str(path)], capture_output=True,
                                text=True)
        assert result.returncode == 0, result.stdout
        for shell in ("sh", "bash"):
            assert subprocess.run([shell, "-n", str(path)]).returncode == 0


@pytest.mark.parametrize("tool", adapters.TOOLS)
def test_a_fast_way_run_is_a_session_exactly_when_the_wrapper_says_so(tool, tmp_path):
    """The shim's `case` on its first argument against the adapter's is_session."""
    text = shim_scripts.render_posix(tool, "/opt/py", ["-I"], "/usr/bin/env")
    line = next(x for x in text.splitlines() if x.startswith('case "${1-}" in'))
    adapter = adapters.load(tool)
    for args in ([], ["--version"], ["-h"], ["exec", "x"], ["say *"], ["-p", "hi"],
                 *([w] for w in adapter.NOT_SESSIONS)):
        out = subprocess.run(["sh", "-c", f'{line}\necho "$aitrack_session"', "sh", *args],
                             capture_output=True, text=True).stdout.strip()
        assert out == ("1" if adapter.is_session(args) else "0"), (args, out)


def test_windows_files_carry_the_marker_early():
    files = shims.rendered(r"C:\Program Files\aitrack\venv\Scripts\python.exe", ["-I"],
                           windows=True)
    assert sorted(files) == ["aitrack-shim.py", "aitrack.cmd",
                             *sorted(f"{t}.cmd" for t in adapters.TOOLS)]
    for text in files.values():
        assert "aitrack-shim" in text.encode()[:512].decode("utf-8", "replace")
    cmd = files["claude.cmd"]
    assert "\r\n" in cmd and "\n" not in cmd.replace("\r\n", "")
    assert r'set "AITRACK_PYTHON=C:\Program Files\aitrack\venv\Scripts\python.exe"' in cmd
    assert shims.shim_python_text(cmd) == r"C:\Program Files\aitrack\venv\Scripts\python.exe"
    compile(files["aitrack-shim.py"], "aitrack-shim.py", "exec")


def test_the_windows_helper_falls_back_to_the_real_tool(tmp_path, bare_python, home):
    """The .cmd shims' Python helper, run on POSIX with PATHEXT naming the real tool's suffix."""
    shim_dir = tmp_path / "shims"
    shim_dir.mkdir()
    helper = shim_dir / shims.WINDOWS_HELPER
    helper.write_text(shims.render_helper())
    (shim_dir / "claude.CMD").write_text(shims.render_cmd("claude", "python", ["-I"]))
    (shim_dir / "claude.CMD").chmod(0o755)
    real = fake_tool.write(tmp_path / "real", "claude.CMD")
    fake_tool.write(real.parent, "claude")  # what aitrack's launcher looks for on POSIX
    dump = tmp_path / "dump.json"
    env = {**home.env, "PATH": path_of(shim_dir, real.parent), "PATHEXT": ".CMD",
           "DUMP_TO": str(dump), "EXIT_WITH": "4"}
    result = subprocess.run([bare_python, "-I", str(helper), "claude", "a b"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 4, result.stderr
    assert fake_tool.dumped(dump)["argv"] == ["a b"]
    assert result.stderr.count("\n") == 1 and "untracked" in result.stderr
    # with aitrack importable it hands over to aitrack, which tracks the run
    result = subprocess.run([sys.executable, "-I", str(helper), "claude", "x"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 4, result.stderr
    child = fake_tool.dumped(dump)
    assert child["argv"] == ["x"] and "untracked" not in result.stderr
    assert child["env"]["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http://127.0.0.1:")
