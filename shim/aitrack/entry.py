"""Console entry point. Wrapped-tool runs skip click entirely: start-up time is the product."""

from __future__ import annotations

import sys

WRAP_COMMANDS = ("claude", "codex", "run")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    # claude/codex get every argument verbatim, --help included; `aitrack run --help` is ours
    if argv and argv[0] in WRAP_COMMANDS and not (argv[0] == "run" and argv[1:2] == ["--help"]):
        from aitrack.wrap import main as wrap_main

        sys.exit(wrap_main(argv[0], argv[1:]))
    from aitrack.cli import cli

    cli.main(args=argv, prog_name="aitrack")
