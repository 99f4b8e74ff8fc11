"""Issue 13, findings 8, 12 and 13: aitrack's files against other users, full disks, damage
and symbolic links."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from adversary import other_user, run_as
from aitrack.capture import startup
from aitrack.config import paths, profile
from aitrack.egress import forward_log
from aitrack.install import doctor
from aitrack.store import ledger

ENDPOINT = '[endpoint]\nurl = "https://127.0.0.1:9"\n'  # refuses connections: nothing leaves


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def open_home(home, monkeypatch):
    """The home under a directory every user may traverse (/tmp/pytest-of-root is 0700, which
    would hide everything from another user whatever aitrack does)."""
    base = Path(tempfile.mkdtemp(prefix="aitrack-open-", dir="/tmp"))
    base.chmod(0o755)
    root = base / "home"
    home.root = root
    home.env["AITRACK_HOME"] = str(root)
    monkeypatch.setenv("AITRACK_HOME", str(root))
    yield home
    shutil.rmtree(base, ignore_errors=True)


READ_ALL = r"""
import os, sys
found = []
for path in sys.argv[1:]:
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            open(path, "rb").read(1)
        found.append(path)
    except OSError:
        pass
print("\n".join(found))
"""


def private_paths(home) -> list[Path]:
    data = home.root / "data"
    return [home.root / d for d in ("config", "data", "state", "cache")] + [
        data / "ledger.db", data / "ledger.db-wal", data / "ledger.db-shm",
        home.root / "cache" / "startup.bin", home.root / "state" / "logs",
        home.root / "state" / "logs" / "forwarder.log"]


# ---------------------------------------------------------------- 8: private files


def test_files_are_private_whatever_the_umask(open_home):
    """ledger.db, its -wal/-shm and the cache were 644, the directories 755."""
    home = open_home
    home.write_managed_profile('[attributes]\n"user.email" = "dev@example.com"\n')
    result = home.run("run", "--", sys.executable, "-c", "pass", umask=0)
    assert result.returncode == 0, result.stderr
    os.umask(0)
    try:
        db = ledger.connect(home.ledger)  # keeps -wal and -shm while open
        db.execute("PRAGMA user_version").fetchone()
        forward_log.ForwardLog(home.root / "state" / "logs")("a line")
        made = [p for p in private_paths(home) if p.exists()]
        wrong = {str(p): oct(mode(p)) for p in made
                 if mode(p) != (0o700 if p.is_dir() else 0o600)}
        db.close()
    finally:
        os.umask(0o022)
    assert len(made) >= 9 and not wrong, wrong


def test_another_user_can_read_none_of_them(open_home):
    home = open_home
    home.write_managed_profile('[attributes]\n"user.email" = "dev@example.com"\n')
    assert home.run("run", "--", sys.executable, "-c", "pass").returncode == 0
    db = ledger.connect(home.ledger)
    forward_log.ForwardLog(home.root / "state" / "logs")("a line")
    try:
        targets = [str(p) for p in private_paths(home) if p.exists()]
        with other_user() as user:
            result = run_as(user, READ_ALL, *targets)
    finally:
        db.close()
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == []  # every one refused


def test_files_an_older_aitrack_left_readable_are_tightened_on_the_next_run(open_home):
    home = open_home
    home.write_user_profile('[attributes]\ndepartment = "r&d"\n')
    assert home.run("run", "--", sys.executable, "-c", "pass").returncode == 0
    forward_log.ForwardLog(home.root / "state" / "logs")("a line")
    for path in private_paths(home):  # as aitrack 0.x left them
        if path.exists():
            path.chmod(0o755 if path.is_dir() else 0o644)
    (home.root / "cache" / "startup.bin").write_bytes(b"an older format")
    with other_user() as user:
        targets = [str(p) for p in private_paths(home) if p.exists()]
        assert run_as(user, READ_ALL, *targets).stdout.split()  # readable before
        check = doctor.check_private_files(context(home))
        assert check.status == "WARN" and "other users" in check.summary
        assert home.run("run", "--", sys.executable, "-c", "pass").returncode == 0
        assert run_as(user, READ_ALL, *targets).stdout.split() == []
    assert doctor.check_private_files(context(home)).status == "PASS"


def test_files_are_created_private_never_loosened_later(tmp_path, monkeypatch):
    """No window where a file is 644: every file aitrack creates is opened with O_CREAT,
    mode 0600 and O_NOFOLLOW in the same call."""
    created = []
    real_open = os.open

    def spy(path, flags, mode=0o777, *args, **kw):
        if flags & os.O_CREAT:
            created.append((str(path), flags, mode))
        return real_open(path, flags, mode, *args, **kw)

    from aitrack.config import private_files

    monkeypatch.setattr(os, "open", spy)
    private_files.write_private(tmp_path / "c" / "startup.bin", b"x")
    forward_log.ForwardLog(tmp_path / "logs")("a line")
    ledger.connect(tmp_path / "data" / "ledger.db").close()
    names = {Path(p).name.split(".")[1] if p.endswith(".tmp") else Path(p).name
             for p, _, _ in created}
    assert {"ledger.db", "forwarder.log", "startup"} <= names, created
    for path, flags, mode_ in created:
        assert mode_ == 0o600 and flags & os.O_NOFOLLOW, (path, oct(mode_))


def context(home) -> doctor.Context:
    env = dict(home.env)
    locations = paths.resolve(env)
    return doctor.Context(env, locations, profile.load(locations, env), Path(env["HOME"]))


# ---------------------------------------------------------------- 13: symbolic links


def test_a_ledger_link_to_a_missing_path_creates_no_database_there(home, tmp_path):
    target = tmp_path / "elsewhere" / "planted.db"
    target.parent.mkdir()
    home.ledger.parent.mkdir(parents=True)
    home.ledger.symlink_to(target)
    home.write_managed_profile(ENDPOINT)
    run = home.run("run", "--", sys.executable, "-c", "import sys; sys.exit(3)")
    assert run.returncode == 3  # the tool's status, whatever the ledger
    assert "symbolic link" in run.stderr
    flushed = home.run("flush")  # sees no ledger: nothing was ever tracked through the link
    assert "unexpected error" not in flushed.stderr and "Traceback" not in flushed.stderr
    assert not target.exists()
    assert doctor.check_private_files(context(home)).status == "FAIL"


def test_a_forwarder_log_link_is_never_appended_to(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "forwarder.log").symlink_to(victim)
    forward_log.ForwardLog(logs)("retry: 1 metrics payload(s)")
    assert victim.read_text() == "precious\n"


def test_wal_and_shm_links_are_refused(tmp_path):
    from aitrack.config.private_files import LinkRefused

    target = tmp_path / "planted-wal"
    (tmp_path / "ledger.db-wal").symlink_to(target)
    with pytest.raises(LinkRefused, match="symbolic link"):
        ledger.connect(tmp_path / "ledger.db")
    assert not target.exists()


def test_the_cache_is_replaced_not_written_through_a_link(home, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    cache = Path(startup.cache_file(home.env))
    cache.parent.mkdir(parents=True)
    cache.symlink_to(victim)
    assert home.run("run", "--", sys.executable, "-c", "pass").returncode == 0
    assert victim.read_text() == "precious\n" and not cache.is_symlink()


# ---------------------------------------------------------------- 12: full disk, damaged ledger


def one_line_about(result: subprocess.CompletedProcess, *needles: str) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("aitrack: ")]
    assert "unexpected error" not in result.stderr and "Traceback" not in result.stderr, \
        result.stderr
    assert result.returncode != 0 and len(lines) == 1, result.stderr
    assert all(n in lines[0] for n in needles), lines[0]
    return lines[0]


def test_a_damaged_ledger_is_one_line_with_the_fix_in_every_command(home):
    home.write_managed_profile(ENDPOINT)
    home.ledger.parent.mkdir(parents=True)
    home.ledger.write_bytes(b"this is not SQLite" * 200)
    for args in (("flush",), ("flush", "--json"), ("report",), ("report", "session", "--json")):
        result = home.run(*args)
        if args[-1] == "--json" and result.stdout.strip():
            continue  # a machine-readable error object is fine too
        line = one_line_about(result, str(home.ledger))
        assert "mv " in line or "doctor" in line, line


FULL_DISK = r"""
set -e
data="$1"; out="$2"; shift 2
cp -a "$data" "$out/data.bak"
mount -t tmpfs -o size=512k tmpfs "$data"
cp -a "$out/data.bak/." "$data/"
dd if=/dev/zero of="$data/fill" bs=4k 2>/dev/null || true
n=0
for cmd in "$@"; do
    n=$((n + 1))
    # shellcheck disable=SC2086
    rc=0
    python -m aitrack $cmd >"$out/$n.out" 2>"$out/$n.err" || rc=$?
    echo "$rc" >"$out/$n.rc"
done
"""


def test_a_full_disk_is_named_by_flush_report_and_doctor(home, tmp_path):
    """Simulated with a full 512 KiB tmpfs over the data directory, in a mount namespace."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("unshare") or \
            subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs root and mount namespaces (unshare -m)")
    home.write_managed_profile(ENDPOINT)
    ledger.connect(home.ledger).close()
    out = tmp_path / "out"
    out.mkdir()
    commands = ["flush", "report", "doctor --json"]
    env = {**home.env, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    subprocess.run(["unshare", "-m", "sh", "-c", FULL_DISK, "sh", str(home.ledger.parent),
                    str(out), *commands], env=env, check=True, timeout=180)
    results = {cmd: subprocess.CompletedProcess(cmd, int((out / f"{n}.rc").read_text()),
                                                (out / f"{n}.out").read_text(),
                                                (out / f"{n}.err").read_text())
               for n, cmd in enumerate(commands, 1)}
    one_line_about(results["flush"], "disk", "full", "free")
    report = results["report"]
    assert "unexpected error" not in report.stderr and "Traceback" not in report.stderr
    if report.returncode != 0:
        assert len(report.stderr.strip().splitlines()) == 1, report.stderr
    checks = {c["name"]: c for c in json.loads(results["doctor --json"].stdout)["checks"]}
    assert checks["disk"]["status"] == "FAIL" and "full" in checks["disk"]["summary"]


# ---------------------------------------------------------------- issue 18: others' folders


def _planted_agent_dir(home, user) -> Path:
    """The agent's folder made by another account, world-writable, holding its own helper."""
    agent = home.root / "state" / "agent"
    agent.mkdir(parents=True)
    helper = agent / "otel-headers"
    helper.write_text("#!/bin/sh\necho 'x-aitrack-key: attackers-own'\n")
    os.chown(agent, user.uid, user.gid)
    os.chown(helper, user.uid, user.gid)
    agent.chmod(0o777)
    helper.chmod(0o777)
    return helper


def test_a_state_folder_another_user_created_is_refused(home):
    """Another account made the agent's folder first: aitrack used it, so they could swap
    the headers helper Claude Code runs. Now nothing is written there, and one line says why."""
    with other_user() as user:
        helper = _planted_agent_dir(home, user)
        before = helper.read_bytes()
        result = home.run("agent", "install", "--no-service")
        assert result.returncode != 0
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "not to you" in lines[0] and str(helper.parent) in lines[0]
        assert helper.read_bytes() == before and helper.stat().st_uid == user.uid
        assert not (Path(home.env["CLAUDE_CONFIG_DIR"]) / "settings.json").exists()
        assert not (helper.parent / "secret").exists()


def test_a_data_folder_another_user_owns_is_refused_and_the_tool_still_runs(home):
    with other_user() as user:
        data = home.root / "data"
        data.mkdir(parents=True)
        os.chown(data, user.uid, user.gid)
        result = home.run("run", "--", sys.executable, "-c", "raise SystemExit(3)")
        assert result.returncode == 3
        assert "not to you" in result.stderr and str(data) in result.stderr
        assert not list(data.iterdir())  # no ledger made in it
        assert home.run("report").returncode == 0 and not list(data.iterdir())


def test_a_ledger_file_another_user_owns_is_refused(home):
    with other_user() as user:
        home.run("run", "--", sys.executable, "-c", "pass")
        os.chown(home.ledger, user.uid, user.gid)
        for args in (["import"], ["report"], ["run", "--", sys.executable, "-c", "pass"]):
            result = home.run(*args)
            assert "not to you" in result.stderr and str(home.ledger) in result.stderr, args
            assert result.returncode == (0 if args[0] == "run" else 1), args


def test_a_folder_others_may_write_to_above_the_state_is_refused(tmp_path, home, monkeypatch):
    """Like ssh: a folder on the way that others may write to (and not sticky, as /tmp is)
    lets them rename aitrack's folders and put their own in place."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    root = shared / "home"
    env = {**home.env, "AITRACK_HOME": str(root)}
    result = home.run("run", "--", sys.executable, "-c", "pass", env=env)
    assert result.returncode == 0
    assert "writable by other accounts" in result.stderr and str(shared) in result.stderr
    assert not (root / "data" / "ledger.db").exists()
    shared.chmod(0o1777)  # sticky, as /tmp: others cannot rename what is not theirs
    result = home.run("run", "--", sys.executable, "-c", "pass", env=env)
    assert result.returncode == 0 and "writable" not in result.stderr, result.stderr


def test_doctor_fails_on_a_folder_another_user_owns(home):
    with other_user() as user:
        state = home.root / "state"
        state.mkdir(parents=True)
        os.chown(state, user.uid, user.gid)
        result = home.run("doctor", "--json")
        check = next(c for c in json.loads(result.stdout)["checks"]
                     if c["name"] == "private-files")
        assert check["status"] == "FAIL" and str(state) in check["summary"]
        assert "sudo mv" in check["fix"]


def _damage_the_schema_text(ledger_path: Path) -> None:
    """A damaged page in sqlite_master: its SQL is no longer UTF-8, so SQLite's own error
    message about it is not either, and Python raised UnicodeDecodeError decoding it."""
    db = sqlite3.connect(ledger_path)
    db.execute("PRAGMA writable_schema = ON")
    sql = db.execute("SELECT sql FROM sqlite_master WHERE name = 'usage_daily'").fetchone()[0]
    bad = sql.encode().replace(b"DEFAULT", b"DEF\xfe\xffAU", 1)
    db.execute("UPDATE sqlite_master SET sql = CAST(? AS TEXT) WHERE name = 'usage_daily'",
               (bad,))
    db.commit()
    db.close()


def test_a_ledger_whose_schema_is_not_utf8_is_one_line_with_the_fix(home):
    home.write_managed_profile(ENDPOINT)
    home.run("run", "--", sys.executable, "-c", "pass")
    _damage_the_schema_text(home.ledger)
    for args in (("report",), ("report", "session"), ("prices",), ("import",), ("flush",),
                 ("dashboard", "--out", str(home.root / "d.html"))):
        result = home.run(*args)
        assert "UnicodeDecodeError" not in result.stderr + result.stdout, args
        assert "unexpected error" not in result.stderr, args
        if result.returncode:
            line = one_line_about(result, str(home.ledger))
            assert "mv " in line, (args, line)
    doctor = home.run("doctor", "--json")
    check = next(c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "ledger")
    assert check["status"] == "FAIL" and "UnicodeDecodeError" not in check["summary"]
    assert "mv " in check["fix"]
    run = home.run("run", "--", sys.executable, "-c", "raise SystemExit(4)")
    assert run.returncode == 4 and "UnicodeDecodeError" not in run.stderr
