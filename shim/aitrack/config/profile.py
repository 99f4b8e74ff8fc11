"""Profiles: the managed (IT) layer over the user layer over built-in defaults.

Schema v1 is described in README.md (and checked in schema.py). Keys set by the managed
profile cannot be overridden by the user profile. `[endpoint]` is taken as a whole from
whichever layer sets it first (managed, then user), so a user profile can never divert a
managed endpoint's signals or headers elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aitrack.config import managed
from aitrack.config.attributes import IDENTITY_KEYS, INTEGRITY_KEY, attribute_key
from aitrack.config.paths import Paths
from aitrack.config.profile_file import Layer, read_lenient
from aitrack.config.schema import SCHEMA, ProfileError

_IDENTITY = {attribute_key(k) for k in IDENTITY_KEYS}


@dataclass(frozen=True)
class Endpoint:
    url: str | None
    metrics_url: str | None
    logs_url: str | None
    traces_url: str | None
    protocol: str
    auth_header: str
    auth_scheme: str
    keychain_account: str
    metrics_keychain_account: str | None
    logs_keychain_account: str | None
    traces_keychain_account: str | None
    ca_bundle: str | None
    signals: tuple[str, ...]
    timeout_s: float
    flush_timeout_s: float
    outbox_max_mb: int
    headers: dict[str, str]
    forward: tuple[str, ...] = ("normalized", "raw")
    drop_attributes: tuple[str, ...] = ()
    forward_imported: bool = False

    def signal_url(self, signal: str) -> str | None:
        """Where a signal goes: its own URL if set, else the base URL + /v1/<signal>."""
        own = getattr(self, f"{signal}_url")
        if own:
            return own
        if self.url:
            return self.url.rstrip("/") + f"/v1/{signal}"
        return None

    def signal_account(self, signal: str) -> str:
        """The keychain entry holding a signal's token: its own account if set, else
        keychain_account (CloudWatch Logs, say, wants a key of its own)."""
        return getattr(self, f"{signal}_keychain_account") or self.keychain_account

    def accounts(self, signals: tuple[str, ...] | None = None) -> dict[str, tuple[str, ...]]:
        """Each distinct keychain account of `signals` (default: the forwarded ones), with
        the signals whose token it holds."""
        found: dict[str, tuple[str, ...]] = {}
        for signal in self.signals if signals is None else signals:
            account = self.signal_account(signal)
            found[account] = (*found.get(account, ()), signal)
        return found

    def auth_value(self, token: str) -> str:
        return f"{self.auth_scheme} {token}" if self.auth_scheme else token


@dataclass(frozen=True)
class Telemetry:
    metric_export_interval_ms: int = 60000
    logs_export_interval_ms: int = 5000
    log_user_prompts: bool = False
    log_tool_details: bool = False


@dataclass(frozen=True)
class IdentitySettings:
    """Where user.email comes from when no attribute sets it (config/identity.py)."""

    email: str | None = None  # a template: "{user}@corp.example"
    email_from_git: bool = True  # the default is `not managed` (see merge)


@dataclass(frozen=True)
class Budget:
    daily_usd: float | None = None
    monthly_usd: float | None = None


@dataclass(frozen=True)
class AgentSettings:
    port: int | None = None  # unset: per user (capture/ports.py)
    port_base: int | None = None
    import_interval_s: float = 600


@dataclass
class Profile:
    endpoint: Endpoint | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    telemetry: Telemetry = field(default_factory=Telemetry)
    prices: dict[str, dict[str, float]] = field(default_factory=dict)
    agent: AgentSettings = field(default_factory=AgentSettings)
    identity: IdentitySettings = field(default_factory=IdentitySettings)
    # IT manages this machine: a managed source exists (even a broken one)
    managed: bool = False
    budget: Budget = field(default_factory=Budget)
    # "table.key" -> "managed (PATH)" | "user (PATH)" | "default"
    origins: dict[str, str] = field(default_factory=dict)
    # what was wrong while loading, per ignored source ("user profile ignored: PATH"):
    # its problems, one line each. The profile is still usable.
    broken: dict[str, list[str]] = field(default_factory=dict)
    # user settings that a managed layer overrides, one line each
    shadowed: list[str] = field(default_factory=list)

    @property
    def local_only(self) -> bool:
        return self.endpoint is None

    @property
    def problems(self) -> list[str]:
        return [f"{source}: {p}" for source, problems in self.broken.items() for p in problems]

    def problem_lines(self) -> list[str]:
        """One line per source with problems: the first, how many more, and the command that
        lists them all (every command prints these: seven lines each time helped nobody)."""
        out = []
        for source, problems in self.broken.items():
            where = source.rsplit(": ", 1)[-1]
            more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
            check = (f"aitrack profile validate {where}" if where.endswith(".toml") else
                     "aitrack profile show")
            out.append(f"{source}: {problems[0]}{more}; `{check}` lists "
                       + ("them all" if more else "it"))
        return out

    def as_dict(self) -> dict[str, Any]:
        ep = None
        if self.endpoint is not None:
            ep = {k: v for k, v in self.endpoint.__dict__.items() if v is not None}
            ep["signals"] = list(self.endpoint.signals)
            ep["forward"] = list(self.endpoint.forward)
            ep["drop_attributes"] = list(self.endpoint.drop_attributes)
        return {
            "endpoint": ep,
            "attributes": dict(self.attributes),
            "telemetry": dict(self.telemetry.__dict__),
            "agent": {k: v for k, v in self.agent.__dict__.items() if v is not None},
            "identity": {k: v for k, v in self.identity.__dict__.items() if v is not None},
            "budget": {k: v for k, v in self.budget.__dict__.items() if v is not None},
            "prices": {m: dict(p) for m, p in self.prices.items()},
        }


def load(paths: Paths, env: dict[str, str] | None = None) -> Profile:
    """The effective profile. Never raises: broken layers are reported in `problems`."""
    broken: dict[str, list[str]] = {}
    layers: list[Layer] = []
    managed_layers, managed_problems = managed.layers(paths, env)
    for source, problems in managed_problems.items():
        broken[f"managed profile ignored, running local-only: {source}"] = problems
    if not managed_problems:
        layers += managed_layers
    try:
        user, problems = read_lenient(paths.user_profile)
        if problems:  # each setting with a problem is left out, the rest applies
            broken[f"user profile settings ignored: {paths.user_profile}"] = problems
    except ProfileError as exc:
        broken[f"user profile ignored: {exc.path}"] = exc.problems
        user = None
    managed_machine = bool(managed_layers or managed_problems)
    if user is not None and managed_machine:
        user, refused = _without_identity(user)
        if refused:
            broken[f"user profile setting ignored: {paths.user_profile}"] = [
                f"{k}: identity comes from the managed profile or the OS on a managed "
                "machine; remove it from your profile" for k in refused]
    if user is not None:
        layers.append(Layer("user", str(paths.user_profile), user))
    # A broken managed profile means local-only: a user endpoint must not replace IT's.
    profile = merge(layers, endpoint_locked=bool(managed_problems), managed=managed_machine)
    profile.broken = broken
    overridden = managed.overrides(paths, env)
    if overridden:  # visible on what is forwarded: the run does not follow IT's own sources
        profile.attributes[INTEGRITY_KEY] = ",".join(reason for reason, _ in overridden)
        profile.origins[f"attributes.{INTEGRITY_KEY}"] = "aitrack (" + "; ".join(
            detail for _, detail in overridden) + ")"
    return profile


def _without_identity(user: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A user profile without what only IT or the OS may say on a managed machine: the
    identity attributes (however spelled: `user_id` is `user.id`) and the [identity] table;
    the names of the keys taken out."""
    attributes = user.get("attributes", {})
    refused = [k for k in attributes if attribute_key(k) in _IDENTITY]
    out = {k: v for k, v in user.items() if k != "identity"}
    if refused:
        out["attributes"] = {k: v for k, v in attributes.items() if k not in refused}
    names = [f"attributes.{k}" for k in refused]
    names += [f"identity.{k}" for k in user.get("identity", {})]
    return out, names


def merge(layers: list[Layer], endpoint_locked: bool = False,
          managed: bool | None = None) -> Profile:
    """Layers in precedence order (first wins) merged over the built-in defaults;
    `managed`: IT manages the machine (default: a managed layer is among them)."""
    if managed is None:
        managed = endpoint_locked or any(layer.name == "managed" for layer in layers)
    origins: dict[str, str] = {}
    shadowed: list[str] = []
    tables: dict[str, dict[str, Any]] = {}
    for table in ("attributes", "telemetry", "agent", "identity", "budget", "prices"):
        merged: dict[str, Any] = {}
        for layer in layers:
            for key, value in layer.data.get(table, {}).items():
                name = f"{table}.{key}"
                if key not in merged:
                    merged[key] = value
                    origins[name] = f"{layer.name} ({layer.source})"
                elif layer.name == "user" and merged[key] != value:
                    shadowed.append(f"{name}: user value ignored, {origins[name]} wins")
        tables[table] = merged
    endpoint_table: dict[str, Any] | None = None
    if not endpoint_locked:
        for layer in layers:
            if not layer.data.get("endpoint"):
                continue
            if endpoint_table is None:
                endpoint_table = layer.data["endpoint"]
                origin = f"{layer.name} ({layer.source})"
                for key in endpoint_table:
                    origins[f"endpoint.{key}"] = origin
            elif layer.name == "user":
                shadowed.append(f"endpoint: user [endpoint] ignored, {origin} sets the endpoint")
    endpoint = None
    if endpoint_table is not None:
        values = {k: endpoint_table.get(k, default)
                  for k, (_, default) in SCHEMA["endpoint"].items()}
        for key in SCHEMA["endpoint"]:
            origins.setdefault(f"endpoint.{key}", "default")
        for key in ("signals", "forward", "drop_attributes"):
            values[key] = tuple(values[key])
        values["headers"] = dict(values["headers"])
        endpoint = Endpoint(**values)
    telemetry = Telemetry(**tables["telemetry"])
    agent = AgentSettings(**tables["agent"])
    budget = Budget(**tables["budget"])
    for key in SCHEMA["agent"]:
        origins.setdefault(f"agent.{key}", "default")
    for key in SCHEMA["telemetry"]:
        origins.setdefault(f"telemetry.{key}", "default")
    identity = IdentitySettings(**{"email_from_git": not managed, **tables["identity"]})
    origins.setdefault("identity.email_from_git", "default (not on a managed machine)"
                       if managed else "default (an unmanaged machine)")
    return Profile(
        endpoint=endpoint,
        attributes={k: str(v) for k, v in tables["attributes"].items()},
        telemetry=telemetry,
        prices=tables["prices"],
        agent=agent,
        identity=identity,
        managed=managed,
        budget=budget,
        origins=origins,
        shadowed=shadowed,
    )
