from __future__ import annotations

import click

from aitrack.cli.common import echo_json, say
from aitrack.config import paths


@click.command("paths")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def paths_command(as_json: bool) -> None:
    """Print every location aitrack uses and whether it exists.

    \b
    Example:
      aitrack paths --json
    """

    locations = paths.resolve().as_dict()
    if as_json:
        echo_json({k: {"path": str(v), "exists": v.exists()} for k, v in locations.items()})
        return
    width = max(map(len, locations))
    for name, path in locations.items():
        mark = "" if path.exists() else "  (missing)"
        say(f"{name:<{width}}  {path}{mark}")


def register(cli: click.Group) -> None:
    cli.add_command(paths_command)
