"""GitHub Copilot CLI (`@github/copilot`): what aitrack needs before the tool starts, and how
it points a wrapped run at a per-run receiver.

Facts (checked with Copilot CLI 1.0.102, offline: COPILOT_OFFLINE=true and a custom provider,
COPILOT_PROVIDER_BASE_URL / _API_KEY / COPILOT_MODEL, against a chat-completions stub):
- Its OpenTelemetry is switched on and pointed by the environment only
  (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL = http/json or http/protobuf;
  grpc falls back to http/json; the OTEL_*_EXPORTER switches are ignored: it always sends
  metrics and traces, no logs). Its settings file takes no endpoint, only
  `telemetry.headersProvider` (settings.py), so a wrapped run always gets a per-run receiver
  (WITH_AGENT), and a run started directly reaches the agent only when its environment names
  it; otherwise the agent reads it from its files (transcripts.py).
- Usage per request: spans `chat <model>` with gen_ai.usage.*, gen_ai.response.id (the
  provider's response id), gen_ai.conversation.id (the session, a subagent's calls included)
  and github.copilot.cost; `session.usage_record` events in
  `~/.copilot/session-state/<session>/events.jsonl` with the same figures and response id
  (`apiCallId`), written whether OTel is on or not; `session-store.db` holds them once more
  without the response id (not read: the events file has every row it has). Its metrics
  (`gen_ai.client.inference.usage.*`) are cumulative and name no session.

Counting rules (every billed request once):
- One request is one `chat` span (telemetry.span_request), one `session.usage_record` event,
  or one `chat` span line of the OTel file exporter. The files key it by session and response
  id (two events under one response id, a local provider's, are told apart by their record
  number); a span meets the files' record on session, model and figures, each request once.
  `invoke_agent` spans repeat a turn's totals and are not counted.
- Session totals: `session.shutdown`'s `modelMetrics` (per model, at the session's end; the
  largest of a resumed session's ends) are a floor under its requests: what they hold beyond
  them (a usage record never written) counts once, never a request twice.
- Token semantics: `inputTokens` INCLUDES cache reads and cache writes (checked with both the
  OpenAI and the Anthropic wire), `outputTokens` INCLUDES reasoning. So the ledger's input is
  input - cache read - cache write; output maps directly, reasoning is its part.
- The model is the one the request was made with (`gen_ai.request.model`, the events'
  `model`: the same name in every source).
- `github.copilot.cost` (the events' `cost`) is the request's premium-request charge (the
  model's multiplier; 0 for BYOK and for included models): kept as `premium_requests`. What
  GitHub bills for its hosted models is premium requests, not tokens; the cost of record is
  the price table's list price of the tokens, an equivalent, not an invoice.
- The metrics are forwarded untouched and counted nowhere (no session, and the spans hold
  every request). Not seen by any source: nothing found in 1.0.102 (a subagent's requests
  are in its parent's events and spans).
"""

from __future__ import annotations

from aitrack.adapters import Sink, otel_env

NAME = "copilot"
TITLE = "Copilot CLI"
EXECUTABLE = "copilot"
BIN_ENV = "AITRACK_COPILOT_BIN"
HOME_ENV = ("COPILOT_HOME", "COPILOT_OTEL_FILE_EXPORTER_PATH")  # where its files are, besides HOME
EXAMPLE = '-p "summarise the last commit"'  # for `aitrack copilot --help`
# without an agent: a per-run receiver told through the environment
WITHOUT_AGENT = "receiver"
# with the agent too: its settings cannot name the agent's endpoint (only a headers helper)
WITH_AGENT = "receiver"
TELLS_RUN = False
SERVICE_NAMES = ("github-copilot",)
# GitHub's default for its hosted models (github/copilot-cli README, 2026-02: Claude Sonnet
# 4.6; the server can change it). A custom provider needs a model named (COPILOT_MODEL).
RESUME = "copilot --resume {id}"  # checked: 1.0.102 --help
# no subscription usage windows of its own (report blocks)
BILLING_WINDOW_H = None
DEFAULT_MODELS = ("claude-sonnet-4.6",)
# no commits of its own: a wrapped run's commits are read from git
REPORTS_CONTRIBUTIONS = False

NOT_SESSIONS = frozenset(("--version", "-v", "--help", "-h", "help", "version", "update",
                           "login", "logout", "mcp", "plugin", "completion"))
_FILE_EXPORTER = ("COPILOT_OTEL_FILE_EXPORTER_PATH",)


def prepare(args: list[str], env: dict[str, str], sink: Sink) -> tuple[list[str], dict[str, str]]:
    """OTLP over http/protobuf to the receiver. A user who sends Copilot's telemetry to a
    file keeps it there: the run is then counted from its session files at exit."""
    if env.get("COPILOT_OTEL_EXPORTER_TYPE", "").strip().lower() == "file" or (
            env.get(_FILE_EXPORTER[0], "").strip() and not env.get("COPILOT_OTEL_EXPORTER_TYPE")):
        return args, env
    otel_env.standard(env, sink, protocol="http/protobuf")
    env["COPILOT_OTEL_ENABLED"] = "true"
    env["COPILOT_OTEL_EXPORTER_TYPE"] = "otlp-http"
    env["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = (
        "true" if sink.telemetry["log_user_prompts"] else "false")
    return args, env


def is_session(args: list[str]) -> bool:
    return not (args and args[0] in NOT_SESSIONS)
