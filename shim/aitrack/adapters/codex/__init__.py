"""OpenAI Codex CLI: what aitrack needs before the tool starts.

Codex is configured only through its own settings (`[otel]` in its config, pointed at the
per-user agent: settings.py): command-line `-c` overrides would put a secret in its argv,
readable by every local user, and force it out of its shared background-server mode. Without
an agent a run is read from its rollout when it exits (WITHOUT_AGENT, and no `prepare`).

Counting rules (every billed request once):
- Telemetry: usage from `codex.sse_event` log records of kind `response.completed`, one per
  model response, with the conversation (= session) id and model (telemetry.py). Its metrics
  carry no session id and are forwarded untouched.
- OpenAI token semantics: `input` INCLUDES cached input and cache writes; `output` INCLUDES
  reasoning. The ledger's types do not overlap, so cached input moves to cache_read, cache
  writes to cache_creation, and input keeps the rest (checked with codex 0.169.0).
- Rollouts: the cumulative total counts by its advance; re-emitted counts and
  `token_usage_record` duplicates are dropped; a fork's replayed parent events are the
  parent's; a rollout in both `sessions/` and `archived_sessions/` counts once
  (transcripts.py).
"""

from __future__ import annotations

NAME = "codex"
TITLE = "Codex"
EXECUTABLE = "codex"
BIN_ENV = "AITRACK_CODEX_BIN"
HOME_ENV = ("CODEX_HOME",)  # where its files are, besides HOME
EXAMPLE = 'exec "fix the failing test"'  # for `aitrack codex --help`
# without an agent: a per-run receiver, or only the transcripts read at exit
WITHOUT_AGENT = "transcript"
# with the agent: its telemetry cannot name the wrapper's run (Codex has no helper)
TELLS_RUN = False
SERVICE_NAMES = ("codex", "codex_exec", "codex-app-server", "codex_app_server", "codex_cli_rs",
                 "codex-tui", "codex_mcp_server")
HOME_ENV = ("CODEX_HOME",)  # moves its rollouts and config
# the models its documentation and tests name (no model is built in when a provider is given)
DEFAULT_MODELS = ("gpt-5", "gpt-5-codex")
# no lines or commits of its own: a wrapped run's commits are read from git
REPORTS_CONTRIBUTIONS = False
# resumes a session by its own id (shown beside aitrack's in `aitrack report session`)
RESUME = "codex resume {id}"
# ChatGPT plans' Codex limits: a 5-hour window (and a weekly one) (`aitrack report blocks`)
BILLING_WINDOW_H = 5

NOT_SESSIONS = frozenset(("--version", "-V", "--help", "-h", "help", "login", "logout",
                           "completion", "features", "mcp"))


def mute(args: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """No exporter over its config.toml's (which names another user's port, with the
    agent's key): `-c` overrides, which hold no secret (checked with 0.169.0: nothing sent).
    They also take it out of its shared background-server mode for this run."""
    if not is_session(args):
        return args, env
    off = [a for key in ("exporter", "metrics_exporter", "trace_exporter")
           for a in ("-c", f'otel.{key}="none"')]
    return [*off, *args], env


def is_session(args: list[str]) -> bool:
    return not (args and args[0] in NOT_SESSIONS)
