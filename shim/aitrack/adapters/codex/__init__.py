"""OpenAI Codex CLI: what aitrack needs before the tool starts.

Codex is configured only through its own settings (`[otel]` in its config, pointed at the
per-user agent: settings.py): command-line `-c` overrides would put a secret in its argv,
readable by every local user, and force it out of its shared background-server mode. Without
an agent a run is read from its rollout when it exits (WITHOUT_AGENT, and no `prepare`).

Counting rules (every billed request once; checked with 0.169.0):
- Requests: each model response is a `codex.sse_event` log record of kind
  `response.completed` (conversation = session id, model as requested, tokens; no response
  id) and a `token_usage_record` / `token_count` of its rollout (response id, the same
  figures). They meet on session and figures and count once. Both name the model as
  requested (the answer's model name is in neither): the ledger does too. Metrics carry no
  session id: forwarded untouched, they count nothing.
- OpenAI token semantics: `input` INCLUDES cached input and cache writes; `output` INCLUDES
  reasoning. The ledger's types do not overlap, so cached input moves to cache_read, cache
  writes to cache_creation, and input keeps the rest.
- Rollouts: the cumulative total counts by its advance; re-emitted counts and
  `token_usage_record` duplicates are dropped; a fork's replayed parent events are the
  parent's; a rollout in both `sessions/` and `archived_sessions/` counts once
  (transcripts.py).

Requests one source sees and another does not:
- The TUI's title request per prompt (no tools; input ending "Do not answer the request.
  User prompt: ..."): a conversation of its own in telemetry, started tens of milliseconds
  after the prompt, in no rollout and not in `state_5.sqlite`. With telemetry it counts in
  its prompting session (telemetry.py: `side_start`). Without (the wrapper with no agent,
  the agent down) nothing Codex keeps has it: `report session` says how many are missing
  (a TUI session's prompts), never silently. `codex exec` sends none.
- A run's sessions: the rollout its own process holds open (`codex exec`), never the folder
  alone; the TUI's threads run in the shared background server (locate.py).
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
