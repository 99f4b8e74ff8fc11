"""Qwen Code (`@qwen-code/qwen-code`, a fork of Gemini CLI): what aitrack needs before it starts.

Facts (checked with qwen 0.24.4 against the test stub, `--auth-type openai`): telemetry is
switched on and pointed by `QWEN_TELEMETRY_*` variables, which win over its settings file
(`telemetry.*` in `~/.qwen/settings.json`, wired to the agent by settings.py); `http` sends
OTLP/HTTP as JSON with chunked transfer-encoding (the default is grpc). The OTLP header comes
only from `OTEL_EXPORTER_OTLP_HEADERS`. With its endpoint closed it waits about 8 s at exit
(silently), so a run is pointed only at a receiver already listening, and
`OTEL_EXPORTER_OTLP_TIMEOUT` is bounded.

Counting rules (every billed request once):
- Token semantics: `input` (promptTokenCount) INCLUDES `cached`. With an OpenAI-style backend
  (`openai`, the default for an API key) `output` (candidatesTokenCount, = completion_tokens)
  already INCLUDES `thoughts` (reasoning); with a Gemini backend thoughts are apart, as in
  Gemini CLI. Told apart by the request's total (prompt + output, or + thoughts too), else
  its auth type (telemetry.py, `request_usage`). Ledger: input = input - cached, cache_read =
  cached, output = all output, reasoning = thoughts.
- Telemetry: one `qwen-code.api_response` log record per billed request, the main
  conversation's and every subagent's (`subagent_name`, e.g. the
  `managed-auto-memory-extractor` that runs after a turn), with `session.id`, `response_id`,
  `prompt_id`, time, model and figures. Its cumulative `qwen-code.token.usage` metric carries
  no session id (unless `telemetry.metrics.includeSessionId`) and repeats the same requests:
  it counts nothing.
- Local files, each request once across them (transcripts.py): `usage/token-usage-YYYY-MM.jsonl`
  (one line per request, subagents included; written only while `usageStatisticsEnabled` is
  on) and the `ui_telemetry` rows of `projects/<cwd slug>/chats/<session>.jsonl` (the same
  `api_response` event per request, subagents included, written whatever that setting says).
  A chat file's `assistant` rows repeat the main requests' figures: not counted.
- Where they meet: telemetry's record and the chat file's `ui_telemetry` row of a request are
  the same event, with the same `response_id`: they meet on it. A usage-file line has no id:
  it meets the chat row on session, model, figures and time (transcripts.py), and telemetry
  on session, model and figures. Each request counts once.
- Side requests: the `managed-auto-memory-extractor` call after a turn is billed and is in
  every source (a subagent's record): counted as any request. Prompt suggestions, forked
  queries, speculation and side queries (internal prompt ids) write no file line: counted
  only from telemetry.
"""

from __future__ import annotations

from aitrack.adapters import Sink, otel_env

NAME = "qwen"
TITLE = "Qwen Code"
EXECUTABLE = "qwen"
BIN_ENV = "AITRACK_QWEN_BIN"
EXAMPLE = '-p "summarise the last commit"'  # for `aitrack qwen --help`
# without an agent: a per-run receiver, told through the environment
WITHOUT_AGENT = "receiver"
# wrapped, always a per-run receiver (its environment wins over its settings): the run never
# waits on a closed port (8 s at exit) and never depends on the agent admitting it keyless
WITH_AGENT = "receiver"
# with the agent: its telemetry cannot name the wrapper's run (no headers helper)
TELLS_RUN = False
SERVICE_NAMES = ("qwen-code",)
HOME_ENV = ("QWEN_HOME", "QWEN_RUNTIME_DIR")  # its settings, and its runtime files
RESUME = "qwen --resume {id}"  # checked: 0.24.4 --help
# no subscription usage windows of its own (report blocks)
BILLING_WINDOW_H = None
# what `--auth-type openai` without a model asks for (checked with 0.24.4)
DEFAULT_MODELS = ("qwen3.7-max",)
# no first-party price found (domain/prices.toml says what was seen): its cost shows n/a
# until a profile prices it (`[prices."qwen3.7-max"]`)
UNPRICED = ("qwen3.7-max",)
# no commits of its own in telemetry: a wrapped run's commits are read from git
REPORTS_CONTRIBUTIONS = False

# subcommands and flags that run no session
NOT_SESSIONS = frozenset(("--version", "-v", "--help", "-h", "auth", "board", "channel",
                           "extensions", "hooks", "mcp", "sandbox", "serve", "sessions",
                           "update"))
# its own variables that would send telemetry elsewhere than the receiver
_REDIRECTING = ("QWEN_TELEMETRY_OTLP_ENDPOINT", "QWEN_TELEMETRY_OTLP_TRACES_ENDPOINT",
                "QWEN_TELEMETRY_OTLP_LOGS_ENDPOINT", "QWEN_TELEMETRY_OTLP_METRICS_ENDPOINT",
                "QWEN_TELEMETRY_OUTFILE", "QWEN_TELEMETRY_USE_COLLECTOR")


def prepare(args: list[str], env: dict[str, str], sink: Sink) -> tuple[list[str], dict[str, str]]:
    otel_env.telemetry_vars(env, sink, "QWEN", _REDIRECTING)
    return args, env


def is_session(args: list[str]) -> bool:
    return not (args and args[0] in NOT_SESSIONS)
