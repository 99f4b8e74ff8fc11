"""Forwarding to a real HTTPS org endpoint: retries, dead letters, refusals, bounds, flush."""

from __future__ import annotations

import email.utils
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from aitrack.config.profile import Endpoint
from aitrack.egress import backoff, transport
from aitrack.egress.flush import FLUSH_MAX_FAILURES
from org_endpoint import (
    LOGS_TOKEN,
    TOKEN,
    Authority,
    OrgEndpoint,
    outbox_rows,
    profile_toml,
    queue,
    seqs_received,
    usage_total,
)

pytest_plugins = ("org_endpoint",)  # fixtures: authority, org, token, logs_token, child

SLACK_S = 0.6  # process teardown and scheduling, on top of the flush bound


def use(home, org, authority, account, **kw) -> None:
    # The tools' own payloads only: what these tests count. aitrack's own metrics are
    # forwarded the same way (test_normalized.py checks them with a hung or down endpoint).
    kw.setdefault("forward", ("raw",))
    home.write_managed_profile(profile_toml(org, authority.pem, account, **kw))


class Run:
    """`aitrack run -- CHILD`, and when the child and aitrack exited."""

    def __init__(self, home, child, timeout: float = 60, **env):
        exit_at = home.root.parent / f"exit-at-{os.urandom(3).hex()}"
        self.result = home.run("run", "--", *child, env={
            "EXIT_AT": str(exit_at), **{k: str(v) for k, v in env.items()}}, timeout=timeout)
        self.aitrack_exited = time.time()
        self.child_exited = float(exit_at.read_text())
        self.delay = self.aitrack_exited - self.child_exited


def run(home, child, **kw) -> tuple[subprocess.CompletedProcess, float]:
    r = Run(home, child, **kw)
    return r.result, r.delay


def flush(home, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return home.run("flush", *args, timeout=timeout)


def pending(home) -> int:
    return sum(1 for r in outbox_rows(home.ledger) if r[2] == "pending")


def aitrack_lines(stderr: str, needle: str) -> list[str]:
    return [line for line in stderr.splitlines() if needle in line]


# ---------------------------------------------------------------- during a run


def test_payloads_are_forwarded_while_the_child_runs(home, org, authority, keychain_account,
                                                     token, child, tmp_path):
    use(home, org, authority, keychain_account,
        extra='headers = { "x-aws-log-group" = "dev-usage", "content-type" = "text/plain" }')
    go = tmp_path / "go"

    def release_when_received() -> None:
        org.wait_for(lambda o: len(seqs_received(o)) == 2)
        go.write_text("")

    threading.Thread(target=release_when_received, daemon=True).start()
    session = Run(home, child, SEND=2, WAIT_FOR=go, WAIT_MAX=20)
    result = session.result
    assert result.returncode == 0, result.stderr
    assert go.exists(), "nothing reached the endpoint while the child was running"
    received = org.accepted()
    assert received and all(r.at < session.child_exited for r in received)
    assert sorted(seqs_received(org)) == ["0", "1"]
    r = received[0]
    assert r.path == "/v1/metrics"
    assert r.headers["authorization"] == f"Bearer {TOKEN}"
    assert [v for k, v in r.header_lines if k.lower() == "content-type"] == [
        "application/x-protobuf"]  # never the profile's
    assert r.headers["content-encoding"] == "gzip"
    assert r.headers["x-aws-log-group"] == "dev-usage"
    assert "x-aitrack-key" not in r.headers  # the loopback secret stays on this machine
    for attrs in r.resource_attributes():
        assert attrs["team.id"] == "platform-eng" and attrs["user.email"] == "dev@example.com"
    assert outbox_rows(home.ledger) == []
    assert result.stderr == ""


def test_only_the_profiles_signals_are_forwarded(home, org, authority, keychain_account, token):
    use(home, org, authority, keychain_account, signals=("logs",))
    queue(home.ledger, ["m"])
    queue(home.ledger, ["l"], signal="logs")
    result = flush(home, "--json")
    assert result.returncode == 0, result.stderr
    assert seqs_received(org, "logs") == ["l"] and seqs_received(org, "metrics") == []
    report = json.loads(result.stdout)
    assert (report["sent"], report["pending"], report["dead"]) == (1, 0, 1)


def test_endpoint_down_then_up_flush_delivers_everything_once(home, org, authority,
                                                              keychain_account, token, child):
    use(home, org, authority, keychain_account, flush_timeout_s=1)
    org.stop()
    result, delay = run(home, child, SEND=3, EXIT_WITH=7)
    assert result.returncode == 7  # the tool's status, whatever happened to forwarding
    assert delay < 1 + SLACK_S, f"aitrack exited {delay:.2f} s after the child"
    lines = aitrack_lines(result.stderr, "refused the connection")
    assert len(lines) == 1 and "aitrack flush" in lines[0], result.stderr
    assert pending(home) == 3
    tokens = usage_total(home.ledger)
    assert tokens == 300

    offline = flush(home, "--json")
    assert offline.returncode == 1
    assert json.loads(offline.stdout)["pending"] == 3

    org.start()
    result = flush(home)
    assert result.returncode == 0, result.stderr
    assert "sent 3 payload(s)" in result.stdout and "pending 0" in result.stdout
    assert sorted(seqs_received(org)) == ["0", "1", "2"]  # each exactly once
    assert usage_total(home.ledger) == tokens  # forwarding never touches the counts
    again = flush(home)
    assert again.returncode == 0 and len(org.requests) == 1


def test_a_hung_endpoint_delays_exit_by_at_most_the_flush_bound(home, authority, keychain_account,
                                                                token, child):
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(16)  # accepts connections, never answers
    try:
        port = hung.getsockname()[1]
        fake = OrgEndpoint(Path("c"), Path("k"), port=port)
        use(home, fake, authority, keychain_account, flush_timeout_s=1)
        result, delay = run(home, child, SEND=1, EXIT_WITH=3)
    finally:
        hung.close()
    assert result.returncode == 3
    assert 0 <= delay < 1 + SLACK_S, f"aitrack exited {delay:.2f} s after the child"
    assert pending(home) == 1
    lines = aitrack_lines(result.stderr, "did not answer within 1 s")
    assert len(lines) == 1 and "aitrack flush" in lines[0], result.stderr


def _killed_mid_session(home, child, tmp_path) -> subprocess.Popen:
    marker = tmp_path / "sent"
    proc = subprocess.Popen([sys.executable, "-m", "aitrack", "run", "--", *child],
                            env={**home.env, "SEND": "2", "SENT_MARKER": str(marker),
                                 "LINGER": "60"},
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 30
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.02)
    assert marker.exists(), "the child never sent its payloads"
    return proc


@pytest.mark.parametrize("recovery", ["flush", "next run"])
def test_aitrack_sigkilled_mid_session_loses_nothing(home, org, authority, keychain_account,
                                                     token, child, tmp_path, recovery):
    use(home, org, authority, keychain_account)
    org.delay_s = 3  # the forwarder's request is in flight, its rows claimed, when it dies
    org.then(503)  # and it would not have counted anyway
    proc = _killed_mid_session(home, child, tmp_path)
    assert org.wait_for(lambda o: len(o.requests) >= 1)
    child_pid = int((tmp_path / "sent").read_text())
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    os.kill(child_pid, signal.SIGKILL)  # the orphan
    assert pending(home) == 2  # accepted means queued, even though aitrack died
    assert usage_total(home.ledger) == 200

    org.delay_s = 0
    started = time.time()
    if recovery == "flush":
        result = flush(home)
    else:
        result, _ = run(home, child, SEND=0)
    assert result.returncode == 0, result.stderr
    assert time.time() - started < 15  # not waiting out the dead run's lease
    assert org.wait_for(lambda o: sorted(seqs_received(o)) == ["0", "1"], timeout=5), \
        seqs_received(org)
    assert outbox_rows(home.ledger) == []


def test_retry_after_is_honoured_during_a_run(home, org, authority, keychain_account, token,
                                              child):
    use(home, org, authority, keychain_account)
    org.then(503, retry_after="2")
    result, _ = run(home, child, SEND=1, LINGER=4)
    assert result.returncode == 0, result.stderr
    first, second = org.requests
    assert (first.status, second.status) == (503, 200)
    assert second.at - first.at >= 2.0, "retried before Retry-After: 2 was over"
    assert seqs_received(org) == ["0"]
    assert outbox_rows(home.ledger) == []


def test_retry_after_as_an_http_date_is_honoured_by_flush(home, org, authority,
                                                          keychain_account, token):
    use(home, org, authority, keychain_account)
    queue(home.ledger, ["a"])
    when = email.utils.formatdate(time.time() + 3, usegmt=True)  # whole seconds: 2-3 s away
    org.then(503, retry_after=when)
    result = flush(home)
    assert result.returncode == 0, result.stderr
    first, second = org.requests
    # never sooner than the date it names (an absolute time: how long after the first request
    # depends on when that came)
    assert second.at >= email.utils.parsedate_to_datetime(when).timestamp()
    assert second.at - first.at >= 0.5
    assert seqs_received(org) == ["a"]


def test_429_backs_off_exponentially(home, org, authority, keychain_account, token):
    use(home, org, authority, keychain_account)
    queue(home.ledger, ["a", "b"])
    org.then(429, times=2)
    result = flush(home)
    assert result.returncode == 0, result.stderr
    times = [r.at for r in org.requests]
    assert [r.status for r in org.requests] == [429, 429, 200]
    assert times[1] - times[0] >= 0.5 and times[2] - times[1] >= 1.0  # 1 s, then 2 s, jittered
    assert sorted(seqs_received(org)) == ["a", "b"]
    attempts = backoff.retry_delay  # the schedule the background forwarder keeps
    assert all(0.5 <= attempts(1) <= 1.0 for _ in range(50))
    assert all(150 <= attempts(20) <= 300 for _ in range(50))
    assert all(attempts(1, retry_after=7) >= 7 for _ in range(50))


def test_flush_gives_up_on_a_down_endpoint_and_keeps_everything(home, org, authority,
                                                                keychain_account, token):
    use(home, org, authority, keychain_account)
    queue(home.ledger, ["a"])
    org.always(503)
    started = time.time()
    result = flush(home, "--json")
    assert result.returncode == 1
    assert time.time() - started < 20
    report = json.loads(result.stdout)
    assert report["pending"] == 1 and "HTTP 503" in report["error"]
    assert len(org.requests) == FLUSH_MAX_FAILURES


def test_400_goes_to_dead_letters_and_retry_dead_resends(home, org, authority, keychain_account,
                                                         token):
    use(home, org, authority, keychain_account)
    queue(home.ledger, ["a"])
    org.then(400, message="metric name too long")
    result = flush(home)
    assert result.returncode == 0  # nothing is pending: the refused payload is a dead letter
    dead = aitrack_lines(result.stderr, "dead letter")
    assert len(dead) == 1 and "metric name too long" in dead[0] and "--retry-dead" in dead[0]
    assert outbox_rows(home.ledger)[0][2:] == ("dead", 1, "HTTP 400 Bad Request: "
                                                          "metric name too long")
    assert flush(home, "--json").returncode == 0
    assert usage_total(home.ledger) == 100  # still counted locally

    assert flush(home).returncode == 0
    assert len(org.requests) == 1  # a dead letter is never re-sent by itself
    result = flush(home, "--retry-dead", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["revived"], report["sent"], report["dead"]) == (1, 1, 0)
    assert report["dead_error"] is None
    assert seqs_received(org) == ["a"]


def test_a_refused_batch_is_split_so_only_the_culprit_is_buried(home, org, authority,
                                                                keychain_account, token):
    use(home, org, authority, keychain_account)
    queue(home.ledger, ["a", "poison", "c"])
    org.then(400, message="batch refused")  # the merged request
    org.then(200)
    org.then(400, message="poison")
    result = flush(home, "--json")
    report = json.loads(result.stdout)
    assert (report["sent"], report["dead"], report["pending"]) == (2, 1, 0)
    assert [len(r.blocks) for r in org.requests] == [3, 1, 1, 1]
    assert sorted(seqs_received(org)) == ["a", "c"]


def test_403_stops_sending_keeps_payloads_and_says_so_once(home, org, authority,
                                                           keychain_account, child):
    from aitrack.config import keychain

    keychain.set_token(keychain_account, "revoked-token")
    use(home, org, authority, keychain_account)
    result, _ = run(home, child, SEND=3, EVERY=0.3)
    assert result.returncode == 0
    assert [r.status for r in org.requests] == [403]  # nothing more was tried this run
    lines = aitrack_lines(result.stderr, "the endpoint rejected the token")
    assert len(lines) == 1 and "aitrack token set" in lines[0]
    assert result.stderr.count("\n") == 1
    assert pending(home) == 3 and usage_total(home.ledger) == 300

    flushed = flush(home)
    assert flushed.returncode == 1
    assert (f"the endpoint rejected the token (HTTP 403 for metrics, account "
            f"'{keychain_account}'): run `aitrack token set --account {keychain_account}`"
            ) in flushed.stderr
    keychain.set_token(keychain_account, TOKEN)
    assert flush(home).returncode == 0
    assert sorted(seqs_received(org)) == ["0", "1", "2"]


def test_partial_success_is_logged_and_not_retried(home, org, authority, keychain_account, token):
    use(home, org, authority, keychain_account)
    queue(home.ledger, ["a"])
    org.then(200, partial=(2, "2 data points had no value"))
    result = flush(home)
    assert result.returncode == 0, result.stderr
    assert len(org.requests) == 1
    assert outbox_rows(home.ledger) == []
    assert "rejected 2 item(s)" in result.stderr
    log = (home.root / "state" / "logs" / "forwarder.log").read_text()
    assert "partial success" in log and "2 data points had no value" in log


def test_no_token_keeps_payloads_queued_and_says_once(home, org, authority, keychain_account,
                                                      child):
    use(home, org, authority, keychain_account)
    result, _ = run(home, child, SEND=2)
    assert result.returncode == 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"aitrack token set --account {keychain_account}" in lines[0]
    assert org.requests == []
    assert pending(home) == 2 and usage_total(home.ledger) == 200
    flushed = flush(home)
    assert flushed.returncode == 1 and "aitrack token set" in flushed.stderr


def test_flush_without_an_endpoint_says_so(home):
    result = flush(home)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "no org endpoint is configured" in result.stderr


def test_flush_help_has_an_example(home):
    result = home.run("flush", "--help")
    assert result.returncode == 0 and "aitrack flush --retry-dead" in result.stdout


# ---------------------------------------------------------------- a key per signal


def use_two_keys(home, org, authority, metrics_account, logs_account, **kw) -> None:
    """Metrics with the profile's keychain_account, logs with logs_keychain_account; the
    endpoint wants TOKEN on /v1/metrics and LOGS_TOKEN on /v1/logs (CloudWatch)."""
    org.path_auth["/v1/logs"] = f"Bearer {LOGS_TOKEN}"
    use(home, org, authority, metrics_account,
        extra=f'logs_keychain_account = "{logs_account}"', **kw)


def by_signal(org, signal: str) -> list:
    return [r for r in org.requests if r.signal == signal]


def test_each_signal_is_sent_with_its_own_accounts_token(home, org, authority, keychain_account,
                                                         logs_account, token, logs_token, child):
    use_two_keys(home, org, authority, keychain_account, logs_account)
    result, _ = run(home, child, SEND=2, LOGS=2)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert sorted(seqs_received(org, "metrics")) == ["0", "1"]
    assert sorted(seqs_received(org, "logs")) == ["log-0", "log-1"]
    assert all(r.authorized and r.status == 200 for r in org.requests)
    for kind, own, other in (("metrics", TOKEN, LOGS_TOKEN), ("logs", LOGS_TOKEN, TOKEN)):
        for r in by_signal(org, kind):
            assert r.headers["authorization"] == f"Bearer {own}"
            assert other not in repr(r.header_lines) and other.encode() not in r.body
    assert outbox_rows(home.ledger) == []


def test_a_missing_logs_token_holds_back_only_logs(home, org, authority, keychain_account,
                                                   logs_account, token, child):
    from aitrack.config import keychain

    use_two_keys(home, org, authority, keychain_account, logs_account)
    result, _ = run(home, child, SEND=2, LOGS=2)
    assert result.returncode == 0
    [line] = result.stderr.splitlines()  # one notice, naming the account and its fix
    assert f"(account '{logs_account}'): logs telemetry stays queued" in line
    assert line.endswith(f"run `aitrack token set --account {logs_account}`")
    assert sorted(seqs_received(org, "metrics")) == ["0", "1"]  # metrics went anyway
    assert by_signal(org, "logs") == []
    assert [r[1:3] for r in outbox_rows(home.ledger)] == [("logs", "pending")] * 2

    queue(home.ledger, ["m"])
    flushed = flush(home, "--json")
    assert flushed.returncode == 1  # the logs are still pending
    report = json.loads(flushed.stdout)
    assert (report["sent"], report["pending"]) == (1, 2)
    [error] = report["errors"]
    assert f"aitrack token set --account {logs_account}" in error
    assert seqs_received(org, "metrics")[-1] == "m"

    keychain.set_token(logs_account, LOGS_TOKEN)
    assert flush(home).returncode == 0
    assert sorted(seqs_received(org, "logs")) == ["log-0", "log-1"]
    assert all(r.headers["authorization"] == f"Bearer {LOGS_TOKEN}"
               for r in by_signal(org, "logs"))


def test_a_refused_logs_token_stops_only_logs(home, org, authority, keychain_account,
                                              logs_account, token, child, tmp_path):
    from aitrack.config import keychain

    keychain.set_token(logs_account, "revoked-logs-key")
    use_two_keys(home, org, authority, keychain_account, logs_account)
    go = tmp_path / "go"

    def release_after_the_refusal() -> None:
        org.wait_for(lambda o: any(r.status == 403 for r in o.requests))
        go.write_text("")

    threading.Thread(target=release_after_the_refusal, daemon=True).start()
    # one metrics and one logs payload; after the logs' 403, two more metrics payloads
    result, _ = run(home, child, SEND=1, LOGS=1, WAIT_FOR=go, THEN=2, LINGER=0.5)
    assert result.returncode == 0
    assert go.exists(), "the logs payload was never refused while the child ran"
    [refused] = by_signal(org, "logs")  # refused once, never tried again this run
    assert refused.status == 403
    assert sorted(seqs_received(org, "metrics")) == ["0", "1", "2"]
    assert any(r.at > refused.at for r in org.accepted())  # metrics kept flowing after it
    [line] = result.stderr.splitlines()
    assert line.startswith("aitrack: the endpoint rejected the token (HTTP 403 for logs, "
                           f"account '{logs_account}'): run `aitrack token set --account "
                           f"{logs_account}`"), line
    assert [r[1:3] for r in outbox_rows(home.ledger)] == [("logs", "pending")]


def test_flush_stops_only_the_signal_whose_token_is_refused(home, org, authority,
                                                            keychain_account, logs_account,
                                                            token):
    from aitrack.config import keychain

    keychain.set_token(logs_account, "revoked-logs-key")
    use_two_keys(home, org, authority, keychain_account, logs_account)
    queue(home.ledger, ["l1", "l2"], signal="logs")
    db = sqlite3.connect(home.ledger)
    db.execute("UPDATE outbox SET created_at = created_at - 7200 WHERE id = 1")  # 2 batches
    db.commit()
    db.close()
    queue(home.ledger, ["a", "b"])
    result = flush(home)
    assert result.returncode == 1
    assert [r.status for r in by_signal(org, "logs")] == [403]  # the second batch not tried
    assert [r.status for r in by_signal(org, "metrics")] == [200]
    assert sorted(seqs_received(org, "metrics")) == ["a", "b"]
    lines = aitrack_lines(result.stderr, "the endpoint rejected the token")
    assert len(lines) == 1 and f"--account {logs_account}" in lines[0]
    assert "sent 2 payload(s)" in result.stdout and "pending 2" in result.stdout

    keychain.set_token(logs_account, LOGS_TOKEN)
    assert flush(home).returncode == 0
    assert sorted(seqs_received(org, "logs")) == ["l1", "l2"]


def test_each_account_is_read_once_in_the_background(home, org, authority, monkeypatch):
    from aitrack.config import keychain, paths, profile
    from aitrack.egress.forwarder import Forwarder

    use_two_keys(home, org, authority, "in-process", "in-process-logs",
                 signals=("metrics", "logs", "traces"))
    keys = {"in-process": TOKEN, "in-process-logs": LOGS_TOKEN}
    reads = []

    def slow_keychain(account: str) -> str:
        reads.append(account)
        time.sleep(0.3)
        return keys[account]

    monkeypatch.setattr(keychain, "get_token", slow_keychain)
    where = paths.resolve()
    session = queue(home.ledger, ["a"])
    queue(home.ledger, ["l"], signal="logs", session_id=session)
    notices: list[str] = []
    started = time.perf_counter()
    forwarder = Forwarder.start(where, profile.load(where), notices.append, session_id=session)
    assert time.perf_counter() - started < 0.1  # the caller (the child's start) never waits
    forwarder.finish(5)
    assert sorted(reads) == ["in-process", "in-process-logs"]  # traces share the first
    assert seqs_received(org, "metrics") == ["a"] and seqs_received(org, "logs") == ["l"]
    assert notices == []


# ---------------------------------------------------------------- TLS and plain HTTP


@pytest.mark.parametrize("bundle", ["another CA", "system store only"])
def test_an_endpoint_not_trusted_is_refused_and_the_payload_stays(home, tmp_path,
                                                                  keychain_account, token,
                                                                  child, bundle):
    stranger = Authority(tmp_path / "stranger")
    cert, key = stranger.issue()
    endpoint = OrgEndpoint(cert, key).start()
    try:
        ours = Authority(tmp_path / "ours").pem if bundle == "another CA" else None
        home.write_managed_profile(profile_toml(endpoint, ours, keychain_account,
                                                forward=("raw",)))
        session, _ = run(home, child, SEND=1, EXIT_WITH=4)
        result = flush(home)
    finally:
        endpoint.stop()
    assert session.returncode == 4
    lines = aitrack_lines(session.stderr, "cannot verify the TLS certificate of localhost")
    assert len(lines) == 1 and "endpoint.ca_bundle" in lines[0], session.stderr
    assert result.returncode == 1
    assert "cannot verify the TLS certificate of localhost" in result.stderr
    assert "endpoint.ca_bundle" in result.stderr
    assert endpoint.requests == [] and endpoint.tls_failures >= 2  # no silent bypass
    assert pending(home) == 1


def _listener() -> tuple[socket.socket, list]:
    sock = socket.socket()
    sock.bind(("0.0.0.0", 0))
    sock.listen(4)
    sock.settimeout(0.5)
    connected: list = []

    def accept() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connected.append(conn.recv(65536))
            conn.close()

    threading.Thread(target=accept, daemon=True).start()
    return sock, connected


def _endpoint(url: str) -> Endpoint:
    return Endpoint(url=url, metrics_url=None, logs_url=None, traces_url=None,
                    protocol="http/protobuf", auth_header="Authorization", auth_scheme="Bearer",
                    keychain_account="x", metrics_keychain_account=None,
                    logs_keychain_account=None, traces_keychain_account=None,
                    ca_bundle=None, signals=("metrics",), timeout_s=2,
                    flush_timeout_s=2, outbox_max_mb=256, headers={})


def test_plain_http_to_a_non_loopback_host_is_refused_before_any_byte():
    host = socket.gethostname()  # resolves to this machine, but is not a loopback literal
    sock, connected = _listener()
    try:
        port = sock.getsockname()[1]
        url = f"http://{host}:{port}/v1/metrics"
        answer = transport.post(_endpoint(url), url, b"x", "application/x-protobuf", TOKEN)
        time.sleep(0.3)
        assert answer.status is None and answer.fatal
        assert "plain HTTP" in answer.error and TOKEN not in answer.error
        assert connected == []  # not even a TCP connection
        # the control: a loopback address gets through, so the listener does see connections
        url = f"http://127.0.0.1:{port}/v1/metrics"
        transport.post(_endpoint(url), url, b"x", "application/x-protobuf", TOKEN)
        deadline = time.time() + 5
        while not connected and time.time() < deadline:
            time.sleep(0.02)
        assert connected and connected[0].startswith(b"POST /v1/metrics")
    finally:
        sock.close()


def test_https_proxy_is_used_and_no_proxy_bypasses_it(authority, monkeypatch):
    host = socket.gethostname()
    cert, key = authority.issue(hosts=(host, "localhost"))
    org = OrgEndpoint(cert, key).start()
    tunnels: list[bytes] = []
    proxy = socket.socket()
    proxy.bind(("127.0.0.1", 0))
    proxy.listen(4)

    def serve() -> None:  # a CONNECT proxy that routes every tunnel to the org endpoint
        while True:
            try:
                client, _ = proxy.accept()
            except OSError:
                return
            head = b""
            while b"\r\n\r\n" not in head:
                head += client.recv(4096)
            tunnels.append(head.split(b"\r\n")[0])
            upstream = socket.create_connection(("127.0.0.1", org.port))
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        endpoint = Endpoint(**{**_endpoint("").__dict__, "ca_bundle": str(authority.pem)})
        url = f"https://{host}:{org.port}/v1/metrics"
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.getsockname()[1]}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        answer = transport.post(endpoint, url, b"", "application/x-protobuf", TOKEN)
        assert answer.status == 200, answer.error
        assert [t.rsplit(b" ", 1)[0] for t in tunnels] == [f"CONNECT {host}:{org.port}".encode()]
        assert org.requests[0].headers["authorization"] == f"Bearer {TOKEN}"  # inside the TLS

        transport.close_connections()
        monkeypatch.setenv("NO_PROXY", host)
        transport.post(endpoint, url, b"", "application/x-protobuf", TOKEN)
        assert len(tunnels) == 1  # NO_PROXY: straight to the host
    finally:
        transport.close_connections()
        proxy.close()
        org.stop()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def test_transport_never_raises_and_keeps_the_token_out_of_errors(org, authority):
    endpoint = Endpoint(**{**_endpoint("").__dict__, "ca_bundle": str(authority.pem),
                           "timeout_s": 1})
    org.then(400, message=f"you sent Bearer {TOKEN}")  # an endpoint that echoes the header
    answer = transport.post(endpoint, f"{org.url}/v1/metrics", b"", "application/x-protobuf",
                            TOKEN)
    assert answer.status == 400 and TOKEN not in answer.error and "[token]" in answer.error
    for url in (f"https://127.0.0.1:{_free_port()}/v1/metrics", "https://nonexistent.invalid/x",
                "ftp://example.com/", "https://[::1"):
        answer = transport.post(endpoint, url, b"x", "application/x-protobuf", TOKEN)
        assert answer.status is None and answer.error and "\n" not in answer.error
    bad = transport.post(endpoint, f"{org.url}/v1/metrics", b"", "application/x-protobuf",
                         "tok\r\nX-Evil: 1")
    assert bad.fatal and "aitrack token set" in bad.error and "Evil" not in bad.error
    assert transport.retry_after("2") == 2.0
    assert transport.retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470) == 10.0
    assert transport.retry_after("soon") is None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- many runs, bounded outbox


def test_concurrent_flushes_never_send_a_payload_twice(home, org, authority, keychain_account,
                                                       token):
    use(home, org, authority, keychain_account)
    expected = [f"{i}-{j}" for i in range(24) for j in range(2)]
    for i in range(24):
        queue(home.ledger, [f"{i}-0", f"{i}-1"])
    db = sqlite3.connect(home.ledger)
    db.execute("UPDATE outbox SET created_at = created_at + (id % 12) * 7200")  # 12 batches+
    db.commit()
    db.close()
    org.delay_s = 0.05
    procs = [subprocess.Popen([sys.executable, "-m", "aitrack", "flush"], env=home.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    results = [p.communicate(timeout=90) + (p.returncode,) for p in procs]
    assert all(code == 0 for _, _, code in results), results
    assert sorted(seqs_received(org)) == sorted(expected)  # all of them, none twice
    senders = [out for out, _, _ in results if not out.startswith("sent 0 ")]
    assert len(senders) > 1, "the flushes did not overlap"


def test_the_outbox_bound_warns_and_never_touches_the_ledger(home, org, authority,
                                                             keychain_account, token, child):
    use(home, org, authority, keychain_account, extra="outbox_max_mb = 1", flush_timeout_s=0.5)
    org.stop()
    result, _ = run(home, child, SEND=8, PAD=300_000)  # ~2.4 MB of payloads
    assert result.returncode == 0
    lines = aitrack_lines(result.stderr, "1 MiB bound")
    assert len(lines) == 1 and "oldest" in lines[0] and "ledger" in lines[0]
    assert usage_total(home.ledger) == 800  # every payload counted
    db = sqlite3.connect(home.ledger)
    kept = db.execute("SELECT COUNT(*), SUM(size) FROM outbox").fetchone()
    assert 0 < kept[0] < 8 and kept[1] <= 1024 * 1024
    org.start()
    report = json.loads(flush(home, "--json").stdout)
    assert report["evicted_total"] == 8 - kept[0]
    assert sorted(seqs_received(org)) == [str(i) for i in range(8 - kept[0], 8)]  # newest kept


def test_flush_on_a_machine_that_never_tracked_anything(home, org, authority, keychain_account):
    use(home, org, authority, keychain_account)
    result = flush(home, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["pending"] == 0
    assert not home.ledger.exists() and org.requests == []


def test_the_token_is_read_once_in_the_background(home, org, authority, monkeypatch):
    from aitrack.config import keychain, paths, profile
    from aitrack.egress.forwarder import Forwarder

    use(home, org, authority, "in-process")
    reads = []

    def slow_keychain(account: str) -> str:
        reads.append(account)
        time.sleep(0.5)  # a keychain that takes its time (a locked login keychain, D-Bus)
        return TOKEN

    monkeypatch.setattr(keychain, "get_token", slow_keychain)
    where = paths.resolve()
    session = queue(home.ledger, ["a"])
    notices: list[str] = []
    started = time.perf_counter()
    forwarder = Forwarder.start(where, profile.load(where), notices.append, session_id=session)
    assert time.perf_counter() - started < 0.1  # the caller (the child's start) never waits
    for seq in ("b", "c"):
        queue(home.ledger, [seq], session_id=session)
        forwarder.notify()
    forwarder.finish(5)
    assert reads == ["in-process"]  # once per run, the profile's account
    assert sorted(seqs_received(org)) == ["a", "b", "c"] and notices == []
