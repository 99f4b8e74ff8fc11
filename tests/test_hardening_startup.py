"""Issue 13, finding 2 (and the cache part of 5): the start-up settings cache is verified,
rebuilt when it does not verify, and never the authority on what is counted or forwarded."""

from __future__ import annotations

import marshal
import os
import sys
import zlib
from pathlib import Path

import pytest

from aitrack.capture import startup
from fixtures import fake_tool


def tamper(path: Path, edit) -> None:
    """Rewrite the cache as someone editing it on purpose would: its checksum made to fit."""
    blob = path.read_bytes()
    magic = getattr(startup, "MAGIC", None)
    if magic and blob.startswith(magic):
        data = marshal.loads(blob[len(magic) + 4:])
        edit(data)
        payload = marshal.dumps(data)
        path.write_bytes(magic + zlib.crc32(payload).to_bytes(4, "big") + payload)
    else:
        data = marshal.loads(blob)
        edit(data)
        path.write_bytes(marshal.dumps(data))


@pytest.fixture
def tool(tmp_path: Path) -> Path:
    return fake_tool.write(tmp_path / "bin", "fake-tool")


def run_tool(home, tool: Path, tmp_path: Path, exit_with: int = 7):
    dump = tmp_path / "dump.json"
    dump.unlink(missing_ok=True)
    result = home.run("run", "--", sys.executable, str(tool), "--work",
                      env={"DUMP_TO": str(dump), "EXIT_WITH": str(exit_with)})
    return result, (fake_tool.dumped(dump) if dump.exists() else None)


@pytest.mark.parametrize("edit", [
    lambda d: d.pop("notices"),
    lambda d: d.pop("attributes"),
    lambda d: d.__setitem__("telemetry", {"metric_export_interval_ms": "soon"}),
    lambda d: d.__setitem__("notices", [b"\x1b]0;owned\x07"]),
    lambda d: d.__setitem__("signals", ("metrics", 7)),
    lambda d: d["paths"].pop("data_dir"),
    lambda d: d.__setitem__("shim_dir", None),
], ids=["no-notices", "no-attributes", "telemetry-type", "notice-bytes", "signal-type",
        "no-data-dir", "shim-dir-type"])
def test_a_cache_that_does_not_verify_is_rebuilt_and_the_tool_runs(home, tool, tmp_path, edit):
    """29 of 300 damaged caches crashed with a traceback (KeyError: 'notices', ...), exit 1,
    the tool never started, on every later run too."""
    home.write_managed_profile('[attributes]\n"team.id" = "it-team"\n')
    assert run_tool(home, tool, tmp_path)[0].returncode == 7
    cache = Path(startup.cache_file(home.env))
    tamper(cache, edit)
    for _ in range(2):  # this run and the next
        result, child = run_tool(home, tool, tmp_path)
        assert result.returncode == 7 and child is not None, result.stderr
        assert "Traceback" not in result.stderr
        assert "team.id=it-team" in child["env"]["OTEL_RESOURCE_ATTRIBUTES"]
    assert startup._read(str(cache)) is not None  # rebuilt: it verifies again


def test_an_edited_cache_cannot_change_attribution_or_the_ledger(home, tool, tmp_path):
    """Editing the cache changed the enforced attributes or moved the ledger to another
    directory."""
    home.write_managed_profile('[endpoint]\nurl = "https://127.0.0.1:9"\n'
                               '[attributes]\n"team.id" = "it-team"\n')
    assert run_tool(home, tool, tmp_path)[0].returncode == 7
    cache = Path(startup.cache_file(home.env))
    elsewhere = tmp_path / "elsewhere"

    def edit(data: dict) -> None:
        data["attributes"] = {**data["attributes"], "team.id": "evil-team"}
        data["paths"] = {**data["paths"], "data_dir": str(elsewhere)}

    tamper(cache, edit)
    result, child = run_tool(home, tool, tmp_path)
    assert result.returncode == 7 and child is not None
    assert not elsewhere.exists()
    rows = home.run_attributes()
    assert len(rows) == 2 and all(r["team.id"] == "it-team" for r in rows)


def test_a_cache_of_an_older_format_is_rebuilt(home, tool, tmp_path):
    cache = Path(startup.cache_file(home.env))
    cache.parent.mkdir(parents=True)
    cache.write_bytes(marshal.dumps({"signature": (), "files": []}))  # format 2, damaged
    result, child = run_tool(home, tool, tmp_path, exit_with=0)
    assert result.returncode == 0 and child is not None, result.stderr
    assert startup._read(str(cache)) is not None


def test_the_cache_checksum_is_checked_before_anything_is_unmarshalled(home, monkeypatch):
    startup.settings()
    cache = Path(startup.cache_file(home.env))
    blob = bytearray(cache.read_bytes())
    blob[-3] ^= 0x40
    cache.write_bytes(bytes(blob))
    called = []
    monkeypatch.setattr(marshal, "loads", lambda *a: called.append(a))
    assert startup._read(str(cache)) is None and called == []
    assert os.path.getsize(cache) == len(blob)
