"""How fast `aitrack report` and `aitrack dashboard` read a heavy user's year of ledger.

Builds a ledger of SESSIONS sessions (10 usage rows each: two models x five token types,
so 1,000,000 usage rows by default) spread over the last 365 days, Claude and Codex
sessions mixed, Claude ones with reported costs, contribution figures and tool decisions,
some runs failed and some sessions seen only by telemetry or transcripts, in a temporary
AITRACK_HOME. Then prints, per command, the median wall time over RUNS runs of
`python -m aitrack ...` and the peak RSS of those processes (target: < 0.5 s for a report,
< 1 s for the dashboard), after one untimed run of each that caches the bytecode, as a pip
install would have, and the dashboard's size (target: < 2 MB). With --screenshot FILE it
also saves a screenshot of the dashboard taken by headless Chromium.

Usage: python bench/report.py [--sessions N] [--runs N] [--keep DIR] [--screenshot FILE]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import measure

# (label, arguments, target in seconds)
COMMANDS = (
    ("report daily", ["report", "daily"], 0.5),
    ("report monthly", ["report", "monthly"], 0.5),
    ("report session --last 30", ["report", "session", "--last", "30"], 0.5),
    ("report model", ["report", "model"], 0.5),
    ("dashboard", ["dashboard", "--out", "{dashboard}"], 1.0),
)
DASHBOARD_TARGET_MB = 2.0
CLAUDE_ENTRYPOINTS = ("cli", "cli", "cli", "sdk-cli", "claude-vscode", "claude-desktop")
CODEX_ENTRYPOINTS = ("codex_cli_rs", "codex_cli_rs", "codex_exec", "codex-app-server")
EDIT_TOOLS = ("Edit", "Write", "MultiEdit", "NotebookEdit")
CLAUDE_MODELS = (("claude-opus-5-5", "claude-haiku-4-5"), ("claude-sonnet-5-5", "claude-haiku-4-5"),
                 ("claude-opus-5", "claude-haiku-4-5"))
CODEX_MODELS = (("gpt-5-codex", "gpt-5.1-codex-mini"), ("gpt-5.5", "gpt-5.4-mini"),
                ("gpt-5", "my-local-model"))
TOKEN_TYPES = ("input", "output", "cache_read", "cache_creation", "reasoning")


def build(ledger_path: Path, sessions: int, seed: int = 1) -> None:
    from aitrack.store import ledger

    rnd = random.Random(seed)
    db = ledger.connect(ledger_path)
    db.execute("PRAGMA synchronous = OFF")
    now = time.time()
    year = 365 * 86400
    session_rows, usage_rows, metric_rows, decision_rows = [], [], [], []
    for i in range(sessions):
        sid = f"{i:08x}{rnd.getrandbits(64):016x}"
        claude = rnd.random() < 0.6
        tool = "claude" if claude else "codex"
        started = now - rnd.random() * year
        project = f"project-{min(rnd.randrange(25), rnd.randrange(25))}"  # a few lead
        # most sessions ran under the wrapper (exit status known), some were only seen by
        # the agent's telemetry or in transcripts; a few runs failed
        seen = rnd.random()
        sources = 5 if seen < 0.8 else 1 if seen < 0.9 else 3
        exit_code = (1 if rnd.random() < 0.03 else 0) if sources & 4 else None
        entrypoint = rnd.choice(CLAUDE_ENTRYPOINTS if claude else CODEX_ENTRYPOINTS)
        session_rows.append((sid, tool, "2.1.328" if claude else "0.169.0", started,
                             started + rnd.uniform(30, 7200), exit_code,
                             f"/home/dev/src/{project}", project, entrypoint, sources))
        for name in rnd.sample(EDIT_TOOLS[:3], 2) if claude else ("shell", "apply_patch"):
            accepted = rnd.randrange(0, 20)
            decision_rows += [(sid, name, "accept", accepted),
                              (sid, name, "reject", rnd.randrange(0, 1 + accepted // 4))]
        for model in rnd.choice(CLAUDE_MODELS if claude else CODEX_MODELS):
            inp = rnd.randrange(1_000, 200_000)
            out = rnd.randrange(100, 50_000)
            counts = (inp, out, rnd.randrange(0, 2_000_000), rnd.randrange(0, 100_000),
                      out // 3)
            usage_rows += [(sid, model, t, n) for t, n in zip(TOKEN_TYPES, counts, strict=True)]
            if claude:
                metric_rows.append((sid, model, "cost_usd", rnd.uniform(0.01, 5.0)))
        if claude:
            metric_rows += [(sid, "", "lines_added", rnd.randrange(0, 500)),
                            (sid, "", "lines_removed", rnd.randrange(0, 200)),
                            (sid, "", "commits", rnd.randrange(0, 3)),
                            (sid, "", "pull_requests", rnd.randrange(0, 2)),
                            (sid, "", "active_time_s", rnd.uniform(10, 3600))]
    with ledger.write(db):
        db.executemany("INSERT INTO sessions (id, tool, tool_version, started_at, ended_at, "
                       "exit_code, cwd, project, entrypoint, sources) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", session_rows)
        db.executemany("INSERT INTO usage VALUES (?, ?, ?, ?)", usage_rows)
        db.executemany("INSERT INTO session_metrics VALUES (?, ?, ?, ?)", metric_rows)
        db.executemany("INSERT INTO tool_decisions VALUES (?, ?, ?, ?)", decision_rows)
    db.execute("ANALYZE")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    print(f"ledger: {sessions:,} sessions, {len(usage_rows):,} usage rows, "
          f"{len(metric_rows):,} metric rows, {len(decision_rows):,} tool decision rows, "
          f"{ledger_path.stat().st_size / 1e6:.0f} MB")


def run(args: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Wall time of one whole `python -m aitrack` process, and its peak RSS in KB."""
    result = measure.run([sys.executable, "-m", "aitrack", *args], env)
    if result.returncode:
        sys.exit(f"aitrack {' '.join(args)} failed: {result.stderr}")
    return result.elapsed_s, result.peak_rss_kb


def median_of(args: list[str], env: dict[str, str], runs: int) -> tuple[float, int]:
    """Median wall time and the highest peak RSS (KB) over `runs` runs, after a warm-up."""
    run(args, env)
    results = [run(args, env) for _ in range(runs)]
    return statistics.median(t for t, _ in results), max(rss for _, rss in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="build (or reuse) the ledger in this home")
    parser.add_argument("--screenshot", type=Path, metavar="FILE",
                        help="save a screenshot of the dashboard here (needs chromium)")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aitrack-bench-") as tmp:
        home = opts.keep or Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AITRACK_", "OTEL_"))}
        env.update(AITRACK_HOME=str(home), AITRACK_MANAGED_PROFILE=str(home / "managed.toml"),
                   TZ="Europe/Berlin")
        os.environ.update(env)
        # as installed by pip: bytecode cached (this machine's environment sets
        # PYTHONDONTWRITEBYTECODE and its stdlib lacks some .pyc files)
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        ledger_path = home / "data" / "ledger.db"
        if not ledger_path.exists():
            t0 = time.perf_counter()
            build(ledger_path, opts.sessions)
            print(f"built in {time.perf_counter() - t0:.1f} s")
        floor, _ = median_of(["--version"], env, opts.runs)
        print(f"floor (`aitrack --version`): {floor * 1000:.0f} ms")
        page = Path(tmp) / "dashboard.html"
        print(f"{'command':<28} {'median':>8} {'peak RSS':>9}  target")
        for label, args, target in COMMANDS:
            args = [a.format(dashboard=page) for a in args]
            median, rss_kb = median_of(args, env, opts.runs)
            ok = "ok" if median < target else "SLOW"
            print(f"{label:<28} {median * 1000:>5.0f} ms {rss_kb / 1024:>6.1f} MB  "
                  f"< {target:g} s {ok}")
        size = page.stat().st_size / 1e6
        print(f"dashboard size: {size:.2f} MB  < {DASHBOARD_TARGET_MB:g} MB "
              f"{'ok' if size < DASHBOARD_TARGET_MB else 'TOO BIG'}")
        print(f"median over {opts.runs} runs each")
        if opts.screenshot:
            screenshot(page, opts.screenshot)


def screenshot(page: Path, out: Path) -> None:
    """A full-width screenshot of the page by headless Chromium (Debian's `chromium`)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("no chromium: no screenshot")
        return
    with tempfile.TemporaryDirectory(prefix="aitrack-chromium-") as profile:
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-quic", "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                        f"--user-data-dir={profile}", "--window-size=1280,2300",
                        f"--screenshot={out.absolute()}", page.as_uri()],
                       capture_output=True, timeout=120, check=True)
    print(f"screenshot: {out}")


if __name__ == "__main__":
    main()
