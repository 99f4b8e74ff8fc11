"""Console entry point. Wrapped-tool runs skip click entirely: start-up time is the product."""

from __future__ import annotations

import os
import sys

from aitrack.adapters import TOOLS


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    # a tool gets every argument verbatim, --help included; `aitrack run --help` is ours
    if argv and (argv[0] in TOOLS or argv[0] == "run" and argv[1:2] != ["--help"]):
        from aitrack.capture.wrap import main as wrap_main  # only for a wrapped run: lean

        code = wrap_main(argv[0], argv[1:])
        # Everything aitrack keeps is committed by now; a regular interpreter shutdown with
        # protobuf, ssl and keyring loaded would delay the shell's prompt by tens of ms.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    if argv[:1] == ["statusline"] and not {"-h", "--help"} & set(argv):
        # Claude Code waits for it at every update: the standard library and the ledger only
        from aitrack.reports.statusline import main as statusline_main

        raise SystemExit(statusline_main(argv[1:]))
    from aitrack.cli import cli  # click and the CLI: never for a wrapped run

    cli.main(args=argv, prog_name="aitrack")
