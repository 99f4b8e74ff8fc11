"""Gemini CLI and Qwen Code with their settings pointing at an agent that is not running.

Each tool, against the test model stub, in a throwaway HOME whose settings send telemetry
to the agent's port, with the agent stopped (nothing listens there):
- the tool alone, telemetry off: its usual time;
- the tool alone, started directly: what a closed port costs it (Gemini CLI: about 8 s and
  retry lines on stdout; Qwen Code: about 8 s);
- `aitrack TOOL`: the wrapper sees the agent down and gives the run a receiver of its own.
Prints the wall time of each (median of --repeat) and what stdout held besides the answer.
Target: `aitrack TOOL` within 0.5 s of the usual time, nothing extra on stdout.

Usage: python bench/closed_port.py [--repeat N] [--bin-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil  # the test extra's

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import model_stub  # noqa: E402 - the tests' stub, from its folder

ANSWER = "Hello from the stub."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str, int]:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    return time.perf_counter() - started, done.stdout, done.returncode


def stop_agents(aitrack_home: str) -> None:
    """The agents (and their workers) a wrapped run started in this aitrack home."""
    for proc in psutil.process_iter(["cmdline", "environ"]):
        try:
            if (proc.info["cmdline"] or [])[-2:] == ["agent", "run"] and \
                    (proc.info["environ"] or {}).get("AITRACK_HOME") == aitrack_home:
                for p in (*proc.children(recursive=True), proc):
                    p.kill()
                proc.wait(5)
        except (psutil.Error, TypeError):
            continue


def extra(stdout: str) -> str:
    rest = [line for line in stdout.splitlines() if line.strip() and line.strip() != ANSWER]
    return f"{len(rest)} extra line(s): {rest[0][:70]!r}" if rest else "nothing extra"


def measure(tool: str, bin_dir: Path, work: Path, stub, repeat: int) -> None:
    port = free_port()
    home = work / tool / "home"
    project = work / tool / "project"
    project.mkdir(parents=True)
    telemetry = {"enabled": True, "target": "local", "otlpEndpoint": f"http://127.0.0.1:{port}",
                 "otlpProtocol": "http", "logPrompts": False}
    binary = str(bin_dir / tool)
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "TMPDIR": str(work / "tmp"),
           "AITRACK_HOME": str(work / tool / "aitrack"),
           "AITRACK_MANAGED_PROFILE": str(work / tool / "profile.toml")}
    (work / "tmp").mkdir(exist_ok=True)
    Path(env["AITRACK_MANAGED_PROFILE"]).write_text(f"[agent]\nport = {port}\n")
    if tool == "gemini":
        settings = {"privacy": {"usageStatisticsEnabled": False},
                    "general": {"enableAutoUpdate": False},
                    "security": {"auth": {"selectedType": "gemini-api-key"},
                                 "folderTrust": {"enabled": False}}}
        folder, args = home / ".gemini", ["-p", "say hi"]
        env.update(GEMINI_API_KEY="gm-test", GOOGLE_GEMINI_BASE_URL=stub.url,
                   AITRACK_GEMINI_BIN=binary)
    else:
        settings = {}
        folder, args = home / ".qwen", ["--auth-type", "openai", "-p", "say hi"]
        env.update(OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=f"{stub.url}/v1",
                   AITRACK_QWEN_BIN=binary)
    folder.mkdir(parents=True)
    off = folder / "settings.json"
    ways = {
        f"{tool} alone, telemetry off (usual)": (lambda: off.write_text(json.dumps(settings)),
                                                 [binary, *args]),
        f"{tool} alone, settings -> stopped agent": (
            lambda: off.write_text(json.dumps({**settings, "telemetry": telemetry})),
            [binary, *args]),
        f"aitrack {tool}, settings -> stopped agent": (
            lambda: off.write_text(json.dumps({**settings, "telemetry": telemetry})),
            [sys.executable, "-m", "aitrack", tool, *args]),
    }
    usual = None
    for name, (prepare, argv) in ways.items():
        runs = []
        for _ in range(repeat):
            prepare()
            runs.append(timed(argv, env, project))
            stop_agents(env["AITRACK_HOME"])  # the wrapper woke it: the next run finds it down
        runs.sort()
        elapsed, stdout, code = runs[len(runs) // 2]
        usual = usual if usual is not None else elapsed
        print(f"{name:<44} {elapsed:6.2f} s ({', '.join(f'{r[0]:.2f}' for r in runs)})  "
              f"{elapsed - usual:+.2f} s  rc {code}, {extra(stdout)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bin-dir", type=Path, default=Path(os.environ.get(
        "AITRACK_E2E_BIN_DIR", Path.home() / ".cache/aitrack-e2e/node_modules/.bin")))
    args = parser.parse_args()
    stub, server = model_stub.start()
    try:
        with tempfile.TemporaryDirectory(prefix="aitrack-bench-port-") as tmp:
            for tool in ("gemini", "qwen"):
                measure(tool, args.bin_dir, Path(tmp), stub, args.repeat)
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
