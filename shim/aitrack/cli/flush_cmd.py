"""`aitrack flush`: deliver the outbox to the org endpoint now and say what is left."""

from __future__ import annotations

import click

from aitrack.cli.common import UserError, echo_json, load_profile, say
from aitrack.config import paths
from aitrack.egress.flush import FlushError, drain
from aitrack.egress.forward_log import eviction_line, size


@click.command("flush")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--retry-dead", is_flag=True,
              help="Also re-send payloads the endpoint refused before (dead letters).")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0.1), default=60.0,
              show_default=True, metavar="SECONDS",
              help="Give up after this long; what is left stays queued.")
@click.pass_context
def flush(ctx: click.Context, as_json: bool, retry_dead: bool, timeout_s: float) -> None:
    """Send queued telemetry to the org endpoint now; report sent, pending and dead.

    Every tracked run forwards in the background and later runs drain what is left; use
    this after a long time offline, before a laptop is wiped, or to re-send dead letters
    once their cause is fixed. Exits 0 when nothing is pending afterwards, else 1.

    \b
    Examples:
      aitrack flush
      aitrack flush --retry-dead --json
    """

    debug = bool((ctx.obj or {}).get("debug"))
    profile = load_profile()

    def show(signal, rows, answer) -> None:  # --debug: one line per request, never headers
        outcome = f"HTTP {answer.status}" if answer.status else answer.error
        say(f"aitrack: POST {signal}: {len(rows)} payload(s), {size(answer.sent_bytes)} "
            f"gzip -> {outcome} in {answer.elapsed_s * 1000:.0f} ms", err=True)

    try:
        report = drain(paths.resolve(), profile, retry_dead=retry_dead, timeout_s=timeout_s,
                       on_answer=show if debug else None)
    except FlushError as exc:
        if as_json:
            echo_json({"error": str(exc)})
            raise SystemExit(1) from None
        raise UserError(str(exc)) from None
    c, out = report.counts, report.outcome
    if as_json:
        echo_json(report.as_dict())
    else:
        if report.revived:
            say(f"{report.revived} dead letter(s) queued again")
        say(f"sent {out.sent} payload(s) ({size(out.sent_bytes)}) to {report.endpoint}; "
            f"pending {c.pending} ({size(c.pending_bytes)}), dead {c.dead}")
        if report.eviction is not None:
            say(f"aitrack: {eviction_line(report.eviction)}", err=True)
        if out.partial_rejected:
            say(f"aitrack: the endpoint accepted the telemetry but rejected "
                f"{out.partial_rejected} item(s) in it (see forwarder.log under "
                "`aitrack paths`)", err=True)
        for error in report.errors:
            say(f"aitrack: {error}", err=True)
        if c.dead:
            why = f" (last: {out.dead_error})" if out.dead_error else ""
            say(f"aitrack: {c.dead} payload(s) refused by the endpoint are kept as dead "
                f"letters{why}: fix the cause, then run `aitrack flush --retry-dead`",
                err=True)
    raise SystemExit(0 if c.pending == 0 else 1)


def register(cli: click.Group) -> None:
    cli.add_command(flush)
