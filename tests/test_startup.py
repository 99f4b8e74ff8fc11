"""The start-up settings cache: fast, and never stale after a profile changes."""

from __future__ import annotations

import json
import os
import sys
import time

import platformdirs

from aitrack.capture import startup

CHILD = [sys.executable, "-c",
         "import os; print(os.environ.get('OTEL_RESOURCE_ATTRIBUTES', ''))"]


def child_attributes(home) -> dict[str, str]:
    result = home.run("run", "--", *CHILD)
    assert result.returncode == 0, result.stderr
    return dict(item.split("=", 1) for item in result.stdout.strip().split(","))


def test_cache_file_agrees_with_platformdirs(monkeypatch):
    monkeypatch.delenv("AITRACK_HOME", raising=False)
    expected = os.path.join(platformdirs.user_cache_dir("aitrack", appauthor=False),
                            "startup.bin")
    assert startup.cache_file() == expected


def test_a_changed_profile_reaches_the_next_child(home):
    home.write_managed_profile('[attributes]\n"team.id" = "alpha"\n')
    assert child_attributes(home)["team.id"] == "alpha"
    assert os.path.exists(startup.cache_file(home.env))
    time.sleep(0.01)
    home.write_managed_profile('[attributes]\n"team.id" = "bravo"\n')  # same size
    assert child_attributes(home)["team.id"] == "bravo"
    home.write_user_profile('[attributes]\n"department" = "research"\n')
    attrs = child_attributes(home)
    assert attrs["team.id"] == "bravo" and attrs["department"] == "research"
    home.managed_profile.unlink()
    assert "team.id" not in child_attributes(home)


def test_a_corrupt_cache_is_rebuilt(home):
    home.write_managed_profile('[attributes]\n"team.id" = "alpha"\n')
    child_attributes(home)
    path = startup.cache_file(home.env)
    with open(path, "wb") as fh:
        fh.write(b"\x00garbage")
    assert child_attributes(home)["team.id"] == "alpha"


def test_the_ledger_gets_the_enforced_attributes_from_the_cache(home, tmp_path):
    home.write_managed_profile('[attributes]\n"team.id" = "alpha"\n"user.email" = "a@b.c"\n')
    child_attributes(home)
    child_attributes(home)  # second run: settings from the cache
    import sqlite3

    rows = sqlite3.connect(home.ledger).execute("SELECT attributes FROM sessions").fetchall()
    assert [json.loads(r[0])["team.id"] for r in rows] == ["alpha", "alpha"]
    assert {json.loads(r[0])["user.email"] for r in rows} == {"a@b.c"}


def test_a_crash_while_reading_profiles_still_ledgers_the_run_local_only(home, monkeypatch):
    """profile.load never raises by design; if a bug makes it, the run is still recorded."""
    from aitrack.config import profile

    home.write_managed_profile('[endpoint]\nurl = "https://otlp.example.com"\n')

    def crash(*_args, **_kw):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(profile, "load", crash)
    settings = startup.compute()
    assert settings["signals"] == ("metrics", "logs")  # but the receiver still listens
    assert len(settings["notices"]) == 1
    assert "running local-only" in settings["notices"][0]
    assert "RecursionError" in settings["notices"][0]
