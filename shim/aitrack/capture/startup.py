"""What the child needs before it starts, from a cache that costs no heavy imports.

Loading a profile means tomllib, dataclasses and validation: tens of milliseconds before
the tool could start. The settings the child needs (attributes, telemetry switches,
signals, problems to report) are instead kept in a marshal file in the cache directory,
valid while the profile files (size, mtime, inode) and the environment variables that
locate them are unchanged. On a miss the full profile is loaded and the cache rewritten.
Windows policy settings live in the registry, which has no cheap signature: there the
profile is always loaded in full (untested: Windows).

The cache is a convenience, never an authority. It is used only when its checksum and the
type of every value it holds verify (a damaged one is rebuilt, and can neither stop the
tool nor move the ledger), and it only shapes the child's start. What decides what is
counted and forwarded (the enforced attributes, the forwarded signals, the ledger's
location) is derived again from the profiles once the child runs (tracked_run), or by the
agent from its own profile.
"""

from __future__ import annotations

import marshal
import os
import sys
import zlib

from aitrack import __version__, adapters

FORMAT = 5
MAGIC = b"aitrack-startup\x05"  # the format's number in its last byte
MAX_BYTES = 1024 * 1024
SIGNALS = ("metrics", "logs", "traces")
# The identity is the OS account's (the signature's uid), never these variables; a managed
# machine marks them when they name another account or point git elsewhere
# (config/identity.py), so they still decide whether the cache is current.
ENV_KEYS = ("AITRACK_HOME", "AITRACK_MANAGED_PROFILE", "AITRACK_MANAGED_PLIST", "HOME",
            "GIT_CONFIG_GLOBAL", "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT",
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
    # the uid: another account sharing this HOME (`sudo` without -H) has its own identity
    uid = os.getuid() if hasattr(os, "getuid") else None
    return (FORMAT, __version__, sys.platform, uid, tuple(os.environ.get(k) for k in ENV_KEYS),
            tuple((f, _stat(f)) for f in files))


def settings() -> dict:
    """The child-facing settings: from the cache when it verifies and is current, else
    freshly loaded (and the cache rewritten)."""
    path = cache_file()
    if sys.platform != "win32":
        cached = _read(path)
        if cached is not None and cached["signature"] == _signature(cached["files"]):
            return cached
    fresh = compute()
    if sys.platform != "win32":
        _write(path, fresh)
    return fresh


def compute() -> dict:
    """Load the profile in full and keep what the child's start needs."""
    # a cache miss only: the profile and its validation cost tens of ms (see the docstring)
    from aitrack.capture import ports  # the agent's port comes with the profile
    from aitrack.config import paths, profile  # a cache miss only, as above
    from aitrack.config.identity import git_config_files, resource_attributes  # as above

    locations = paths.resolve()
    files = [str(locations.managed_profile), str(locations.user_profile)]
    if locations.managed_plist is not None:
        files.append(str(locations.managed_plist))
    # what an override replaces: the run is marked while that exists (profile.integrity)
    for replaced in (str(paths.default_managed_profile()),
                     paths.MANAGED_PLIST if sys.platform == "darwin" else None):
        if replaced and replaced not in files:
            files.append(replaced)
    files += git_config_files()  # user.email defaults to git's
    files += _tool_settings_files()  # whether each tool's own settings name the agent
    # the agent's port, when `aitrack agent install` chose it (or an older install fixed it)
    files += [str(ports.port_file(locations)), str(ports.legacy_marker(locations))]
    signature = _signature(files)  # before reading: a concurrent edit invalidates next time
    try:
        p = profile.load(locations)
    except Exception as exc:  # noqa: BLE001 - a bug reading a profile must not cost the ledger
        p = profile.Profile(broken={"cannot read the profiles, running local-only": [
            f"{type(exc).__name__}: {exc}"]})
    endpoint = p.endpoint
    port = ports.agent_port(locations, p)
    notices = []
    for line in p.problem_lines():  # one per source, as every command says it
        notices.append("".join(c if c.isprintable() else "?" for c in line))  # a terminal
    fresh = {
        "signature": signature,
        "files": files,
        "paths": {k: str(getattr(locations, k)) for k in locations.__slots__
                  if getattr(locations, k) is not None},
        "shim_dir": str(locations.shim_dir),
        "attributes": resource_attributes(p, with_email=False),
        "telemetry": dict(p.telemetry.__dict__),
        "signals": ("metrics", "logs") + (
            ("traces",) if endpoint and "traces" in endpoint.signals else ()),
        "notices": notices,
        "agent": {"port": port, "wired": _wired(port) if port else {}},
    }
    _make_private(fresh["paths"])  # what an older aitrack left readable to others
    return fresh


def _tool_settings_files() -> list[str]:
    files: list[str] = []
    for tool in adapters.TOOLS:
        settings = adapters.part(tool, "settings")
        files += settings.settings_files() if settings is not None else []
    return files


def _wired(port: int) -> dict[str, bool]:
    """Per tool: its own settings send its telemetry to the agent (then the wrapper leaves
    the tool's arguments and environment alone)."""
    wired = {}
    for tool in adapters.TOOLS:
        settings = adapters.part(tool, "settings")
        try:
            wired[tool] = settings is not None and bool(settings.points_at_agent(port))
        except Exception:  # noqa: BLE001 - a damaged settings file: the wrapper's own way
            wired[tool] = False
    return wired


def _read(path: str) -> dict | None:
    """The cache's settings when its checksum and every key and type verify, else None."""
    try:
        with open(path, "rb") as fh:
            if hasattr(os, "geteuid") and os.fstat(fh.fileno()).st_uid != os.geteuid():
                return None  # another account's (a shared HOME): never its settings
            blob = fh.read(MAX_BYTES + 1)
    except OSError:
        return None
    head = len(MAGIC) + 4
    if len(blob) > MAX_BYTES or blob[:len(MAGIC)] != MAGIC or \
            zlib.crc32(blob[head:]) != int.from_bytes(blob[len(MAGIC):head], "big"):
        return None
    try:
        data = marshal.loads(blob[head:])
    except (EOFError, ValueError, TypeError):
        return None
    return data if _well_formed(data) else None


_KEYS = {"signature", "files", "paths", "shim_dir", "attributes", "telemetry", "signals",
         "notices", "agent"}
_PATH_KEYS = {"config_dir", "data_dir", "state_dir", "cache_dir", "managed_profile"}
_TELEMETRY = {"metric_export_interval_ms": int, "logs_export_interval_ms": int,
              "log_user_prompts": bool, "log_tool_details": bool}


def _well_formed(d: object) -> bool:
    """Every key the wrapper reads is there, with the type (and range) it expects."""
    if type(d) is not dict or d.keys() != _KEYS:
        return False
    telemetry, paths = d["telemetry"], d["paths"]
    return (type(d["signature"]) is tuple and _strings(d["files"], list)
            and _string_map(paths) and _PATH_KEYS <= paths.keys() <= _PATH_KEYS | {"managed_plist"}
            and all(paths.values()) and _text(d["shim_dir"])
            and _signals(d["signals"]) and {"metrics", "logs"} <= set(d["signals"])
            and _string_map(d["attributes"])
            and type(telemetry) is dict and telemetry.keys() == _TELEMETRY.keys()
            and all(type(telemetry[k]) is t for k, t in _TELEMETRY.items())
            and min(telemetry["metric_export_interval_ms"],
                    telemetry["logs_export_interval_ms"]) >= 100
            and _strings(d["notices"], list) and all(n.isprintable() for n in d["notices"])
            and _agent(d["agent"]))


def _agent(a: object) -> bool:
    port = a["port"] if type(a) is dict else None
    return (type(a) is dict and a.keys() == {"port", "wired"}
            and (port is None or (type(port) is int and 1024 <= port <= 65535))
            and type(a["wired"]) is dict
            and all(type(k) is str and type(v) is bool for k, v in a["wired"].items()))


def _text(value: object) -> bool:
    return type(value) is str and "\0" not in value


def _strings(value: object, kind: type) -> bool:
    return type(value) is kind and all(_text(v) for v in value)


def _string_map(value: object) -> bool:
    return type(value) is dict and all(_text(k) and _text(v) for k, v in value.items())


def _signals(value: object) -> bool:
    return type(value) is tuple and all(type(s) is str and s in SIGNALS for s in value)


def _write(path: str, data: dict) -> None:
    from aitrack.config.private_files import write_private  # a cache miss only (pathlib)

    payload = marshal.dumps(data)
    try:
        write_private(path, MAGIC + zlib.crc32(payload).to_bytes(4, "big") + payload)
    except OSError:
        pass  # a cache that cannot be written only costs start-up time


def _make_private(paths: dict[str, str]) -> None:
    """Directories and logs an earlier aitrack made readable by others: 0700 and 0600 now."""
    from aitrack.config.private_files import DIR_MODE, tighten  # a cache miss only

    logs = os.path.join(paths["state_dir"], "logs")
    for directory in (paths["config_dir"], paths["data_dir"], paths["state_dir"],
                      paths["cache_dir"], logs):
        tighten(directory, DIR_MODE)
    for name in ("forwarder.log", "forwarder.log.1"):
        tighten(os.path.join(logs, name))
    tighten(os.path.join(paths["cache_dir"], "startup.bin"))
