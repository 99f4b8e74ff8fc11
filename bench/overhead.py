"""How long aitrack delays the tool it wraps, and how much memory it takes.

Prints medians over RUNS runs, side by side in one run:
  (a) invoking `aitrack run -- CHILD` to the child's first instruction, minus the same
      for invoking CHILD directly (target: at most 2x the floor (c));
  (b) the same for a child that exits at once, whole process (target: under 100 ms);
  (c) bare `python -c pass` start-up, the floor;
  (d) aitrack's peak RSS during a session whose child sends one OTLP payload (target: < 40 MB).

Usage: python bench/overhead.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import measure

FIRST_INSTRUCTION_C = r"""
#include <stdio.h>
#include <time.h>
int main(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    printf("%lld\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
    return 0;
}
"""

SEND_ONE_PAYLOAD = r"""
import json, os, urllib.request
key, value = os.environ["OTEL_EXPORTER_OTLP_HEADERS"].split("=", 1)
body = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "gen_ai.client.token.usage",
    "histogram": {"aggregationTemporality": 1, "dataPoints": [{"sum": 100, "count": "1",
    "attributes": [{"key": "gen_ai.token.type", "value": {"stringValue": "input"}},
                   {"key": "gen_ai.response.model", "value": {"stringValue": "m"}}]}]}}]}]}]}
req = urllib.request.Request(os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] + "/v1/metrics",
    data=json.dumps(body).encode(), headers={"Content-Type": "application/json", key: value})
assert urllib.request.urlopen(req).status == 200
"""


def build_child(tmp: Path) -> list[str]:
    """A child that prints the wall clock as its first instruction (C if gcc exists)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc:
        src, exe = tmp / "first.c", tmp / "first"
        src.write_text(FIRST_INSTRUCTION_C)
        subprocess.run([cc, "-O2", "-o", str(exe), str(src)], check=True)
        return [str(exe)]
    return [sys.executable, "-S", "-c", "import time; print(time.time_ns())"]


def to_first_instruction(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(ms until the child's first instruction, ms for the whole process)."""
    start = time.time_ns()
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
    end = time.time_ns()
    return (int(out.split()[0]) - start) / 1e6, (end - start) / 1e6


def wall_ms(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, capture_output=True, check=True)
    return (time.perf_counter() - start) * 1000


def peak_rss_mb(argv: list[str], env: dict[str, str]) -> float:
    result = measure.run(argv, env)
    if result.returncode != 0:
        raise SystemExit(f"session failed: {result.stderr}")
    return result.peak_rss_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    runs = parser.parse_args().runs
    aitrack = shutil.which("aitrack", path=str(Path(sys.executable).parent)) or "aitrack"
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AITRACK_", "OTEL_"))}
        env.update(AITRACK_HOME=str(tmp / "home"),
                   AITRACK_MANAGED_PROFILE=str(tmp / "none.toml"),
                   # as installed by pip: bytecode cached (this machine's environment sets
                   # PYTHONDONTWRITEBYTECODE and its stdlib lacks some .pyc files)
                   PYTHONPYCACHEPREFIX=str(tmp / "pycache"))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        child = build_child(tmp)
        wrapped = [aitrack, "run", "--", *child]
        for _ in range(3):  # warm caches: bytecode, the start-up settings, the ledger
            to_first_instruction(wrapped, env)
            wall_ms([sys.executable, "-c", "pass"], env)
        first_direct, first_wrapped, whole_direct, whole_wrapped, floor = [], [], [], [], []
        for _ in range(runs):  # interleaved so drift hits every series alike
            d_first, d_whole = to_first_instruction(child, env)
            w_first, w_whole = to_first_instruction(wrapped, env)
            first_direct.append(d_first)
            first_wrapped.append(w_first)
            whole_direct.append(d_whole)
            whole_wrapped.append(w_whole)
            floor.append(wall_ms([sys.executable, "-c", "pass"], env))
        rss = [peak_rss_mb([aitrack, "run", "--", sys.executable, "-c", SEND_ONE_PAYLOAD], env)
               for _ in range(5)]
    med = statistics.median
    a = med(first_wrapped) - med(first_direct)
    b = med(whole_wrapped) - med(whole_direct)
    c = med(floor)
    d = max(rss)
    report = {
        "runs": runs,
        "a_first_instruction_overhead_ms": round(a, 1),
        "b_exit_at_once_overhead_ms": round(b, 1),
        "c_python_floor_ms": round(c, 1),
        "d_peak_rss_mb": round(d, 1),
    }
    print(f"runs: {runs} (medians)")
    print(f"(a) to child's first instruction: aitrack {med(first_wrapped):6.1f} ms, direct "
          f"{med(first_direct):5.1f} ms, overhead {a:6.1f} ms  target <= {2 * c:5.1f} ms (2x floor)"
          f"  {'OK' if a <= 2 * c else 'OVER'}")
    print(f"(b) child exits at once, whole:   aitrack {med(whole_wrapped):6.1f} ms, direct "
          f"{med(whole_direct):5.1f} ms, overhead {b:6.1f} ms  target <  100.0 ms"
          f"  {'OK' if b < 100 else 'OVER'}")
    print(f"(c) python -c pass (floor):       {c:6.1f} ms")
    print(f"(d) aitrack peak RSS (one payload): {d:5.1f} MB  target < 40 MB"
          f"  {'OK' if d < 40 else 'OVER'}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
