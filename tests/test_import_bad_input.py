"""Bad input never stops an import: each bad line or file is skipped and counted by reason."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aitrack.store import importer
from aitrack.store.importing import files
from aitrack.store.importing.merge import Import
from transcript_tree import (
    CS1,
    OPUS,
    S1,
    S2,
    S3,
    Tree,
    assistant,
    figures,
    run,
    usage,
    user,
)

pytest_plugins = ("transcript_tree",)  # fixtures: tree, db




def _line(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def test_bad_lines_are_skipped_by_reason_and_the_good_ones_count(db, tree):
    truncated = _line(assistant(S1, "msg_t", "req_t", usage(5, 5)))[:120] + b"\n"
    not_utf8 = _line(assistant(S1, "msg_u", "req_u", usage(5, 5), model="claude-\udcff")
                     ).replace(b"\\udcff", b"\xff")
    wrong = json.loads(_line(assistant(S1, "msg_w", "req_w", usage(5, 5))))
    wrong["message"]["usage"]["input_tokens"] = "five"
    tree.claude(S1, [
        b"\x00\x00\x00 garbage a crash left\n",  # the file's first lines are always parsed
        user(S1),
        assistant(S1, "msg_1", "req_1", usage(10, 10)),
        truncated,  # cut off mid-line by a crash, the next write went on after it
        not_utf8,
        wrong,
        b'{"type":"assistant","message":{"usage":{}}} trailing junk\n',
        assistant(S1, "msg_2", "req_2", usage(20, 20)),
    ])
    result = run(db, tree)
    assert result.skipped == {"not_json": 3, "not_utf8": 1, "bad_record": 1}
    assert figures(db, CS1) == {OPUS: {"input": 30, "output": 30}}
    line = result.summary()
    assert "\n" not in line
    assert "skipped 1 unexpected fields, 3 not JSON, 1 not UTF-8" in line


def _launch(argv: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess, int]:
    """Run argv; its own peak RSS in KiB, not that of this test process (see bench/measure)."""
    launcher = ("import json, os, sys\n"
                "pid = os.posix_spawnp(sys.argv[1], sys.argv[1:], os.environ)\n"
                "_, status, usage = os.wait4(pid, 0)\n"
                "print(json.dumps([os.waitstatus_to_exitcode(status), usage.ru_maxrss]))\n")
    proc = subprocess.run([sys.executable, "-S", "-c", launcher, *argv], env=env,
                          capture_output=True, text=True, timeout=300)
    code, peak = json.loads(proc.stdout.strip().splitlines()[-1])
    return subprocess.CompletedProcess(argv, code, proc.stdout, proc.stderr), peak


def test_a_50_mb_line_is_skipped_without_holding_it_in_memory(home, tree):
    small = Tree(tree.root / "small")
    small.claude(S1, [user(S1), assistant(S1, "msg_1", "req_1", usage(10, 10))])
    huge = b'{"type":"user","message":{"content":"' + b"x" * (50 << 20) + b'"},"usage":1}\n'
    tree.claude(S1, [user(S1), assistant(S1, "msg_1", "req_1", usage(10, 10)), huge,
                     assistant(S1, "msg_2", "req_2", usage(20, 20))])
    argv = [sys.executable, "-m", "aitrack", "import", "--json"]
    base, base_peak = _launch(argv, {**home.env, **small.env,
                                     "AITRACK_HOME": str(home.root / "small")})
    big, big_peak = _launch(argv, {**home.env, **tree.env})
    assert base.returncode == 0 and big.returncode == 0, big.stderr
    result = json.loads(big.stdout[:big.stdout.rindex("}") + 1])
    assert result["skipped"] == {"line_too_long": 1}
    assert result["responses"] == 2
    # the line is read in 8 MB blocks and dropped: far less than 50 MB above a small import
    assert (big_peak - base_peak) / 1024 < 30, (base_peak, big_peak)


def _without_file_permission_override():
    """Root reads any file; a child that drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from
    its bounding set (kept across exec) sees permission bits as a user does."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_unreadable_files_and_folders_are_skipped_and_counted(home, tree):
    tree.claude(S1, [assistant(S1, "msg_1", "req_1", usage(10, 10))])
    locked_file = tree.claude(S2, [assistant(S2, "msg_2", "req_2", usage(20, 20))])
    locked_dir = tree.claude(S3, [assistant(S3, "msg_3", "req_3", usage(30, 30))],
                             project="-work-other").parent
    locked_file.chmod(0)
    locked_dir.chmod(0)
    preexec = _without_file_permission_override if os.geteuid() == 0 else None
    try:
        proc = subprocess.run([sys.executable, "-m", "aitrack", "import", "--json"],
                              env={**home.env, **tree.env}, capture_output=True, text=True,
                              timeout=120, preexec_fn=preexec)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot drop root's file permission override here: {exc}")
    finally:
        locked_dir.chmod(0o755)
        locked_file.chmod(0o644)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["skipped"] == {"unreadable_dir": 1, "unreadable_file": 1}
    assert result["responses"] == 1
    # the tools' files are never written to
    assert locked_file.stat().st_size == len(_line(assistant(S2, "msg_2", "req_2",
                                                             usage(20, 20))))


def test_a_file_deleted_before_it_is_read(db, tree):
    path = tree.claude(S1, [assistant(S1, "msg_1", "req_1", usage(10, 10))])
    files = [(str(path), path.stat())]
    path.unlink()
    result = importer.ImportResult()
    job = Import(db, None, tree.env, result, held=False)
    job.tool("claude", files)
    assert result.skipped == {"vanished_file": 1}
    assert figures(db) == {}


def test_transcripts_are_opened_read_only(db, tree, monkeypatch):
    tree.claude(S1, [assistant(S1, "msg_1", "req_1", usage(10, 10))])
    modes = []
    real_open = os.open

    def spy(file, flags, *args, **kwargs):
        if str(file).endswith(".jsonl"):
            modes.append(flags & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR | os.O_CREAT
                                  | os.O_TRUNC | os.O_APPEND))
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    run(db, tree)
    assert modes == [os.O_RDONLY]


def test_a_missing_tool_home_is_no_error(db, tmp_path: Path):
    result = run(db, Tree(tmp_path / "empty"))
    assert (result.files_seen, result.skipped) == (0, {})


# ---------------------------------------------------------------- issue 18: not regular files


def _not_regular_files(tree) -> list[Path]:
    """A FIFO nobody writes to, and links to endless devices, named like transcripts."""
    folder = tree.claude_dir / "projects" / "-work-shop"
    folder.mkdir(parents=True, exist_ok=True)
    fifo = folder / f"{S2}.jsonl"
    os.mkfifo(fifo)
    zero, noise = folder / f"{S3}.jsonl", folder / "subagent-noise.jsonl"
    zero.symlink_to("/dev/zero")
    noise.symlink_to("/dev/urandom")
    return [fifo, zero, noise]


def test_fifos_and_device_links_are_skipped_not_read(home, tree):
    """A FIFO hung the import (and report, and the agent's loop); /dev/zero read forever."""
    tree.claude(S1, [user(S1), assistant(S1, "msg_1", "req_1", usage(10, 10))])
    _not_regular_files(tree)
    env = {**home.env, **tree.env}
    proc = subprocess.run([sys.executable, "-m", "aitrack", "import", "--json"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["skipped"] == {"not_regular": 3} and result["responses"] == 1
    report = subprocess.run([sys.executable, "-m", "aitrack", "report"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert report.returncode == 0 and "Total" in report.stdout


def test_a_wrapped_runs_own_files_are_read_only_when_regular(home, tree):
    """A run's transcripts, found by name after it ends (import_files), and Codex's first line
    read to match a rollout to a run: never a FIFO or a device."""
    paths = _not_regular_files(tree)
    code = ("import sys, json; from pathlib import Path\n"
            "from aitrack.store import importer, ledger\n"
            "from aitrack.adapters.codex import locate\n"
            "paths = [Path(p) for p in sys.argv[2:]]\n"
            "db = ledger.connect(Path(sys.argv[1]))\n"
            "r = importer.import_files(db, 'claude', paths, None)\n"
            "print(json.dumps([r.skipped, [locate._meta_cwd(p) for p in paths]]))\n")
    proc = subprocess.run([sys.executable, "-c", code, str(home.ledger), *map(str, paths)],
                          env={**home.env, **tree.env}, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    skipped, cwds = json.loads(proc.stdout)
    assert skipped == {"not_regular": 3} and cwds == [None, None, None]


def test_a_file_that_grows_while_read_is_read_to_the_size_it_had(db, tree, monkeypatch):
    """Reads are bounded by the size at open: a file (or device) that keeps giving is read
    on at the next import, never for ever."""
    path = tree.claude(S1, [user(S1), assistant(S1, "msg_1", "req_1", usage(10, 10))])
    size = path.stat().st_size
    real = files.Lines.read

    def grow_then_read(self, fh, start, st, *args):
        with open(path, "ab") as out:  # the tool writes on meanwhile
            out.write(_line(assistant(S1, "msg_2", "req_2", usage(20, 20))))
        return real(self, fh, start, st, *args)

    monkeypatch.setattr(files.Lines, "read", grow_then_read)
    result = run(db, tree)
    assert result.bytes == size and figures(db, CS1) == {OPUS: {"input": 10, "output": 10}}
    monkeypatch.undo()
    run(db, tree)
    assert figures(db, CS1) == {OPUS: {"input": 30, "output": 30}}
