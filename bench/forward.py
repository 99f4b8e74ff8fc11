"""What forwarding to the org endpoint costs: exit delay, flush throughput, bytes on the wire.

Prints, against a real HTTPS endpoint on loopback (tests/org_endpoint.py, throwaway CA):
  (a) the delay between the child's exit and aitrack's exit, median and max over RUNS runs of
      a child that sends one OTLP payload: with a healthy endpoint (target < 150 ms), with
      the port refusing connections and with a black hole that accepts but never answers
      (target < endpoint.flush_timeout_s + 100 ms, the bound being 2 s);
  (b) `aitrack flush` throughput on a backlog of BACKLOG payloads, on loopback and with
      20 ms added to every answer (a far-away endpoint): payloads/s, MB/s of protobuf;
  (c) bytes per session for the real claude and codex (tests/model_stub.py as the model):
      the OTLP/JSON the child produced (a direct run against a recorder) versus what aitrack
      sends in protobuf+gzip and in JSON+gzip.

Needs the `test` extra (cryptography) and a keychain; without one it re-runs itself under
dbus-run-session with a throwaway gnome-keyring, as tests/run.sh does.
Usage: python bench/forward.py [--runs N] [--backlog N]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import socket
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

ACCOUNT = f"aitrack-bench-{os.getpid()}"


def keychain_ok() -> bool:
    from aitrack import keychain

    try:
        keychain.set_token(ACCOUNT, "probe")
        return keychain.get_token(ACCOUNT) == "probe"
    except Exception:  # noqa: BLE001 - no backend, locked, no D-Bus...
        return False


def rerun_with_a_keyring() -> None:
    if os.environ.get("AITRACK_BENCH_KEYRING") or not (
            shutil.which("dbus-run-session") and shutil.which("gnome-keyring-daemon")):
        raise SystemExit("no usable keychain: run under tests/run.sh's keyring or install "
                         "gnome-keyring and dbus")
    data = tempfile.mkdtemp()
    script = ('printf pw | XDG_DATA_HOME="$0" gnome-keyring-daemon --unlock '
              '--components=secrets >/dev/null; exec "$@"')
    code = subprocess.call(["dbus-run-session", "--", "sh", "-c", script, data, sys.executable,
                            *sys.argv], env={**os.environ, "AITRACK_BENCH_KEYRING": "1"},
                           )
    shutil.rmtree(data, ignore_errors=True)
    raise SystemExit(code)


class Bench:
    def __init__(self, tmp: Path):
        import org_endpoint

        self.tmp = tmp
        self.ca = org_endpoint.Authority(tmp / "pki")
        cert, key = self.ca.issue()
        self.org = org_endpoint.OrgEndpoint(cert, key).start()
        self.child = tmp / "child.py"
        self.child.write_text(org_endpoint.CHILD)
        from aitrack import keychain

        keychain.set_token(ACCOUNT, org_endpoint.TOKEN)

    def home(self, name: str, url: str | None = None, **profile) -> dict[str, str]:
        import org_endpoint

        root = self.tmp / name
        root.mkdir()
        managed = root / "managed.toml"
        target = self.org
        if url is not None:
            target = org_endpoint.OrgEndpoint(Path(), Path(), port=int(url.rsplit(":", 1)[1]))
        managed.write_text(org_endpoint.profile_toml(target, self.ca.pem, ACCOUNT, **profile))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AITRACK_", "OTEL_"))}
        env.update(AITRACK_HOME=str(root / "home"), AITRACK_MANAGED_PROFILE=str(managed),
                   AITRACK_MANAGED_PLIST=str(root / "none.plist"))
        return env

    def exit_delay_ms(self, env: dict[str, str], linger: float) -> float:
        exit_at = self.tmp / "exit-at"
        subprocess.run([sys.executable, "-m", "aitrack", "run", "--", sys.executable,
                        str(self.child)], env={**env, "EXIT_AT": str(exit_at), "SEND": "1",
                                               "LINGER": str(linger)},
                       capture_output=True, check=False, timeout=60)
        done = time.time()
        return (done - float(exit_at.read_text())) * 1000


def exit_delays(bench: Bench, runs: int) -> dict[str, list[float]]:
    refused = socket.socket()
    refused.bind(("127.0.0.1", 0))
    refused_port = refused.getsockname()[1]
    refused.close()  # nobody listens there now
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(64)  # the kernel accepts, nobody ever answers
    healthy = bench.home("healthy")
    cases = {  # name: (env, seconds the child lingers after sending)
        "healthy, child runs 1 s": (healthy, 1.0),
        "healthy, child runs 0.15 s": (healthy, 0.0),
        "refused": (bench.home("refused", url=f"https://127.0.0.1:{refused_port}"), 0.0),
        "black hole": (bench.home("hole", url=f"https://127.0.0.1:{hole.getsockname()[1]}"),
                       0.0),
    }
    results: dict[str, list[float]] = {name: [] for name in cases}
    for env, linger in cases.values():  # warm: bytecode, start-up cache, ledger
        bench.exit_delay_ms(env, linger)
    for _ in range(runs):
        for name, (env, linger) in cases.items():
            results[name].append(bench.exit_delay_ms(env, linger))
    hole.close()
    return results


def flush_throughput(bench: Bench, backlog: int, delay_s: float) -> dict[str, float]:
    from org_endpoint import queue

    env = bench.home(f"backlog-{delay_s}")
    ledger = Path(env["AITRACK_HOME"]) / "data" / "ledger.db"
    per_session = 50
    for start in range(0, backlog, per_session):  # claude-like: ~1.5 KB metrics and logs
        seqs = [str(i) for i in range(start, min(start + per_session, backlog))]
        queue(ledger, seqs[::2], pad=1000)
        queue(ledger, seqs[1::2], signal="logs", pad=1000)
    bench.org.requests.clear()
    bench.org.delay_s = delay_s
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "aitrack", "flush", "--json"], env=env,
                            capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    bench.org.delay_s = 0
    report = json.loads(result.stdout)
    if report["sent"] != backlog or report["pending"]:
        raise SystemExit(f"flush did not deliver the backlog: {result.stdout} {result.stderr}")
    return {"payloads_per_s": backlog / elapsed, "mb_per_s": report["sent_bytes"] / elapsed / 1e6,
            "wire_mb": report["wire_bytes"] / 1e6, "mb": report["sent_bytes"] / 1e6,
            "requests": len(bench.org.requests), "seconds": elapsed}


# ---------------------------------------------------------------- (c) bytes per session


class Recorder:
    """A plain OTLP/HTTP receiver on loopback that keeps the size of what the child sent."""

    def __init__(self):
        self.bodies: list[tuple[str, int, int]] = []  # (path, bytes on the wire, decoded)
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                wire = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                gz = self.headers.get("Content-Encoding") == "gzip"
                body = gzip.decompress(wire) if gz else wire
                recorder.bodies.append((self.path, len(wire), len(body)))
                answer = b"{}"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


def agent_runs(bench: Bench) -> dict[str, dict] | str:
    bin_dir = os.environ.get("AITRACK_E2E_BIN_DIR") or str(
        Path.home() / ".cache" / "aitrack-e2e" / "node_modules" / ".bin")
    bins = {name: shutil.which(name, path=bin_dir) for name in ("claude", "codex")}
    if not all(bins.values()):
        return f"skipped: the real claude/codex are not installed in {bin_dir}"
    import model_stub
    from agents import codex_provider_args

    stub, server = model_stub.start()
    out = {}
    try:
        for tool in ("claude", "codex"):
            args = (["-p", "say hello", "--max-turns", "1"] if tool == "claude" else
                    ["exec", *codex_provider_args(stub), "say hello"])
            out[tool] = {"child_json": _direct(bench, tool, bins[tool], args, stub)}
            for protocol in ("http/protobuf", "http/json"):
                out[tool][protocol] = _wrapped(bench, tool, bins[tool], args, stub, protocol)
    finally:
        server.shutdown()
    return out


def _agent_env(bench: Bench, stub, name: str) -> dict[str, str]:
    home = bench.tmp / f"user-{name}"
    (home / ".codex").mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AITRACK_", "OTEL_"))}
    env.update(HOME=str(home), ANTHROPIC_BASE_URL=stub.url, ANTHROPIC_API_KEY="sk-ant-test",
               MOCK_KEY="sk-test", CODEX_HOME=str(home / ".codex"), DISABLE_AUTOUPDATER="1")
    return env


def _direct(bench: Bench, tool: str, binary: str, args: list[str], stub) -> dict:
    """The agent on its own, with the telemetry settings aitrack would give it."""
    from aitrack import adapters
    from aitrack.adapters import Sink

    recorder = Recorder()
    telemetry = {"metric_export_interval_ms": 60000, "logs_export_interval_ms": 5000,
                 "log_user_prompts": False, "log_tool_details": False}
    sink = Sink(recorder.url, "x-aitrack-key", "bench", ("metrics", "logs"), {}, telemetry)
    argv, env = adapters.load(tool).prepare(list(args), _agent_env(bench, stub, f"d-{tool}"),
                                            sink)
    subprocess.run([binary, *argv], env=env, cwd=bench.tmp, capture_output=True, timeout=180,
                   stdin=subprocess.DEVNULL)
    recorder.server.shutdown()
    return {"payloads": len(recorder.bodies), "wire": sum(b[1] for b in recorder.bodies),
            "json": sum(b[2] for b in recorder.bodies)}


def _wrapped(bench: Bench, tool: str, binary: str, args: list[str], stub, protocol: str) -> dict:
    env = {**bench.home(f"{tool}-{protocol.split('/')[1]}", protocol=protocol),
           **{k: v for k, v in _agent_env(bench, stub, f"w-{tool}").items()
              if k in ("HOME", "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", "MOCK_KEY",
                       "CODEX_HOME", "DISABLE_AUTOUPDATER")},
           f"AITRACK_{tool.upper()}_BIN": binary}
    bench.org.requests.clear()
    subprocess.run([sys.executable, "-m", "aitrack", tool, *args], env=env, cwd=bench.tmp,
                   capture_output=True, timeout=180, stdin=subprocess.DEVNULL)
    requests = list(bench.org.requests)
    return {"payloads": sum(len(r.blocks) for r in requests), "requests": len(requests),
            "wire": sum(len(r.wire) for r in requests),
            "uncompressed": sum(len(r.body) for r in requests)}


# ---------------------------------------------------------------- report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--backlog", type=int, default=4000)
    options = parser.parse_args()
    if not keychain_ok():
        rerun_with_a_keyring()
    from aitrack import keychain

    with tempfile.TemporaryDirectory() as tmp_dir:
        bench = Bench(Path(tmp_dir))
        try:
            delays = exit_delays(bench, options.runs)
            local = flush_throughput(bench, options.backlog, 0.0)
            far = flush_throughput(bench, options.backlog, 0.02)
            agents = agent_runs(bench)
        finally:
            bench.org.stop()
            keychain.delete_token(ACCOUNT)
    med = statistics.median
    print(f"(a) child exit -> aitrack exit, {options.runs} runs, one payload per run "
          "(flush bound 2 s):")
    for name, values in delays.items():
        target = 150 if name.startswith("healthy") else 2100
        print(f"    {name:<27} median {med(values):7.1f} ms  max {max(values):7.1f} ms  "
              f"target < {target} ms  {'OK' if max(values) < target else 'OVER'}")
    print(f"(b) aitrack flush, backlog of {options.backlog} payloads "
          f"({local['mb']:.1f} MB protobuf, {local['wire_mb']:.1f} MB gzip on the wire):")
    for label, r in (("loopback", local), ("+20 ms per answer", far)):
        print(f"    {label:<18} {r['payloads_per_s']:8.0f} payloads/s  {r['mb_per_s']:6.2f} MB/s  "
              f"{r['requests']} requests in {r['seconds']:.2f} s")
    print("(c) bytes per session (real agents against the model stub):")
    if isinstance(agents, str):
        print(f"    {agents}")
    else:
        for tool, r in agents.items():
            child, pb, js = r["child_json"], r["http/protobuf"], r["http/json"]
            print(f"    {tool:<6} child OTLP/JSON {child['json']:8d} B in {child['payloads']} "
                  f"payloads (on its wire {child['wire']} B) | sent protobuf+gzip "
                  f"{pb['wire']:7d} B ({pb['wire'] / child['json']:.1%}, {pb['payloads']} "
                  f"payloads, {pb['requests']} requests) | JSON+gzip {js['wire']:7d} B "
                  f"({js['wire'] / child['json']:.1%})")
    print(json.dumps({"exit_delay_ms": {k: {"median": round(med(v), 1), "max": round(max(v), 1)}
                                        for k, v in delays.items()},
                      "flush": {"loopback": local, "far": far}, "agents": agents}))


if __name__ == "__main__":
    main()
