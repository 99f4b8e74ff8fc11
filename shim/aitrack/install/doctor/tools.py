"""Checks of the wrapped tools (the adapters' registry): each one's binary, and the PATH
shims that make the plain command tracked."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from aitrack import adapters
from aitrack.capture import launcher
from aitrack.config.paths import Paths
from aitrack.install import shims
from aitrack.install.doctor.check import FAIL, PASS, WARN, Check, Context
from aitrack.install.doctor.tool_settings import OTLP_REDIRECT

VERSION_TIMEOUT_S = 5.0


def check_tool(ctx: Context, name: str) -> Check:
    """The tool's binary (the one aitrack runs) answers `--version`."""
    override = adapters.load(name).BIN_ENV
    binary = _binary(ctx, name)
    if ctx.env.get(override) and not (binary and os.path.isfile(binary)):
        return Check(name, FAIL, f"{override}={ctx.env[override]} does not exist",
                     f"point {override} at the {name} executable or unset it")
    if binary is None:
        if any(_binary(ctx, other) for other in adapters.TOOLS if other != name):
            # one tool of several: the others are what this user runs
            return Check(name, PASS, f"{name} is not installed (not on PATH): aitrack tracks "
                         "it once it is", data={"path": None})
        return Check(name, WARN, f"{name} is not installed (not on PATH), nor any other tool "
                     "aitrack wraps", f"install {name} if you use it (or set {override})",
                     data={"path": None})
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True,
                             timeout=VERSION_TIMEOUT_S, stdin=subprocess.DEVNULL,
                             env=_without_redirection(ctx.env), errors="replace")
    except subprocess.TimeoutExpired:
        return Check(name, FAIL, f"{binary} --version did not answer in {VERSION_TIMEOUT_S:g} s",
                     f"reinstall {name}", data={"path": binary})
    except OSError as exc:
        return Check(name, FAIL, f"{binary} cannot run: {exc.strerror or exc}",
                     f"reinstall {name}", data={"path": binary})
    first = (out.stdout.strip() or out.stderr.strip()).splitlines()
    version = first[0][:80] if first else ""
    if out.returncode != 0:
        return Check(name, FAIL, f"{binary} --version failed (exit {out.returncode})"
                     + (f": {version}" if version else ""), f"reinstall {name}",
                     data={"path": binary, "version": None})
    return Check(name, PASS, f"{binary} ({version or 'version unknown'})",
                 data={"path": binary, "version": version})


def _binary(ctx: Context, name: str) -> str | None:
    adapter = adapters.load(name)
    return launcher.find_real_binary(adapter.EXECUTABLE, adapter.BIN_ENV,
                                     str(ctx.paths.shim_dir), dict(ctx.env))


def _without_redirection(env: Mapping[str, str]) -> dict[str, str]:
    """The environment for `--version`: nothing that would export telemetry elsewhere."""
    return {k: v for k, v in env.items() if not OTLP_REDIRECT.fullmatch(k)}


def shim_dirs(paths: Paths) -> list[Path]:
    """Where aitrack's own installs put shims: per user, and next to this aitrack's venv."""
    return [paths.shim_dir, Path(sys.prefix).parent / "shims"]


def check_shims(ctx: Context) -> Check:
    env = dict(ctx.env)
    states = shims.status(ctx.paths.shim_dir, env)
    relevant = [s for s in states if s.real or s.tracked]
    details, data = [], {}
    broken, untracked = [], []
    for s in states:
        data[s.name] = {"resolves_to": s.resolves_to, "tracked": s.tracked}
        if s not in relevant:
            continue
        if s.tracked and not s.shim_python_ok:
            broken.append(s)
            details.append(f"{s.name} -> {s.resolves_to}: its aitrack {s.shim_python} is missing")
        elif s.tracked:
            details.append(f"{s.name} -> {s.resolves_to} (shim, tracked)")
        else:
            untracked.append(s)
            details.append(f"{s.name} -> {s.resolves_to} (not a shim: runs untracked)")
    if not relevant:
        return Check("shims", PASS, f"no {' or '.join(s.name for s in states)} on PATH: "
                     "nothing to shim", data=data)
    if broken:
        names = ", ".join(s.name for s in broken)
        return Check("shims", FAIL, f"the {names} shim runs a missing aitrack, so the tool runs "
                     "untracked with a warning", "run `aitrack shims install` (with --dir "
                     f"{Path(broken[0].resolves_to).parent}) from a working aitrack",
                     details, data)
    if untracked:
        names = ", ".join(f"`{s.name}`" for s in untracked)
        installed = next((d for d in shim_dirs(ctx.paths)
                          if any(shims.is_shim(d / n) for s in untracked
                                 for n in shims.files_for(s.name))), None)
        fix = (f"put {installed} first on PATH: {shims.path_line(installed)} (at the end of "
               "~/.zshrc or ~/.bashrc), then open a new shell" if installed else
               "run `aitrack shims install` and follow its PATH hint")
        return Check("shims", WARN, f"{names} run{'s' if len(untracked) == 1 else ''} without "
                     "aitrack: usage typed as a plain command is not tracked", fix, details, data)
    return Check("shims", PASS, f"{shims.listed([s.name for s in relevant])} resolve to aitrack "
                 "shims" if len(relevant) > 1 else f"{relevant[0].name} resolves to an aitrack "
                 "shim", None, details, data)


def check_command(ctx: Context) -> Check:
    """`aitrack` itself is on PATH: every command in the README starts with it."""
    env = dict(ctx.env)
    found = shims.command_on_path(ctx.paths.shim_dir, env)
    if found:
        return Check("command", PASS, f"`aitrack` runs {found}", data={"path": found})
    ours = next((d for d in shim_dirs(ctx.paths)
                 if any(shims.is_shim(d / n) for n in shims.files_for(shims.COMMAND))), None)
    fix = (f"put {ours} first on PATH: {shims.path_line(ours)} (at the end of ~/.zshrc or "
           "~/.bashrc, and in this shell)" if ours else
           "run `aitrack shims install` (it puts `aitrack` beside the shims) and follow its "
           "PATH hint")
    return Check("command", WARN, "`aitrack` is not on PATH: the commands in the README fail "
                 "with \"command not found\" (this doctor ran by its full path)", fix,
                 data={"path": None})
