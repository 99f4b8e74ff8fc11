"""Text from outside, as aitrack shows it to a person.

Folder names, model names (a repository's `.claude/settings.json` can set one), session
data and an endpoint's answers reach reports, `doctor`, `agent status`, `prices`, the
import summary and the wrapper's notices. Such text can hold terminal escape sequences
(clear the screen, set the window title, rewrite what was printed), bidi overrides (show a
line other than it is) and any length: a 15 MiB model name made `report model` write 189 MB.
Every human-readable output passes such text through `safe`; JSON and CSV keep it exact.

Imported on the wrapper's start-up path (its notices): the standard library only.
"""

from __future__ import annotations

MAX_CHARS = 200  # a field: a name, a path, a value
MAX_LINE = 1000  # a whole line that carries such fields (a doctor check's summary)
ELLIPSIS = "…"


def safe(text: object, limit: int = MAX_CHARS) -> str:
    """`text` with every character a terminal would act on or hide (controls, escapes, bidi
    overrides and isolates, zero-width characters, line and paragraph separators) written as
    a visible escape (`\\x1b`, `\\u202e`), and cut to `limit` characters with an ellipsis."""
    text = text if isinstance(text, str) else str(text)
    if len(text) > limit:
        text = text[:limit]  # before escaping: the work stays bounded by the limit
        cut = True
    else:
        cut = False
    if not text.isprintable():  # printable: no category C (Cc, Cf...) nor Z but the space
        text = "".join(c if c.isprintable() else _escape(c) for c in text)
    if cut or len(text) > limit:
        text = text[:limit - 1] + ELLIPSIS
    return text


def safe_lines(text: str, limit: int = MAX_LINE) -> list[str]:
    """A text of several lines, each made safe: its line breaks stay line breaks."""
    return [safe(line, limit) for line in text.split("\n")]


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 \
        else f"\\U{code:08x}"
