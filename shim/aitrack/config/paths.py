"""Every location aitrack reads or writes, resolved in one place.

`AITRACK_HOME=DIR` puts all per-user locations under DIR (tests and sandboxes);
otherwise platformdirs gives the platform's conventional directories.
`AITRACK_MANAGED_PROFILE=FILE` overrides where the IT-managed profile is read from (when a
managed file exists where it would otherwise be read, runs say so: `managed.overrides`);
`AITRACK_MANAGED_PLIST=FILE` likewise, on macOS only.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

APP = "aitrack"
MANAGED_PLIST = "/Library/Managed Preferences/io.aitrack.plist"


class Paths:
    """A plain class, not a dataclass: the wrapper builds one on its hot path."""

    __slots__ = ("config_dir", "data_dir", "state_dir", "cache_dir", "managed_profile",
                 "managed_plist")

    def __init__(self, config_dir: Path, data_dir: Path, state_dir: Path, cache_dir: Path,
                 managed_profile: Path, managed_plist: Path | None):
        self.config_dir = config_dir
        self.data_dir = data_dir
        self.state_dir = state_dir
        self.cache_dir = cache_dir
        self.managed_profile = managed_profile
        self.managed_plist = managed_plist  # macOS managed preferences (MDM)

    def __repr__(self) -> str:
        return f"Paths({', '.join(f'{k}={getattr(self, k)}' for k in self.__slots__)})"

    @property
    def user_profile(self) -> Path:
        return self.config_dir / "profile.toml"

    @property
    def ledger(self) -> Path:
        """SQLite database holding the ledger and, next to it, the outbox."""
        return self.data_dir / "ledger.db"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def shim_dir(self) -> Path:
        return self.data_dir / "bin"

    def as_dict(self) -> dict[str, Path]:
        out = {
            "config_dir": self.config_dir,
            "user_profile": self.user_profile,
            "managed_profile": self.managed_profile,
            "data_dir": self.data_dir,
            "ledger": self.ledger,
            "state_dir": self.state_dir,
            "log_dir": self.log_dir,
            "cache_dir": self.cache_dir,
            "shim_dir": self.shim_dir,
        }
        if self.managed_plist is not None:
            out["managed_plist"] = self.managed_plist
        return out


def from_strings(saved: dict[str, str]) -> Paths:
    """Paths saved by the start-up cache (no platformdirs import on the wrapper's path)."""
    fields = ("config_dir", "data_dir", "state_dir", "cache_dir", "managed_profile")
    plist = saved.get("managed_plist")
    return Paths(*(Path(saved[f]) for f in fields), Path(plist) if plist else None)


def default_managed_profile(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if sys.platform == "darwin":
        return Path("/Library/Application Support/aitrack/profile.toml")
    if sys.platform == "win32":
        return Path(env.get("PROGRAMDATA") or r"C:\ProgramData") / "aitrack" / "profile.toml"
    return Path("/etc/aitrack/profile.toml")


def default_managed_plist(env: Mapping[str, str] | None = None) -> Path | None:
    """macOS managed preferences delivered by an MDM configuration profile.

    None on every other platform, AITRACK_MANAGED_PLIST included: a source that does not
    exist there must not become a way to replace IT's settings.
    """
    if sys.platform != "darwin":
        return None
    env = os.environ if env is None else env
    override = env.get("AITRACK_MANAGED_PLIST")
    return Path(override) if override else Path(MANAGED_PLIST)


def resolve(env: Mapping[str, str] | None = None) -> Paths:
    env = os.environ if env is None else env
    managed = Path(env["AITRACK_MANAGED_PROFILE"]) if env.get("AITRACK_MANAGED_PROFILE") else (
        default_managed_profile(env)
    )
    plist = default_managed_plist(env)
    home = env.get("AITRACK_HOME")
    if home:
        root = Path(home).expanduser()
        return Paths(root / "config", root / "data", root / "state", root / "cache", managed, plist)
    import platformdirs  # deferred: only needed when AITRACK_HOME is unset

    dirs = platformdirs.PlatformDirs(APP, appauthor=False)
    return Paths(
        Path(dirs.user_config_dir),
        Path(dirs.user_data_dir),
        Path(dirs.user_state_dir),
        Path(dirs.user_cache_dir),
        managed,
        plist,
    )
