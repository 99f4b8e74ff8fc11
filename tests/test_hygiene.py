"""The suite's own hygiene checks can fail: they see a leftover process, and a real tool on
PATH is hidden from the tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import hygiene


def test_a_process_tied_to_a_test_directory_is_found_and_stopped(tmp_path: Path):
    home = tmp_path / "user-home"
    home.mkdir()
    tied = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                            env={**os.environ, "HOME": str(home)})
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                             env={k: v for k, v in os.environ.items() if k != "TMPDIR"},
                             cwd="/")
    try:
        found = {p.pid for p in hygiene.processes_under([home])}
        assert tied.pid in found and other.pid not in found
        hygiene.stop([p for p in hygiene.processes_under([home])])
        assert tied.wait(timeout=10) is not None
    finally:
        for proc in (tied, other):
            proc.kill()
            proc.wait()


def test_a_directory_holding_a_wrapped_tool_is_hidden_but_its_other_programs_stay(
        tmp_path: Path):
    system = tmp_path / "usr-local-bin"
    system.mkdir()
    for name in ("claude", "node"):
        (system / name).write_text("#!/bin/sh\n")
        (system / name).chmod(0o755)
    plain = tmp_path / "bin"
    plain.mkdir()
    shadow = tmp_path / "shadow"
    path = hygiene.clean_path(os.pathsep.join([str(plain), str(system)]), ("claude", "codex"),
                              shadow)
    assert path.split(os.pathsep) == [str(plain), str(shadow)]
    assert (shadow / "node").resolve() == (system / "node").resolve()
    assert not (shadow / "claude").exists()


def test_the_suite_runs_with_no_wrapped_tool_on_its_path():
    """conftest.py cleaned PATH for every test (CI puts the real claude and codex first)."""
    import shutil

    from aitrack import adapters

    for tool in adapters.TOOLS:
        assert shutil.which(adapters.load(tool).EXECUTABLE) is None, tool
