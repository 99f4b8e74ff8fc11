"""A ledger the user made read-only (0444 in a 0555 folder): reports read it, nothing makes
it writable again (issue 23 item 3).

Tests run as root, whom file modes do not stop: the commands run here as root without any
capability (`setpriv`), which file modes stop as they stop any user.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys

import pytest

from test_report import SMALL, Ledger, at


def plainly(home, *args: str) -> subprocess.CompletedProcess:
    """`aitrack ARGS` as a user whom file modes apply to."""
    prefix = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("root without setpriv: file modes would not apply")
        prefix = ["setpriv", "--bounding-set=-all", "--inh-caps=-all"]
    return subprocess.run([*prefix, sys.executable, "-m", "aitrack", *args],
                          capture_output=True, text=True, env=home.env, timeout=60)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def read_only(home):
    led = Ledger(home)
    led.session(at("2026-03-10T12:00"), tool="codex", usage={"gpt-5": SMALL})
    led.db.close()
    home.ledger.chmod(0o444)
    home.ledger.parent.chmod(0o555)
    yield home
    home.ledger.parent.chmod(0o700)


def test_reports_prices_and_the_dashboard_read_a_read_only_ledger(read_only, tmp_path):
    home = read_only
    for args in (("report", "--no-import"), ("report",)):
        proc = plainly(home, *args, "--timezone", "UTC")
        assert proc.returncode == 0, proc.stderr
        assert "2026-03-10" in proc.stdout and "not writable" not in proc.stderr
    proc = plainly(home, "report", "session", "--json", "--no-import")
    assert proc.returncode == 0 and '"tool": "codex"' in proc.stdout
    proc = plainly(home, "prices")
    assert proc.returncode == 0 and "gpt-5" in proc.stdout and "cannot read" not in proc.stderr
    out = tmp_path / "page.html"
    proc = plainly(home, "dashboard", "--no-import", "--out", str(out))
    assert proc.returncode == 0 and out.exists(), proc.stderr
    # `report` imports first, which makes the files private: group and others lose their
    # bits, the owner gains none
    assert (mode(home.ledger), mode(home.ledger.parent)) == (0o400, 0o500)


def test_nothing_makes_a_read_only_ledger_writable_a_wrapped_run_says_so_once(read_only):
    home = read_only
    proc = plainly(home, "import")
    assert proc.returncode == 1 and "not writable" in proc.stderr
    run = plainly(home, "run", "--", sys.executable, "-c", "print('tool ran'); exit(3)")
    assert run.returncode == 3 and run.stdout == "tool ran\n"
    [line] = run.stderr.splitlines()
    assert "usage of this run is not recorded" in line
    # group and others lose their bits (private files), the owner gains none
    assert (mode(home.ledger), mode(home.ledger.parent)) == (0o400, 0o500)
