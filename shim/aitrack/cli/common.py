"""What every command shares: one-line errors, --debug tracebacks, JSON output."""

from __future__ import annotations

import json
import sys
from typing import Any

import click


class UserError(click.ClickException):
    """An error the user can act on: printed as one line naming the fix."""

    def show(self, file=None) -> None:
        click.echo(f"aitrack: {self.message}", err=True)


class AitrackGroup(click.Group):
    """Turns unexpected exceptions into one line unless --debug is given."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        # click's main() handles a closed pipe (`aitrack report | head`) quietly
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt,
                BrokenPipeError):
            raise
        except Exception as exc:
            if "--debug" in sys.argv or (ctx.obj or {}).get("debug"):
                raise
            click.echo(f"aitrack: unexpected error: {type(exc).__name__}: {exc} "
                       "(run with --debug for details)", err=True)
            ctx.exit(1)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def load_profile():
    """The effective profile, printing its problems (one line each) to stderr."""
    from aitrack import paths, profile

    p = profile.load(paths.resolve())
    for problem in p.problems:
        click.echo(f"aitrack: {problem}", err=True)
    return p
