"""Issue 13, findings 7 and 14: the org token, echoed by an endpoint or typed with a newline."""

from __future__ import annotations

import base64
import json
import sqlite3
from urllib.parse import quote, quote_plus

import keyring
import pytest

from aitrack.config import keychain
from org_endpoint import TOKEN, outbox_rows, profile_toml, queue

pytest_plugins = ("org_endpoint",)  # fixtures: authority, org, token, child

PREFIX = TOKEN[:8]  # any echoed prefix of 8 or more characters contains it


def leaks(text: str | bytes) -> bool:
    if isinstance(text, bytes):
        return PREFIX.encode() in text
    return PREFIX in text


# ---------------------------------------------------------------- 7: mask first, then cut


def test_mask_covers_the_token_and_its_prefixes():
    text = f"{'x' * 280}Bearer {TOKEN}; got {TOKEN[:12]}...; short {TOKEN[:7]}"
    masked = keychain.mask(text, [TOKEN])
    assert not leaks(masked)
    assert masked.count("[token]") == 2 and TOKEN[:7] in masked  # 7 characters say nothing


def test_an_endpoint_echoing_the_token_after_280_characters_never_leaks_a_prefix(
        home, org, authority, keychain_account, token, child):
    """The answer was cut to 300 characters before the token was masked: a 13-character
    prefix reached stderr, forwarder.log, outbox.last_error and the ledger."""
    home.write_managed_profile(profile_toml(org, authority.pem, keychain_account))
    org.always(400, message="x" * 280 + "{auth}")  # the token from character 288 on
    queue(home.ledger, ["a"])
    flushed = home.run("flush")
    during = home.run("run", "--", *child)  # the same answer to the run's own forwarder
    assert during.returncode == 0, during.stderr
    assert org.requests and all(r.status == 400 for r in org.requests)
    log = (home.root / "state" / "logs" / "forwarder.log").read_text()
    errors = [row[4] or "" for row in outbox_rows(home.ledger)]
    assert any("x" * 200 in e for e in errors)  # the answer was recorded...
    for where, text in (("flush stderr", flushed.stderr), ("run stderr", during.stderr),
                        ("forwarder.log", log), ("outbox.last_error", " ".join(errors))):
        assert not leaks(text), where  # ...without any part of the token
    for path in home.ledger.parent.glob("ledger.db*"):
        assert not leaks(path.read_bytes()), path
    dump = "\n".join(sqlite3.connect(home.ledger).iterdump())
    assert not leaks(dump)


# ---------------------------------------------------------------- issue 18: every form of it

SPECIAL = 'sk/live+Ab=Cd"e\\fü:gh&ij%kl mn<op>qr'  # characters each encoding changes


def forms(token: str) -> dict[str, str]:
    """How an endpoint (or a proxy's error page) may echo a token."""
    raw = token.encode()
    out = {"as is": token, "url-encoded": quote(token, safe=""), "url+plus": quote_plus(token),
           "json": json.dumps(token)[1:-1],
           "json-utf8": json.dumps(token, ensure_ascii=False)[1:-1],
           "middle 12": token[len(token) // 2 - 6:len(token) // 2 + 6]}
    for pad in ("", "u", "us", "user:"):  # Basic auth puts "user:" before it
        out[f"base64 after {pad!r}"] = base64.b64encode(pad.encode() + raw).decode()
        out[f"base64url after {pad!r}"] = base64.urlsafe_b64encode(pad.encode() + raw).decode()
    return out


def windows(text: str, n: int = 12) -> set[str]:
    return {text[i:i + n] for i in range(len(text) - n + 1)}


@pytest.mark.parametrize("token", [TOKEN, SPECIAL, "A" * 7 + "b" * 40])
def test_mask_covers_every_form_of_the_token(token):
    """Only the exact token and its prefixes were masked: base64 (Basic auth), URL-encoded
    and JSON-escaped echoes, and any part of it from its middle, went through."""
    for name, form in forms(token).items():
        text = f"error: got '{form}' in header; {'x' * 30}"
        masked = keychain.mask(text, [token])
        secret_parts = set().union(*(windows(f) for f in forms(token).values()
                                     if len(f) >= 12))
        found = windows(masked) & secret_parts
        assert not found, (name, masked)
        assert "[token]" in masked, name


def test_mask_leaves_ordinary_text_alone():
    text = "HTTP 400: the payload had 3 resource blocks, none valid (see the docs)"
    assert keychain.mask(text, [TOKEN, SPECIAL]) == text


def test_an_endpoint_echoing_encoded_forms_never_leaks_them(home, org, authority,
                                                            keychain_account, token):
    home.write_managed_profile(profile_toml(org, authority.pem, keychain_account))
    echoed = forms(TOKEN)
    org.always(400, message="; ".join(echoed.values()))
    queue(home.ledger, ["a"])
    flushed = home.run("flush", "--json")
    log = (home.root / "state" / "logs" / "forwarder.log").read_text()
    errors = " ".join(row[4] or "" for row in outbox_rows(home.ledger))
    secret_parts = set().union(*(windows(f) for f in echoed.values() if len(f) >= 12))
    for where, text in (("flush", flushed.stdout + flushed.stderr), ("forwarder.log", log),
                        ("outbox.last_error", errors)):
        assert "[token]" in text, where
        assert not windows(text) & secret_parts, where


# ---------------------------------------------------------------- 14: token set validation


@pytest.mark.parametrize("value,reason", [
    (f"{TOKEN}\nX-Injected: yes", "a newline"),
    (f"{TOKEN}\r\nX-Injected: yes", "a carriage return"),
    (f"{TOKEN}\x00", "U+0000"),
    ("tok\x1ben", "U+001B"),
    ("tok\x7fen", "U+007F"),
    ("tok\x85en", "U+0085"),
], ids=["newline", "crlf", "nul", "escape", "del", "c1"])
def test_token_set_refuses_a_value_no_header_can_carry(home, keychain_account, value, reason):
    """`token set` said "token stored" for a value with a newline; every later run then
    failed to send and doctor blamed the network."""
    keychain.set_token(keychain_account, "earlier-token-kept")
    result = home.run("token", "set", "--account", keychain_account, input=value)
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert reason in line and "not a valid HTTP header value" in line
    assert "nothing was stored" in line and "token set" in line
    assert "X-Injected" not in line and TOKEN not in line  # the value is never echoed
    assert keyring.get_password(keychain.SERVICE, keychain_account) == "earlier-token-kept"


def test_a_tab_or_unicode_inside_a_token_is_still_a_valid_header_value(home, keychain_account):
    for value in ("tok\ten", "tök€n-🔑"):
        result = home.run("token", "set", "--account", keychain_account, input=value)
        assert result.returncode == 0, result.stderr
        assert keychain.get_token(keychain_account) == value


def test_a_unicode_token_is_sent_as_utf8(org, authority, tmp_path):
    """What `token set` accepts, the forwarder can send (UTF-8 bytes in the header)."""
    from aitrack.config import profile, profile_file
    from aitrack.egress import transport

    unicode_token = "tök€n-🔑"
    org.auth_value = f"Bearer {unicode_token}".encode().decode("latin-1")
    path = tmp_path / "p.toml"
    path.write_text(profile_toml(org, authority.pem, "unused"))
    layer = profile_file.Layer("managed", str(path), profile_file.read_file(path))
    endpoint = profile.merge([layer]).endpoint
    answer = transport.post(endpoint, f"{org.url}/v1/metrics", b"", "application/x-protobuf",
                            unicode_token)
    assert answer.status == 200, answer.error
