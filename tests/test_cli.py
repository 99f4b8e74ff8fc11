"""The command-line surface: --version, --help, and an example in every command's help."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from aitrack import __version__
from aitrack.cli import cli


def sub(group: click.Group, name: str) -> click.Command:
    """A subcommand as click finds it (the top group loads a command's module on demand)."""
    return group.get_command(click.Context(group), name)


def walk(command: click.Command, path: tuple[str, ...] = ()):
    """(path, command) for the root and every command and subcommand under it."""
    yield path, command
    if isinstance(command, click.Group):
        for name in command.list_commands(click.Context(command)):
            yield from walk(sub(command, name), (*path, name))


COMMANDS = list(walk(cli))


def help_text(path: tuple[str, ...]) -> str:
    """The help `aitrack PATH --help` shows (in-process: claude/codex pass --help on)."""
    ctx = click.Context(cli, info_name="aitrack")
    command = cli
    for name in path:
        command = sub(command, name)
        ctx = click.Context(command, info_name=name, parent=ctx)
    return command.get_help(ctx)


def test_the_tree_has_the_foundation_commands():
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"", "paths", "profile", "profile show", "profile validate", "token", "token set",
            "token status", "token delete", "claude", "codex", "run", "report"} <= names


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=lambda p: " ".join(p) or "aitrack")
def test_every_command_has_help_with_an_example(path):
    text = help_text(path)
    assert "Example" in text, text
    invocation = " ".join(("aitrack", *path))
    examples = text[text.index("Example"):]
    assert any(invocation in line for line in examples.splitlines()[1:]), text


def test_version(home):
    result = home.run("--version")
    assert (result.returncode, result.stdout) == (0, f"aitrack, version {__version__}\n")


def test_the_console_script_runs(home):
    script = shutil.which("aitrack", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the aitrack console script is not installed next to this python")
    result = subprocess.run([script, "--version"], capture_output=True, text=True, env=home.env)
    assert (result.returncode, result.stdout) == (0, f"aitrack, version {__version__}\n")


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_every_command(home, flag):
    result = home.run(flag)
    assert result.returncode == 0
    assert "Examples:" in result.stdout
    listed = {line.split()[0] for line in result.stdout.split("Commands:")[1].splitlines()
              if line.startswith("  ") and not line.startswith("   ")}  # not a wrapped summary
    assert listed == set(cli.list_commands(click.Context(cli)))


def test_run_help_is_aitracks_own(home):
    result = home.run("run", "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: aitrack run [OPTIONS] COMMAND...")


def test_an_unknown_command_exits_2_with_usage(home):
    result = home.run("frobnicate")
    assert result.returncode == 2
    assert "No such command 'frobnicate'" in result.stderr


def test_a_reader_that_stops_early_gets_no_traceback_or_error(home):
    """`aitrack report | head`: the closed pipe is not reported as an unexpected error."""
    import os

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before aitrack writes a byte
    with os.fdopen(write_end, "wb") as stdout:
        result = subprocess.run([sys.executable, "-m", "aitrack", "paths"], stdout=stdout,
                                stderr=subprocess.PIPE, text=True, env=home.env, timeout=60)
    assert "unexpected error" not in result.stderr
    assert "Traceback" not in result.stderr
