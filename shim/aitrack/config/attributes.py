"""Resource attribute names: which ones the enforcement treats as one, which only aitrack sets.

A tool (or anyone holding a receiver's key) may spell an enforced attribute another way to
slip a value past the profile's: `team_id`, `Team-ID`, `teamid`, `team\u2024id` (a one-dot
leader), `team.id\u200b` (a zero-width space). Names are compared as `attribute_key` says.
"""

from __future__ import annotations

import functools
import re
import unicodedata

IDENTITY_KEYS = ("user.id", "user.email")  # from a managed source or the OS once IT manages
INTEGRITY_KEY = "aitrack.profile.integrity"  # set by aitrack only: how this run left IT's
SOURCE_KEY = "aitrack.identity.source"  # set by aitrack only: user.email is not IT's ("git")
RESERVED_PREFIX = "aitrack"  # attributes aitrack sets itself: never a profile's or a client's
EMAIL_PLACEHOLDER = "{user}"  # [identity] email: the OS account's name
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def attribute_key(name: str) -> str:
    """An attribute name as the enforcement compares it: look-alikes are one name.

    NFKC (a one-dot leader U+2024 is a dot, a fullwidth letter a letter), casefolded, without
    zero-width or other invisible characters and spaces, and without `.`, `_` and `-`, so
    `team_id`, `Team-ID`, `teamid` and `team.id\u200b` are all `team.id`.
    """
    return _attribute_key(name)


_SEPARATORS = str.maketrans("", "", "._-")


@functools.lru_cache(maxsize=4096)  # a tool's export repeats the same few dozen names
def _attribute_key(name: str) -> str:
    text = unicodedata.normalize("NFKC", name).casefold()
    text = "".join(c for c in text if not _invisible(c))
    return text.translate(_SEPARATORS)


def _invisible(char: str) -> bool:
    # format characters (zero-width space, joiners, bidi marks), spaces and controls
    return char.isspace() or unicodedata.category(char) in ("Cf", "Cc", "Zs", "Zl", "Zp")


def reserved(name: str) -> bool:
    """An attribute only aitrack may set (`aitrack.profile.integrity`, ...), however spelled."""
    return attribute_key(name).startswith(RESERVED_PREFIX)


def email_problem(template: str) -> str | None:
    """Why an [identity] email template is not one, or None."""
    if _CONTROL.search(template):
        return "must not contain control characters"
    rest = template.replace(EMAIL_PLACEHOLDER, "")
    if "{" in rest or "}" in rest:
        return (f"the only placeholder is {EMAIL_PLACEHOLDER} (the OS account's name), as in "
                f"\"{EMAIL_PLACEHOLDER}@corp.example\"")
    if "@" not in rest:
        return f"must be an email address, such as \"{EMAIL_PLACEHOLDER}@corp.example\""
    return None
