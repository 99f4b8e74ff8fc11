"""Editing a JSON settings file in place: one key changed, every other byte kept.

The tools' user settings files (Claude Code's settings.json, and the other tools' JSON
settings) are the user's own: aitrack changes only its keys and keeps key order,
indentation, line endings and everything else as it was, so `agent uninstall` can give
the file back byte for byte.
"""

from __future__ import annotations

import json
from typing import Any

MISSING = object()  # what `get` returns for a key the file does not have


def raw(value: Any) -> str:
    """A value as aitrack writes it into a JSON settings file."""
    return json.dumps(value, ensure_ascii=False)


class _Member:
    __slots__ = ("key", "key_start", "key_end", "value_start", "value_end")

    def __init__(self, key: str, key_start: int, key_end: int, value_start: int,
                 value_end: int):
        self.key, self.key_start, self.key_end = key, key_start, key_end
        self.value_start, self.value_end = value_start, value_end


_WS = " \t\r\n"


def _ws(s: str, i: int) -> int:
    while i < len(s) and s[i] in _WS:
        i += 1
    return i


def _string_end(s: str, i: int) -> int:
    i += 1
    while s[i] != '"':
        i += 2 if s[i] == "\\" else 1
    return i + 1


def _value_end(s: str, i: int) -> int:
    if s[i] == '"':
        return _string_end(s, i)
    if s[i] in "{[":
        depth = 0
        while True:
            c = s[i]
            if c == '"':
                i = _string_end(s, i)
                continue
            if c in "{[":
                depth += 1
            elif c in "}]":
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
    while i < len(s) and s[i] not in ",}]" + _WS:
        i += 1
    return i


class JsonDoc:
    """A JSON object edited in place: changing one member leaves every other byte as it was
    (indentation, key order, escapes, line endings). The text must be valid JSON."""

    def __init__(self, text: str):
        self.bom = "\ufeff" if text.startswith("\ufeff") else ""
        text = text[len(self.bom):]
        if not text.strip():
            text = "{}\n"
        if not isinstance(json.loads(text), dict):
            raise ValueError("the top level is not an object")
        self.s = text
        self.newline = "\r\n" if "\r\n" in text else "\n"

    def text(self) -> str:
        return self.bom + self.s

    def value(self) -> dict:
        return json.loads(self.s)

    # -- locating

    def _object(self, path: tuple[str, ...]) -> int | None:
        """Where the object at `path` opens ('{'), or None."""
        i = _ws(self.s, 0)
        for key in path:
            member = self._member(i, key)
            if member is None or self.s[member.value_start] != "{":
                return None
            i = member.value_start
        return i

    def _members(self, start: int) -> tuple[list[_Member], int]:
        s, out = self.s, []
        i = _ws(s, start + 1)
        while s[i] != "}":
            key_end = _string_end(s, i)
            colon = _ws(s, key_end)
            value_start = _ws(s, colon + 1)
            value_end = _value_end(s, value_start)
            out.append(_Member(json.loads(s[i:key_end]), i, key_end, value_start, value_end))
            i = _ws(s, value_end)
            if s[i] == ",":
                i = _ws(s, i + 1)
        return out, i

    def _member(self, start: int, key: str) -> _Member | None:
        found = [m for m in self._members(start)[0] if m.key == key]
        return found[-1] if found else None  # JSON parsers keep the last duplicate

    def _located(self, path: tuple[str, ...]) -> _Member | None:
        parent = self._object(path[:-1])
        return None if parent is None else self._member(parent, path[-1])

    def get(self, path: tuple[str, ...]) -> Any:
        member = self._located(path)
        return MISSING if member is None else json.loads(
            self.s[member.value_start:member.value_end])

    def raw(self, path: tuple[str, ...]) -> str | None:
        member = self._located(path)
        return None if member is None else self.s[member.value_start:member.value_end]

    def keys(self, path: tuple[str, ...]) -> list[str] | None:
        start = self._object(path)
        return None if start is None else [m.key for m in self._members(start)[0]]

    # -- changing

    def set_raw(self, path: tuple[str, ...], text: str) -> None:
        """Set the member at `path` to the JSON `text`, making the objects on the way."""
        for depth in range(1, len(path)):
            if self._object(path[:depth]) is None:
                self.set_raw(path[:depth], "{}")
        start = self._object(path[:-1])
        members, close = self._members(start)
        same = [m for m in members if m.key == path[-1]]
        if same:
            m = same[-1]
            self.s = self.s[:m.value_start] + text + self.s[m.value_end:]
            return
        key = json.dumps(path[-1], ensure_ascii=False)
        if members:
            last = members[-1]
            lead = self.s[start + 1:members[0].key_start]
            colon = self.s[last.key_end:last.value_start]
            insert = f",{lead}{key}{colon}{text}"
            self.s = self.s[:last.value_end] + insert + self.s[last.value_end:]
            return
        unit = self._indent_unit()
        if unit is None:  # a file written on one line stays on one line
            self.s = f"{self.s[:start + 1]}{key}: {text}{self.s[close:]}"
            return
        own = self._line_indent(start)
        nl = self.newline
        self.s = (f"{self.s[:start + 1]}{nl}{own}{unit}{key}: {text}{nl}{own}"
                  f"{self.s[close:]}")

    def delete(self, path: tuple[str, ...]) -> None:
        start = self._object(path[:-1])
        if start is None:
            return
        members, close = self._members(start)
        index = max((n for n, m in enumerate(members) if m.key == path[-1]), default=None)
        if index is None:
            return
        if len(members) == 1:
            self.s = self.s[:start + 1] + self.s[close:]
        elif index > 0:
            cut_from, cut_to = members[index - 1].value_end, members[index].value_end
            self.s = self.s[:cut_from] + self.s[cut_to:]
        else:
            self.s = self.s[:members[0].key_start] + self.s[members[1].key_start:]

    def _indent_unit(self) -> str | None:
        """The file's indentation step; None for a file written on one line."""
        top = _ws(self.s, 0)
        members, close = self._members(top)
        if members:
            lead = self.s[top + 1:members[0].key_start]
            return lead.rsplit("\n", 1)[1] if "\n" in lead else None
        return "  "  # `{}`: Claude Code's own style

    def _line_indent(self, index: int) -> str:
        line_start = self.s.rfind("\n", 0, index) + 1
        line = self.s[line_start:index]
        return line[:len(line) - len(line.lstrip(" \t"))]
