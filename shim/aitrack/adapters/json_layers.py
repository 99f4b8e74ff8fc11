"""Settings kept as layered JSON files: machine defaults, the user's file, machine overrides.

Some tools read one settings document merged from several JSON files, object by object (a
key of a later file wins, objects merge), and accept comments in them. This module reads
such files the way those tools do, for `diagnose` and doctor; editing the user's file is
json_doc's (which refuses comments: aitrack never rewrites a file it cannot keep byte for
byte). The tool's package names its files and keys.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def strip_comments(text: str) -> str:
    """The text without `//` and `/* */` comments (outside strings), trailing commas kept."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("//", i):
            i = text.find("\n", i)
            i = n if i < 0 else i
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def read(path: Path) -> dict:
    """One file's document ({} when it is missing, unreadable or not an object)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return {}
    try:
        data = json.loads(strip_comments(text))
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def merged(paths: Iterable[Path]) -> tuple[dict, dict[tuple[str, ...], str]]:
    """The files merged in order (later wins, objects merge key by key), and for each leaf
    key path the file that set it."""
    doc: dict = {}
    origin: dict[tuple[str, ...], str] = {}
    for path in paths:
        _merge(doc, read(path), (), str(path), origin)
    return doc, origin


def _merge(into: dict, layer: dict, at: tuple[str, ...], where: str,
           origin: dict[tuple[str, ...], str]) -> None:
    for key, value in layer.items():
        here = (*at, str(key))
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value, here, where, origin)
        else:
            into[key] = json.loads(json.dumps(value)) if isinstance(value, dict) else value
            origin[here] = where


def get(doc: dict, path: tuple[str, ...]) -> Any:
    """The value at a key path, or None."""
    for key in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc
