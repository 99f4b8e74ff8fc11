"""What the org endpoint needs before anything is sent: a URL per signal, and its token.

The tokens are read from the keychain once per distinct account (a signal may have its own,
`Endpoint.signal_account`). A signal without a URL or a token is never sent: it stays
queued while the others go, and one line names the fix.
"""

from __future__ import annotations

from aitrack.config import keychain
from aitrack.config.profile import Endpoint


def sendable_signals(endpoint: Endpoint) -> tuple[tuple[str, ...], list[str]]:
    """The profile's signals that have a URL, and a line for each that has none."""
    ok, problems = [], []
    for signal in endpoint.signals:
        if endpoint.signal_url(signal):
            ok.append(signal)
        else:
            problems.append(f"endpoint.signals lists {signal} but no url or {signal}_url is set: "
                            f"{signal} stays queued; fix the profile")
    return tuple(ok), problems


def read_tokens(endpoint: Endpoint, signals: tuple[str, ...]
                ) -> tuple[dict[str, str], list[str]]:
    """Each signal's token, read once per distinct account, and one line naming the fix for
    each account that has none. Never raises."""
    tokens: dict[str, str] = {}
    problems: list[str] = []
    for account, group in endpoint.accounts(signals).items():
        try:
            token = keychain.get_token(account)
        except keychain.KeychainUnavailable as exc:
            problems.append(f"cannot read the org token: {exc}; telemetry stays queued in the "
                            "outbox")
            break  # the keychain itself is the problem: the other accounts would say the same
        except Exception as exc:  # noqa: BLE001 - a D-Bus or backend failure outside keyring's types
            problems.append(f"cannot read the org token (keychain error {type(exc).__name__}): "
                            "unlock the keychain or run `aitrack doctor`; telemetry stays "
                            "queued in the outbox")
            break
        if token:
            tokens.update(dict.fromkeys(group, token))
        else:
            problems.append(no_token_line(account, group))
    return tokens, problems


def no_token_line(account: str, signals: tuple[str, ...]) -> str:
    return (f"no org token in the keychain (account {account!r}): {' and '.join(signals)} "
            f"telemetry stays queued in the outbox; run `{keychain.set_command(account)}`")


def refused_token_line(endpoint: Endpoint, signal: str, status: int) -> str:
    """The endpoint answered 401/403: which account's token to set again."""
    account = endpoint.signal_account(signal)
    return (f"the endpoint rejected the token (HTTP {status} for {signal}, account "
            f"{account!r}): run `{keychain.set_command(account)}`; {signal} telemetry stays "
            "queued in the outbox")
