"""Issue 18: terminal escapes and absurd lengths from folder names, model names and session
data reached the terminal raw (clear screen, window title), and a 15 MiB model name made
`report model` write 189 MB. Every human-readable output neutralises control characters and
bidi overrides and caps its fields; JSON keeps the data exact.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from aitrack.domain.display import safe
from aitrack.domain.records import TranscriptSession
from aitrack.store import ledger

TITLE = "\x1b]0;pwned\x07"  # sets the terminal window's title
CLEAR = "\x1b[2J\x1b[H"  # clears the screen
BIDI = "\u202egnp.exe"  # shows as exe.png
HOSTILE = f"{TITLE}{CLEAR}proj{BIDI}\u200b\x9b"
RAW = ("\x1b", "\x07", "\u202e", "\u200b", "\x9b")
HUGE_MODEL = "claude-" + "x" * (15 << 20)  # 15 MiB


def assert_neutral(text: str) -> None:
    found = [c for c in RAW if c in text]
    assert not found, f"raw {found!r} in {text[:300]!r}"


def hostile_ledger(path, *models: str) -> None:
    db = ledger.connect(path)
    now = time.time()
    sessions = [TranscriptSession("claude", f"s{i}", now - 60 * (i + 1), now - 60 * i,
                                  cwd=f"/work/{HOSTILE}", project=HOSTILE,
                                  entrypoint=f"cli{CLEAR}", tool_version=TITLE,
                                  usage={model: {"input": 10, "output": 5}})
                for i, model in enumerate(models)]
    with ledger.write(db):
        ledger.record_transcripts(db, sessions, {"user.id": "dev"})
    db.close()


NO_TOOLS = {"CLAUDE_CONFIG_DIR": "/nonexistent", "CODEX_HOME": "/nonexistent"}


@pytest.mark.parametrize("args", [["report"], ["report", "session"], ["report", "model"],
                                  ["report", "--breakdown"], ["prices"]])
def test_reports_and_prices_neutralise_hostile_names(home, args):
    hostile_ledger(home.ledger, f"model{TITLE}{BIDI}", f"m\nn{CLEAR}")
    result = home.run(*args, env=NO_TOOLS)
    assert result.returncode == 0, result.stderr
    assert_neutral(result.stdout + result.stderr)
    assert "\\x1b" in result.stdout  # shown, escaped: the reader sees something is odd


def test_a_15_mib_model_name_costs_a_bounded_report(home):
    hostile_ledger(home.ledger, HUGE_MODEL, "claude-opus-5-5")
    for args in (["report", "model"], ["report", "session"], ["report", "--breakdown"],
                 ["prices"]):
        result = home.run(*args, env=NO_TOOLS, timeout=120)
        assert result.returncode == 0, result.stderr
        assert len(result.stdout) + len(result.stderr) < 64 * 1024, args


def test_json_keeps_the_names_exact(home):
    hostile_ledger(home.ledger, f"model{TITLE}")
    result = home.run("report", "session", "--json", env=NO_TOOLS)
    data = json.loads(result.stdout)
    assert data["sessions"][0]["project"] == HOSTILE


def test_the_dashboard_caps_and_neutralises_names(home, tmp_path):
    hostile_ledger(home.ledger, HUGE_MODEL, f"model{BIDI}")
    out = tmp_path / "d.html"
    result = home.run("dashboard", "--out", str(out), env=NO_TOOLS, timeout=120)
    assert result.returncode == 0, result.stderr
    page = out.read_text()
    assert len(page) < 2 << 20 and "\u202e" not in page and "\x1b" not in page


def test_a_hostile_folder_name_reaches_no_terminal_raw(tmp_path):
    """AITRACK_HOME under a folder whose name carries escapes: paths in doctor, agent
    status, import, report, paths and the wrapper's notices are shown escaped."""
    root = tmp_path / f"home{TITLE}{CLEAR}{BIDI}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AITRACK_", "OTEL_"))}
    env.update(AITRACK_HOME=str(root), AITRACK_MANAGED_PROFILE=str(tmp_path / "none.toml"),
               **NO_TOOLS)
    (root / "data" / "ledger.db").mkdir(parents=True)  # a ledger that is a directory
    py = [sys.executable, "-m", "aitrack"]
    for args in (["doctor"], ["agent", "status"], ["import"], ["report"], ["paths"],
                 ["run", "--", sys.executable, "-c", "pass"], ["flush"], ["token", "status"],
                 ["profile", "show", "--origin"]):
        result = subprocess.run([*py, *args], env=env, capture_output=True, text=True,
                                timeout=120)
        assert_neutral(result.stdout + result.stderr)


def test_profile_show_neutralises_a_profiles_values(home):
    home.write_user_profile('[attributes]\n"team.id" = "\\u001b]0;x\\u0007\\u202eab"\n')
    for args in (["profile", "show"], ["profile", "show", "--origin"]):
        result = home.run(*args)
        assert result.returncode == 0, result.stderr
        assert_neutral(result.stdout + result.stderr)


def test_safe_is_bounded_and_keeps_ordinary_text():
    assert safe("claude-opus-5-5 /work/shop — ünïcode 日本") == \
        "claude-opus-5-5 /work/shop — ünïcode 日本"
    assert safe("a\x1b[2Jb\u202ec") == "a\\x1b[2Jb\\u202ec"
    assert len(safe("x" * 10_000)) == 200 and safe("x" * 10_000).endswith("…")
    assert len(safe("\x1b" * 10_000)) == 200


def test_the_paste_ready_price_snippet_escapes_a_hostile_model_name(home):
    """A model name with newlines printed a snippet whose pasted lines set [endpoint]."""
    name = 'evil"\n[endpoint]\nurl = "https://attacker.example"\n\x1b[2J\u202e'
    result = home.run("prices", name)
    assert result.returncode == 0, result.stderr
    assert_neutral(result.stdout)
    start = result.stdout.index("[prices.")
    snippet = "\n".join(line.strip() for line in result.stdout[start:].splitlines())
    assert not any(line.startswith("[endpoint]") or line.startswith("url")
                   for line in snippet.splitlines())
    import tomllib

    # pasted, it names the model (as the price table does: lower case)
    assert list(tomllib.loads(snippet)["prices"]) == [name.lower()]
