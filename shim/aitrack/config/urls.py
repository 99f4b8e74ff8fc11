"""Where the token may go: an endpoint URL is checked before any token travels to it."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import parse_qsl, urlsplit

# a header or query parameter with such a name is a secret in plain text
SECRET_NAME = re.compile(
    r"auth|key|token|secret|passw|cookie|signature|credential|session|honeycomb-team", re.I)


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def url_problem(url: str) -> str | None:
    """Why a URL may not carry the token, or None when it may."""
    if re.search(r"[\s\x00-\x1f\x7f]", url):
        return "not a valid URL (it contains spaces or control characters)"
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if parts.scheme not in ("https", "http") or not host:
        return "must be an https:// URL with a host"
    if parts.username is not None or parts.password is not None:
        return ("must not carry credentials (user:password@): they would sit in plain text in "
                "the profile; store the token in the keychain (`aitrack token set`) and name "
                "its header in endpoint.auth_header")
    secret = [name for name, _ in _query_pairs(parts.query) if SECRET_NAME.search(name)]
    if secret:
        return (f"must not carry a secret in its query ({secret[0]}=...): store the token in "
                "the keychain (`aitrack token set`) and name its header in "
                "endpoint.auth_header")
    if parts.scheme == "http" and not is_loopback_host(host):
        return ("plain http:// would send the token unencrypted; use https:// "
                "(plain HTTP is allowed only to a loopback address)")
    return None


def _query_pairs(query: str) -> list[tuple[str, str]]:
    return parse_qsl(query, keep_blank_values=True)
