"""Reading one profile file: parse it, validate it (schema.py), and for a user's profile
leave out only the settings that are invalid.

Both layers read files through here: the managed sources (managed.py) and the user
profile (profile.py), so a problem is worded the same wherever it is found.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aitrack.config.schema import FREE_TABLES, ProfileError, validate


def read_file(path: Path) -> dict[str, Any] | None:
    """Parse and validate one profile file; None if it does not exist."""
    parsed = _parse(path)
    if parsed is None:
        return None
    data, text = parsed
    problems = validate(data, text)
    if problems:
        raise ProfileError(path, problems)
    return data


def read_lenient(path: Path) -> tuple[dict[str, Any] | None, list[str]]:
    """A user's profile file without the settings that have problems, and the problems:
    one typo costs its own key, not the file. [endpoint] is used whole, so a problem in it
    leaves the whole table out. ProfileError when the file cannot be read or parsed."""
    parsed = _parse(path)
    if parsed is None:
        return None, []
    data, text = parsed
    problems = validate(data, text)
    return (_without_problems(data) if problems else data), problems


def _without_problems(data: dict[str, Any]) -> dict[str, Any]:
    """`data` with each table or key that validates wrong on its own left out."""
    kept: dict[str, Any] = {}
    for table, body in data.items():
        if not validate({table: body}):
            kept[table] = body
        elif isinstance(body, dict) and table in (*FREE_TABLES, "agent", "budget",
                                                  "telemetry"):
            good: dict[str, Any] = {}
            for key, value in body.items():
                if table == "prices" and isinstance(value, dict):
                    value = {k: v for k, v in value.items()
                             if not validate({table: {key: {k: v}}})}
                if not validate({table: {key: value}}):
                    good[key] = value
            kept[table] = good
    return kept


def _parse(path: Path) -> tuple[dict[str, Any], str] | None:
    """A profile file's TOML and text; None if it does not exist."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ProfileError(path, [f"cannot read: {exc.strerror}"]) from None
    try:
        text = raw.decode("utf-8-sig")  # Windows editors and PowerShell may write a BOM
        return tomllib.loads(text), text
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ProfileError(path, [f"line {line}: not UTF-8 text; save the file as UTF-8"]
                           ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(path, [f"invalid TOML: {exc}"]) from None
    except (RecursionError, MemoryError):  # arrays or inline tables nested thousands deep
        raise ProfileError(path, ["invalid TOML: nested too deeply (arrays or inline tables "
                                  "inside one another hundreds of times); no profile needs "
                                  "that, fix or delete the file"]) from None


@dataclass
class Layer:
    name: str  # "managed" | "user"
    source: str  # what to show as the origin, e.g. the file path
    data: dict[str, Any]
