"""The tools aitrack knows: one package per tool, registered here (TOOLS), and what a tool
package provides. docs/adding-a-tool.md is the checklist for adding one.

Everything tool-specific (names, environment variables, settings files, metric names, token
semantics, counting rules) lives in the tool's package and nowhere else. The core asks for a
tool's parts through `load` and `part`; tests/test_adapter_contract.py checks every registered
tool against this contract.

`adapters/<tool>/__init__.py`, required: what the wrapper needs before the tool starts
(standard library only, nothing heavy: it is on the start-up path of `aitrack <tool>`):
  NAME: str                   the tool's name in the ledger, the wrapper and the shims
  TITLE: str                  how people call it ("Claude Code")
  EXECUTABLE: str | None      the binary to look up on PATH (None: given on the command line)
  BIN_ENV: str | None         environment variable overriding the binary's path
  SERVICE_NAMES: tuple        OTLP `service.name`s its telemetry arrives with (at the agent)
  REPORTS_CONTRIBUTIONS: bool whether it reports its own lines and commits (else a wrapped
                              run's commits are read from git at its end)
  WITHOUT_AGENT: str          how a run is captured when the tool's settings do not point at
                              the agent: "receiver" (a per-run receiver, told through
                              `prepare`) or "transcript" (nothing is told to the tool: its
                              local files are read when it exits)
  TELLS_RUN: bool             with the agent, whether its telemetry names the wrapper's run
  EXAMPLE: str                arguments for the example in `aitrack TOOL --help`
  DEFAULT_MODELS: tuple       the models it uses when told none (each must be priced)
  UNPRICED: tuple             optional: default models without a public price (left n/a,
                              never a guess; domain/prices.toml says why)
  RESUME: str | None          the command that resumes a session, `{id}` its own id (None:
                              the tool has none)
  BILLING_WINDOW_H: float | None
                              the length of the tool's subscription usage windows, in hours
                              (None: it has none), for `aitrack report blocks`
  is_session(args) -> bool    False for invocations that run no session (--version, --help)
  prepare(args, env, sink)    required with WITHOUT_AGENT == "receiver": the child's
       -> (args, env)         arguments and environment pointing at the per-run receiver;
                              with `sink.replaces_settings`, over the tool's own settings
                              (they name the agent's port, which another user holds)
  mute(args, env)             required with a `settings` part (unless WITH_AGENT is
                              "receiver"): the child's arguments and
       -> (args, env)         environment that keep it from sending telemetry where its own
                              settings say (the agent's port, held by another user), with
                              no secret in them (arguments are readable by every user)
  HOME_ENV: tuple             optional: the environment variables that move its files
                              (besides HOME), passed on to whoever reads them for a run
  WITH_AGENT: str             optional, "agent" (default): a wrapped run of a tool whose
                              settings point at the agent is left to them; "receiver": its
                              wrapped runs get a per-run receiver all the same (`prepare`;
                              its environment must win over its settings), because its
                              settings cannot name the agent's endpoint (Copilot CLI) or
                              carry its key, and a closed port costs seconds (Gemini, Qwen)
and its counting rules, in its docstring: which source counts what, and every request one
source sees and another does not.

Counting (store/ledger/record.py): the billed request is the unit. A source that reports
requests one by one gives each as a `domain.records.Request` (its id when the source names
one, the model that answered, the name requested when it says so, its figures, its cost);
sources meet on the id, else on session and figures, and each request counts once. A source
that states only a session's totals (metrics with a session id, a transcript's cost-state)
is a floor under the session's requests: what it saw beyond them counts once. A total named
under the requested model meets requests under the answered one through the aliases learnt
from requests that name both.

Optional parts, each a module of the package (`part(tool, name)`):
  telemetry     what its OTLP payloads add to the ledger: contributions(point, delta)
                (session totals: "tokens", and "metric" cost_usd; other figures),
                log_contributions(attrs, prices), tool_session_id(attrs), entrypoint(attrs)
                (the generic package's when the tool has none); optional:
                tool_version(resource) (else `service.version`);
                log_request(attrs, prices) -> Request | None (a log record that is one
                billed request), opens_session(name, attrs) (whether a record that counts
                nothing makes its session known: Claude's `--continue` start-up id does
                not), prompt(attrs) and side_start(attrs) with SIDE_WINDOW_S (a conversation
                the tool starts for a prompt, counted in the prompting session: Codex's TUI
                title request); USAGE_SIGNALS, the signals whose records carry its usage
                (default metrics and logs), and with "traces" among them
                span_contributions(attrs, prices), what one span adds (receivers keep and
                decode its traces only then)
  locate        where its local files are: transcript_roots(env), and
                run_sessions(cwd, started, ended, env) -> [(tool session id, path)], the
                sessions written in a folder while a run lasted (candidates: linking takes
                them only when they cannot be another run's); optional:
                open_sessions(paths) -> [(tool session id, path)] (the sessions among a
                process's open files) and run_process(cmdline) (False for a process shared
                with other runs): what identifies a run's sessions while it runs
  transcripts   the reader `aitrack import` uses (the contract: store/importing/__init__.py)
  settings      its user settings wired to the per-user agent (`aitrack agent install`):
                the contract is in install/wiring/__init__.py

`generic` is not a registered tool: it is `aitrack run`'s adapter and the fallback for
telemetry no tool claims.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# The registered tools, in the order people see them (reports, doctor, shims).
TOOLS = ("claude", "codex", "gemini", "qwen", "copilot", "opencode")


class Sink:
    """Where and how the child sends telemetry: aitrack's loopback receiver."""

    __slots__ = ("base_url", "secret_header", "secret", "signals", "attributes", "telemetry",
                 "replaces_settings")

    def __init__(self, base_url: str, secret_header: str, secret: str, signals: tuple[str, ...],
                 attributes: dict[str, str], telemetry: dict[str, object],
                 replaces_settings: bool = False):
        self.base_url = base_url
        self.secret_header = secret_header
        self.secret = secret
        self.signals = signals  # the signals the child should export
        self.attributes = attributes  # resource attributes to announce (the receiver enforces)
        self.telemetry = telemetry  # the profile's [telemetry] table, defaults filled
        # the tool's own settings send telemetry elsewhere (the agent's port, held by another
        # user): the child must be pointed here over them, not only through the environment
        self.replaces_settings = replaces_settings

    def signal_url(self, signal: str) -> str:
        return f"{self.base_url}/v1/{signal}"


def load(name: str) -> ModuleType:
    """A tool's package (or `generic`)."""
    return importlib.import_module(f"aitrack.adapters.{name}")


def part(name: str, part: str) -> ModuleType | None:
    """One of a tool's optional parts (`telemetry`, `locate`, `transcripts`, `settings`), or
    None when the tool has none."""
    try:
        return importlib.import_module(f"aitrack.adapters.{name}.{part}")
    except ModuleNotFoundError as exc:
        if exc.name != f"aitrack.adapters.{name}.{part}":
            raise  # the part exists but something it imports does not: a real error
        return None


def with_part(part_name: str) -> tuple[str, ...]:
    """The registered tools that have this part, in registry order."""
    return tuple(t for t in TOOLS if part(t, part_name) is not None)


def for_service(service_name: str | None) -> ModuleType:
    """The package of the tool whose telemetry carries this `service.name` (else generic)."""
    for name in TOOLS:
        adapter = load(name)
        if service_name in adapter.SERVICE_NAMES:
            return adapter
    return load("generic")


def usage_signals(telemetry_part: ModuleType) -> tuple[str, ...]:
    """The signals whose records carry a tool's usage (its telemetry's USAGE_SIGNALS)."""
    return getattr(telemetry_part, "USAGE_SIGNALS", ("metrics", "logs"))


def services_counting(signal: str) -> tuple[str, ...]:
    """The `service.name`s of the registered tools whose usage arrives in this signal."""
    return tuple(name for tool in TOOLS if signal in usage_signals(telemetry(tool))
                 for name in load(tool).SERVICE_NAMES)


def telemetry(name: str) -> ModuleType:
    """What a tool's telemetry means (the generic mapping for a tool without its own)."""
    return part(name if name in TOOLS else "generic", "telemetry") or part("generic",
                                                                          "telemetry")
