"""opencode (`opencode-ai`): what aitrack needs before the tool starts.

Facts (checked with opencode 1.18.33 against a local chat-completions stub): its usage is in
its SQLite database, `$XDG_DATA_HOME/opencode/opencode.db` (else `~/.local/share/opencode`;
`OPENCODE_DB` names another file, and a non-release channel writes `opencode-<channel>.db`),
a WAL database that opencode writes while it runs. Each model request is one assistant row of
table `message` (a tool-using turn is several rows, one per request), whose `data` JSON holds
`tokens{input, output, reasoning, cache{read, write}}`, `cost`, `modelID`, `providerID` and
`time{created, completed}`; sessions are table `session` (`directory`, `version`,
`parent_id` for a subagent's). Versions before the database kept one JSON document per
message in `storage/message/<session>/<message>.json`, with the same fields. Its
OpenTelemetry is not a source: token spans come only with an experimental flag and are not
flushed at exit (the main turn's span never arrived in any run), so nothing is told to the
tool: a wrapped run's session is read from the database when it exits (WITHOUT_AGENT), and
the agent reads the database every import interval.

Counting rules (every billed request once):
- One assistant message is one request, keyed by its message id across the database and the
  older JSON documents (a message in both counts once). A message still being written (no
  `time.completed`, no `finish`) waits for the next read.
- opencode's token semantics: `input` EXCLUDES cached input (read and written) and `output`
  EXCLUDES reasoning. The ledger's `output` is all output, so it is `output + reasoning`,
  `reasoning` its part; `input`, `cache_read`, `cache_creation` map directly.
- opencode's own `cost` (computed from its model configuration's prices, 0 where it has
  none) is kept as the session's `tool_cost_usd`, as reported; the cost of record is the
  price table's, as for every tool without a billed cost.
- Not stored anywhere, so never counted: the title request opencode makes with a session's
  first prompt (with a small model of the same provider when it has one). A session whose
  title the model wrote is marked `unrecorded_requests = 1` and `report session` says so (a
  note): the known gap, per session. Its telemetry counts nothing, so a request has one
  source (the message) and meets nothing else.
"""

from __future__ import annotations

NAME = "opencode"
TITLE = "opencode"
EXECUTABLE = "opencode"
BIN_ENV = "AITRACK_OPENCODE_BIN"
# where its files are, besides HOME; and PWD, which it records as a session's directory
HOME_ENV = ("XDG_DATA_HOME", "OPENCODE_DB", "PWD")
EXAMPLE = 'run "explain this repo"'  # for `aitrack opencode --help`
# nothing is told to the tool: its database is read when it exits
WITHOUT_AGENT = "transcript"
# it has no settings that reach the agent, so no telemetry of its names a wrapped run
TELLS_RUN = False
SERVICE_NAMES = ("opencode",)
# opencode has no model of its own: it ranks the connected providers' models by these names
# (gpt-5 first, then claude-sonnet-4, read in 1.18.33's binary), newest id first
RESUME = "opencode --session {id}"  # checked: 1.18.33 --help
# no subscription usage windows of its own (report blocks)
BILLING_WINDOW_H = None
DEFAULT_MODELS = ("gpt-5", "claude-sonnet-4-6")
# no lines or commits of its own: a wrapped run's commits are read from git
REPORTS_CONTRIBUTIONS = False

NOT_SESSIONS = frozenset(("--version", "-v", "--help", "-h", "completion", "mcp", "debug",
                           "providers", "auth", "agent", "upgrade", "uninstall", "models",
                           "stats", "export", "import", "session", "plugin", "plug", "db"))


def is_session(args: list[str]) -> bool:
    return not (args and args[0] in NOT_SESSIONS)
