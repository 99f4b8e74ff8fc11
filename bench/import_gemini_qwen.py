"""bench/import.py's Gemini CLI and Qwen Code section: a generated year of each tool's files
(history_gemini_qwen.py), `aitrack import --tool T` against `ccusage T daily --json
--offline` on the same files: token totals against the truth, and the wall time of each.

Runs alone too: python bench/import_gemini_qwen.py [--sessions N] [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import history_gemini_qwen as history
import measure

CCUSAGE_VERSION = "20.0.24"
TYPES = ("input", "cache_read", "output", "reasoning")


def ledger_totals(home: Path, tool: str) -> dict[str, int]:
    db = sqlite3.connect(home / "data" / "ledger.db")
    try:
        got = dict(db.execute("SELECT u.token_type, SUM(u.tokens) FROM usage u JOIN sessions s "
                              "ON s.id = u.session_id WHERE s.tool = ? GROUP BY 1", (tool,)))
    finally:
        db.close()
    return {k: got.get(k, 0) for k in TYPES}


def ccusage_totals(out: str) -> dict[str, int]:
    """ccusage's totals in ledger types (its output is output; its `totalTokens` less
    input, cache and output is what else it counted: thoughts, reasoning again)."""
    t = json.loads(out)["totals"]
    got = {"input": t["inputTokens"], "cache_read": t["cacheReadTokens"],
           "output": t["outputTokens"]}
    got["total"] = t["totalTokens"]
    return got


def _median(runs: list[measure.Measured]) -> measure.Measured:
    return sorted(runs, key=lambda m: m.elapsed_s)[len(runs) // 2]


def _show(name: str, m: measure.Measured) -> None:
    status = "" if m.returncode == 0 else f"  (exit {m.returncode}: {m.stderr.strip()[-200:]})"
    print(f"  {name:<46} {m.elapsed_s:6.2f} s  {m.peak_rss_mb:5.0f} MB peak RSS{status}",
          flush=True)


def _diff(theirs: dict, truth: dict) -> str:
    parts = []
    for k in ("input", "cache_read", "output"):
        d = theirs[k] - truth[k]
        if d:
            parts.append(f"{k} {d:+,} ({d / truth[k]:+.1%})")
    whole = truth["input"] + truth["cache_read"] + truth["output"]
    d = theirs["total"] - whole
    parts.append(f"total {d:+,} ({d / whole:+.1%})")
    return ", ".join(parts)


def compare(work: Path, env: dict[str, str], ccusage: Path | None, sessions: int,
            repeat: int = 3) -> None:
    """Build (or reuse) both trees under `work`, import each, print the figures."""
    tree = work / "gemini-qwen"
    marker = tree / f".built-{sessions}"
    if not marker.exists():
        shutil.rmtree(tree, ignore_errors=True)
        g = history.build_gemini(tree / "gemini", sessions)
        q = history.build_qwen(tree / "qwen", sessions)
        marker.write_text(json.dumps({"gemini": g, "qwen": q}))
    built = json.loads(marker.read_text())
    gemini, qwen = tree / "gemini", tree / "qwen" / ".qwen"
    env = {**env, "GEMINI_CLI_HOME": str(gemini), "QWEN_HOME": str(qwen),
           "GEMINI_DATA_DIR": str(gemini / ".gemini"), "QWEN_DATA_DIR": str(qwen)}
    env.pop("QWEN_RUNTIME_DIR", None)
    for path in tree.rglob("*.jsonl"):  # the page cache holds the files for both alike
        path.read_bytes()
    home = Path(env["AITRACK_HOME"])
    for tool in ("gemini", "qwen"):
        b = built[tool]
        truth = history.totals(b["truth"])
        print(f"{tool}: {b['sessions']:,} sessions, {b['requests']:,} requests in the files, "
              f"{b['bytes'] / 1e6:,.0f} MB", flush=True)
        ours, theirs = [], []
        for _ in range(repeat):
            if ccusage is not None:
                theirs.append(measure.run([str(ccusage), tool, "daily", "--json", "--offline"],
                                          env=env))
            shutil.rmtree(home, ignore_errors=True)
            ours.append(measure.run([sys.executable, "-m", "aitrack", "import", "--tool", tool,
                                     "--json"], env=env))
        mine = _median(ours)
        _show(f"aitrack import --tool {tool} (median of {repeat})", mine)
        got = ledger_totals(home, tool)
        print(f"    totals equal the truth: {'yes' if got == truth else 'NO'} {got}")
        if ccusage is not None:
            cc = _median(theirs)
            _show(f"ccusage {CCUSAGE_VERSION} {tool} daily (median of {repeat})", cc)
            print(f"    ratio aitrack / ccusage: {mine.elapsed_s / cc.elapsed_s:.2f}x")
            print(f"    ccusage against the truth: {_diff(ccusage_totals(cc.stdout), truth)}")
        if tool == "gemini":
            r = history.totals(b["router"])
            print(f"    billed besides, in no file: {b['router_requests']:,} router calls "
                  f"({r['input'] + r['cache_read'] + r['output']:,} tokens): telemetry has them")
        else:
            s = history.totals(b["subagents"])
            print(f"    of which the memory extractor's: {b['subagent_requests']:,} requests "
                  f"({s['input'] + s['cache_read'] + s['output']:,} tokens)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1_500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="aitrack-bench-gq-"))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(work / "home"),
           "AITRACK_HOME": str(work / "aitrack-home"),
           "AITRACK_MANAGED_PROFILE": str(work / "no-managed.toml")}
    found = shutil.which("ccusage")
    ccusage = Path(found) if found else None
    if ccusage is not None:
        version = subprocess.run([str(ccusage), "--version"], capture_output=True, text=True)
        print(f"ccusage: {version.stdout.strip()}")
    compare(work, env, ccusage, args.sessions, args.repeat)
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
