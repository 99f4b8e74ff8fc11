"""`aitrack doctor`: what is wrong with this machine's aitrack, and how to fix it.

Each check is a plain function returning a `Check` (PASS, WARN or FAIL, a one-line summary
and, unless it passed, a one-line fix). Checks that wait on something (the endpoint, the
tools' `--version`) run in parallel. Nothing here prints or returns the token or a header
value: a token only goes into the auth header of the probe to its own signal's URL, and
header values found in files or the environment are reported by header name.

This module runs the checks in display order and lays out their report; the checks are
grouped by what they look at:
  sources        the profile's sources, managed or not
  endpoint       the token in the keychain, and the endpoint it is sent to
  tools          each tool's binary, and the PATH shims
  tool_settings  settings that send telemetry around aitrack or hold a token in plaintext
  ledger         the ledger, its outbox, the disk, aitrack's private files, the prices
  agent          the per-user agent, and the tools' settings that point at it
"""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from aitrack import __version__, adapters
from aitrack.config import paths
from aitrack.config import profile as profiles
from aitrack.domain.display import MAX_LINE, safe
from aitrack.install.doctor.agent import check_agent, check_agent_settings
from aitrack.install.doctor.check import FAIL, PASS, WARN, Check, Context, worst
from aitrack.install.doctor.endpoint import check_endpoint, check_keychain
from aitrack.install.doctor.ledger import (
    check_disk,
    check_ledger,
    check_outbox,
    check_prices,
    check_private_files,
)
from aitrack.install.doctor.sources import check_profile, check_profile_integrity
from aitrack.install.doctor.tool_settings import (
    OTLP_HEADER_VARS,
    check_managed_settings,
    check_plaintext_tokens,
    managed_settings_tools,
)
from aitrack.install.doctor.tools import check_command, check_shims, check_tool

__all__ = [
    "FAIL", "OTLP_HEADER_VARS", "PASS", "WARN", "Check", "Context", "check_agent",
    "check_command",
    "check_agent_settings", "check_disk", "check_endpoint", "check_keychain", "check_ledger",
    "check_managed_settings", "check_outbox", "check_plaintext_tokens", "check_prices",
    "check_private_files", "check_profile", "check_profile_integrity", "check_shims",
    "check_tool", "report", "run", "text", "worst",
]


def run(env: Mapping[str, str] | None = None, debug: bool = False) -> list[Check]:
    """Every check, in display order. With `debug`, a check that crashes raises."""
    env = os.environ if env is None else env
    locations = paths.resolve(env)
    ctx = Context(env, locations, profiles.load(locations, dict(env)),
                  Path(env.get("HOME") or os.path.expanduser("~")))
    guarded = partial(_guarded, debug)
    first = [("profile", check_profile), ("profile-integrity", check_profile_integrity),
             ("keychain", check_keychain)]
    checks = [guarded(name, partial(check, ctx)) for name, check in first]
    slow = [("endpoint", partial(check_endpoint, ctx))]
    slow += [(tool, partial(check_tool, ctx, tool)) for tool in adapters.TOOLS]
    with ThreadPoolExecutor(len(slow)) as pool:
        checks += list(pool.map(lambda item: guarded(*item), slow))
    ctx.tokens = {}  # the probes are done: no token outlives them
    rest: list[tuple[str, Callable[[Context], Check]]] = [("shims", check_shims),
                                                          ("command", check_command)]
    rest += [(f"{tool}-settings", partial(check_managed_settings, tool=tool))
             for tool in managed_settings_tools()]
    rest += [("plaintext-tokens", check_plaintext_tokens), ("ledger", check_ledger),
             ("disk", check_disk), ("outbox", check_outbox), ("prices", check_prices),
             ("private-files", check_private_files), ("agent", check_agent),
             ("agent-settings", check_agent_settings)]
    return checks + [guarded(name, partial(check, ctx)) for name, check in rest]


def _guarded(debug: bool, name: str, check: Callable[[], Check]) -> Check:
    """A check that crashes is a FAIL naming the crash, not a traceback over the others."""
    try:
        return check()
    except Exception as exc:  # noqa: BLE001
        if debug:
            raise
        return Check(name, FAIL, f"the check itself failed: {type(exc).__name__}: {exc}",
                     "run `aitrack --debug doctor` and report it")


# ---------------------------------------------------------------- the report


def report(checks: list[Check]) -> dict:
    """`aitrack doctor --json`."""
    status = worst(checks)
    return {"aitrack": __version__, "python": sys.executable, "ok": status != FAIL,
            "status": status, "checks": [c.as_dict() for c in checks]}


def text(checks: list[Check], columns: int, paint: Callable[[str], str] = str) -> list[str]:
    """`aitrack doctor`: a line per check, wrapped to `columns`, then the fix and (unless it
    passed) the details under it. `paint` colours a status word (after wrapping: escape
    codes have no width)."""
    width = max(len(c.name) for c in checks)
    indent = " " * (4 + 2 + width + 2)

    def wrap(first: str, line: str, more: str = indent) -> str:
        # paths, settings and answers from outside: escaped and capped (domain/display.py)
        return textwrap.fill(safe(line, MAX_LINE), columns, initial_indent=first,
                             subsequent_indent=more, break_on_hyphens=False,
                             break_long_words=False)

    lines = [f"aitrack {__version__} doctor ({sys.executable})"]
    for c in checks:
        lines.append(wrap(f"{c.status}  {c.name:<{width}}  ", c.summary)
                     .replace(c.status, paint(c.status), 1))
        if c.status != PASS:
            lines += [wrap(f"{indent}- ", line, indent + "  ") for line in c.details]
        if c.fix:
            lines.append(wrap(f"{indent}fix: ", c.fix, indent + "     "))
    failed, warned = (sum(c.status == s for c in checks) for s in (FAIL, WARN))
    lines.append(f"\n{failed} FAIL, {warned} WARN: follow the fix lines above."
                 if failed or warned else "\nall checks passed")
    return lines
