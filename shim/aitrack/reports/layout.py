"""Terminal tables that fit a width: numbers are abbreviated first, then columns drop out.

Each Column says when it drops (`drop`, the highest first, columns of equal `drop`
together) and what stands in for it (a merged column); a single column dropped on the way
comes back when it fits again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import click

from aitrack.domain.display import MAX_CHARS, safe


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


def _width_of(cols: list[Column], short: bool) -> int:
    return sum(max(len(c.header), *(min(len(v), MAX_CHARS) for v in (c.short if short else c.full)))
               for c in cols) + 2 * (len(cols) - 1)


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
    cols, short, hidden = fit(columns, width)
    # names from outside (projects, models, entrypoints): escaped and capped, so a 15 MiB
    # model name costs one short cell, not a table as wide as it
    cells = [[safe(v) for v in (c.short if short else c.full)] for c in cols]
    widths = [max(len(safe(c.header)), *(len(v) for v in vals))
              for c, vals in zip(cols, cells, strict=True)]
    n_rows = len(cells[0]) if cells else 0

    def line(values: list[str], row: int | None = None) -> str:
        """A row; `values` are safe already."""
        parts = []
        for c, v, w in zip(cols, values, widths, strict=True):
            text = v.ljust(w) if c.left else v.rjust(w)
            if row is not None and c.styles and c.styles[row]:
                text = style(text, **c.styles[row])
            parts.append(text)
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out = [style(line([safe(c.header) for c in cols]), bold=True), rule]
    for i in range(n_rows):
        values = [vals[i] for vals in cells]
        if bold_last and i == n_rows - 1:
            out += [rule, style(line(values), bold=True)]
        elif i in dim_rows:
            out.append(style(line(values), dim=True))
        else:
            out.append(line(values, i))
    return out, hidden
