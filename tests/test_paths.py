"""`aitrack paths`: every location, where it is on each platform, and its overrides."""

from __future__ import annotations

import json
import sys
from pathlib import Path, PureWindowsPath

import pytest

from aitrack.config import paths

LOCATIONS = {"config_dir", "user_profile", "managed_profile", "data_dir", "ledger", "state_dir",
             "log_dir", "cache_dir", "shim_dir"}


def paths_json(home, env: dict[str, str] | None = None) -> dict[str, dict]:
    result = home.run("paths", "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_aitrack_home_puts_every_user_location_under_it(home):
    data = paths_json(home)
    assert set(data) == LOCATIONS  # the fixture's AITRACK_MANAGED_PLIST: macOS only
    for name in LOCATIONS - {"managed_profile"}:
        assert Path(data[name]["path"]).is_relative_to(home.root), name
    assert data["user_profile"]["path"] == str(home.user_profile)
    assert data["ledger"]["path"] == str(home.ledger)
    assert data["managed_profile"]["path"] == str(home.managed_profile)
    assert len({entry["path"] for entry in data.values()}) == len(data)  # no two the same


def test_exists_flags_follow_the_file_system(home):
    assert not any(entry["exists"] for entry in paths_json(home).values())
    home.write_user_profile("")
    home.write_managed_profile("")
    data = paths_json(home)
    assert {name for name, entry in data.items() if entry["exists"]} == {
        "config_dir", "user_profile", "managed_profile"}


def test_text_output_lists_every_location_and_marks_missing_ones(home):
    home.write_user_profile("")
    result = home.run("paths")
    assert result.returncode == 0
    rows = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert set(rows) == LOCATIONS
    assert rows["user_profile"].split()[1] == str(home.user_profile)
    assert not rows["user_profile"].endswith("(missing)")
    assert rows["ledger"].endswith(f"{home.ledger}  (missing)")


def test_aitrack_home_expands_the_tilde(home, tmp_path):
    data = paths_json(home, env={"HOME": str(tmp_path), "AITRACK_HOME": "~/at"})
    assert data["config_dir"]["path"] == str(tmp_path / "at" / "config")


def test_managed_profile_override_is_what_profile_show_reads(home, tmp_path):
    elsewhere = tmp_path / "deploy" / "staging.toml"
    elsewhere.parent.mkdir()
    elsewhere.write_text('[attributes]\n"team.id" = "staging"\n')
    env = {"AITRACK_MANAGED_PROFILE": str(elsewhere)}
    assert paths_json(home, env)["managed_profile"] == {"path": str(elsewhere), "exists": True}
    shown = json.loads(home.run("profile", "show", "--json", "--origin", env=env).stdout)
    assert shown["attributes"]["team.id"] == "staging"
    assert shown["origins"]["attributes.team.id"] == f"managed ({elsewhere})"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG directories: Linux")
def test_without_aitrack_home_the_xdg_directories_are_used(home, tmp_path):
    env = {f"XDG_{kind}_HOME": str(tmp_path / kind.lower())
           for kind in ("CONFIG", "DATA", "STATE", "CACHE")}
    env["AITRACK_HOME"] = ""
    data = paths_json(home, env)
    assert data["config_dir"]["path"] == str(tmp_path / "config" / "aitrack")
    assert data["ledger"]["path"] == str(tmp_path / "data" / "aitrack" / "ledger.db")
    assert data["log_dir"]["path"] == str(tmp_path / "state" / "aitrack" / "logs")
    assert data["cache_dir"]["path"] == str(tmp_path / "cache" / "aitrack")


def test_resolve_reads_only_the_environment_it_is_given(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "platform", "darwin")  # where AITRACK_MANAGED_PLIST means anything
    monkeypatch.setenv("AITRACK_MANAGED_PLIST", "/from/os/environ.plist")
    monkeypatch.setenv("AITRACK_MANAGED_PROFILE", "/from/os/environ.toml")
    got = paths.resolve({"AITRACK_HOME": str(tmp_path), "AITRACK_MANAGED_PLIST": "/given.plist"})
    assert got.managed_plist == Path("/given.plist")
    assert got.managed_profile == paths.default_managed_profile({})
    assert got.config_dir == tmp_path / "config"


# ---------------------------------------------------------------- platform defaults


@pytest.fixture
def no_overrides(monkeypatch):
    for key in ("AITRACK_MANAGED_PROFILE", "AITRACK_MANAGED_PLIST", "PROGRAMDATA"):
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


@pytest.mark.parametrize("platform,expected", [
    ("linux", "/etc/aitrack/profile.toml"),
    ("darwin", "/Library/Application Support/aitrack/profile.toml"),
])
def test_managed_profile_default_on_posix(no_overrides, tmp_path, platform, expected):
    no_overrides.setattr(sys, "platform", platform)
    assert paths.resolve({"AITRACK_HOME": str(tmp_path)}).managed_profile == Path(expected)


def test_managed_profile_default_on_windows(no_overrides, tmp_path):
    no_overrides.setattr(sys, "platform", "win32")
    got = paths.resolve({"AITRACK_HOME": str(tmp_path)}).managed_profile
    assert PureWindowsPath(got) == PureWindowsPath(r"C:\ProgramData\aitrack\profile.toml")
    got = paths.resolve({"AITRACK_HOME": str(tmp_path), "PROGRAMDATA": r"D:\Data"})
    assert PureWindowsPath(got.managed_profile) == PureWindowsPath(r"D:\Data\aitrack\profile.toml")


@pytest.mark.parametrize("platform", ["linux", "darwin", "win32"])
def test_managed_profile_override_wins_on_every_platform(no_overrides, tmp_path, platform):
    no_overrides.setattr(sys, "platform", platform)
    env = {"AITRACK_HOME": str(tmp_path), "AITRACK_MANAGED_PROFILE": "/srv/it/profile.toml"}
    assert paths.resolve(env).managed_profile == Path("/srv/it/profile.toml")


def test_managed_preferences_plist_only_on_macos(no_overrides, tmp_path):
    env = {"AITRACK_HOME": str(tmp_path)}
    no_overrides.setattr(sys, "platform", "darwin")
    assert paths.resolve(env).managed_plist == Path(
        "/Library/Managed Preferences/io.aitrack.plist")
    assert "managed_plist" in paths.resolve(env).as_dict()
    for platform in ("linux", "win32"):
        no_overrides.setattr(sys, "platform", platform)
        assert paths.resolve(env).managed_plist is None
        assert "managed_plist" not in paths.resolve(env).as_dict()
        # no macOS source elsewhere, whatever the environment says (issue 13)
        evil = {**env, "AITRACK_MANAGED_PLIST": str(tmp_path / "evil.plist")}
        assert paths.resolve(evil).managed_plist is None
