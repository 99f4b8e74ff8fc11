"""Fixtures every test area shares: an isolated aitrack home and a CLI runner; and the
suite's hygiene (hygiene.py): a PATH without the developer's own AI tools, a tmux server of
its own, and no process left running when it ends."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import hygiene
import terminal
from aitrack import adapters

REPO = Path(__file__).resolve().parent.parent
LEFTOVER_GRACE_S = 10.0  # processes told to stop at a test's end may take a moment to go
_PATH_SHADOW = Path(tempfile.mkdtemp(prefix="aitrack-test-path-"))


def pytest_configure(config: pytest.Config) -> None:
    """Every test, and every process it starts, sees the wrapped tools only where the test
    puts them (a developer's real `claude` on PATH must change no outcome)."""
    tools = tuple(adapters.load(t).EXECUTABLE for t in adapters.TOOLS)
    os.environ["PATH"] = hygiene.clean_path(os.environ.get("PATH", os.defpath), tools,
                                            _PATH_SHADOW)


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_PATH_SHADOW, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def nothing_left_running(tmp_path_factory: pytest.TempPathFactory):
    """Fails the session on any process still tied to a test's temporary directories (a
    tool's background daemon, an agent never stopped), after stopping them."""
    base = tmp_path_factory.getbasetemp()
    terminal.use_socket(base / "tmux.sock")
    # every process the suite starts inherits this: the check below recognises them all
    (base / "tmp").mkdir(exist_ok=True)
    os.environ["TMPDIR"] = str(base / "tmp")
    tempfile.tempdir = None
    yield
    terminal.close_server()
    deadline = time.monotonic() + LEFTOVER_GRACE_S
    while (left := hygiene.processes_under([base])) and time.monotonic() < deadline:
        time.sleep(0.5)
    if left:
        lines = [hygiene.describe(p) for p in left]
        hygiene.stop(left)
        pytest.fail("the tests left these processes running (stopped now):\n"
                    + "\n".join(lines), pytrace=False)


@dataclass
class Home:
    """An isolated aitrack installation: AITRACK_HOME plus a managed profile path."""

    root: Path
    managed_profile: Path
    env: dict[str, str]

    @property
    def user_profile(self) -> Path:
        return self.root / "config" / "profile.toml"

    @property
    def ledger(self) -> Path:
        return self.root / "data" / "ledger.db"

    def run_attributes(self) -> list[dict]:
        """The attributes of every run the ledger recorded (none without a ledger)."""
        import json
        import sqlite3

        if not self.ledger.exists():
            return []
        db = sqlite3.connect(self.ledger)
        try:
            return [json.loads(a) for (a,) in db.execute("SELECT attributes FROM runs")]
        finally:
            db.close()

    def write_user_profile(self, text: str) -> Path:
        self.user_profile.parent.mkdir(parents=True, exist_ok=True)
        self.user_profile.write_text(text)
        return self.user_profile

    def write_managed_profile(self, text: str) -> Path:
        self.managed_profile.parent.mkdir(parents=True, exist_ok=True)
        self.managed_profile.write_text(text)
        return self.managed_profile

    def run(self, *args: str, input: str | None = None, env: dict[str, str] | None = None,
            timeout: float = 60, **kw) -> subprocess.CompletedProcess:
        """Run `python -m aitrack ARGS` as a user would, in this home (`env` entries that
        are None unset a variable)."""
        merged = {k: v for k, v in {**self.env, **(env or {})}.items() if v is not None}
        return subprocess.run([sys.executable, "-m", "aitrack", *args], input=input,
                              capture_output=True, text=True, env=merged, timeout=timeout, **kw)


@pytest.fixture
def stub():
    """The model-API stub on loopback (see model_stub.py)."""
    import model_stub

    model, server = model_stub.start()
    yield model
    server.shutdown()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    root = tmp_path / "aitrack-home"
    managed = tmp_path / "managed" / "profile.toml"
    env = dict(os.environ)
    for key in list(env):
        if key.startswith(("OTEL_", "AITRACK_")):
            del env[key]
    env.update(AITRACK_HOME=str(root), AITRACK_MANAGED_PROFILE=str(managed),
               AITRACK_MANAGED_PLIST=str(tmp_path / "managed" / "io.aitrack.plist"),
               # the tools' own transcripts and settings: never the developer's real ones
               CLAUDE_CONFIG_DIR=str(tmp_path / "claude-config"),
               CODEX_HOME=str(tmp_path / "codex-home"),
               COPILOT_HOME=str(tmp_path / "copilot-home"),
               XDG_DATA_HOME=str(tmp_path / "xdg-data"),  # opencode's database
               GEMINI_CLI_HOME=str(tmp_path / "gemini-home"),
               QWEN_HOME=str(tmp_path / "qwen-home"))
    for key in ("QWEN_RUNTIME_DIR",):
        env.pop(key, None)
    for key, value in env.items():
        if key.startswith("AITRACK_") or key in ("CLAUDE_CONFIG_DIR", "CODEX_HOME",
                                                  "COPILOT_HOME", "GEMINI_CLI_HOME",
                                                  "QWEN_HOME"):
            monkeypatch.setenv(key, value)
    return Home(root, managed, env)


def _real_keychain_problem() -> str | None:
    """Why the OS keychain cannot be used here, or None when a secure backend round-trips."""
    from aitrack.config import keychain

    probe = f"aitrack-test-probe-{os.getpid()}"
    try:
        keychain.set_token(probe, "probe")
        ok = keychain.get_token(probe) == "probe"
        keychain.delete_token(probe)
    except keychain.KeychainUnavailable as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - a broken D-Bus session, a locked keyring...
        return f"{type(exc).__name__}: {exc}"
    return None if ok else "the keychain did not return what was stored"


@pytest.fixture(scope="session")
def real_keychain() -> str:
    """The real OS keychain (Secret Service under tests/run.sh); its backend's name.

    Skips without one, unless AITRACK_REQUIRE_REAL_KEYRING=1 (CI), where that fails.
    """
    from aitrack.config import keychain

    problem = _real_keychain_problem()
    if problem:
        message = f"no real keychain ({problem}): run the tests with `bash tests/run.sh`"
        if os.environ.get("AITRACK_REQUIRE_REAL_KEYRING") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return keychain.backend_name()


def _own_account(kind: str):
    from aitrack.config import keychain

    account = f"aitrack-test-{kind}{os.urandom(6).hex()}"
    yield account
    keychain.delete_token(account)


@pytest.fixture
def keychain_account(real_keychain: str):
    """A keychain account of this test's own, removed afterwards (never a developer's entry)."""
    yield from _own_account("")


@pytest.fixture
def logs_account(real_keychain: str):
    """A second account of this test's own, for a profile's logs_keychain_account."""
    yield from _own_account("logs-")
