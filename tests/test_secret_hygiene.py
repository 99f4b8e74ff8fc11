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


def test_two_keys_each_go_only_to_their_own_signal_and_nowhere_else(home, org, authority,
                                                                    keychain_account,
                                                                    logs_account, tmp_path):
    """CloudWatch-style: a metrics key and a logs key; neither leaks, neither crosses over."""
    metrics_key = f"aitrack-hygiene-metrics-{os.urandom(12).hex()}"
    logs_key = f"aitrack-hygiene-logs-{os.urandom(12).hex()}"
    org.auth_value = f"Bearer {metrics_key}"
    org.path_auth["/v1/logs"] = f"Bearer {logs_key}"
    home.write_managed_profile(profile_toml(
        org, authority.pem, keychain_account,
        extra=f'logs_keychain_account = "{logs_account}"'))
    for args, key in ((("token", "set"), metrics_key),
                      (("token", "set", "--account", logs_account), logs_key)):
        stored = home.run(*args, input=key)
        assert stored.returncode == 0, stored.stderr

    # each signal's first answer is a refusal that echoes the auth header it was sent
    org.then(400, message="rejected request with Authorization: {auth}", times=2)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    outputs = {"session": home.run("run", "--", sys.executable, str(script),
                                   env={"SEND": "1", "LOGS": "1", "LINGER": "1"})}
    for name, args in {
        "debug flush": ("--debug", "flush", "--retry-dead"),
        "flush --json": ("flush", "--json"),
        "profile show --json --origin": ("profile", "show", "--json", "--origin"),
        "token status": ("token", "status"),
        "token status --json": ("token", "status", "--json"),
        "doctor --json": ("doctor", "--json"),
    }.items():
        outputs[name] = home.run(*args)
    assert outputs["session"].returncode == 0, outputs["session"].stderr
    assert outputs["debug flush"].returncode == 0, outputs["debug flush"].stderr
    assert outputs["token status"].returncode == 0  # both keys present
    checks = {c["name"]: c for c in json.loads(outputs["doctor --json"].stdout)["checks"]}
    assert checks["keychain"]["status"] == "PASS", checks["keychain"]
    assert checks["endpoint"]["status"] == "PASS", checks["endpoint"]  # both probes accepted

    # the run really had both refusals echo a key back, and then delivered everything
    assert sorted(r.status for r in org.requests[:2]) == [400, 400]
    assert seqs_received(org, "metrics") == ["0"] and seqs_received(org, "logs") == ["log-0"]
    assert {r.signal for r in org.requests} == {"metrics", "logs"}
    log = (home.root / "state" / "logs" / "forwarder.log").read_text()
    dead = [line for line in log.splitlines() if "dead letter:" in line]
    assert len(dead) == 2 and all("Authorization: Bearer [token]" in line for line in dead)

    # 1. each key in its own signal's auth header, and nowhere else in any request
    for r in org.requests:
        own, other = (logs_key, metrics_key) if r.signal == "logs" else (metrics_key, logs_key)
        assert r.headers["authorization"] == f"Bearer {own}", r.path
        assert other not in repr(r.header_lines) and other not in r.path
        rest = {k: v for k, v in r.headers.items() if k != "authorization"}
        for key in (metrics_key, logs_key):
            assert key not in repr(rest) and key.encode() not in r.body + r.wire

    # 2. no file under the aitrack home, 3. no output of anything the user ran
    for path in (p for p in home.root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        assert metrics_key.encode() not in data and logs_key.encode() not in data, path
    for name, result in outputs.items():
        for key in (metrics_key, logs_key):
            assert key not in result.stdout + result.stderr, name
