"""The real `claude`, `codex`, `copilot` and `opencode` binaries, driven against the loopback
model stub.

CI installs pinned versions with npm and exports AITRACK_E2E_BIN_DIR. Without them the
end-to-end tests skip, unless AITRACK_REQUIRE_E2E=1 (CI), where a missing binary fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

import hygiene
import model_stub


def agent_bin(name: str) -> str:
    bin_dir = os.environ.get("AITRACK_E2E_BIN_DIR")
    found = shutil.which(name, path=bin_dir) if bin_dir else None
    if found:
        return found
    message = f"the real `{name}` binary is not installed (run `bash tests/run.sh`)"
    if os.environ.get("AITRACK_REQUIRE_E2E") == "1":
        pytest.fail(message)
    pytest.skip(message)


def agent_env(home, stub: model_stub.ModelStub, tmp: Path) -> dict[str, str]:
    """An isolated HOME so the developer's own agent config never leaks into a test."""
    user_home = tmp / "user-home"
    (user_home / ".codex").mkdir(parents=True, exist_ok=True)
    return {
        **home.env,
        "HOME": str(user_home),
        "ANTHROPIC_BASE_URL": stub.url,
        "ANTHROPIC_API_KEY": "sk-ant-test",
        "MOCK_KEY": "sk-test",
        "CODEX_HOME": str(user_home / ".codex"),
        "CLAUDE_CONFIG_DIR": str(user_home / ".claude"),
        "DISABLE_AUTOUPDATER": "1",
    }


def codex_provider_args(stub: model_stub.ModelStub, model: str = "gpt-5") -> list[str]:
    provider = (f'model_providers.mock={{name="mock",base_url="{stub.url}/v1",'
                f'env_key="MOCK_KEY",wire_api="responses"}}')
    return ["--skip-git-repo-check", "-c", "model_provider=mock", "-c", f"model={model}",
            "-c", provider]


def run_aitrack(env: dict[str, str], *args: str, cwd: Path | None = None,
                timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aitrack", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def run_claude(home, stub, tmp: Path, *args: str, env: dict[str, str] | None = None):
    full = {**agent_env(home, stub, tmp), "AITRACK_CLAUDE_BIN": agent_bin("claude"), **(env or {})}
    return run_aitrack(full, "claude", *args, cwd=tmp)


def run_codex(home, stub, tmp: Path, *args: str, env: dict[str, str] | None = None):
    full = {**agent_env(home, stub, tmp), "AITRACK_CODEX_BIN": agent_bin("codex"), **(env or {})}
    return run_aitrack(full, "codex", *args, cwd=tmp)


def copilot_env(stub: model_stub.ModelStub, model: str = "gpt-4.1") -> dict[str, str]:
    """Copilot CLI offline against the stub's chat completions (no GitHub login)."""
    binary = agent_bin("copilot")
    return {"COPILOT_OFFLINE": "true", "COPILOT_AUTO_UPDATE": "false",
            "COPILOT_PROVIDER_BASE_URL": f"{stub.url}/v1", "COPILOT_PROVIDER_API_KEY": "fake-key",
            "COPILOT_MODEL": model, "AITRACK_COPILOT_BIN": binary,
            # the package it extracts at its first start (235 MB): once, not per test HOME
            "COPILOT_PKG_CACHE_HOME": str(Path(binary).parent.parent.parent / "pkg-cache")}


def run_copilot(home, stub, tmp: Path, *args: str, env: dict[str, str] | None = None):
    full = {**agent_env(home, stub, tmp), **copilot_env(stub), **(env or {})}
    return run_aitrack(full, "copilot", *args, cwd=tmp)


def opencode_config(user_home: Path, stub: model_stub.ModelStub, model: str = "fake-model",
                    cost: dict | None = None) -> Path:
    """opencode's user config: a custom OpenAI-compatible provider at the stub."""
    spec: dict = {"name": "Fake Model"}
    if cost:
        spec["cost"] = cost
    config = {"$schema": "https://opencode.ai/config.json", "autoupdate": False,
              "share": "disabled", "model": f"fake/{model}",
              "provider": {"fake": {"npm": "@ai-sdk/openai-compatible", "name": "Fake local",
                                    "options": {"baseURL": f"{stub.url}/v1", "apiKey": "fake-key"},
                                    "models": {model: spec}}}}
    path = user_home / ".config" / "opencode" / "opencode.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config))
    return path


def opencode_env() -> dict[str, str]:
    return {"OPENCODE_DISABLE_MODELS_FETCH": "true", "OPENCODE_DISABLE_AUTOUPDATE": "true",
            "AITRACK_OPENCODE_BIN": agent_bin("opencode")}


def run_opencode(home, stub, tmp: Path, *args: str, env: dict[str, str] | None = None):
    # opencode takes its working directory from PWD, as a shell keeps it
    full = {**agent_env(home, stub, tmp), **opencode_env(), "PWD": str(tmp), **(env or {})}
    return run_aitrack(full, "opencode", *args, cwd=tmp)


def stop_codex_daemons(user_home: Path) -> list[int]:
    """Stop the shared background server (`codex app-server ... --managed-daemon`, and its
    update loop) that Codex's TUI leaves running in `user_home`; their pids.

    The TUI starts it from `$CODEX_HOME/packages/app-server-daemon/` and it outlives the TUI
    by design (it serves the IDE extension and the desktop app too); Codex has no setting
    that keeps the TUI from starting it without also changing the mode the test checks."""
    daemons = [p for p in hygiene.processes_under([user_home])
               if "app-server" in " ".join(_cmdline(p))]
    hygiene.stop(daemons)
    return [p.pid for p in daemons]


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except psutil.Error:
        return []


# Gemini CLI needs its auth type in its settings, or a custom base URL is refused (rc 41)
GEMINI_SETTINGS = {"privacy": {"usageStatisticsEnabled": False},
                   "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
                   "security": {"auth": {"selectedType": "gemini-api-key"},
                                "folderTrust": {"enabled": False}}}


def gemini_env(stub: model_stub.ModelStub, user_home: Path) -> dict[str, str]:
    """Gemini CLI pointed at the stub, in `user_home` (its settings written there)."""
    settings = user_home / ".gemini" / "settings.json"
    if not settings.exists():
        settings.parent.mkdir(parents=True, exist_ok=True)
        settings.write_text(json.dumps(GEMINI_SETTINGS, indent=2) + "\n")
    return {"HOME": str(user_home), "GEMINI_CLI_HOME": str(user_home), "GEMINI_API_KEY": "gm-test",
            "GOOGLE_GEMINI_BASE_URL": stub.url, "AITRACK_GEMINI_BIN": agent_bin("gemini")}


def qwen_env(stub: model_stub.ModelStub, user_home: Path) -> dict[str, str]:
    """Qwen Code pointed at the stub (its OpenAI-compatible auth), in `user_home`."""
    user_home.mkdir(parents=True, exist_ok=True)
    return {"HOME": str(user_home), "QWEN_HOME": str(user_home / ".qwen"),
            "OPENAI_API_KEY": "sk-test",
            "OPENAI_BASE_URL": f"{stub.url}/v1", "AITRACK_QWEN_BIN": agent_bin("qwen")}


def run_gemini(home, stub, tmp: Path, *args: str, env: dict[str, str] | None = None):
    full = {**home.env, **gemini_env(stub, tmp / "user-home"), **(env or {})}
    return run_aitrack(full, "gemini", *args, cwd=tmp)


def run_qwen(home, stub, tmp: Path, *args: str, env: dict[str, str] | None = None):
    full = {**home.env, **qwen_env(stub, tmp / "user-home"), **(env or {})}
    return run_aitrack(full, "qwen", "--auth-type", "openai", *args, cwd=tmp)
