"""Checks of the profile's sources: each one read on its own (managed plist, registry, TOML
files), and whether the managed ones are the settings in effect."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable

from aitrack.config import identity, managed
from aitrack.config.attributes import INTEGRITY_KEY
from aitrack.config.paths import Paths
from aitrack.config.profile import Profile
from aitrack.config.profile_file import read_file
from aitrack.config.schema import ProfileError
from aitrack.install.doctor.check import FAIL, PASS, WARN, Check, Context, shown_url


def check_profile(ctx: Context) -> Check:
    p = ctx.profile
    details, broken_managed, user_problems = _read_sources(ctx.paths)
    details += [f"ignored: {line}" for line in p.shadowed]
    mode = _mode(p)
    data = {"mode": "forwarding" if p.endpoint else "local-only",
            "endpoint_url": shown_url(p.endpoint.url) if p.endpoint else None,
            "signal_urls": {s: shown_url(p.endpoint.signal_url(s)) for s in p.endpoint.signals}
            if p.endpoint else {}}
    if broken_managed:
        where = broken_managed[0].split(" ", 2)[2]
        return Check("profile", FAIL, f"the managed profile is invalid, so aitrack runs "
                     f"local-only and forwards nothing ({where})",
                     f"IT: fix {where} (check a TOML file with `aitrack profile validate FILE`); "
                     "`aitrack profile show` lists every problem", details, data)
    if user_problems:
        where = user_problems[0].split(" ", 2)[2]
        whole = any(source.startswith("user profile ignored") for source in p.broken)
        what = "is invalid and ignored" if whole else \
            "has invalid settings, which are ignored (the rest applies)"
        return Check("profile", WARN, f"your profile {where} {what}; {mode}",
                     f"fix it (`aitrack profile validate {where}` lists every problem) or "
                     "delete it", details, data)
    return Check("profile", PASS, mode, None, details, data)


def _read_sources(paths: Paths) -> tuple[list[str], list[str], list[str]]:
    """Each profile source read on its own: (one line per source, the broken managed ones,
    the broken user one), sources labelled "<kind> <where>"."""
    details: list[str] = []
    broken_managed: list[str] = []
    user_problems: list[str] = []
    sources: list[tuple[str, Callable[[], object]]] = []
    if paths.managed_plist is not None:
        sources.append((f"managed plist {paths.managed_plist}",
                        lambda: managed.read_plist(paths.managed_plist)))
    reader = managed.registry_reader()
    if reader is not None:
        sources.append((f"managed registry {managed.REGISTRY_SOURCE}",
                        lambda: managed.read_registry(reader)))
    sources.append((f"managed TOML {paths.managed_profile}",
                    lambda: read_file(paths.managed_profile)))
    sources.append((f"user TOML {paths.user_profile}", lambda: read_file(paths.user_profile)))
    for label, read in sources:
        try:
            data = read()
        except ProfileError as exc:
            details.append(f"{label}: INVALID: {exc.problems[0]}"
                           + (f" (+{len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""))
            (user_problems if label.startswith("user") else broken_managed).append(label)
            continue
        if data:
            details.append(f"{label}: ok ({', '.join(sorted(data))})")
        else:
            details.append(f"{label}: not present")
    return details, broken_managed, user_problems


def _mode(p: Profile) -> str:
    """Where usage goes: forwarded (to which URLs, from which profile) or kept local."""
    if p.endpoint is None:
        return "local-only: no endpoint configured, usage stays in the local ledger"
    # "default" when only per-signal URLs are set (profiles/cloudwatch.toml has no url)
    origins = (p.origins.get("endpoint.url", "default"),
               *(v for k, v in p.origins.items() if k.startswith("endpoint.")))
    origin = next((v for v in origins if v != "default"), "")
    if p.endpoint.url:
        where = f"{', '.join(p.endpoint.signals)} to {shown_url(p.endpoint.url)}"
    else:
        where = ", ".join(f"{s} to {shown_url(p.endpoint.signal_url(s))}"
                          for s in p.endpoint.signals)
    m = re.fullmatch(r"(\w+) \((.*)\)", origin)
    return f"forwarding {where}" + (f" (endpoint from the {m[1]} profile {m[2]})" if m else "")


def check_profile_integrity(ctx: Context) -> Check:
    """Whether this machine's runs follow IT's managed sources (what
    `aitrack.profile.integrity` marks on forwarded telemetry when they do not)."""
    overridden = managed.overrides(ctx.paths, ctx.env)
    refused = [p for source, problems in ctx.profile.broken.items()
               if source.startswith("user profile setting ignored") for p in problems]
    environment = identity.environment_changes(ctx.profile, ctx.env)
    details = [detail for _, detail in overridden] + refused + environment
    details += _identity_lines(ctx.profile)
    if ctx.env.get("AITRACK_MANAGED_PLIST") and sys.platform != "darwin":
        details.append(f"AITRACK_MANAGED_PLIST is ignored: managed preferences exist only on "
                       f"macOS, not on {sys.platform}")
    data = {"overridden": [reason for reason, _ in overridden], "refused": refused,
            "environment": environment,
            "identity": {"user.id": ctx.profile.attributes.get(identity.USER_ID,
                                                               identity.login_name()),
                         "email_source": identity.email_source(ctx.profile)}}
    if environment:
        return Check("profile-integrity", WARN, "your environment tries to change who "
                     "telemetry is attributed to; it is ignored, and forwarded telemetry "
                     f"carries {INTEGRITY_KEY}={identity.ENV_IGNORED}",
                     "unset the variables named below (identity comes from the OS account "
                     "and IT's sources on a managed machine)", details, data)
    if overridden:
        what = "; ".join(detail for _, detail in overridden)
        return Check("profile-integrity", WARN, f"{what}: the managed settings IT deployed are "
                     f"not the ones in effect, and forwarded telemetry carries {INTEGRITY_KEY}="
                     f"{','.join(data['overridden'])}",
                     "unset the variable unless IT asked you to set it (staging, tests)",
                     details, data)
    if refused:
        return Check("profile-integrity", WARN, "your profile sets identity attributes that only "
                     "IT or the OS may set on a managed machine; they are ignored",
                     f"remove them from {ctx.paths.user_profile}", details, data)
    return Check("profile-integrity", PASS, "the settings in effect are the managed sources' "
                 "(no managed source replaced)", None, details, data)


def _identity_lines(p: Profile) -> list[str]:
    """Where user.id and user.email come from, one line each (never git's email itself)."""
    who = (f"user.id: {p.origins.get('attributes.user.id')}" if "user.id" in p.attributes
           else f"user.id: the OS account ({identity.login_name()})")
    source = identity.email_source(p)
    email = {"attribute": f"user.email: {p.origins.get('attributes.user.email')}",
             "template": f"user.email: the template identity.email ({p.identity.email})",
             "git": "user.email: git's user.email (your own setting, sent marked "
                    f"{identity.SOURCE_KEY}=git)",
             None: "user.email: none (no managed attribute or template, and git's is not "
                   "used on this machine)"}[source]
    return [who, email]
