"""How fast `aitrack report` reads a heavy user's year of ledger, whole process.

Builds a ledger of SESSIONS sessions (10 usage rows each: two models x five token types,
so 1,000,000 usage rows by default) spread over the last 365 days, Claude and Codex
sessions mixed, Claude ones with reported costs and contribution figures, in a temporary
AITRACK_HOME. Then prints, per command, the median wall time over RUNS runs of
`python -m aitrack report ...` and the peak RSS of those processes (target: < 0.5 s each),
after one untimed run of each that caches the bytecode, as a pip install would have.

Usage: python bench/report.py [--sessions N] [--runs N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import measure

COMMANDS = (
    ("report daily", ["report", "daily"]),
    ("report monthly", ["report", "monthly"]),
    ("report session --last 30", ["report", "session", "--last", "30"]),
    ("report model", ["report", "model"]),
)
CLAUDE_MODELS = (("claude-opus-5-5", "claude-haiku-4-5"), ("claude-sonnet-5-5", "claude-haiku-4-5"),
                 ("claude-opus-5", "claude-haiku-4-5"))
CODEX_MODELS = (("gpt-5-codex", "gpt-5.1-codex-mini"), ("gpt-5.5", "gpt-5.4-mini"),
                ("gpt-5", "my-local-model"))
TOKEN_TYPES = ("input", "output", "cache_read", "cache_creation", "reasoning")
TARGET_S = 0.5


def build(ledger_path: Path, sessions: int, seed: int = 1) -> None:
    from aitrack import ledger

    rnd = random.Random(seed)
    db = ledger.connect(ledger_path)
    db.execute("PRAGMA synchronous = OFF")
    now = time.time()
    year = 365 * 86400
    session_rows, usage_rows, metric_rows = [], [], []
    for i in range(sessions):
        sid = f"{i:08x}{rnd.getrandbits(64):016x}"
        claude = rnd.random() < 0.6
        tool = "claude" if claude else "codex"
        started = now - rnd.random() * year
        project = f"project-{rnd.randrange(25)}"
        session_rows.append((sid, tool, "2.1.328" if claude else "0.169.0", started,
                             started + rnd.uniform(30, 7200), 0, f"/home/dev/src/{project}",
                             project))
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
                       "exit_code, cwd, project) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", session_rows)
        db.executemany("INSERT INTO usage VALUES (?, ?, ?, ?)", usage_rows)
        db.executemany("INSERT INTO session_metrics VALUES (?, ?, ?, ?)", metric_rows)
    db.execute("ANALYZE")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    print(f"ledger: {sessions:,} sessions, {len(usage_rows):,} usage rows, "
          f"{len(metric_rows):,} metric rows, {ledger_path.stat().st_size / 1e6:.0f} MB")


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
        print(f"{'command':<28} {'median':>8} {'peak RSS':>9}  target < {TARGET_S} s")
        worst = 0.0
        for label, args in COMMANDS:
            median, rss_kb = median_of(args, env, opts.runs)
            worst = max(worst, median)
            ok = "ok" if median < TARGET_S else "SLOW"
            print(f"{label:<28} {median * 1000:>5.0f} ms {rss_kb / 1024:>6.1f} MB  {ok}")
        print(f"median over {opts.runs} runs each; slowest {worst * 1000:.0f} ms")


if __name__ == "__main__":
    main()
