"""The architecture holds: layers point down, tools are independent, modules stay readable.

`lint-imports` (run by tests/run.sh before pytest) checks the contracts in pyproject.toml; these
tests keep those contracts honest as the code grows: every registered tool is in the
independence contract, and no module outgrows one sitting.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

from aitrack import adapters

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "shim" / "aitrack"
MAX_LINES = 420  # "~400 lines": one sitting


def _contracts() -> list[dict]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    return data["tool"]["importlinter"]["contracts"]


def test_every_tool_is_in_the_independence_contract():
    """A new adapter package gets the 'no adapter imports another' rule by being listed."""
    independence = [c for c in _contracts() if c["type"] == "independence"]
    assert len(independence) == 1
    listed = set(independence[0]["modules"])
    expected = {f"aitrack.adapters.{name}" for name in (*adapters.TOOLS, "generic")}
    assert listed == expected


def test_every_tool_package_is_registered():
    """A folder under adapters/ that is a tool package is in the registry (one place)."""
    packages = {p.parent.name for p in (PACKAGE / "adapters").glob("*/__init__.py")}
    assert packages == {*adapters.TOOLS, "generic"}


def test_the_layers_are_the_package_folders():
    """The layers contract names every folder of the package, so none escapes it."""
    layers = next(c for c in _contracts() if c["type"] == "layers")
    named = {part.strip() for layer in layers["layers"] for part in layer.split("|")}
    folders = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert named == folders


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(
    p.relative_to(PACKAGE)))
def test_modules_are_short_enough_to_read_in_one_sitting(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(REPO)} has {lines} lines: split it by concern"


def test_modules_parse_with_their_imports_at_the_top_or_a_reason():
    """A function-level import is for the wrapper's measured start-up path only, and says why
    in a comment on its line or the line before (style.md)."""
    unexplained = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    here = lines[inner.lineno - 1]
                    before = lines[inner.lineno - 2] if inner.lineno > 1 else ""
                    if "#" not in here and not before.strip().startswith("#"):
                        unexplained.append(f"{path.relative_to(REPO)}:{inner.lineno}")
    assert not unexplained, "function-level imports without a reason:\n" + "\n".join(
        sorted(set(unexplained)))
