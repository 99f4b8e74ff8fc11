from __future__ import annotations

import json
import re
from pathlib import Path

import click
import tomlkit

from aitrack.cli.common import UserError, echo_json, load_profile, say
from aitrack.config.identity import default_origins, resource_attributes
from aitrack.config.profile_file import read_file
from aitrack.config.schema import ProfileError


@click.group("profile")
def profile_group() -> None:
    """Show or check profiles (managed by IT, or your own).

    \b
    Examples:
      aitrack profile show --origin
      aitrack profile validate /etc/aitrack/profile.toml
    """


@profile_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--origin", is_flag=True, help="Say where each setting comes from.")
def show(as_json: bool, origin: bool) -> None:
    """Print the effective profile: managed over user over defaults.

    \b
    Example:
      aitrack profile show --origin
    """

    p = load_profile()
    data = p.as_dict()
    data["attributes"] = resource_attributes(p)
    data["mode"] = "local-only" if p.local_only else "forwarding"
    origins = {**p.origins, **default_origins(p)}
    if as_json:
        if origin:
            data["origins"] = origins
            data["shadowed"] = p.shadowed
        echo_json(data)
        return
    say(f"# mode: {data['mode']}")
    for table in ("endpoint", "attributes", "identity", "telemetry", "agent", "budget",
                  "prices"):
        body = data[table]
        if not body:
            continue
        say(f"\n[{table}]")
        for key, value in body.items():
            line = f"{_toml_key(key)} = {_toml_value(value)}"
            where = origins.get(f"{table}.{key}")
            say(f"{line:<50} # {where}" if origin and where else line)
    if origin and p.shadowed:
        say("\n# overridden by the managed profile:")
        for line in p.shadowed:
            say(f"#   {line}")


def _toml_key(key: str) -> str:

    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def _toml_value(value) -> str:

    if isinstance(value, dict):  # headers, a model's prices: one line, not a [table] body
        table = tomlkit.inline_table()
        table.update(value)
        return table.as_string()
    return tomlkit.item(value).as_string()


@profile_group.command("validate")
@click.argument("file", type=click.Path(path_type=Path))
def validate(file: Path) -> None:
    """Check a profile file; print every problem and exit 1 if there is any.

    \b
    Example:
      aitrack profile validate profiles/cloudwatch.toml
    """

    if not file.exists():
        raise UserError(f"{file}: no such file")
    if file.is_dir():
        raise UserError(f"{file} is a directory, not a profile file: name the .toml file "
                        "to check")
    try:
        read_file(file)
    except ProfileError as exc:
        for problem in exc.problems:
            say(f"{file}: {problem}", err=True)
        raise SystemExit(1) from None
    say(f"{file}: ok")


def register(cli: click.Group) -> None:
    cli.add_command(profile_group)
