"""Where IT's managed settings come from, and in which order they win.

Precedence inside the managed layer, first wins per key (`[endpoint]` as a whole):
  1. MDM-native settings: macOS managed preferences for the domain `io.aitrack`
     (`/Library/Managed Preferences/io.aitrack.plist`), or the Windows policy key
     `HKLM\\SOFTWARE\\Policies\\aitrack`;
  2. the managed TOML file (`paths.managed_profile`).
All of them win over the user profile. Any broken source makes aitrack local-only.

The registry holds one subkey per table (`endpoint`, `attributes`, `telemetry`, `prices`)
and one more level for `endpoint\\headers` and `prices\\<model>`. Table and setting names
match case-insensitively, as registry names do; REG_DWORD 0/1 are booleans, REG_SZ numbers
are accepted where a number is expected (REG_DWORD cannot hold 0.25), REG_MULTI_SZ is a list.
"""

from __future__ import annotations

import math
import os
import struct
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from aitrack.config import paths as locations
from aitrack.config.paths import Paths
from aitrack.config.profile_file import Layer, read_file
from aitrack.config.schema import FREE_TABLES, PRICE_KEYS, SCHEMA, ProfileError, validate

MAX_PLIST_BYTES = 1024 * 1024  # managed preferences are a few KiB
MAX_PLIST_DEPTH = 32  # settings are two levels deep (endpoint.headers, prices.<model>)
REGISTRY_KEY = r"SOFTWARE\Policies\aitrack"
REGISTRY_SOURCE = "HKLM\\" + REGISTRY_KEY  # how origins and problems name it

# A registry reader returns (values, subkey names) for a key path under HKLM, or None.
RegistryReader = Callable[[str], tuple[dict[str, Any], list[str]] | None]


def layers(paths: Paths, env: dict[str, str] | None = None,
           ) -> tuple[list[Layer], dict[str, list[str]]]:
    """Managed layers in precedence order, and the problems of each broken source."""
    found: list[Layer] = []
    problems: dict[str, list[str]] = {}
    sources: list[tuple[str, Callable[[], dict[str, Any] | None]]] = []
    if paths.managed_plist is not None:
        sources.append((str(paths.managed_plist), lambda: read_plist(paths.managed_plist)))
    reader = registry_reader()
    if reader is not None:
        sources.append((REGISTRY_SOURCE, lambda: read_registry(reader)))
    sources.append((str(paths.managed_profile), lambda: read_file(paths.managed_profile)))
    for source, read in sources:
        try:
            data = read()
        except ProfileError as exc:
            problems[str(exc.path)] = exc.problems
            continue
        if data:
            found.append(Layer("managed", source, data))
    return found, problems


def overrides(paths: Paths, env: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """Managed sources an environment variable replaced while the source it replaces exists:
    (a short reason, a line naming both). A user owns their machine, so this stays possible
    (IT staging, tests), but never silent: the profile marks what such a run forwards."""
    env = os.environ if env is None else env
    pairs = [("managed-profile-overridden", "AITRACK_MANAGED_PROFILE", paths.managed_profile,
              locations.default_managed_profile(env))]
    if sys.platform == "darwin" and paths.managed_plist is not None:
        pairs.append(("managed-plist-overridden", "AITRACK_MANAGED_PLIST", paths.managed_plist,
                      Path(locations.MANAGED_PLIST)))
    found = []
    for reason, variable, used, replaced in pairs:
        if Path(used) != replaced and replaced.exists() and not _same_file(used, replaced):
            found.append((reason, f"{variable}={used} replaces {replaced}"))
    return found


def _same_file(a: Path, b: Path) -> bool:
    try:
        return Path(a).read_bytes() == Path(b).read_bytes()
    except OSError:
        return False


def read_plist(path: Path) -> dict[str, Any] | None:
    # only where managed preferences exist (macOS): every profile load reads this module
    import plistlib
    from xml.parsers.expat import ExpatError  # with plistlib (see above)

    try:
        with open(path, "rb") as fh:
            blob = fh.read(MAX_PLIST_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ProfileError(path, [f"cannot read: {exc.strerror}"]) from None
    problem = _plist_problem(blob)
    if problem:
        raise ProfileError(path, [f"unreadable managed preferences: {problem}"])
    try:
        raw = plistlib.loads(blob)
    # damaged files also raise ExpatError (truncated XML), LookupError (an unknown XML
    # encoding) and IndexError (a binary plist's offsets): none is a ValueError
    except (plistlib.InvalidFileException, ValueError, ExpatError, LookupError) as exc:
        raise ProfileError(path, [f"unreadable managed preferences: {exc}"]) from None
    except (RecursionError, MemoryError):  # a binary plist nested thousands deep
        raise ProfileError(path, ["unreadable managed preferences: nested too deeply"]) from None
    if not isinstance(raw, dict):
        raise ProfileError(path, ["managed preferences must be a dictionary"])
    if not _string_keys(raw):
        raise ProfileError(path, ["unreadable managed preferences: a key that is not a "
                                  "string, a container that holds itself, or nesting "
                                  f"deeper than {MAX_PLIST_DEPTH} levels"])
    # MDM payload bookkeeping keys (PayloadUUID, ...) are not settings.
    data = {k: v for k, v in raw.items() if not k.startswith("Payload")}
    problems = validate(data)
    if problems:
        raise ProfileError(path, problems)
    return data


def _string_keys(node: Any, seen: tuple[int, ...] = ()) -> bool:
    """All dictionary keys are strings, and no container holds itself (a damaged binary
    plist can give both)."""
    if isinstance(node, (dict, list)):
        if id(node) in seen or len(seen) > MAX_PLIST_DEPTH:
            return False
        seen = (*seen, id(node))
        if isinstance(node, dict):
            return all(isinstance(k, str) and _string_keys(v, seen) for k, v in node.items())
        return all(_string_keys(v, seen) for v in node)
    return True


def _plist_problem(blob: bytes) -> str | None:
    """Checks plistlib lacks: a damaged binary plist can make it allocate gigabytes."""
    if len(blob) > MAX_PLIST_BYTES:
        return f"larger than {MAX_PLIST_BYTES // 1024} KiB"
    if blob.startswith(b"bplist00") and len(blob) >= 40:
        objects = struct.unpack(">Q", blob[-24:-16])[0]  # the trailer's object count
        if objects > len(blob):
            return "damaged binary plist (its object count exceeds its size)"
    return None


def read_registry(reader: RegistryReader) -> dict[str, Any] | None:
    """Map the policy key's subkeys onto profile tables (`endpoint`, `attributes`, ...)."""
    root = reader(REGISTRY_KEY)
    if root is None:
        return None
    _, tables = root
    data: dict[str, Any] = {}
    for stored in tables:
        table = _known(stored, (*SCHEMA, *FREE_TABLES))
        values, subkeys = reader(f"{REGISTRY_KEY}\\{stored}") or ({}, [])
        body = data.setdefault(table, {})
        for key, value in values.items():
            if not key:  # a key's (Default) value holds no setting
                continue
            key = _known(key, SCHEMA.get(table, {}))
            body[key] = _coerce(table, key, value)
        for sub in subkeys:  # endpoint\headers, prices\<model>
            sub_values, _ = reader(f"{REGISTRY_KEY}\\{stored}\\{sub}") or ({}, [])
            sub_key = _known(sub, SCHEMA.get(table, {}))
            names = PRICE_KEYS if table == "prices" else ()
            body[sub_key] = {_known(k, names): _coerce_nested(table, v)
                             for k, v in sub_values.items() if k}
    problems = validate(data)
    if problems:
        raise ProfileError(Path(REGISTRY_SOURCE), problems)
    return data or None


_BOOLS = {"0": False, "1": True, "false": False, "true": True}


def _known(name: str, names) -> str:
    """The schema's spelling of a registry name (registry names are case-insensitive)."""
    return next((n for n in names if n.lower() == name.lower()), name)


def _coerce(table: str, key: str, value: Any) -> Any:
    """REG_DWORD carries booleans as 0/1; REG_SZ may carry numbers for number keys."""
    if table == "attributes" and isinstance(value, int):
        return str(value)  # a cost centre entered as a REG_DWORD
    types = SCHEMA.get(table, {}).get(key, ((object,), None))[0]
    if bool in types and isinstance(value, int):
        return bool(value)
    if bool in types and isinstance(value, str) and value.strip().lower() in _BOOLS:
        return _BOOLS[value.strip().lower()]
    if isinstance(value, str) and (float in types or int in types):
        return _number(value, float in types)
    return value


def _coerce_nested(table: str, value: Any) -> Any:
    """Prices are numbers, usually written as REG_SZ ("2.5")."""
    if table == "prices" and isinstance(value, str):
        return _number(value, True)
    return value


def _number(text: str, allow_float: bool) -> Any:
    try:
        number = float(text.strip())
    except ValueError:
        return text  # validation names the key and the wrong type
    if not math.isfinite(number):
        return text
    if number.is_integer() and not (allow_float and "." in text):
        return int(number)
    return number if allow_float else text


def registry_reader() -> RegistryReader | None:
    """The Windows policy key's reader; None elsewhere. Tests replace this with a fake."""
    if sys.platform == "win32":  # pragma: no cover - Windows only
        return _winreg_reader()
    return None


def _winreg_reader() -> RegistryReader:  # pragma: no cover - Windows only
    import winreg  # Windows only

    def read(path: str) -> tuple[dict[str, Any], list[str]] | None:
        try:
            key = winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, path, 0,
                                 winreg.KEY_READ | winreg.KEY_WOW64_64KEY)
        except OSError:
            return None
        with key:
            n_sub, n_val, _ = winreg.QueryInfoKey(key)
            values = {}
            for i in range(n_val):
                name, value, kind = winreg.EnumValue(key, i)
                if kind == winreg.REG_EXPAND_SZ:  # e.g. %ProgramData%\aitrack\ca.pem
                    value = winreg.ExpandEnvironmentStrings(value)
                values[name] = value
            subs = [winreg.EnumKey(key, i) for i in range(n_sub)]
        return values, subs

    return read
