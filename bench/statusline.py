"""How long `aitrack statusline` takes, as Claude Code runs it at every update.

Builds a heavy user's year of ledger (bench/report.py's, SESSIONS sessions) plus today's
sessions, one of them the Claude Code session the status line is asked about, in a
temporary AITRACK_HOME with a daily and a monthly budget. Then prints the median and the
fastest wall time over RUNS runs of the whole process (`aitrack statusline` with
Claude Code's JSON on stdin, through the console script as `agent install --statusline` sets
it), with its cache warm (the steady state: target < 50 ms) and
cold (after a profile change, or a model new to it), next to a bare `python -c pass`, which
no Python command can beat. Bytecode is cached, as a pip install has it.

Usage: python bench/statusline.py [--sessions N] [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import measure
from report import build

SESSION = "84f0c2d4-5e3b-4a1f-9c2d-6b7e8f9a0b1c"
TARGET_MS = 50


def today(ledger_path: Path) -> None:
    """Today's sessions: the asked-about Claude one, another, and a Codex one."""
    from aitrack.store import ledger

    db = ledger.connect(ledger_path)
    now = time.time()
    with ledger.write(db):
        for sid, tool, own, model, cost in (
                (f"claude:{SESSION}", "claude", SESSION, "claude-opus-5-5", 1.25),
                ("claude:other", "claude", "other", "claude-sonnet-5-5", 0.5),
                ("codex:today", "codex", "today", "gpt-5-codex", None)):
            db.execute("INSERT INTO sessions (id, tool, started_at, tool_session_id, sources) "
                       "VALUES (?, ?, ?, ?, 1)", (sid, tool, now - 600, own))
            db.executemany("INSERT INTO usage VALUES (?, ?, ?, ?)",
                           [(sid, model, t, 10_000) for t in ("input", "output", "cache_read")])
            if cost is not None:
                db.execute("INSERT INTO session_metrics VALUES (?, ?, 'cost_usd', ?)",
                           (sid, model, cost))
    db.close()


def timed(argv: list[str], env: dict[str, str], stdin: str, runs: int,
          before=None) -> list[float]:
    out = []
    for _ in range(runs):
        if before:
            before()
        result = measure.run(argv, env, stdin=stdin)
        if result.returncode:
            sys.exit(f"{' '.join(argv)} failed: {result.stderr}")
        out.append(result.elapsed_s * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=21)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aitrack-bench-") as tmp:
        home = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AITRACK_", "OTEL_"))}
        env.update(AITRACK_HOME=str(home), AITRACK_MANAGED_PROFILE=str(home / "managed.toml"),
                   TZ="Europe/Berlin", PYTHONPYCACHEPREFIX=str(home / "pycache"))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        os.environ.update(env)
        profile = home / "config" / "profile.toml"
        profile.parent.mkdir(parents=True)
        profile.write_text("[budget]\ndaily_usd = 20\nmonthly_usd = 400\n")
        build(home / "data" / "ledger.db", opts.sessions)
        today(home / "data" / "ledger.db")
        stdin = json.dumps({"session_id": SESSION, "model": {"display_name": "Opus"},
                            "cost": {"total_cost_usd": 1.25}})
        # as Claude Code runs it after `agent install --statusline`: the console script
        script = Path(sys.executable).with_name("aitrack")
        command = ([str(script)] if script.exists() else
                   [sys.executable, "-m", "aitrack"]) + ["statusline"]
        line = measure.run(command, env, stdin=stdin).stdout.strip()  # warms bytecode, cache
        print(f"the line: {line}")
        bare = timed([sys.executable, "-c", "pass"], env, "", opts.runs)
        warm = timed(command, env, stdin, opts.runs)
        cold = timed(command, env, stdin, max(5, opts.runs // 3),
                     before=lambda: profile.touch())

        def said(name: str, ms: list[float]) -> str:
            return f"{name:<34} median {statistics.median(ms):6.1f} ms, fastest {min(ms):6.1f} ms"

        print(said("python -c pass (the floor)", bare))
        print(said("aitrack statusline, cache warm", warm)
              + ("  OK" if statistics.median(warm) < TARGET_MS else f"  over {TARGET_MS} ms"))
        print(said("aitrack statusline, cache cold", cold))


if __name__ == "__main__":
    main()
