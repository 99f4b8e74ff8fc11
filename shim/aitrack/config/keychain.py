"""The org token in the OS keychain, and nowhere else.

keyring service `aitrack`, username = the profile's `keychain_account`, or a signal's own
`<signal>_keychain_account`. A token up to CHUNK UTF-16 code units is stored as-is (IT
scripts and the platform's keychain tools can read or rotate it); a longer one is split
over `<account>#1..N` with a marker in the main entry, because Windows Credential Locker
holds only 2560 bytes of UTF-16 (1280 code units; a character outside the BMP takes two)
per entry.
There is no plaintext fallback: without a real keychain every call refuses.
"""

from __future__ import annotations

import os
import shlex
from base64 import b64encode
from dataclasses import dataclass
from json import dumps
from urllib.parse import quote, quote_plus

SERVICE = "aitrack"
CHUNK = 1000  # UTF-16 code units per entry, under Windows' 1280
_MARKER = "aitrack-chunked:v1:"
NO_KEYCHAIN_FIX = (
    "no usable keychain: install and unlock one (macOS Keychain, Windows Credential Manager, "
    "or gnome-keyring/KWallet on Linux), then run `aitrack doctor`"
)


class KeychainUnavailable(Exception):
    """No secure keychain backend; the message is one line naming the fix."""


@dataclass(frozen=True)
class TokenStatus:
    account: str
    backend: str
    present: bool


def _backend():
    # keyring finds its backends through entry points (tens of ms): loaded only when the
    # keychain itself is used, never for masking or a token's checks
    import keyring
    from keyring.errors import NoKeyringError  # with keyring (see above)

    try:
        ring = keyring.get_keyring()
    except NoKeyringError:
        raise KeychainUnavailable(NO_KEYCHAIN_FIX) from None
    for leaf in getattr(ring, "backends", None) or [ring]:
        if not _is_insecure(leaf):
            return ring
    chosen = os.environ.get("PYTHON_KEYRING_BACKEND")
    if chosen:  # the fix is then to stop choosing it
        raise KeychainUnavailable(f"no usable keychain: PYTHON_KEYRING_BACKEND={chosen} selects "
                                  "no secure keychain; unset it for aitrack "
                                  "(`env -u PYTHON_KEYRING_BACKEND aitrack ...`)")
    raise KeychainUnavailable(f"{NO_KEYCHAIN_FIX} (found only {backend_name(ring)})")


def _is_insecure(ring) -> bool:
    cls = type(ring)
    name = f"{cls.__module__}.{cls.__qualname__}".lower()
    return (
        name.startswith(("keyring.backends.fail.", "keyring.backends.null."))
        or "plaintext" in name
        or "insecure" in name
        or "keyrings.alt.file" in name
        or getattr(ring, "priority", 1) <= 0
    )


def backend_name(ring=None) -> str:
    if ring is None:
        ring = _backend()
    cls = type(ring)
    return f"{cls.__module__}.{cls.__qualname__}"


def _call(fn, *args):
    """Run a keyring call, turning backend failures into one line without secrets."""
    from keyring.errors import KeyringError, NoKeyringError  # loaded by _backend (see there)

    try:
        return fn(*args)
    except NoKeyringError:
        raise KeychainUnavailable(NO_KEYCHAIN_FIX) from None
    except KeyringError as exc:
        raise KeychainUnavailable(f"keychain error ({type(exc).__name__}): unlock the keychain "
                                  "or run `aitrack doctor`") from None


def set_token(account: str, token: str) -> None:
    """Store `token`, overwriting the earlier one in place: a keychain that refuses the write
    (locked, say) leaves the old token working rather than none."""
    if not token:
        raise ValueError("empty token")
    ring = _backend()
    old_chunks = _chunk_count(_call(ring.get_password, SERVICE, account))
    chunks = split(token)
    if len(chunks) == 1:
        _call(ring.set_password, SERVICE, account, token)
    else:
        for i, chunk in enumerate(chunks, 1):
            _call(ring.set_password, SERVICE, f"{account}#{i}", chunk)
        _call(ring.set_password, SERVICE, account, f"{_MARKER}{len(chunks)}")
    new_chunks = len(chunks) if len(chunks) > 1 else 0
    _delete(ring, [f"{account}#{i}" for i in range(new_chunks + 1, old_chunks + 1)])


def _chunk_count(head: str | None) -> int:
    return int(head[len(_MARKER):]) if head and head.startswith(_MARKER) else 0


def _delete(ring, names: list[str]) -> None:
    from keyring.errors import PasswordDeleteError  # loaded by _backend (see there)

    for name in names:
        try:
            _call(ring.delete_password, SERVICE, name)
        except PasswordDeleteError:
            pass


def split(token: str) -> list[str]:
    """Pieces of at most CHUNK UTF-16 code units (what Windows counts), whole characters each."""
    pieces, start, units = [], 0, 0
    for i, char in enumerate(token):
        width = 2 if ord(char) > 0xFFFF else 1
        if units + width > CHUNK:
            pieces.append(token[start:i])
            start, units = i, 0
        units += width
    pieces.append(token[start:])
    return pieces


def get_token(account: str) -> str | None:
    ring = _backend()
    head = _call(ring.get_password, SERVICE, account)
    if head is None or not head.startswith(_MARKER):
        return head
    parts = [_call(ring.get_password, SERVICE, f"{account}#{i}")
             for i in range(1, _chunk_count(head) + 1)]
    if any(p is None for p in parts):
        return None  # a half-written or half-deleted token is no token
    return "".join(parts)


def delete_token(account: str, ring=None) -> bool:
    """Remove the token and any chunks; True if something was there."""
    ring = ring or _backend()
    head = _call(ring.get_password, SERVICE, account)
    if head is None:
        return False
    _delete(ring, [account] + [f"{account}#{i}" for i in range(1, _chunk_count(head) + 1)])
    return True


def status(account: str) -> TokenStatus:
    ring = _backend()
    return TokenStatus(account, backend_name(ring), get_token(account) is not None)


MASK = "[token]"
MASK_PREFIX_MIN = 8  # an echoed prefix this long or longer is masked too
MASK_WINDOW = 12  # and any run of this many characters of it, from anywhere in it


def mask(text: str, secrets) -> str:
    """`text` with every echo of a secret replaced by [token]: the secret as it is, base64
    (as in a Basic auth header, at any alignment), URL-encoded or JSON-escaped; any
    MASK_WINDOW characters of one of these; and a prefix of MASK_PREFIX_MIN or more (an
    endpoint may cut what it echoes). Mask before cutting a text short: cut first and a
    part of the token would survive."""
    spans: list[tuple[int, int]] = []
    for secret in {s for s in secrets if s}:
        for form in _forms(secret):
            spans += _echoes(text, form)
    if not spans:
        return text
    out, at = [], 0
    for start, end in sorted(spans):
        if end <= at:
            continue
        if start > at or not out:
            out += [text[at:start], MASK]
        at = max(at, end)
    return "".join(out) + text[at:]


def _forms(secret: str) -> set[str]:
    """The ways a secret may be written in an answer or a log."""
    forms = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret),
             dumps(secret)[1:-1], dumps(secret, ensure_ascii=False)[1:-1]}
    raw = secret.encode()
    for pad in range(3):  # base64 of the secret after 0, 1 or 2 other bytes: the characters
        encoded = b64encode(b"\0" * pad + raw).decode()  # that depend on it alone
        core = encoded[-(-8 * pad // 6):8 * (pad + len(raw)) // 6]
        forms |= {core, core.replace("+", "-").replace("/", "_")}
    return {f for f in forms if f}


def _echoes(text: str, form: str) -> list[tuple[int, int]]:
    """Where `text` holds `form`: whole when short, else its prefixes of MASK_PREFIX_MIN
    characters or more, and any MASK_WINDOW characters of it."""
    if len(form) < MASK_PREFIX_MIN:
        return [(i, i + len(form)) for i in _find_all(text, form)]
    spans = []
    for i in _find_all(text, form[:MASK_PREFIX_MIN]):
        n = MASK_PREFIX_MIN
        while n < len(form) and i + n < len(text) and text[i + n] == form[n]:
            n += 1
        spans.append((i, i + n))
    if len(form) > MASK_WINDOW:
        windows = {form[i:i + MASK_WINDOW] for i in range(len(form) - MASK_WINDOW + 1)}
        firsts = {w[0] for w in windows}
        spans += [(i, i + MASK_WINDOW) for i in range(len(text) - MASK_WINDOW + 1)
                  if text[i] in firsts and text[i:i + MASK_WINDOW] in windows]
    return spans


def _find_all(text: str, part: str) -> list[int]:
    found, i = [], text.find(part)
    while i >= 0:
        found.append(i)
        i = text.find(part, i + 1)
    return found


def token_problem(token: str) -> str | None:
    """Why `token set` refuses `token`, or None. Never quotes it."""
    if not token or token != token.strip():
        return "the token is empty or has surrounding whitespace"
    return header_value_problem(token)


def header_value_problem(token: str) -> str | None:
    """Why `token` cannot be sent as an HTTP header value (a control character, which could
    end the header and start another), or None. Never quotes it."""
    for i, char in enumerate(token, 1):
        if (ord(char) < 0x20 and char != "\t") or 0x7F <= ord(char) <= 0x9F:
            what = {"\n": "a newline", "\r": "a carriage return"}.get(
                char, f"the control character U+{ord(char):04X}")
            return (f"the token has {what} at character {i}: it is not a valid HTTP header "
                    "value (a header could be injected)")
    return None


def set_command(account: str) -> str:
    """The command that stores this account's token: what a notice tells the user to run."""
    return f"aitrack token set --account {shlex.quote(account)}"
