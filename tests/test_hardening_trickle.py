"""Issue 18: a trickling org endpoint defeated every timeout (`flush --timeout 5` took 199 s,
`doctor` 99 s): each read waited less than the socket timeout, forever. Two slow
authenticated bodies blocked all of a receiver's intake. Both now have a total deadline per
request, checked while the bytes come.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from types import SimpleNamespace

import pytest

import otlp_client as oc
from aitrack.capture import http11, loopback
from aitrack.capture.receiver import Receiver
from org_endpoint import profile_toml, queue

pytest_plugins = ("org_endpoint",)  # fixtures: authority, org, token

SAMPLE = json.dumps(oc.metrics(oc.sum_metric("claude_code.token.usage", [
    oc.point(120, type="input", model="m")]))).encode()


def trickling(home, org, authority, keychain_account, timeout_s: float = 1) -> None:
    home.write_managed_profile(profile_toml(org, authority.pem, keychain_account,
                                            extra=f"timeout_s = {timeout_s}"))
    org.trickle_s = 0.3  # every byte well within the socket timeout


@pytest.mark.parametrize("timeout_s", [1, 30])
def test_flush_ends_near_its_timeout_against_a_trickling_endpoint(
        home, org, authority, keychain_account, token, timeout_s):
    """Each request ends by endpoint.timeout_s, and none goes on past flush's own bound."""
    trickling(home, org, authority, keychain_account, timeout_s)
    queue(home.ledger, [f"t{i}" for i in range(5)])
    started = time.monotonic()
    result = home.run("flush", "--timeout", "5", timeout=120)
    elapsed = time.monotonic() - started
    assert elapsed < 9, f"flush --timeout 5 took {elapsed:.1f} s"
    assert result.returncode != 0  # nothing was delivered
    assert "no answer from localhost" in result.stdout + result.stderr


def test_doctors_endpoint_check_is_bounded_by_the_timeout(home, org, authority,
                                                          keychain_account, token):
    trickling(home, org, authority, keychain_account)
    started = time.monotonic()
    result = home.run("doctor", "--json", timeout=120)
    elapsed = time.monotonic() - started
    check = next(c for c in json.loads(result.stdout)["checks"] if c["name"] == "endpoint")
    assert check["status"] != "PASS"
    assert elapsed < 8, f"doctor took {elapsed:.1f} s"


# ---------------------------------------------------------------- the receiver's side


@pytest.fixture
def rx():
    got = []
    listener = loopback.bind()
    served = Receiver(socket.socket(fileno=listener.sock.detach()), listener.secret,
                      got.append).start()
    yield SimpleNamespace(port=listener.port, secret=listener.secret, got=got, receiver=served)
    served.stop(2)


def test_slow_authenticated_bodies_cannot_hold_the_intake(rx, monkeypatch):
    """Two requests with the key trickle their bodies: the tool's own export is still
    answered, once their total deadline has cut them."""
    monkeypatch.setattr(http11, "BODY_TIMEOUT_S", 2.0, raising=False)
    headers = oc.otlp_headers(rx.port, rx.secret)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    slow = []
    for _ in range(http11.MAX_BODIES):
        conn = socket.create_connection(("127.0.0.1", rx.port))
        conn.sendall(f"POST /v1/metrics HTTP/1.1\r\n{head}Content-Length: 100000\r\n\r\n"
                     .encode())
        slow.append(conn)
    stop = threading.Event()

    def trickle(conn) -> None:
        while not stop.wait(0.2):
            try:
                conn.send(b"x")
            except OSError:
                return

    for conn in slow:
        threading.Thread(target=trickle, args=(conn,), daemon=True).start()
    time.sleep(0.5)
    started = time.monotonic()
    try:
        answer = oc.post(rx.port, rx.secret, "/v1/metrics", SAMPLE)
    finally:
        stop.set()
        for conn in slow:
            conn.close()
    assert answer.status == 200 and len(rx.got) == 1
    assert time.monotonic() - started < 5
