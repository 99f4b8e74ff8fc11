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
      sends in protobuf+gzip and in JSON+gzip, and (protobuf+gzip) under each egress policy
      (`[endpoint] forward`: both families, raw only, normalized only). Claude runs wrapped
      with its per-run receiver, Codex wrapped with the per-user agent (its settings pointing
      at it), which sends aitrack's own metrics for it;
  (d) the exit-time work aitrack added for its own metrics and contribution figures, timed
      in-process: the emission for one run's session and git (HEAD at the start, the commits
      at the end), with the cases of (a) in a git work tree and under `forward = ["raw"]`
      showing what they cost a whole run.

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
    from aitrack.config import keychain

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
        self.plain = tmp / "plain"  # not a git work tree
        self.plain.mkdir()
        self.repo = make_repo(tmp / "repo")
        from aitrack.config import keychain

        keychain.set_token(ACCOUNT, org_endpoint.TOKEN)

    def home(self, name: str, url: str | None = None, tail: str = "",
             **profile) -> dict[str, str]:
        import org_endpoint

        root = self.tmp / name
        root.mkdir()
        managed = root / "managed.toml"
        target = self.org
        if url is not None:
            target = org_endpoint.OrgEndpoint(Path(), Path(), port=int(url.rsplit(":", 1)[1]))
        managed.write_text(org_endpoint.profile_toml(target, self.ca.pem, ACCOUNT, **profile)
                           + tail)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AITRACK_", "OTEL_"))}
        env.update(AITRACK_HOME=str(root / "home"), AITRACK_MANAGED_PROFILE=str(managed),
                   AITRACK_MANAGED_PLIST=str(root / "none.plist"))
        return env

    def exit_delay_ms(self, env: dict[str, str], linger: float, cwd: Path | None = None
                      ) -> float:
        exit_at = self.tmp / "exit-at"
        subprocess.run([sys.executable, "-m", "aitrack", "run", "--", sys.executable,
                        str(self.child)], env={**env, "EXIT_AT": str(exit_at), "SEND": "1",
                                               "LINGER": str(linger)},
                       capture_output=True, check=False, timeout=60, cwd=cwd or self.plain)
        done = time.time()
        return (done - float(exit_at.read_text())) * 1000


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def make_repo(path: Path) -> Path:
    """A git work tree with some history, as a user's project would be."""
    path.mkdir()
    git(path, "init", "-q")
    git(path, "config", "user.email", "dev@example.com")
    git(path, "config", "user.name", "Dev")
    for i in range(200):
        (path / f"f{i % 20}.txt").write_text(f"{i}\n" * (i + 1))
        git(path, "add", ".")
        git(path, "commit", "-qm", f"commit {i}")
    return path


def exit_delays(bench: Bench, runs: int) -> dict[str, list[float]]:
    refused = socket.socket()
    refused.bind(("127.0.0.1", 0))
    refused_port = refused.getsockname()[1]
    refused.close()  # nobody listens there now
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(64)  # the kernel accepts, nobody ever answers
    healthy = bench.home("healthy")
    cases = {  # name: (env, seconds the child lingers after sending, working directory)
        "healthy, child runs 1 s": (healthy, 1.0, None),
        "healthy, child runs 0.15 s": (healthy, 0.0, None),
        "healthy, 0.15 s, raw only": (bench.home("raw-only", extra='forward = ["raw"]'), 0.0,
                                      None),
        "healthy, 0.15 s, git tree": (healthy, 0.0, bench.repo),
        "refused": (bench.home("refused", url=f"https://127.0.0.1:{refused_port}"), 0.0, None),
        "black hole": (bench.home("hole", url=f"https://127.0.0.1:{hole.getsockname()[1]}"),
                       0.0, None),
    }
    results: dict[str, list[float]] = {name: [] for name in cases}
    for env, linger, cwd in cases.values():  # warm: bytecode, start-up cache, ledger
        bench.exit_delay_ms(env, linger, cwd)
    for _ in range(runs):
        for name, (env, linger, cwd) in cases.items():
            results[name].append(bench.exit_delay_ms(env, linger, cwd))
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


POLICIES = {"both": '["normalized", "raw"]', "raw": '["raw"]', "normalized": '["normalized"]'}
AGENT = ("from aitrack.capture.agent import server\n"
         "from aitrack.config import paths, profile\n"
         "from aitrack.egress import forwarder\n"
         "server.EMIT_INTERVAL_S = 1.0\n"  # 60 s in real life: the bench waits less
         "forwarder.IDLE_POLL_S = 0.5\n"
         "p = paths.resolve()\n"
         "raise SystemExit(server.run_foreground(p, profile.load(p)))\n")


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
            cases = [("http/protobuf", "both"), ("http/json", "both"),
                     ("http/protobuf", "raw"), ("http/protobuf", "normalized")]
            for protocol, policy in cases:
                out[tool][f"{protocol}:{policy}"] = _wrapped(bench, tool, bins[tool], args,
                                                             stub, protocol, policy)
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


def _codex_otel(codex_home: Path, base_url: str, protocol: str,
                headers: dict[str, str] | None) -> None:
    """Codex's own settings: logs and metrics exporters to `base_url` (as agent install)."""
    from aitrack.adapters.codex import settings

    text = "[otel]\n"
    for key, signal in (("exporter", "logs"), ("metrics_exporter", "metrics")):
        exporter = settings.exporter(base_url, signal, headers)
        exporter["otlp-http"]["protocol"] = protocol
        text += f"{key} = {settings.raw(exporter)}\n"
    (codex_home / "config.toml").write_text(text)
    (codex_home / "config.toml").chmod(0o600)


def _direct(bench: Bench, tool: str, binary: str, args: list[str], stub) -> dict:
    """The agent on its own, sending OTLP/JSON to a recorder: Claude with the environment
    aitrack's receiver mode gives it, Codex with its own `[otel]` settings."""
    from aitrack import adapters
    from aitrack.adapters import Sink

    recorder = Recorder()
    env = _agent_env(bench, stub, f"d-{tool}")
    argv = list(args)
    if tool == "claude":
        telemetry = {"metric_export_interval_ms": 60000, "logs_export_interval_ms": 5000,
                     "log_user_prompts": False, "log_tool_details": False}
        sink = Sink(recorder.url, "x-aitrack-key", "bench", ("metrics", "logs"), {}, telemetry)
        argv, env = adapters.load(tool).prepare(argv, env, sink)
    else:
        _codex_otel(Path(env["CODEX_HOME"]), recorder.url, "json", None)
    subprocess.run([binary, *argv], env=env, cwd=bench.tmp, capture_output=True, timeout=180,
                   stdin=subprocess.DEVNULL)
    recorder.server.shutdown()
    return {"payloads": len(recorder.bodies), "wire": sum(b[1] for b in recorder.bodies),
            "json": sum(b[2] for b in recorder.bodies)}


def _wrapped(bench: Bench, tool: str, binary: str, args: list[str], stub, protocol: str,
             policy: str) -> dict:
    """One wrapped session under a policy: everything the org endpoint received for it."""
    name = f"{tool}-{protocol.split('/')[1]}-{policy}"
    port = _free_port()
    env = {**bench.home(name, protocol=protocol, extra=f"forward = {POLICIES[policy]}",
                        tail=f"\n[agent]\nport = {port}\n"),
           **{k: v for k, v in _agent_env(bench, stub, f"w-{name}").items()
              if k in ("HOME", "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", "MOCK_KEY",
                       "CODEX_HOME", "DISABLE_AUTOUPDATER")},
           f"AITRACK_{tool.upper()}_BIN": binary,
           "AITRACK_CODEX_SYSTEM_DIR": str(bench.tmp / "no-system-codex")}
    agent = _start_agent(env, port) if tool == "codex" else None
    bench.org.requests.clear()
    try:
        subprocess.run([sys.executable, "-m", "aitrack", tool, *args], env=env, cwd=bench.tmp,
                       capture_output=True, timeout=180, stdin=subprocess.DEVNULL)
        _settle(Path(env["AITRACK_HOME"]) / "data" / "ledger.db")
    finally:
        if agent is not None:
            agent.terminate()  # the agent's last emission and delivery
            agent.wait(30)
    subprocess.run([sys.executable, "-m", "aitrack", "flush"], env=env, capture_output=True,
                   timeout=60)  # whatever the flush bound left behind
    requests = list(bench.org.requests)
    ours = sum(len(r.wire) for r in requests if r.signal == "metrics" and any(
        _service(b) == "aitrack" for b in r.blocks))
    return {"payloads": sum(len(r.blocks) for r in requests), "requests": len(requests),
            "wire": sum(len(r.wire) for r in requests),
            "uncompressed": sum(len(r.body) for r in requests), "normalized_wire": ours}


def _service(block) -> str | None:
    return next((kv.value.string_value for kv in block.resource.attributes
                 if kv.key == "service.name"), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_agent(env: dict[str, str], port: int) -> subprocess.Popen:
    """The per-user agent of this home, up, and Codex's settings pointing at it."""
    secret = subprocess.run([sys.executable, "-c", "from aitrack.capture import agent; "
                             "from aitrack.config import paths; "
                             "print(agent.ensure_secret(paths.resolve()))"], env=env,
                            capture_output=True, text=True, check=True).stdout.strip()
    _codex_otel(Path(env["CODEX_HOME"]), f"http://127.0.0.1:{port}", "binary",
                {"x-aitrack-key": secret})
    proc = subprocess.Popen([sys.executable, "-c", AGENT], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    from aitrack.capture import agent

    deadline = time.time() + 20
    while agent.probe(port, secret) != "agent":
        if proc.poll() is not None or time.time() > deadline:
            raise SystemExit("the agent did not start")
        time.sleep(0.05)
    return proc


def _settle(ledger: Path, quiet_s: float = 3.0, max_s: float = 60.0) -> None:
    """Wait until the inbox, the outbox and the emission queue stay empty for `quiet_s`."""
    import sqlite3

    deadline, quiet_since = time.time() + max_s, None
    while time.time() < deadline:
        db = sqlite3.connect(ledger, timeout=5)
        try:
            busy = sum(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                       for table in ("inbox", "outbox", "emission_due"))
        except sqlite3.Error:
            busy = 1
        finally:
            db.close()
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.time()
        elif time.time() - quiet_since >= quiet_s:
            return
        time.sleep(0.2)


# ---------------------------------------------------------------- (d) exit-time work


def exit_work(bench: Bench, runs: int) -> dict[str, float]:
    """Median ms, in a warm process, of the work a run's end does for aitrack's metrics."""
    import hashlib

    import org_endpoint
    from aitrack.adapters.generic import telemetry as generic
    from aitrack.capture import commits
    from aitrack.config import paths, profile
    from aitrack.domain import pricing
    from aitrack.egress import normalized, otlp
    from aitrack.egress import policy as egress
    from aitrack.store import ledger

    env = bench.home("exit-work")
    os.environ.update({k: env[k] for k in ("AITRACK_HOME", "AITRACK_MANAGED_PROFILE",
                                           "AITRACK_MANAGED_PLIST")})
    p = profile.load(paths.resolve())
    db = ledger.connect(paths.resolve().ledger)
    prices = pricing.load(p.prices)
    emit_ms, start_ms, end_ms = [], [], []
    for _ in range(runs):
        run_id = os.urandom(16).hex()
        ledger.start_run(db, ledger.Run(run_id, "run", time.time(), "/", "p", {}, "receiver"))
        request = org_endpoint.metrics_request("1")
        body = request.SerializeToString()
        ledger.accept(db, ledger.Accepted("metrics", body, hashlib.sha256(body + run_id.encode())
                                          .digest(), list(otlp.points(request)),
                                          receiver=run_id, run_id=run_id), generic)
        ids = ledger.end_run(db, run_id, time.time(), 0)
        started = time.perf_counter()
        normalized.emit(db, p, ids, receiver=run_id, prices=prices, policy=egress.of(p))
        emit_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        begin = commits.start(str(bench.repo), time.time())
        start_ms.append((time.perf_counter() - started) * 1000)
        (bench.repo / "new.txt").write_text(f"{run_id}\n")
        git(bench.repo, "add", "new.txt")
        git(bench.repo, "commit", "-qm", "made during the run")
        started = time.perf_counter()
        made = commits.made_since(begin)
        end_ms.append((time.perf_counter() - started) * 1000)
        assert made is not None and made.commits == 1, made
    med = statistics.median
    return {"emit_ms": med(emit_ms), "git_start_ms": med(start_ms), "git_end_ms": med(end_ms)}


# ---------------------------------------------------------------- report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--backlog", type=int, default=4000)
    options = parser.parse_args()
    if not keychain_ok():
        rerun_with_a_keyring()
    from aitrack.config import keychain

    with tempfile.TemporaryDirectory() as tmp_dir:
        bench = Bench(Path(tmp_dir))
        try:
            delays = exit_delays(bench, options.runs)
            local = flush_throughput(bench, options.backlog, 0.0)
            far = flush_throughput(bench, options.backlog, 0.02)
            agents = agent_runs(bench)
            work = exit_work(bench, options.runs)
        finally:
            bench.org.stop()
            keychain.delete_token(ACCOUNT)
    med = statistics.median
    print(f"(a) child exit -> aitrack exit, {options.runs} runs, one payload per run "
          "(flush bound 2 s):")
    for name, values in delays.items():
        target = 150 if name.startswith("healthy") else 2100
        print(f"    {name:<28} median {med(values):7.1f} ms  max {max(values):7.1f} ms  "
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
            child, pb, js = r["child_json"], r["http/protobuf:both"], r["http/json:both"]
            print(f"    {tool:<6} child OTLP/JSON {child['json']:8d} B in {child['payloads']} "
                  f"payloads (on its wire {child['wire']} B) | sent protobuf+gzip "
                  f"{pb['wire']:7d} B ({pb['wire'] / child['json']:.1%}, {pb['payloads']} "
                  f"payloads, {pb['requests']} requests) | JSON+gzip {js['wire']:7d} B "
                  f"({js['wire'] / child['json']:.1%})")
        print("    bytes on the wire per session under each egress policy (protobuf+gzip; "
              "of which aitrack's own metrics):")
        for tool, r in agents.items():
            for policy in POLICIES:
                case = r[f"http/protobuf:{policy}"]
                print(f"    {tool:<6} forward = {POLICIES[policy]:<24} {case['wire']:7d} B in "
                      f"{case['requests']:2d} requests ({case['uncompressed']:7d} B "
                      f"uncompressed), aitrack.* {case['normalized_wire']:5d} B")
    print(f"(d) exit-time work for aitrack's metrics, median of {options.runs} (warm process):"
          f" emission for a run's session {work['emit_ms']:.1f} ms; git: HEAD at the start "
          f"{work['git_start_ms']:.1f} ms (.git's files, in a thread after the spawn), one "
          f"commit made, read at the end {work['git_end_ms']:.1f} ms (200-commit work tree; "
          "none made: no git run)")
    print(json.dumps({"exit_delay_ms": {k: {"median": round(med(v), 1), "max": round(max(v), 1)}
                                        for k, v in delays.items()},
                      "flush": {"loopback": local, "far": far}, "agents": agents,
                      "exit_work_ms": work}))


if __name__ == "__main__":
    main()
