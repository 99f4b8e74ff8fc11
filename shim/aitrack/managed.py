"""Where IT's managed settings come from, and in which order they win.

Precedence inside the managed layer, first wins per key:
  1. MDM-native settings: macOS managed preferences for the domain `io.aitrack`
     (`/Library/Managed Preferences/io.aitrack.plist`), or the Windows policy key
     `HKLM\\SOFTWARE\\Policies\\aitrack`;
  2. the managed TOML file (`paths.managed_profile`).
All of them win over the user profile. Any broken source makes aitrack local-only.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aitrack.paths import Paths
from aitrack.profile import SCHEMA, Layer, ProfileError, read_file, validate

REGISTRY_KEY = r"SOFTWARE\Policies\aitrack"

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
    if sys.platform == "win32":
        sources.append((r"HKLM\\" + REGISTRY_KEY, lambda: read_registry(_winreg_reader())))
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


def read_plist(path: Path) -> dict[str, Any] | None:
    import plistlib

    try:
        with open(path, "rb") as fh:
            raw = plistlib.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, plistlib.InvalidFileException, ValueError) as exc:
        raise ProfileError(path, [f"unreadable managed preferences: {exc}"]) from None
    if not isinstance(raw, dict):
        raise ProfileError(path, ["managed preferences must be a dictionary"])
    # MDM payload bookkeeping keys (PayloadUUID, ...) are not settings.
    data = {k: v for k, v in raw.items() if not k.startswith("Payload")}
    problems = validate(data)
    if problems:
        raise ProfileError(path, problems)
    return data


def read_registry(reader: RegistryReader) -> dict[str, Any] | None:
    """Map the policy key's subkeys onto profile tables (`endpoint`, `attributes`, ...)."""
    root = reader(REGISTRY_KEY)
    if root is None:
        return None
    _, tables = root
    data: dict[str, Any] = {}
    for table in tables:
        values, subkeys = reader(f"{REGISTRY_KEY}\\{table}") or ({}, [])
        body = {k: _coerce(table, k, v) for k, v in values.items()}
        for sub in subkeys:  # endpoint\headers, prices\<model>
            sub_values, _ = reader(f"{REGISTRY_KEY}\\{table}\\{sub}") or ({}, [])
            body[sub] = dict(sub_values)
        data[table] = body
    problems = validate(data)
    if problems:
        raise ProfileError(Path("HKLM\\" + REGISTRY_KEY), problems)
    return data or None


def _coerce(table: str, key: str, value: Any) -> Any:
    """REG_DWORD carries booleans as 0/1; REG_SZ may carry numbers for float keys."""
    types = SCHEMA.get(table, {}).get(key, ((object,), None))[0]
    if bool in types and isinstance(value, int):
        return bool(value)
    if float in types and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _winreg_reader() -> RegistryReader:  # pragma: no cover - Windows only
    import winreg

    def read(path: str) -> tuple[dict[str, Any], list[str]] | None:
        try:
            key = winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, path)
        except OSError:
            return None
        with key:
            n_sub, n_val, _ = winreg.QueryInfoKey(key)
            values = {}
            for i in range(n_val):
                name, value, _kind = winreg.EnumValue(key, i)
                values[name] = value
            subs = [winreg.EnumKey(key, i) for i in range(n_sub)]
        return values, subs

    return read
