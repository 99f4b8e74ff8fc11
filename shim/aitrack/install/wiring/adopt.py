"""`aitrack agent install --adopt-endpoint`: the endpoint the tools' own settings send to
becomes the profile's, so the agent forwards there, and its token moves to the keychain.

The tools' settings say where they send (each adapter's `settings.destinations`): one base URL
or a URL per signal, a protocol and headers. One header must carry the token (a name like
Authorization or x-api-key, or a `Bearer` value): it goes to the keychain and the profile
names it (`auth_header`, `auth_scheme`); other headers become `[endpoint.headers]`. The user
profile gets that `[endpoint]` (the rest of the file is kept); install then takes the
tokens' headers out of the settings files as it always does. Anything aitrack could not
send the same way (OTLP/gRPC, two different endpoints, two secret headers) is refused with
what to do instead, before anything is written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import tomlkit

from aitrack.adapters.endpoints import Destination, shown
from aitrack.config import keychain
from aitrack.config.paths import Paths
from aitrack.config.private_files import write_private
from aitrack.config.schema import SECRET_HEADER_VALUE, SIGNALS, validate
from aitrack.config.urls import SECRET_NAME
from aitrack.install.wiring.plan import Elsewhere, sent_elsewhere
from aitrack.install.wiring.state import WiringError

PROTOCOLS = ("http/protobuf", "http/json")  # what aitrack forwards with


def endpoint_table(elsewhere: Elsewhere) -> tuple[dict, str]:
    """The profile's [endpoint] table for what the settings send to, and the token."""
    if not elsewhere:
        raise WiringError("nothing to adopt: neither tool's settings send telemetry anywhere "
                          "but the agent; run `aitrack agent install`")
    grpc = [f"{title} ({where})" for title, where, d in elsewhere if d.protocol == "grpc"]
    if grpc:
        raise WiringError(f"{', '.join(grpc)} sends OTLP over gRPC, which aitrack does not "
                          "forward: ask for the collector's OTLP/HTTP URL, put it in your "
                          "profile's [endpoint] (README: Profiles), then `aitrack agent "
                          "install`; nothing was changed")
    urls = _urls([d for _, _, d in elsewhere])
    headers = _same_headers(elsewhere)
    secret = [name for name, value in headers.items()
              if not name or SECRET_NAME.search(name) or SECRET_HEADER_VALUE.match(value)]
    if len(secret) != 1:
        raise WiringError(
            ("the settings send no token header, and aitrack forwards only with a token from "
             "the keychain" if not secret else
             f"the settings send {len(secret)} secret headers ({', '.join(secret)}); aitrack "
             "forwards one token") + ": write your profile's [endpoint] yourself (README: "
            "Profiles), then `aitrack agent install`; nothing was changed")
    name = secret[0]
    if not name:
        raise WiringError("the settings send a bare token without a header name: write your "
                          "profile's [endpoint] yourself (README: Profiles); nothing was changed")
    value = headers.pop(name)
    scheme, _, token = value.partition(" ") if re.match(r"\S+ \S", value) else ("", "", value)
    table: dict = {**urls, "auth_header": name, "auth_scheme": scheme}
    protocols = {d.protocol for _, _, d in elsewhere if d.protocol in PROTOCOLS}
    if len(protocols) == 1:
        table["protocol"] = protocols.pop()
    if headers:
        table["headers"] = headers
    return table, token.strip()


def _urls(found: list[Destination]) -> dict:
    """`url` when every destination shares one base, else a URL per signal."""
    per_signal: dict[str, set[str]] = {}
    for d in found:
        for signal in ([d.signal] if d.signal else SIGNALS):
            per_signal.setdefault(signal, set()).add(d.signal_url(signal).rstrip("/"))
    clash = {s: urls for s, urls in per_signal.items() if len(urls) > 1}
    if clash:
        signal, urls = next(iter(clash.items()))
        raise WiringError(f"the settings send {signal} to {' and '.join(sorted(map(shown, urls)))}"
                          ": adopt one by hand in your profile's [endpoint]; nothing was changed")
    urls = {s: next(iter(u)) for s, u in per_signal.items()}
    bases = {u.removesuffix(f"/v1/{s}") for s, u in urls.items()}
    if len(urls) == len(SIGNALS) and len(bases) == 1 and all(
            u.endswith(f"/v1/{s}") for s, u in urls.items()):
        return {"url": bases.pop()}  # forwarded signals: the profile's default
    table: dict = {f"{s}_url": u for s, u in urls.items()}
    table["signals"] = [s for s in SIGNALS if s in urls]
    if "metrics" not in urls:  # aitrack's own family travels as metrics
        table["forward"] = ["raw"]
    return table


def _same_headers(elsewhere: Elsewhere) -> dict[str, str]:
    """The headers every destination sends (they must agree: one endpoint, one token)."""
    merged: dict[str, str] = {}
    for title, where, d in elsewhere:
        for name, value in d.headers.items():
            if merged.get(name, value) != value:
                raise WiringError(f"the settings send two different values of header {name!r} "
                                  f"({title}, {where}): adopt the endpoint by hand in your "
                                  "profile's [endpoint]; nothing was changed")
            merged[name] = value
    return merged


def make_profile_endpoint(paths: Paths, env: Mapping[str, str], url: str, account: str
                          ) -> list[str]:
    """Write the user profile's [endpoint] from the tools' settings and store its token in
    the keychain (account `account`); what was done, in lines."""
    table, token = endpoint_table(sent_elsewhere(env, url))
    if account != "default":
        table["keychain_account"] = account
    path = paths.user_profile
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        doc = tomlkit.parse(text)
    except (OSError, ValueError) as exc:
        raise WiringError(f"cannot read your profile {path} ({exc}): fix it, then try again; "
                          "nothing was changed") from None
    if "endpoint" in doc:
        raise WiringError(f"your profile {path} has an [endpoint] already: nothing to adopt")
    doc["endpoint"] = table
    new = doc.as_string()
    problems = validate(tomlkit.parse(new).unwrap(), new)
    if problems:
        raise WiringError(f"the adopted endpoint is not a valid profile ({problems[0]}): write "
                          f"it yourself in {path}; nothing was changed")
    problem = keychain.token_problem(token)
    if problem:
        raise WiringError(f"the token in the settings cannot be stored: {problem}; nothing was "
                          "changed")
    try:
        stored = keychain.get_token(account)
        if stored and stored != token:
            raise WiringError(f"the keychain already holds another token for account "
                              f"{account!r}: choose another with --account NAME; nothing was "
                              "changed")
        keychain.set_token(account, token)
    except keychain.KeychainUnavailable as exc:
        raise WiringError(f"{exc}; nothing was changed") from None
    write_private(path, new.encode("utf-8"))
    where = table.get("url") or ", ".join(f"{k.removesuffix('_url')} to {v}"
                                           for k, v in table.items() if k.endswith("_url"))
    return [f"adopted the endpoint {shown(where) if 'url' in table else where}: your profile "
            f"{path} names it, and its token is in your keychain (account {account!r}); the "
            "settings files no longer hold it"]
