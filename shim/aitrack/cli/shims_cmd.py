"""`aitrack shims`: put `claude` and `codex` shims first on PATH, so plain commands are tracked.

The imports marked `lazy` load a command's work when it runs: click imports every command
module for any `aitrack` command.
"""

from __future__ import annotations

from pathlib import Path

import click

from aitrack.cli.common import UserError, echo_json, say

DIR_HELP = "Shim directory (default: aitrack's per-user bin directory, see `aitrack paths`)."


def _directory(directory: Path | None) -> Path:
    if directory is not None:
        return directory.expanduser().absolute()
    from aitrack.config import paths  # lazy

    return paths.resolve().shim_dir


def _say(line: str) -> None:
    say(f"aitrack: {line}", err=True)


@click.group("shims")
def shims_group() -> None:
    """Install `claude` and `codex` shims that run them through aitrack, and `aitrack`.

    \b
    Examples:
      aitrack shims install                      # then follow the PATH hint, if any
      sudo aitrack shims install --dir /opt/aitrack/shims
      aitrack shims status --json
    """


@shims_group.command("install")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help=DIR_HELP)
def install(directory: Path | None) -> None:
    """Write the shims and the `aitrack` command (idempotent; never replaces a file that is
    not an aitrack shim).

    When the directory does not come first on PATH, prints the line to add to your shell
    profile on stdout (messages go to stderr).

    \b
    Example:
      aitrack shims install && exec $SHELL -l
    """
    from aitrack.config.private_files import private_dir  # lazy
    from aitrack.install import shims  # lazy

    target = _directory(directory)
    try:
        if directory is None:  # aitrack's own data directory: as private as the ledger in it
            private_dir(target)
        done = shims.install(target)
    except shims.ShimError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"cannot write shims in {target}: {exc.strerror or exc}: choose "
                        "another --dir or run with the needed permissions") from None
    if done.written:
        _say(f"wrote {', '.join(done.written)} in {target} (running aitrack with {done.python})")
    if done.unchanged:
        _say(f"{', '.join(done.unchanged)} in {target} already up to date")
    if done.kept:
        _say(f"left {', '.join(done.kept)} in {target} as it is (not a shim: an aitrack of "
             "its own)")
    for st in shims.status(target):
        if st.real is None:
            _say(f"{st.name} is not installed yet: its shim will run it once it is on PATH")
    if not shims.on_path_first(target):
        _say(f"{target} does not come first on PATH, so `aitrack` and the shims are not what "
             "your shell runs; add this line to your shell profile (~/.zshrc, ~/.bashrc), "
             "and run it in this shell too:")
        say(shims.path_line(target))


@shims_group.command("uninstall")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help=DIR_HELP)
def uninstall(directory: Path | None) -> None:
    """Remove the aitrack shims (only files that are aitrack shims).

    \b
    Example:
      aitrack shims uninstall
    """
    from aitrack.install import shims  # lazy

    target = _directory(directory)
    try:
        removed, kept = shims.uninstall(target, remove_empty_dir=directory is None)
    except OSError as exc:
        raise UserError(f"cannot remove shims in {target}: {exc.strerror or exc}") from None
    if removed:
        _say(f"removed {', '.join(removed)} from {target}")
    else:
        _say(f"no aitrack shims in {target}")
    if kept:
        _say(f"left {shims.listed(kept)} in {target}: "
             + ("not an aitrack shim" if len(kept) == 1 else "not aitrack shims"))


@shims_group.command("status")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help=DIR_HELP)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(directory: Path | None, as_json: bool) -> None:
    """Where `claude` and `codex` resolve on PATH, and whether that is an aitrack shim.

    Exits 0 when every installed tool resolves to a working shim, 1 otherwise.

    \b
    Example:
      aitrack shims status --json
    """
    from aitrack.install import shims  # lazy

    target = _directory(directory)
    states = shims.status(target)
    relevant = [s for s in states if s.real or s.shim]
    ok = all(s.tracked and s.shim_python_ok for s in relevant)
    command = shims.command_on_path(target)
    if as_json:
        echo_json({"dir": str(target), "on_path_first": shims.on_path_first(target), "ok": ok,
                   "tools": [s.as_dict() for s in states], "aitrack": command})
        raise SystemExit(0 if ok else 1)
    width = max(len(t) for t in (*shims.TOOLS, shims.COMMAND))
    for s in states:
        if s.resolves_to is None:
            line = "not on PATH"
        elif s.tracked:
            line = f"{s.resolves_to} (aitrack shim: tracked)"
            if not s.shim_python_ok:
                line += f"; BROKEN: its aitrack {s.shim_python} is missing, it runs untracked"
        else:
            line = f"{s.resolves_to} (untracked: not an aitrack shim)"
        say(f"{s.name:<{width}}  -> {line}")
        say(f"{'':<{width}}     real: {s.real or 'not found'}")
    say(f"{'aitrack':<{width}}  -> {command or 'not on PATH (command not found)'}")
    if not ok:
        behind = [s for s in relevant if not s.tracked and s.shim]  # installed, later on PATH
        again = "aitrack shims install" + ("" if directory is None else f" --dir {target}")
        say(f"fix: {shims.path_line(target) if behind else again}")
    raise SystemExit(0 if ok else 1)


def register(cli: click.Group) -> None:
    cli.add_command(shims_group)
