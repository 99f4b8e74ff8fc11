"""What the per-user agent costs: answer time, the tool's wall time, idle memory and CPU.

Prints:
  (a) the time to answer an 800 KB Codex OTLP/JSON export (a real `codex exec` metrics
      export, grown to 800 KB with more of its own metrics), median and p95 over N posts
      on one keep-alive connection: target median < 20 ms;
  (b) `aitrack codex exec` with Codex's settings pointing at the agent, against the same
      `codex exec` run directly exporting to a do-nothing sink, alternated run by run in one
      run of this script, a second apart (the agent ledgers after answering: that work must
      not land on the next run of either kind): medians and their ratio, target <= 1.10;
  (c) the agent's RSS once idle after (a) and (b): target < 40 MB;
  (d) its CPU seconds per idle hour (measured over IDLE_S seconds): no busy polling.

Needs the real codex (tests/run.sh installs it; AITRACK_E2E_BIN_DIR or
~/.cache/aitrack-e2e/node_modules/.bin). Usage: python bench/agent.py [--posts N] [--runs N]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import model_stub  # noqa: E402

PORT = 47391
IDLE_S = 60.0
SETTLE_S = 1.0  # between runs, as between a developer's commands


class Sink(BaseHTTPRequestHandler):
    """Answers every export at once: the fastest receiver there can be."""

    protocol_version = "HTTP/1.1"
    bodies: list[bytes] = []
    keep = False

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.keep and self.path.endswith("/v1/metrics"):
            self.bodies.append(body)
        self.send_response(200)
        self.send_header("Content-Type", self.headers.get("Content-Type", "application/json"))
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


def serve(handler) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def codex_bin() -> str:
    found = shutil.which("codex", path=os.environ.get("AITRACK_E2E_BIN_DIR") or str(
        Path.home() / ".cache/aitrack-e2e/node_modules/.bin"))
    if not found:
        sys.exit("the real codex is not installed: run `bash tests/run.sh` once")
    return found


def codex_config(codex_home: Path, stub_url: str, otel_url: str, protocol: str,
                 headers: dict[str, str]) -> None:
    codex_home.mkdir(parents=True, exist_ok=True)
    head = ", ".join(f'"{k}" = "{v}"' for k, v in headers.items())
    exporters = "\n".join(
        f'{key} = {{ otlp-http = {{ endpoint = "{otel_url}/v1/{signal}", protocol = '
        f'"{protocol}", headers = {{ {head} }} }} }}'
        for key, signal in (("exporter", "logs"), ("metrics_exporter", "metrics"),
                            ("trace_exporter", "traces")))
    (codex_home / "config.toml").write_text(f"""
model_provider = "mock"
model = "gpt-5"
[model_providers.mock]
name = "mock"
base_url = "{stub_url}/v1"
env_key = "MOCK_KEY"
wire_api = "responses"
[otel]
{exporters}
""")
    (codex_home / "config.toml").chmod(0o600)


def capture_export(codex: str, stub_url: str, tmp: Path) -> bytes:
    """A real Codex metrics export as OTLP/JSON, grown to about 800 KB with its own metrics."""
    Sink.keep = True
    sink = serve(Sink)
    home = tmp / "capture"
    codex_config(home / ".codex", stub_url, f"http://127.0.0.1:{sink.server_port}", "json", {})
    subprocess.run([codex, "exec", "--skip-git-repo-check", "hi"], cwd=tmp, capture_output=True,
                   env={**os.environ, "HOME": str(home), "CODEX_HOME": str(home / ".codex"),
                        "MOCK_KEY": "k"}, timeout=120, check=True)
    sink.shutdown()
    Sink.keep = False
    data = json.loads(max(Sink.bodies, key=len))
    metrics = data["resourceMetrics"][0]["scopeMetrics"][0]["metrics"]
    own = list(metrics)
    while len(json.dumps(data)) < 800_000:
        metrics.extend(own)
    return json.dumps(data).encode()


def start_agent(env: dict[str, str]) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "aitrack", "agent", "run"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            http.client.HTTPConnection("127.0.0.1", PORT, timeout=0.2).connect()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit(f"the agent did not start: {proc.stderr.read().decode()[-500:]}")


def ack_times(body: bytes, secret: str, posts: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
    times = []
    for i in range(posts):
        # vary one byte per post so that no post is a duplicate of another
        unique = body.replace(b'"service.name"', b'"service.name"', 1) + b" " * (i % 7)
        start = time.perf_counter()
        conn.request("POST", "/v1/metrics", body=unique,
                     headers={"Content-Type": "application/json", "x-aitrack-key": secret})
        answer = conn.getresponse()
        answer.read()
        times.append(time.perf_counter() - start)
        if answer.status != 200:
            sys.exit(f"the agent answered {answer.status}")
    conn.close()
    return times


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=50)
    parser.add_argument("--runs", type=int, default=16)
    opts = parser.parse_args()
    import psutil

    codex = codex_bin()
    stub, stub_server = model_stub.start()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        export = capture_export(codex, stub.url, tmp)
        env = {**os.environ, "AITRACK_HOME": str(tmp / "aitrack"),
               "AITRACK_MANAGED_PROFILE": str(tmp / "managed.toml")}
        (tmp / "managed.toml").write_text(f"[agent]\nport = {PORT}\n")
        agent = start_agent(env)
        secret = (tmp / "aitrack/state/agent/secret").read_text().strip()

        times = ack_times(export, secret, opts.posts)
        p95 = sorted(times)[int(0.95 * (len(times) - 1))]
        verdict = "OK" if statistics.median(times) < 0.020 else "OVER"
        print(f"(a) answer to an {len(export) / 1000:.0f} KB Codex JSON export, {len(times)} "
              f"posts: median {ms(statistics.median(times))}, p95 {ms(p95)}  "
              f"target median < 20 ms  {verdict}")

        sink = serve(Sink)
        direct_home, agent_home = tmp / "direct", tmp / "via-aitrack"
        codex_config(direct_home / ".codex", stub.url, f"http://127.0.0.1:{sink.server_port}",
                     "binary", {"x-aitrack-key": "unused"})
        codex_config(agent_home / ".codex", stub.url, f"http://127.0.0.1:{PORT}", "binary",
                     {"x-aitrack-key": secret})
        direct_cmd = [codex, "exec", "--skip-git-repo-check", "hi"]
        wrapped_cmd = [sys.executable, "-m", "aitrack", "codex", "exec", "--skip-git-repo-check",
                       "hi"]
        direct, wrapped = [], []
        for _ in range(opts.runs):
            for cmd, home, out in ((direct_cmd, direct_home, direct),
                                   (wrapped_cmd, agent_home, wrapped)):
                run_env = {**env, "HOME": str(home), "CODEX_HOME": str(home / ".codex"),
                           "MOCK_KEY": "k", "AITRACK_CODEX_BIN": codex}
                start = time.perf_counter()
                subprocess.run(cmd, cwd=tmp, env=run_env, capture_output=True, timeout=120,
                               check=True)
                out.append(time.perf_counter() - start)
                time.sleep(SETTLE_S)  # what each run leaves to do (ledgering) is not the next's
        ratio = statistics.median(wrapped) / statistics.median(direct)
        mode = subprocess.run([sys.executable, "-c", "import sqlite3,sys; print(sqlite3.connect("
                               "sys.argv[1]).execute('SELECT mode FROM runs LIMIT 1')"
                               ".fetchone()[0])", str(tmp / "aitrack/data/ledger.db")],
                              capture_output=True, text=True).stdout.strip()
        print(f"(b) codex exec, {opts.runs} runs each, alternated, {SETTLE_S:g} s apart: direct "
              f"to a do-nothing sink {ms(statistics.median(direct))}, `aitrack codex` with the "
              f"agent {ms(statistics.median(wrapped))} (run mode: {mode or '?'}); ratio "
              f"{ratio:.2f}x  target <= 1.10x  {'OK' if ratio <= 1.10 else 'OVER'}")
        print(f"    spread (min-max): direct {ms(min(direct))}-{ms(max(direct))}, aitrack "
              f"{ms(min(wrapped))}-{ms(max(wrapped))}")

        process = psutil.Process(agent.pid)
        time.sleep(35)  # past the agent's periodic tick, which gives freed memory back
        rss = process.memory_info().rss / 1024 / 1024
        print(f"(c) agent RSS once idle: {rss:.1f} MB  target < 40 MB  "
              f"{'OK' if rss < 40 else 'OVER'}")
        before = process.cpu_times()
        time.sleep(IDLE_S)
        after = process.cpu_times()
        used = (after.user + after.system) - (before.user + before.system)
        print(f"(d) agent CPU while idle: {used:.3f} s over {IDLE_S:.0f} s = "
              f"{used * 3600 / IDLE_S:.1f} CPU-seconds per idle hour")
        agent.terminate()
        agent.wait(10)
        sink.shutdown()
    stub_server.shutdown()


if __name__ == "__main__":
    main()
