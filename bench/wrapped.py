"""A wrapped run against a direct one, both with the per-user agent: what the wrapper costs.

`aitrack agent install --no-service` in a throwaway HOME points Codex's own settings at the
agent and starts it; `aitrack shims install` puts the shims in a directory of their own.
Then, alternated run by run (A B A B ..., a second apart: the agent links an ended run
after the wrapper exits, and that work must not land on the next run of either kind):
  direct   the real `codex exec` (its telemetry goes to the agent, as wrapped)
  aitrack  `aitrack codex exec`, through the installed `aitrack` command
  shim     `codex exec`, through the installed `codex` shim (what a developer types)
Prints medians and the median of the pair-by-pair ratios (target <= 1.03x), and checks that
every wrapped run was recorded with its exit status.

Needs the real codex (tests/run.sh installs it; AITRACK_E2E_BIN_DIR or
~/.cache/aitrack-e2e/node_modules/.bin). Usage: python bench/wrapped.py [--runs N]
[--python-only] (the shims without the fast way: what a wrapped run cost before it)
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import model_stub  # noqa: E402
from agent import codex_bin  # noqa: E402 - bench/agent.py's: the same real codex
from aitrack.install import shim_scripts  # noqa: E402
from aitrack.install import shims as installer  # noqa: E402

SETTLE_S = 1.0  # between runs, as between a developer's commands
TARGET = 1.03


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup(tmp: Path, stub_url: str, codex: str, python_only: bool = False
          ) -> tuple[dict[str, str], Path]:
    """A developer's account: Codex configured, the agent wired and running, shims on PATH."""
    user_home, shims = tmp / "user-home", tmp / "shims"
    (user_home / ".codex").mkdir(parents=True)
    (user_home / ".codex" / "config.toml").write_text(
        'model_provider = "mock"\nmodel = "gpt-5"\n[model_providers.mock]\nname = "mock"\n'
        f'base_url = "{stub_url}/v1"\nenv_key = "MOCK_KEY"\nwire_api = "responses"\n')
    (tmp / "managed.toml").write_text(f"[agent]\nport = {free_port()}\n")
    real_bin = tmp / "real-bin"  # the real codex on PATH after the shims, as installed
    real_bin.mkdir()
    (real_bin / "codex").symlink_to(codex)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AITRACK_", "OTEL_"))}
    env.update(AITRACK_HOME=str(tmp / "aitrack"), AITRACK_MANAGED_PROFILE=str(tmp / "managed.toml"),
               HOME=str(user_home), CODEX_HOME=str(user_home / ".codex"), MOCK_KEY="k",
               PATH=os.pathsep.join([str(shims), str(real_bin), os.environ.get("PATH", "")]),
               # as installed by pip: bytecode cached (this machine's environment sets
               # PYTHONDONTWRITEBYTECODE and its stdlib lacks some .pyc files)
               PYTHONPYCACHEPREFIX=str(tmp / "pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    aitrack = [sys.executable, "-m", "aitrack"]
    for args in (["shims", "install", "--dir", str(shims)],
                 ["agent", "install", "--no-service"]):
        done = subprocess.run([*aitrack, *args], env=env, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"aitrack {' '.join(args)} failed: {done.stderr}")
    if python_only:  # the shims as they were before the fast way: Python every time
        flags = installer.interpreter_flags(sys.executable)
        for name, text in shim_scripts.rendered(sys.executable, flags, env=None).items():
            (shims / name).write_text(text)
    return env, shims


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, capture_output=True, timeout=120, check=True,
                   stdin=subprocess.DEVNULL)
    return time.perf_counter() - start


def ms(seconds: float) -> str:
    return f"{seconds * 1000:6.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--python-only", action="store_true",
                        help="shims without the fast way: the Python wrapper every run")
    options = parser.parse_args()
    runs = options.runs
    codex = codex_bin()
    stub, stub_server = model_stub.start()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        env, shims = setup(tmp, stub.url, codex, options.python_only)
        work = tmp / "work"
        work.mkdir()
        prompt = ["exec", "--skip-git-repo-check", "hi"]
        kinds = {"direct": [codex, *prompt], "aitrack": [str(shims / "aitrack"), "codex", *prompt],
                 "shim": [str(shims / "codex"), *prompt]}
        for argv in kinds.values():  # warm caches: bytecode, the start-up settings, codex's
            timed(argv, env, work)
            time.sleep(SETTLE_S)
        times: dict[str, list[float]] = {k: [] for k in kinds}
        for _ in range(runs):
            for kind, argv in kinds.items():
                times[kind].append(timed(argv, env, work))
                time.sleep(SETTLE_S)
        time.sleep(2 * SETTLE_S)
        db = sqlite3.connect(tmp / "aitrack/data/ledger.db")
        recorded = db.execute("SELECT mode, COUNT(*), SUM(exit_code = 0), SUM(ended_at IS NOT "
                              "NULL) FROM runs GROUP BY mode").fetchall()
        db.close()
        subprocess.run([sys.executable, "-m", "aitrack", "agent", "stop"], env=env,
                       capture_output=True)
    stub_server.shutdown()
    med = statistics.median
    direct = times["direct"]
    way = "Python every run" if options.python_only else "the fast way"
    print(f"codex exec, {runs} runs of each kind, alternated, {SETTLE_S:g} s apart (medians; "
          f"spread min-max); shims: {way}")
    report = {"runs": runs}
    for kind, values in times.items():
        line = f"  {kind:8s} {ms(med(values))}  ({ms(min(values))} - {ms(max(values))})"
        if kind != "direct":
            ratio = med([w / d for w, d in zip(values, direct, strict=True)])
            report[f"{kind}_ratio"] = round(ratio, 3)
            line += (f"  ratio {ratio:.3f}x (pair by pair)  target <= {TARGET}x  "
                     f"{'OK' if ratio <= TARGET else 'OVER'}")
        report[f"{kind}_ms"] = round(med(values) * 1000, 1)
        print(line)
    wrapped = 2 * (runs + 1)  # the warm-up's and the timed runs of both wrapped kinds
    print(f"  runs recorded (mode, runs, exit 0, ended): {recorded}; {wrapped} wrapped runs "
          f"{'all recorded' if recorded == [('agent', wrapped, wrapped, wrapped)] else 'MISSING'}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
