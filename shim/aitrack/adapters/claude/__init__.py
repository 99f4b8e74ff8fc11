"""Claude Code: what aitrack needs before the tool starts, and how it points it at a receiver.

Telemetry is switched on and pointed at a per-run receiver through the environment (without
the agent), or by Claude Code's own user settings (settings.py, with the agent). What the
telemetry means is in telemetry.py; the transcripts in locate.py and transcripts.py.

Counting rules (every billed request once; checked with 2.1.328):
- Token types map directly: Claude's `input` already excludes cache reads and writes.
- Requests: every billed request is an `api_request` log event (its `request_id`, the model
  that answered, tokens by type including 1-hour cache writes, `cost_usd`) and, unless it is
  a side request, an assistant line in the transcript (`requestId`, `message.model` as
  answered, `requestedModel` as asked). Both name the request by the same request id: they
  meet on it and count once, with the requested name learnt as an alias of the answered one.
- Session totals: `claude_code.token.usage` and `claude_code.cost.usage` (metrics) and the
  transcript's last `cost-state` line (`modelUsage.<model>`: tokens and `costUSD`) sum the
  session's requests per requested model: a floor under the requests, never added to them;
  the cost-state is the session's cost of record (not in a fork, whose cost-state counts the
  parent's copied requests too).
- Transcripts: one response is several `assistant` lines; the largest line of a
  (message.id, requestId) counts, once across every file (transcripts.py says why).
- `<synthetic>` lines (API errors, usage-limit notices) are not billed.

Requests one source sees and another does not:
- The TUI's title request per prompt (`query_source` `generate_session_title`; no tools, one
  message): telemetry and cost-state only, never an assistant line. Counted from telemetry's
  event; without telemetry (the agent down) it is what the cost-state exceeds the lines by.
- A model alias answered with a dated id (`claude-sonnet-4-5` -> `...-20250929`), inference
  profiles, gateways: metrics and cost-state name the requested model, events and lines the
  answered one. Counted once under the answered model, the requested name shown beside it.
- `--continue`: start-up events and `session.count` (`start_type` "continue") under a fresh
  `session.id` that no request uses: no session (`-r SID` sends none).
- A run's sessions: its telemetry names it (the per-run receiver, or the headers helper's
  run header with the agent), never the folder alone.
"""

from __future__ import annotations

from aitrack.adapters import Sink, otel_env

NAME = "claude"
TITLE = "Claude Code"
EXECUTABLE = "claude"
BIN_ENV = "AITRACK_CLAUDE_BIN"
HOME_ENV = ("CLAUDE_CONFIG_DIR",)  # where its files are, besides HOME
EXAMPLE = '-p "summarise the last commit" --max-turns 1'  # for `aitrack claude --help`
# without an agent: a per-run receiver, or only the transcripts read at exit
WITHOUT_AGENT = "receiver"
# with the agent: its telemetry names the wrapper's run (the headers helper sends
# AITRACK_SESSION_ID as the run header)
TELLS_RUN = True
SERVICE_NAMES = ("claude-code",)
HOME_ENV = ("CLAUDE_CONFIG_DIR",)  # moves its transcripts and settings
# what it runs when told no model (checked with 2.1.328): priced in domain/prices.toml
DEFAULT_MODELS = ("claude-opus-5-5",)
# claude_code.lines_of_code.count, commit.count, pull_request.count: git is not asked
REPORTS_CONTRIBUTIONS = True
# resumes a session by its own id (shown beside aitrack's in `aitrack report session`)
RESUME = "claude --resume {id}"
# a Claude subscription's usage limits reset 5 hours after a window's first message
# (`aitrack report blocks`)
BILLING_WINDOW_H = 5

# claude subcommands and flags that run no session
NOT_SESSIONS = frozenset(("--version", "-v", "--help", "-h", "update", "doctor", "install",
                           "migrate-installer", "setup-token", "config", "mcp", "plugin"))


def prepare(args: list[str], env: dict[str, str], sink: Sink) -> tuple[list[str], dict[str, str]]:
    otel_env.standard(env, sink, protocol="http/json")
    env["CLAUDE_CODE_ENABLE_TELEMETRY"] = "1"
    env["OTEL_METRICS_INCLUDE_ENTRYPOINT"] = "true"  # app.entrypoint: terminal, IDE, app...
    env["OTEL_LOG_USER_PROMPTS"] = "1" if sink.telemetry["log_user_prompts"] else "0"
    env["OTEL_LOG_TOOL_DETAILS"] = "1" if sink.telemetry["log_tool_details"] else "0"
    env.pop("OTEL_LOG_ASSISTANT_RESPONSES", None)
    if sink.replaces_settings:
        # the user settings' `env` wins over the environment, `--settings` over both
        # (checked with 2.1.328); the key stays in the environment, out of the arguments
        keys = ("CLAUDE_CODE_ENABLE_TELEMETRY", "OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER",
                "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_ENDPOINT")
        args = _over_settings(args, {k: env[k] for k in keys})
    return args, env


def mute(args: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """Telemetry off over the user's settings (they name another user's port)."""
    return _over_settings(args, {"CLAUDE_CODE_ENABLE_TELEMETRY": "0",
                                 "OTEL_METRICS_EXPORTER": "none",
                                 "OTEL_LOGS_EXPORTER": "none"}), env


def _over_settings(args: list[str], env_block: dict[str, str]) -> list[str]:
    """`--settings JSON` first: it wins over the user's and projects' settings files (not
    over managed settings). Plain ASCII values, so no json import on the start-up path."""
    if not is_session(args):
        return args
    block = ",".join(f'"{k}":"{v}"' for k, v in env_block.items())
    return ["--settings", '{"env":{' + block + "}}", *args]


def is_session(args: list[str]) -> bool:
    return not (args and args[0] in NOT_SESSIONS)
