"""The resource attributes enforced on every payload: the profile's, plus user defaults."""

from __future__ import annotations

import getpass
import os
import subprocess
from functools import cache

from aitrack.config.profile import Profile

USER_ID = "user.id"
USER_EMAIL = "user.email"


@cache
def login_name() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in a bare container or service account
        return "unknown"


@cache
def git_email() -> str | None:
    """`git config --global user.email`, or None when git or the setting is missing."""
    try:
        out = subprocess.run(["git", "config", "--global", "user.email"], capture_output=True,
                             text=True, timeout=2, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    email = out.stdout.strip()
    return email or None


def git_config_files() -> list[str]:
    """Where `git config --global` reads from, so a cache can notice a changed email."""
    home = os.path.expanduser("~")
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    files = [os.path.join(home, ".gitconfig"), os.path.join(xdg, "git", "config")]
    if os.environ.get("GIT_CONFIG_GLOBAL"):
        files.append(os.environ["GIT_CONFIG_GLOBAL"])
    return files


def resource_attributes(profile: Profile, with_email: bool = True) -> dict[str, str]:
    """Profile attributes with `user.id`/`user.email` defaulted when the profile leaves them out.

    with_email=False skips the git call (start-up path); the receiver adds it later.
    """
    attrs = dict(profile.attributes)
    attrs.setdefault(USER_ID, login_name())
    if with_email and USER_EMAIL not in attrs:
        email = git_email()
        if email:
            attrs[USER_EMAIL] = email
    return attrs


def default_origins(profile: Profile) -> dict[str, str]:
    out = {}
    if USER_ID not in profile.attributes:
        out[f"attributes.{USER_ID}"] = "default (OS login name)"
    if USER_EMAIL not in profile.attributes and git_email():
        out[f"attributes.{USER_EMAIL}"] = "default (git config --global user.email)"
    return out
