"""`aitrack claude|codex|run`: run the tool with its telemetry captured and ledgered.

Start-up order matters: everything before the spawn delays the tool, so only cached
settings, the adapter and a bound socket come first, with nothing but the standard
minimum imported. The ledger, the HTTP receiver and the forwarder start while the child
runs. Anything that goes wrong in aitrack is one line on stderr and never changes the
child's exit status.
"""

from __future__ import annotations

import os
import sys
import time

from aitrack import adapters
from aitrack.capture import launcher, startup
from aitrack.capture.tracked_run import TrackedRun

USAGE_RUN = "usage: aitrack run [--name NAME] -- CMD [ARGS]..."


def say(line: str) -> None:
    from aitrack.domain.display import MAX_LINE, safe  # start-up path: on a problem only

    print(f"aitrack: {safe(line, MAX_LINE)}", file=sys.stderr, flush=True)


def parse_run(args: list[str]) -> tuple[str | None, list[str]] | None:
    name = None
    rest = list(args)
    while rest and rest[0] != "--":
        if rest[0] == "--name" and len(rest) > 1:
            name, rest = rest[1], rest[2:]
        elif rest[0].startswith("--name="):
            name, rest = rest[0].split("=", 1)[1], rest[1:]
        else:
            break
    if rest and rest[0] == "--":
        rest = rest[1:]
    return (name, rest) if rest else None


def _settings() -> dict | None:
    try:
        return startup.settings()
    except Exception as exc:  # noqa: BLE001 - a profile must never stop the tool
        say(f"cannot read the profile ({type(exc).__name__}: {exc}); running without "
            "telemetry: run `aitrack doctor`")
        return None


def main(command: str, args: list[str]) -> int:
    started = time.time()
    settings = _settings()
    shim_dir = settings["shim_dir"] if settings else ""
    if command == "run":
        parsed = parse_run(args)
        if parsed is None:
            say(USAGE_RUN)
            return 2
        name, argv = parsed
        adapter = adapters.load("generic")
        tool, program, args = name or os.path.basename(argv[0]), argv[0], argv[1:]
        binary = program if os.sep in program else launcher.find_real_binary(program, None,
                                                                              shim_dir)
    else:
        adapter = adapters.load(command)
        tool = program = adapter.NAME
        binary = launcher.find_real_binary(adapter.EXECUTABLE, adapter.BIN_ENV, shim_dir)
    if binary is None:
        hint = f" or set {adapter.BIN_ENV}" if adapter.BIN_ENV else ""
        say(f"{program}: command not found on PATH (install it{hint})")
        return launcher.EXIT_NOT_FOUND
    child = launcher.Child()
    run = TrackedRun(tool, adapter, started, settings)
    run.binary = binary
    child_args, child_env = run.child_command(args)
    try:
        child.start([binary, *child_args], child_env)
    except OSError as exc:
        run.abandon()
        say(f"cannot run {_named(binary, adapter)}: {exc.strerror or exc}")
        return launcher.EXIT_NOT_FOUND if isinstance(exc, FileNotFoundError) \
            else launcher.EXIT_NOT_RUNNABLE
    run.begin(child.pid)
    code = child.wait()
    run.end(code)
    return code


def _named(binary: str, adapter) -> str:
    """The binary, and the variable that chose it when one did (so the fix is obvious)."""
    if adapter.BIN_ENV and os.environ.get(adapter.BIN_ENV) == binary:
        return f"{binary} ({adapter.BIN_ENV}; unset it to use {adapter.EXECUTABLE} from PATH)"
    return binary
