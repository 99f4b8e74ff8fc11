"""Which tools the import engine reads, and each one's reader.

The one place the engine finds a tool's reader: its adapter's `transcripts` part (the
contract is in this package's docstring). The engine names no tool itself.
"""

from __future__ import annotations

from types import ModuleType

from aitrack import adapters


def of(tool: str) -> ModuleType | None:
    """The reader of a tool's local files; None when the tool keeps none aitrack reads."""
    return adapters.part(tool, "transcripts")


def tools() -> list[str]:
    """The tools with a reader, in the registry's order."""
    return [tool for tool in adapters.TOOLS if of(tool) is not None]
