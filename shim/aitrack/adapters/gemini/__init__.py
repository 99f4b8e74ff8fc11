"""Gemini CLI (`@google/gemini-cli`): what aitrack needs before the tool starts.

Facts (checked with gemini 0.61.0 against the test stub): telemetry is switched on and pointed
by `GEMINI_TELEMETRY_*` variables, which win over its settings file (`telemetry.*` in
`~/.gemini/settings.json`, wired to the agent by settings.py); only the `http` protocol sends
OTLP/HTTP, as JSON with chunked transfer-encoding (`http/protobuf` is refused, the default is
grpc). The OTLP header comes only from `OTEL_EXPORTER_OTLP_HEADERS`: there is no header setting
and no helper. With its endpoint closed it waits about 8 s at exit and prints three retry lines
on stdout, so a run is pointed only at a receiver that is already listening, and
`OTEL_EXPORTER_OTLP_TIMEOUT` is bounded.

Counting rules (every billed request once):
- Gemini token semantics: `input` (promptTokenCount) INCLUDES `cached`; `output` (candidates)
  EXCLUDES `thoughts`, billed at the output rate; `tool` (toolUsePromptTokenCount) is prompt
  apart from `input`. So the ledger's input = input - cached + tool, cache_read = cached,
  output = output + thoughts, reasoning = thoughts (telemetry.py, `request_usage`).
- Telemetry: one `gemini_cli.api_response` log record per billed request, whatever its role:
  `main`, `subagent`, and the `utility_*` calls (the model router's, the loop detector's, the
  compressor's, the next-speaker check's...), with `session.id`, `prompt_id`, model and
  figures: each is a request (telemetry.log_request). The cumulative `gemini_cli.token.usage`
  metric repeats the same requests, so it counts nothing.
- Chat files (`~/.gemini/tmp/<project>/chats/session-*.jsonl`): one `gemini` message per main
  or subagent turn, re-written whole whenever it changes: keyed by message id, its largest
  line counts. A subagent's file (`chats/<session id>/<subagent>.jsonl`) counts for its
  parent session, as telemetry does.
- Where they meet: neither names a request id Gemini's API gave, and the message id is the
  chat file's own, so a request seen by both meets on its session, model and figures (the
  same event's figures: equal type for type); each counts once.
- Side requests: the router's and the other utility calls are in NO chat file. With
  telemetry they count as any request; a session read from files alone misses them, which
  `report session` says (a note: `notes`), never silently.
"""

from __future__ import annotations

from aitrack.adapters import Sink, otel_env

NAME = "gemini"
TITLE = "Gemini CLI"
EXECUTABLE = "gemini"
BIN_ENV = "AITRACK_GEMINI_BIN"
EXAMPLE = '-p "summarise the last commit"'  # for `aitrack gemini --help`
# without an agent: a per-run receiver, told through the environment
WITHOUT_AGENT = "receiver"
# wrapped, always a per-run receiver (its environment wins over its settings): the run never
# waits on a closed port (8 s at exit) and never depends on the agent admitting it keyless
WITH_AGENT = "receiver"
# with the agent: its telemetry cannot name the wrapper's run (no headers helper)
TELLS_RUN = False
SERVICE_NAMES = ("gemini-cli",)
HOME_ENV = ("GEMINI_CLI_HOME",)  # replaces the home directory (~/.gemini)
# what "auto" routes to (checked with 0.61.0): the router, simple prompts, complex prompts
RESUME = None  # its --resume takes "latest" or an index, not an id (checked: 0.61.0 --help)
# no subscription usage windows of its own (report blocks)
BILLING_WINDOW_H = None
DEFAULT_MODELS = ("gemini-3.5-flash-lite", "gemini-3.8-flash",
                  "gemini-3.1-pro-preview-customtools")
# it counts lines but reports no commits: a wrapped run's commits are read from git
REPORTS_CONTRIBUTIONS = False

# subcommands and flags that run no session
NOT_SESSIONS = frozenset(("--version", "-v", "--help", "-h", "mcp", "extensions", "extension",
                           "skills", "skill", "hooks", "hook", "gemma"))
# its own variables that would send telemetry elsewhere than the receiver
_REDIRECTING = ("GEMINI_TELEMETRY_OTLP_ENDPOINT", "GEMINI_TELEMETRY_OUTFILE",
                "GEMINI_TELEMETRY_USE_COLLECTOR", "GEMINI_TELEMETRY_USE_CLI_AUTH")


def prepare(args: list[str], env: dict[str, str], sink: Sink) -> tuple[list[str], dict[str, str]]:
    otel_env.telemetry_vars(env, sink, "GEMINI", _REDIRECTING)
    return args, env


def is_session(args: list[str]) -> bool:
    return not (args and args[0] in NOT_SESSIONS)
