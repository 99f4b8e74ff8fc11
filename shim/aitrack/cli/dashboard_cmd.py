"""`aitrack dashboard`: the report as one self-contained HTML page.

Every command's start imports this module (cli/__init__ registers them all), and the
dashboard's modules cost ~50 ms: they are imported inside the command ("lazy").
"""

from __future__ import annotations

from pathlib import Path

import click

from aitrack.cli.common import UserError, say
from aitrack.cli.report_cmd import build_options, filter_options, ready_ledger
from aitrack.config.private_files import private_dir


@click.command("dashboard", context_settings={"max_content_width": 100})
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Write the page here (default: dashboard.html in aitrack's data "
                   "directory, see `aitrack paths`).")
@click.option("--open", "open_it", is_flag=True, help="Open it in the default browser.")
@filter_options
@click.option("--no-import", is_flag=True,
              help="Do not import what is new in the tools' transcripts first, as `aitrack "
                   "report` does (`aitrack import`); show the ledger as it is.")
def dashboard(out: Path | None, open_it: bool, since, until, last: int | None,
              tool: str | None, project: str | None, tz_name: str | None,
              no_import: bool) -> None:
    """Write the usage report as one HTML page: charts, tools, projects, sessions.

    Cost and tokens per day stacked by model, the tool split, top projects, cost per commit,
    tool acceptance and a sortable sessions table, with the same numbers and filters as
    `aitrack report`. The page is self-contained (it loads nothing when opened), follows
    the system's light or dark theme and can be attached to an email.

    \b
    Examples:
      aitrack dashboard --open                    # all time, in your browser
      aitrack dashboard --last 30 --out usage.html
      aitrack dashboard --project . --since 2026-01-01 --open
    """
    from aitrack.reports import readonly  # lazy: see the module docstring
    from aitrack.reports.dashboard import write  # lazy: as above

    opts = build_options("daily", since, until, last, tz_name, tool=tool, project=project)
    where, prices = ready_ledger(no_import)  # the same ledger `aitrack report` would show
    target = (out or where.data_dir / "dashboard.html").expanduser().absolute()
    if out is None:
        private_dir(where.data_dir)  # aitrack's own folder, as private as the ledger beside it
    elif not target.parent.is_dir():  # a typo in --out must not grow a folder tree
        raise UserError(f"cannot write {target}: {target.parent} is not a folder: create it "
                        "first, or choose another --out")
    try:
        size = write(where.ledger, opts, prices, target)
    except readonly.LedgerError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"cannot write {target}: {exc.strerror or exc}: choose another "
                        "--out") from None
    if size is None:
        say(readonly.START_HINT.replace("aitrack report", "aitrack dashboard"), err=True)
        return
    say(f"aitrack: wrote {target} ({size / 1e6:.1f} MB)" if size >= 1e5 else
        f"aitrack: wrote {target} ({size / 1e3:.0f} kB)", err=True)
    if open_it:
        import webbrowser  # lazy: for --open only

        if not webbrowser.open(target.as_uri()):
            raise UserError(f"no browser to open {target} with: open it yourself")


def register(cli: click.Group) -> None:
    cli.add_command(dashboard)
