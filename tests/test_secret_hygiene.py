"""The org token appears nowhere but the keychain and the outgoing request header."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from pathlib import Path

from org_endpoint import CHILD, outbox_rows, profile_toml, seqs_received

pytest_plugins = ("org_endpoint",)  # fixtures: authority, org

# Prepended to the tracked child: what the child (and aitrack, its parent) can see of itself.
DUMP = r'''
import os, sys
out = os.environ["DUMP_DIR"]
def copy(src, name):
    try:
        with open(src, "rb") as fh, open(os.path.join(out, name), "wb") as dst:
            dst.write(fh.read())
    except OSError as exc:
        open(os.path.join(out, name + ".error"), "w").write(str(exc))
copy("/proc/self/environ", "child.environ")
copy("/proc/self/cmdline", "child.cmdline")
copy(f"/proc/{os.getppid()}/environ", "aitrack.environ")
copy(f"/proc/{os.getppid()}/cmdline", "aitrack.cmdline")
with open(os.path.join(out, "child.env-and-argv"), "w") as fh:
    fh.write(repr(dict(os.environ)) + repr(sys.argv))
'''


def test_a_whole_session_never_leaks_the_token(home, org, authority, keychain_account, tmp_path):
    secret = f"aitrack-hygiene-{os.urandom(12).hex()}"
    org.auth_value = f"Bearer {secret}"
    home.write_managed_profile(profile_toml(org, authority.pem, keychain_account))
    stored = home.run("token", "set", input=secret)  # the profile names the account
    assert stored.returncode == 0, stored.stderr

    # a retry, then a refusal whose answer echoes the auth header back, then success
    org.then(503, retry_after="0.5")
    org.then(400, message=f"rejected request with Authorization: Bearer {secret}", times=2)
    dump = tmp_path / "dump"
    dump.mkdir()
    script = tmp_path / "child.py"
    script.write_text(DUMP + CHILD)
    outputs = {}
    session = home.run("run", "--", sys.executable, str(script),
                       env={"DUMP_DIR": str(dump), "SEND": "2", "LINGER": "2.5"})
    assert session.returncode == 0, session.stderr
    outputs["session"] = session
    for name, args in {
        "debug flush": ("--debug", "flush", "--retry-dead"),
        "flush --json": ("flush", "--json"),
        "profile show --json --origin": ("profile", "show", "--json", "--origin"),
        "profile show --origin": ("profile", "show", "--origin"),
        "token status --json": ("token", "status", "--json"),
        "doctor": ("doctor",),
        "doctor --json": ("doctor", "--json"),
    }.items():
        outputs[name] = home.run(*args)
    # doctor really read the token and showed it to the endpoint
    checks = {c["name"]: c for c in json.loads(outputs["doctor --json"].stdout)["checks"]}
    assert checks["keychain"]["status"] == "PASS", checks["keychain"]
    assert checks["endpoint"]["status"] == "PASS", checks["endpoint"]

    # the session really exercised retries, a dead letter and its re-send
    statuses = [r.status for r in org.requests]
    assert statuses[:2] == [503, 400] and statuses.count(200) >= 2, statuses
    assert sorted(seqs_received(org)) == ["0", "1"]
    assert outputs["debug flush"].returncode == 0, outputs["debug flush"].stderr
    assert "POST metrics" in outputs["debug flush"].stderr  # --debug said something
    assert outbox_rows(home.ledger) == []
    log = (home.root / "state" / "logs" / "forwarder.log").read_text()
    assert "dead letter" in log and "retry" in log and "[token]" in log  # masked, not absent

    # 1. the org endpoint got the token in the auth header and nowhere else
    for r in org.requests:
        assert r.headers["authorization"] == f"Bearer {secret}"
        others = {k: v for k, v in r.headers.items() if k != "authorization"}
        assert secret not in repr(others) and secret not in r.path
        assert secret.encode() not in r.body and secret.encode() not in r.wire

    # 2. the child's environment and argv, and aitrack's own
    dumped = sorted(p.name for p in dump.iterdir())
    assert dumped == ["aitrack.cmdline", "aitrack.environ", "child.cmdline",
                      "child.env-and-argv", "child.environ"], dumped
    for path in dump.iterdir():
        assert secret.encode() not in path.read_bytes(), path.name
    assert b"AITRACK_SESSION_ID" in (dump / "child.environ").read_bytes()  # the dump is real

    # 3. every file under the aitrack home: ledger, WAL, outbox, logs, cache
    files = [p for p in home.root.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"ledger.db", "forwarder.log", "startup.bin"} <= names, names
    for path in files:
        assert secret.encode() not in path.read_bytes(), path

    # 4. stdout and stderr of everything the user ran
    for name, result in outputs.items():
        assert secret not in result.stdout and secret not in result.stderr, name
    assert "present" in outputs["token status --json"].stdout


def test_a_dead_letter_keeps_the_answer_but_never_the_token(home, org, authority,
                                                            keychain_account):
    from org_endpoint import queue

    secret = f"aitrack-hygiene-{os.urandom(12).hex()}"
    org.auth_value = f"Bearer {secret}"
    home.write_managed_profile(profile_toml(org, authority.pem, keychain_account))
    assert home.run("token", "set", input=secret).returncode == 0
    queue(home.ledger, ["a"])
    org.then(400, message=f"echo: Bearer {secret}")
    result = home.run("--debug", "flush", "--json")
    assert result.returncode == 0
    assert secret not in result.stdout + result.stderr
    [(state, error)] = sqlite3.connect(home.ledger).execute(
        "SELECT state, last_error FROM outbox").fetchall()
    assert state == "dead" and error == "HTTP 400 Bad Request: echo: Bearer [token]"
    for path in Path(home.root).rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
