"""Issue 13's fuzz test: damage every file aitrack reads at start-up (the settings cache, the
user and managed profiles, macOS managed preferences) and the wrapped tool still runs, with
its exit status intact, every time; the run is still recorded in the one ledger.

Each case flips, inserts or cuts a few random bytes of one file (seeded: a failure names
its case). AITRACK_FUZZ_CASES sets the cases per file (default 30, twice that for the
cache); the issue's own run was 300 for the cache.
"""

from __future__ import annotations

import os
import plistlib
import queue
import random
import sqlite3
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from aitrack.capture import startup
from fixtures import fake_tool

CASES = int(os.environ.get("AITRACK_FUZZ_CASES", "30"))
WORKERS = 3
USER = """\
# my own settings
[attributes]
department = "research"
"project.code" = "P-7"

[telemetry]
log_tool_details = true
"""
MANAGED = """\
[attributes]
"team.id" = "platform-eng"
cost_center = "CC-4200"
"user.email" = "dev@example.com"

[telemetry]
metric_export_interval_ms = 30000
logs_export_interval_ms = 5000

[prices."internal-model"]
input = 2.5
output = 10
"""
PLIST = {"PayloadUUID": "0F0E", "attributes": {"team.id": "from-plist", "department": "eng"},
         "telemetry": {"log_user_prompts": False, "metric_export_interval_ms": 60000},
         "prices": {"m": {"input": 1.5}}}
# The plist is a macOS source only: run aitrack as if on macOS for it.
AS_MACOS = ("import sys; sys.platform = 'darwin'; from aitrack.entry import main; "
            "main(sys.argv[1:])")


def damage(original: bytes, rng: random.Random) -> bytes:
    """Mostly one flipped byte (what a bad sector or a stray write does), sometimes a few,
    an inserted or deleted run, or a cut."""
    data = bytearray(original)
    for _ in range(1 if rng.random() < 0.7 else rng.randint(2, 4)):
        what = rng.random()
        at = rng.randrange(len(data)) if data else 0
        if what < 0.8 and data:
            data[at] = rng.randrange(256)
        elif what < 0.9:
            data[at:at] = bytes([rng.randrange(256)])
        elif data:
            del data[at:at + rng.randint(1, 8)]
    if rng.random() < 0.05:
        data = data[:rng.randrange(len(data) + 1)]
    return bytes(data)


class Worker:
    """One isolated aitrack home with its own profiles, plist and ledger."""

    def __init__(self, base: Path, home, n: int, tool: Path):
        self.root = base / f"w{n}"
        self.home = self.root / "home"
        self.user = self.home / "config" / "profile.toml"
        self.managed = self.root / "managed" / "profile.toml"
        self.plist = self.root / "managed" / "io.aitrack.plist"
        self.env = {**home.env, "AITRACK_HOME": str(self.home),
                    "AITRACK_MANAGED_PROFILE": str(self.managed),
                    "AITRACK_MANAGED_PLIST": str(self.plist)}
        self.tool = tool
        self.dump = self.root / "dump.json"
        self.runs = 0
        self.cache = b""

    def restore(self, originals: dict[str, bytes]) -> None:
        """Undo the last case's damage; files left as they are keep their mtime (which the
        cache's signature covers)."""
        for name, blob in originals.items():
            path = self.file(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists() or path.read_bytes() != blob:
                path.write_bytes(blob)

    def file(self, name: str) -> Path:
        if name == "cache":
            return Path(startup.cache_file(self.env))
        return {"user": self.user, "managed": self.managed, "plist": self.plist}[name]

    def run(self, exit_with: int, macos: bool):
        import subprocess

        self.dump.unlink(missing_ok=True)
        head = [sys.executable, "-c", AS_MACOS] if macos else [sys.executable, "-m", "aitrack"]
        self.runs += 1
        return subprocess.run([*head, "run", "--", sys.executable, str(self.tool)],
                              env={**self.env, "DUMP_TO": str(self.dump),
                                   "EXIT_WITH": str(exit_with)},
                              capture_output=True, text=True, timeout=60)

    def recorded(self) -> int:
        db = sqlite3.connect(self.home / "data" / "ledger.db")
        try:
            table = "runs" if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'runs'"
                                         ).fetchone() else "sessions"
            return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        finally:
            db.close()


@pytest.mark.parametrize("target", ["cache", "user", "managed", "plist-xml", "plist-binary"])
def test_damaged_startup_files_never_stop_the_tool(home, tmp_path, target):
    macos = target.startswith("plist")
    name = "plist" if macos else target
    tool = fake_tool.write(tmp_path / "bin", "fake-tool")
    workers = [Worker(tmp_path, home, n, tool) for n in range(WORKERS)]
    originals = {"user": USER.encode(), "managed": MANAGED.encode()}
    if macos:
        fmt = plistlib.FMT_BINARY if target.endswith("binary") else plistlib.FMT_XML
        originals["plist"] = plistlib.dumps(PLIST, fmt=fmt)
    for worker in workers:
        worker.restore(originals)
        first = worker.run(0, macos)  # writes a valid cache of this worker's home
        assert first.returncode == 0 and worker.dump.exists(), first.stderr
        worker.cache = worker.file("cache").read_bytes()

    free: queue.Queue = queue.Queue()
    for worker in workers:
        free.put(worker)

    def case(number: int) -> str | None:
        worker = free.get()  # one case at a time per home
        try:
            return run_case(worker, number)
        finally:
            free.put(worker)

    def run_case(worker: Worker, number: int) -> str | None:
        rng = random.Random(f"{target}-{number}")
        worker.restore(originals)
        if name == "cache":
            worker.file("cache").write_bytes(damage(worker.cache, rng))
        else:
            worker.file(name).write_bytes(damage(originals[name], rng))
        exit_with = rng.choice([0, 1, 2, 3, 42, 127, 255])
        result = worker.run(exit_with, macos)
        if result.returncode != exit_with or not worker.dump.exists() or \
                "Traceback" in result.stderr:
            return (f"case {target}-{number}: exit {result.returncode} (tool said "
                    f"{exit_with}), tool ran: {worker.dump.exists()}\n{result.stderr}")
        return None

    with ThreadPoolExecutor(WORKERS) as pool:
        cases = CASES * 2 if name == "cache" else CASES
        failures = [f for f in pool.map(case, range(cases)) if f]
    assert not failures, "\n".join(failures[:3])
    for worker in workers:  # every run recorded, in the one ledger the profiles name
        assert worker.recorded() == worker.runs
