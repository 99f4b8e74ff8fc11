"""What the child needs before it starts, from a cache that costs no heavy imports.

Loading a profile means tomllib, dataclasses and validation: tens of milliseconds before
the tool could start. The settings the child needs (attributes, telemetry switches,
signals, problems to report) are instead kept in a marshal file in the cache directory,
valid while the profile files (size, mtime, inode) and the environment variables that
locate them are unchanged. On a miss the full profile is loaded and the cache rewritten.
Windows policy settings live in the registry, which has no cheap signature: there the
profile is always loaded in full (untested: Windows).
"""

from __future__ import annotations

import marshal
import os
import sys

FORMAT = 2
ENV_KEYS = ("AITRACK_HOME", "AITRACK_MANAGED_PROFILE", "AITRACK_MANAGED_PLIST", "HOME",
            "GIT_CONFIG_GLOBAL",
            "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME",
            "USER", "LOGNAME", "USERNAME", "PROGRAMDATA", "LOCALAPPDATA", "APPDATA")


def cache_file(env: dict[str, str] | None = None) -> str:
    """paths.resolve().cache_dir / "startup.bin", computed without importing platformdirs.

    Mirrors platformdirs' user_cache_dir (a test checks they agree on this platform).
    """
    env = os.environ if env is None else env
    if env.get("AITRACK_HOME"):
        base = os.path.join(os.path.expanduser(env["AITRACK_HOME"]), "cache")
    elif sys.platform == "darwin":
        base = os.path.expanduser("~/Library/Caches/aitrack")
    elif sys.platform == "win32":
        base = os.path.join(env.get("LOCALAPPDATA", os.path.expanduser("~\\AppData\\Local")),
                            "aitrack", "Cache")
    else:
        base = os.path.join(env.get("XDG_CACHE_HOME", "").strip() or
                            os.path.expanduser("~/.cache"), "aitrack")
    return os.path.join(base, "startup.bin")


def _stat(path: str | None) -> tuple | None:
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _signature(files: list[str]) -> tuple:
    from aitrack import __version__

    return (FORMAT, __version__, sys.platform, tuple(os.environ.get(k) for k in ENV_KEYS),
            tuple((f, _stat(f)) for f in files))


def settings() -> dict:
    """The child-facing settings: from the cache when it is valid, else freshly loaded."""
    path = cache_file()
    if sys.platform != "win32":
        try:
            with open(path, "rb") as fh:
                cached = marshal.load(fh)
            if cached["signature"] == _signature(cached["files"]):
                return cached
        except (OSError, EOFError, ValueError, TypeError, KeyError):
            pass
    fresh = compute()
    if sys.platform != "win32":
        _write(path, fresh)
    return fresh


def compute() -> dict:
    """Load the profile in full and keep what the child's start needs."""
    from aitrack import paths, profile
    from aitrack.attribution import git_config_files, resource_attributes

    locations = paths.resolve()
    files = [str(locations.managed_profile), str(locations.user_profile)]
    if locations.managed_plist is not None:
        files.append(str(locations.managed_plist))
    files += git_config_files()  # user.email defaults to git's
    signature = _signature(files)  # before reading: a concurrent edit invalidates next time
    try:
        p = profile.load(locations)
    except Exception as exc:  # noqa: BLE001 - a bug reading a profile must not cost the ledger
        p = profile.Profile(broken={"cannot read the profiles, running local-only": [
            f"{type(exc).__name__}: {exc}"]})
    endpoint = p.endpoint
    notices = []
    for source, problems in p.broken.items():
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        notices.append(f"{source}: {problems[0]}{more}; run `aitrack profile show` for details")
    return {
        "signature": signature,
        "files": files,
        "paths": {k: str(getattr(locations, k)) for k in locations.__slots__
                  if getattr(locations, k) is not None},
        "shim_dir": str(locations.shim_dir),
        "forward_signals": tuple(endpoint.signals) if endpoint else (),
        "enforced_attributes": resource_attributes(p),
        "attributes": resource_attributes(p, with_email=False),
        "telemetry": dict(p.telemetry.__dict__),
        "signals": ("metrics", "logs") + (
            ("traces",) if endpoint and "traces" in endpoint.signals else ()),
        "notices": notices,
    }


def _write(path: str, data: dict) -> None:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as fh:
            marshal.dump(data, fh)
        os.replace(tmp, path)
    except OSError:
        pass  # a cache that cannot be written only costs start-up time
