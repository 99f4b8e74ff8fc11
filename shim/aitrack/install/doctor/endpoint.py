"""Checks of forwarding: the token in the keychain and the endpoint it is sent to."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from aitrack.config import keychain
from aitrack.egress import transport
from aitrack.install.doctor.check import FAIL, PASS, WARN, Check, Context, shown_url, worst

PROBE_TIMEOUT_S = 10.0


def redact(text: str, secrets: list[str]) -> str:
    """`text` without any of `secrets` (an endpoint's error may echo a header back)."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return text


def check_keychain(ctx: Context) -> Check:
    """The token of each account the endpoint's signals use (kept in `ctx.tokens` for the
    endpoint's probes)."""
    endpoint = ctx.profile.endpoint
    if endpoint is None:
        return Check("keychain", PASS, "not needed: local-only (no endpoint to send a token to)")
    accounts = endpoint.accounts()
    try:
        backend = keychain.backend_name()
        found = {account: keychain.get_token(account) for account in accounts}
    except keychain.KeychainUnavailable as exc:
        why = re.sub(r",? (?:then )?(?:or )?run `aitrack doctor`", "", str(exc))
        return Check("keychain", FAIL, f"cannot read the token: {why}",
                     "make a keychain available and unlocked, then `aitrack token set`",
                     data={"account": endpoint.keychain_account, "backend": None,
                           "token_present": False})
    ctx.tokens = {account: token for account, token in found.items() if token is not None}
    missing = [account for account in accounts if account not in ctx.tokens]
    data = {"account": endpoint.keychain_account, "backend": backend,
            "token_present": not missing,
            "accounts": [{"account": a, "signals": list(s), "token_present": a in ctx.tokens}
                         for a, s in accounts.items()]}

    def named(names: list[str]) -> str:  # the signals only when they differ by account
        return ", ".join(f"{a!r} ({', '.join(accounts[a])})" if len(accounts) > 1 else repr(a)
                         for a in names)

    if missing:
        lost = ("nothing can be forwarded" if len(missing) == len(accounts) else
                f"{' and '.join(s for a in missing for s in accounts[a])} cannot be forwarded")
        return Check("keychain", FAIL, f"no token for account{'s' if len(missing) > 1 else ''} "
                     f"{named(missing)} in {backend}: {lost}",
                     f"run {', '.join(f'`{keychain.set_command(a)}`' for a in missing)} (IT: "
                     "pipe it in from the MDM's user-context script, see installers/README.md)",
                     data=data)
    plural = "s" if len(accounts) > 1 else ""
    return Check("keychain", PASS, f"token{plural} present for account{plural} "
                 f"{named(list(accounts))} in {backend}", data=data)


def check_endpoint(ctx: Context) -> Check:
    """An empty export to each forwarded signal's URL, with that signal's token; one probe
    per distinct URL and account."""
    endpoint = ctx.profile.endpoint
    if endpoint is None:
        return Check("endpoint", PASS, "not checked: local-only, nothing is forwarded")
    targets: dict[tuple[str | None, str], str] = {}  # (url, account) -> its first signal
    for signal in sorted(endpoint.signals, key=lambda s: s != "metrics"):  # metrics first
        targets.setdefault((endpoint.signal_url(signal), endpoint.signal_account(signal)),
                           signal)
    with ThreadPoolExecutor(len(targets)) as pool:  # a hung host costs one timeout, not one each
        probes = list(pool.map(lambda t: _probe(ctx, t[1], *t[0]), targets.items()))
    if len(probes) == 1:
        return probes[0]
    fixes = [c.fix for c in probes if c.fix]
    return Check("endpoint", worst(probes), "; ".join(c.summary for c in probes),
                 "; ".join(dict.fromkeys(fixes)) or None,
                 data={**probes[0].data, "probes": [c.data for c in probes]})


def _probe(ctx: Context, signal: str, url: str | None, account: str) -> Check:
    endpoint = ctx.profile.endpoint
    json_body = endpoint.protocol == "http/json"
    # An empty Export<Signal>ServiceRequest: b"" in protobuf, {} in JSON.
    body, content_type = (b"{}", "application/json") if json_body else (
        b"", "application/x-protobuf")
    probe = replace(endpoint, timeout_s=min(endpoint.timeout_s, PROBE_TIMEOUT_S))
    token = ctx.tokens.get(account)
    answer = transport.post(probe, url, body, content_type, token)
    ms = round(answer.elapsed_s * 1000)
    secrets = [*ctx.tokens.values(), *endpoint.headers.values()]
    where = shown_url(url)
    data = {"url": where, "signal": signal, "account": account, "protocol": endpoint.protocol,
            "http_status": answer.status, "elapsed_ms": ms, "token_sent": token is not None}
    error = redact(answer.error or "", secrets)
    status = answer.status
    set_token = f"`{keychain.set_command(account)}`"
    if status is not None and 200 <= status < 300:
        what = "accepted the token" if token else "accepted a request without a token"
        return Check("endpoint", PASS if token else WARN,
                     f"{where} {what} (HTTP {status} in {ms} ms)",
                     None if token else f"run {set_token}", data=data)
    if status is None:
        return Check("endpoint", FAIL, f"{where} unreachable after {ms} ms: {error}",
                     "check the network or VPN, the proxy (HTTPS_PROXY), endpoint.url, and for "
                     "TLS errors endpoint.ca_bundle; payloads wait in the outbox meanwhile",
                     data=data)
    if status in (401, 403):
        if token is None:
            return Check("endpoint", WARN, f"{where} is reachable but wants a token "
                         f"(HTTP {status} in {ms} ms) and none is stored for account {account!r}",
                         f"run {set_token}", data=data)
        return Check("endpoint", FAIL, f"{where} rejected the token (HTTP {status} in {ms} ms; "
                     f"account {account!r})",
                     f"store a valid token with {set_token} (ask IT whether it was "
                     f"revoked); check endpoint.auth_header ({endpoint.auth_header}) and "
                     "auth_scheme", data=data)
    if status in (404, 405, 415):
        fix = ("check endpoint.protocol" if status == 415 else
               f"check endpoint.url or endpoint.{signal}_url (the full /v1/{signal} path)")
        return Check("endpoint", FAIL, f"{where} answered HTTP {status} in {ms} ms: {error}",
                     fix, data=data)
    if status == 429 or status >= 500:
        return Check("endpoint", WARN, f"{where} is temporarily unavailable (HTTP {status} in "
                     f"{ms} ms)", "nothing to do if it passes: aitrack retries; "
                     "otherwise tell IT", data=data)
    return Check("endpoint", WARN, f"{where} answered an empty export with HTTP {status} in "
                 f"{ms} ms: {error}", "if real payloads fail too, `aitrack flush --json` shows "
                 "the endpoint's answers; tell IT", data=data)
