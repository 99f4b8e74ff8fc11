"""Who the org is told a run belongs to: `user.id` and `user.email`, on top of the profile's
attributes, and what in the environment tried to change them.

- `user.id` is the profile's attribute (only a managed one on a managed machine), else the
  OS account the process runs as: its passwd entry on POSIX, the process token's user on
  Windows. Never LOGNAME, USER or USERNAME: anyone can set those.
- `user.email` is the profile's attribute; else `[identity] email`, a template whose
  `{user}` is the OS account's name; else git's `user.email` where `[identity]
  email_from_git` allows it (by default on an unmanaged machine only), marked
  `aitrack.identity.source=git` on what is sent. On a managed machine git is asked as the
  account itself: its home, none of the environment's GIT_* variables or XDG_CONFIG_HOME.
- On a managed machine, the environment naming another account (LOGNAME=ceo), or pointing
  git elsewhere where git's email is used, changes nothing and is made visible:
  `aitrack.profile.integrity=identity-env-ignored` on what is sent, and a doctor WARN.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from aitrack.config.attributes import EMAIL_PLACEHOLDER, INTEGRITY_KEY, SOURCE_KEY
from aitrack.config.profile import Profile

try:
    import pwd
except ImportError:  # Windows: the account is the process token's (see _windows_account)
    pwd = None

USER_ID = "user.id"
USER_EMAIL = "user.email"
ENV_IGNORED = "identity-env-ignored"  # the integrity reason: the environment tried
LOGIN_VARIABLES = ("LOGNAME", "USER", "USERNAME")
# what makes `git config --global` read another file than the account's own
GIT_REDIRECTS = ("GIT_CONFIG_GLOBAL", "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT",
                 "XDG_CONFIG_HOME")


@dataclass(frozen=True)
class Account:
    name: str
    home: str | None  # None: the account database names none


@cache
def os_account() -> Account:
    """The account this process runs as, from the OS, whatever the environment says."""
    if pwd is None:  # pragma: no cover - Windows only
        return _windows_account()
    uid = os.getuid()
    try:
        entry = pwd.getpwuid(uid)
    except KeyError:  # a uid without a passwd entry (a container's --user 1234)
        return Account(str(uid), None)
    return Account(entry.pw_name, entry.pw_dir or None)


def _windows_account() -> Account:  # pragma: no cover - Windows only, untested here
    """The process token's user (GetUserNameExW reads the token, not %USERNAME%), and its
    profile folder (GetUserProfileDirectoryW, not %USERPROFILE%)."""
    import ctypes  # Windows only: not loaded elsewhere
    from ctypes import wintypes  # as above

    name_sam_compatible, token_query = 2, 0x0008
    size = wintypes.ULONG(512)
    buffer = ctypes.create_unicode_buffer(size.value)
    if not ctypes.WinDLL("secur32").GetUserNameExW(name_sam_compatible, buffer,
                                                   ctypes.byref(size)):
        return Account("unknown", None)
    name = buffer.value.rpartition("\\")[2]  # DOMAIN\user: the user, as %USERNAME% had it
    home = None
    token = wintypes.HANDLE()
    kernel32, advapi32 = ctypes.WinDLL("kernel32"), ctypes.WinDLL("advapi32")
    if advapi32.OpenProcessToken(kernel32.GetCurrentProcess(), token_query,
                                 ctypes.byref(token)):
        try:
            size = wintypes.DWORD(1024)
            folder = ctypes.create_unicode_buffer(size.value)
            if ctypes.WinDLL("userenv").GetUserProfileDirectoryW(token, folder,
                                                                 ctypes.byref(size)):
                home = folder.value
        finally:
            kernel32.CloseHandle(token)
    return Account(name, home)


def login_name() -> str:
    return os_account().name


@cache
def git_email(account_home: str | None = None) -> str | None:
    """`git config --global user.email`, or None when git or the setting is missing.

    With `account_home`, as the OS account itself: HOME set to it, and none of the
    environment's variables that point git at another configuration."""
    env = None
    if account_home is not None:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("GIT_") and k != "XDG_CONFIG_HOME"}
        env["HOME"] = account_home
        if sys.platform == "win32":  # pragma: no cover - git for Windows reads USERPROFILE too
            env["USERPROFILE"] = account_home
    try:
        out = subprocess.run(["git", "config", "--global", "user.email"], capture_output=True,
                             text=True, timeout=2, stdin=subprocess.DEVNULL, env=env)
    except (OSError, subprocess.SubprocessError):
        return None
    email = out.stdout.strip()
    return email or None


def git_config_files(env: Mapping[str, str] | None = None) -> list[str]:
    """Where `git config --global` may read from (the environment's and the account's),
    so a cache can notice a changed email."""
    env = os.environ if env is None else env
    homes = [os.path.expanduser("~"), os_account().home]
    files = []
    for home in dict.fromkeys(h for h in homes if h):
        files += [os.path.join(home, ".gitconfig"), os.path.join(home, ".config", "git", "config")]
    if env.get("XDG_CONFIG_HOME"):
        files.append(os.path.join(env["XDG_CONFIG_HOME"], "git", "config"))
    if env.get("GIT_CONFIG_GLOBAL"):
        files.append(env["GIT_CONFIG_GLOBAL"])
    return files


def email_source(profile: Profile) -> str | None:
    """Where user.email comes from: "attribute", "template", "git", or None (no email)."""
    if USER_EMAIL in profile.attributes:
        return "attribute"
    if profile.identity.email:
        return "template"
    return "git" if profile.identity.email_from_git else None


def resource_attributes(profile: Profile, with_email: bool = True,
                        env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Profile attributes with `user.id`/`user.email` filled in as the module docstring says,
    and what the environment tried marked in `aitrack.profile.integrity`.

    with_email=False skips the git call (start-up path); the receiver adds it later.
    """
    account = os_account()
    attrs = dict(profile.attributes)
    attrs.setdefault(USER_ID, account.name)
    source = email_source(profile)
    if source == "template":
        attrs[USER_EMAIL] = profile.identity.email.replace(EMAIL_PLACEHOLDER, account.name)
    elif source == "git" and with_email:
        email = git_email(account.home if profile.managed else None)
        if email:
            attrs[USER_EMAIL] = email
            attrs[SOURCE_KEY] = "git"  # the user's own word, not IT's
    if environment_changes(profile, env):
        reasons = [r for r in attrs.get(INTEGRITY_KEY, "").split(",") if r]
        attrs[INTEGRITY_KEY] = ",".join(dict.fromkeys([*reasons, ENV_IGNORED]))
    return attrs


def environment_changes(profile: Profile, env: Mapping[str, str] | None = None) -> list[str]:
    """On a managed machine, what in the environment tries to change the identity (and is
    ignored): one line each. Nothing on an unmanaged machine, whose user owns it."""
    if not profile.managed:
        return []
    env = os.environ if env is None else env
    account = os_account()
    same = str.casefold if sys.platform == "win32" else str  # Windows names ignore case
    lines = [f"{var}={env[var]} is not your OS account ({account.name}): ignored, user.id is "
             f"{profile.attributes.get(USER_ID, account.name)}"
             for var in LOGIN_VARIABLES if env.get(var) and same(env[var]) != same(account.name)]
    if email_source(profile) == "git":
        lines += [f"{var} is set: git's user.email is read from your account's own "
                  "configuration, not where it points" for var in GIT_REDIRECTS if env.get(var)]
        home = env.get("HOME")
        if home and account.home and os.path.realpath(home) != os.path.realpath(account.home):
            lines.append(f"HOME={home} is not your account's home ({account.home}): git's "
                         "user.email is read from the account's own")
    return lines


def default_origins(profile: Profile) -> dict[str, str]:
    out = {}
    if USER_ID not in profile.attributes:
        out[f"attributes.{USER_ID}"] = "default (the OS account)"
    source = email_source(profile)
    if source == "template":
        out[f"attributes.{USER_EMAIL}"] = "identity.email (" + profile.origins.get(
            "identity.email", "?") + ")"
    elif source == "git" and git_email(os_account().home if profile.managed else None):
        out[f"attributes.{USER_EMAIL}"] = "default (git config --global user.email)"
        out[f"attributes.{SOURCE_KEY}"] = "aitrack (user.email is git's)"
    changes = environment_changes(profile)
    if changes:
        before = profile.origins.get(f"attributes.{INTEGRITY_KEY}")
        line = "aitrack (" + "; ".join(changes) + ")"
        out[f"attributes.{INTEGRITY_KEY}"] = f"{before}; {line}" if before else line
    return out
