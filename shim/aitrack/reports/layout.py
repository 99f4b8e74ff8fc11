"""Terminal tables that fit a width: numbers are abbreviated first and long names cut,
then columns drop out; what room is left goes back to the names.

Each Column says when it drops (`drop`, the highest first, columns of equal `drop`
together) and what stands in for it (a merged column); a single column dropped on the way
comes back when it fits again. A column of names (`cut`) is cut to `least` characters
while columns drop, then widened into the room left, each name cut with an ellipsis.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TextIO

import click

from aitrack.domain.display import safe


def wants_color(stream: TextIO, choice: str = "auto", env: Mapping[str, str] | None = None,
                ) -> bool:
    """Whether to colour what goes to `stream`: --color always|never wins; then FORCE_COLOR
    (set and not 0 or false: colour even in a pipe, for `less -R`), then NO_COLOR (set and not
    empty: none); else colour on a terminal only."""
    if choice != "auto":
        return choice == "always"
    env = os.environ if env is None else env
    force = env.get("FORCE_COLOR")
    if force:
        return force.strip().lower() not in ("0", "false")
    if env.get("NO_COLOR"):
        return False
    return stream.isatty()


@dataclass
class Style:
    color: bool

    def __call__(self, text: str, **kw) -> str:
        if not self.color or not kw:
            return text
        return click.style(text, **kw)


@dataclass(eq=False)  # compared by identity: layouts ask which of these very columns show
class Column:
    header: str
    full: list[str]
    short: list[str]
    drop: int  # 0: never dropped; the highest goes first, columns of equal `drop` together
    left: bool = False
    stand_in: Column | None = None  # shown in their place when these drop (a merged column)
    styles: list[dict] = field(default_factory=list)  # per cell, click.style keywords
    cut: Callable[[str, int], str] | None = None  # a name cut to a width (names only)
    least: int = 0  # the narrowest a column of names is cut to

    def natural(self, short: bool) -> int:
        """Its width with every cell whole."""
        return max(len(self.header), *(len(v) for v in (self.short if short else self.full)))

    def narrowest(self, short: bool) -> int:
        width = self.natural(short)
        return max(len(self.header), min(width, self.least)) if short and self.cut else width


def _escape(columns: list[Column]) -> None:
    """Names from outside (projects, models, entrypoints) escaped and capped, in place (the
    layout compares columns by identity), so a 15 MiB model name costs one short cell."""
    for c in {id(c): c for col in columns for c in (col, col.stand_in) if c}.values():
        c.header = safe(c.header)
        c.full[:] = [safe(v) for v in c.full]
        c.short[:] = [safe(v) for v in c.short]


def _width_of(cols: list[Column], short: bool) -> int:
    return sum(c.narrowest(short) for c in cols) + 2 * (len(cols) - 1)


def widths(cols: list[Column], short: bool, width: int | None) -> list[int]:
    """Each shown column's width: names cut only as far as `width` needs."""
    out = [c.narrowest(short) for c in cols]
    if width is None:
        return out
    room = width - _width_of(cols, short)
    for i, c in enumerate(cols):
        grow = min(max(0, room), c.natural(short) - out[i])
        out[i] += grow
        room -= grow
    return out


def cut_end(text: str, width: int) -> str:
    """The right end of a name, which tells names apart (`…src-proj3`)."""
    return text if len(text) <= width else "…" + text[len(text) - width + 1:]


def cut_list(text: str, width: int) -> str:
    """A comma-separated list as whole names and `+N` for the rest; the first name cut with
    an ellipsis when even it does not fit."""
    if len(text) <= width:
        return text
    names = text.split(", ")
    for n in range(len(names) - 1, 0, -1):
        shown = ", ".join(names[:n]) + f" +{len(names) - n}"
        if len(shown) <= width:
            return shown
    more = f" +{len(names) - 1}" if len(names) > 1 else ""
    room = max(1, width - len(more))
    first = names[0] if len(names[0]) <= room else names[0][:room - 1] + "…"
    return first + more


def fit(columns: list[Column], width: int | None) -> tuple[list[Column], bool, list[str]]:
    """The columns to show, whether numbers are shortened (that comes first) and the headers
    of the columns left out."""
    if width is None or _width_of(columns, False) <= width:
        return columns, False, []
    cols = list(columns)
    while _width_of(cols, True) > width:
        top = max((c.drop for c in cols), default=0)
        if not top:
            break
        at = next(i for i, c in enumerate(cols) if c.drop == top)
        gone = [c for c in cols if c.drop == top]
        cols = [c for c in cols if c.drop != top]
        stand_in = next((c.stand_in for c in gone if c.stand_in), None)
        if stand_in is not None:
            cols.insert(at, stand_in)
    # a single column dropped on the way may fit again in the room left (never one of a
    # group, such as the token columns, which go and come together)
    alone = [c for c in columns if c.drop and c.stand_in is None
             and sum(o.drop == c.drop for o in columns) == 1]
    for c in sorted(alone, key=lambda c: c.drop):
        if c not in cols:
            trial = [o for o in columns if o in cols or o is c]
            trial += [o for o in cols if o not in columns]  # stand-ins, kept in place below
            trial.sort(key=lambda o: _position(columns, o))
            if _width_of(trial, True) <= width:
                cols = trial
    shown = {id(c) for c in cols}
    return cols, True, [c.header for c in columns if id(c) not in shown
                        and (c.stand_in is None or id(c.stand_in) not in shown)]


def _position(columns: list[Column], col: Column) -> float:
    """Where a column stands; a stand-in stands where the first column it replaces did."""
    for i, c in enumerate(columns):
        if c is col or c.stand_in is col:
            return i
    return len(columns)


def draw(columns: list[Column], width: int | None, style: Style, bold_last: bool,
         dim_rows: set[int]) -> tuple[list[str], list[str]]:
    """The table's lines and the headers of the columns left out to fit `width`."""
    _escape(columns)
    cols, short, hidden = fit(columns, width)
    sizes = widths(cols, short, width)
    cells = [[c.cut(v, w) for v in (c.short if short else c.full)] if c.cut else
             (c.short if short else c.full) for c, w in zip(cols, sizes, strict=True)]
    n_rows = len(cells[0]) if cells else 0

    def line(values: list[str], row: int | None = None) -> str:
        """A row; `values` are safe already."""
        parts = []
        for c, v, w in zip(cols, values, sizes, strict=True):
            text = v.ljust(w) if c.left else v.rjust(w)
            if row is not None and c.styles and c.styles[row]:
                text = style(text, **c.styles[row])
            parts.append(text)
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in sizes)
    out = [style(line([c.header for c in cols]), bold=True), rule]
    for i in range(n_rows):
        values = [vals[i] for vals in cells]
        if bold_last and i == n_rows - 1:
            out += [rule, style(line(values), bold=True)]
        elif i in dim_rows:
            out.append(style(line(values), dim=True))
        else:
            out.append(line(values, i))
    return out, hidden
