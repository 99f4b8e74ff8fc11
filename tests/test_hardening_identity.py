"""Issue 18, identity: who the org is told a run belongs to comes from the OS account and IT's
sources, never from what the user's environment says.

The red team set `LOGNAME=ceo USER=ceo` on a managed machine and the org received
`user.id=ceo`; `git config --global user.email` (or GIT_CONFIG_GLOBAL) chose `user.email`,
with no marker and `doctor` passing.
"""

from __future__ import annotations

import json
import os
import pwd
import sys
from pathlib import Path

import pytest

from adversary import other_user
from aitrack.capture import startup
from aitrack.config import identity, paths, profile, profile_file, schema
from aitrack.install import doctor

PRINT_ATTRS = [sys.executable, "-c",
               "import os; print(os.environ.get('OTEL_RESOURCE_ATTRIBUTES', ''))"]
INTEGRITY = "aitrack.profile.integrity"
SOURCE = "aitrack.identity.source"
ME = pwd.getpwuid(os.getuid()).pw_name
SPOOFED = {"LOGNAME": "ceo", "USER": "ceo", "USERNAME": "ceo"}


def child_attributes(home, **env) -> dict[str, str]:
    result = home.run("run", "--", *PRINT_ATTRS, env=env)
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    return dict(item.split("=", 1) for item in line.split(",")) if line else {}


def context(env: dict) -> doctor.Context:
    locations = paths.resolve(env)
    return doctor.Context(env, locations, profile.load(locations, env),
                          Path(env.get("HOME") or "/"))


def git_config(path: Path, email: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"[user]\n\temail = {email}\n")
    return path


@pytest.fixture
def account(tmp_path, monkeypatch):
    """The OS account as identity sees it, with a home of the test's own (its git config
    there stands for the account's ~/.gitconfig, which a test must not write)."""
    home = tmp_path / "account-home"
    home.mkdir()
    monkeypatch.setattr(identity, "os_account", lambda: identity.Account(ME, str(home)))
    identity.git_email.cache_clear()
    yield home
    identity.git_email.cache_clear()


# ---------------------------------------------------------------- user.id


def test_login_variables_do_not_change_user_id_on_a_managed_machine(home):
    home.write_managed_profile('[attributes]\n"team.id" = "it-team"\n')
    attrs = child_attributes(home, **SPOOFED)
    assert attrs["user.id"] == ME
    assert attrs[INTEGRITY] == "identity-env-ignored"  # visible: someone tried
    [recorded] = home.run_attributes()
    assert recorded["user.id"] == ME and recorded[INTEGRITY] == "identity-env-ignored"
    shown = json.loads(home.run("profile", "show", "--json", env=SPOOFED).stdout)
    assert shown["attributes"]["user.id"] == ME
    check = doctor.check_profile_integrity(context({**home.env, **SPOOFED}))
    assert check.status == "WARN" and "LOGNAME=ceo" in " ".join(check.details)
    assert check.data["identity"]["user.id"] == ME


def test_login_variables_naming_the_account_itself_are_no_finding(home):
    home.write_managed_profile('[attributes]\n"team.id" = "it-team"\n')
    attrs = child_attributes(home, LOGNAME=ME, USER=ME, USERNAME=None)
    assert attrs["user.id"] == ME and INTEGRITY not in attrs
    check = doctor.check_profile_integrity(context({**home.env, "LOGNAME": ME, "USER": ME}))
    assert check.status == "PASS"


def test_without_a_managed_profile_user_id_is_the_os_account_too(home):
    attrs = child_attributes(home, **SPOOFED)
    assert attrs["user.id"] == ME and INTEGRITY not in attrs


def test_the_start_up_cache_is_never_another_accounts(home, monkeypatch):
    """The cache once keyed on USER/LOGNAME; `user.id` is the account's: a process of
    another uid (`sudo` keeping HOME) must not take this account's settings."""
    monkeypatch.setenv("AITRACK_HOME", home.env["AITRACK_HOME"])
    startup.settings()
    computed = []
    monkeypatch.setattr(startup, "compute", lambda: computed.append(1) or {})
    startup.settings()
    assert computed == []  # the same account: from the cache
    monkeypatch.setattr(os, "getuid", lambda: 4242)
    monkeypatch.setattr(os, "geteuid", lambda: 4242)
    startup.settings()
    assert computed == [1]


# ---------------------------------------------------------------- user.email


def test_git_email_is_not_used_on_a_managed_machine(home, tmp_path, account):
    git_config(account / ".gitconfig", "dev@personal.example")
    evil = git_config(tmp_path / "evil", "ceo@corp.example")
    home.write_managed_profile('[attributes]\n"team.id" = "it-team"\n')
    locations = paths.resolve(home.env)
    env = {**home.env, "GIT_CONFIG_GLOBAL": str(evil)}
    attrs = identity.resource_attributes(profile.load(locations, env), env=env)
    assert "user.email" not in attrs and SOURCE not in attrs
    assert INTEGRITY not in attrs  # git is not an identity source here: nothing to mark
    shown = json.loads(home.run("profile", "show", "--json",
                                env={"GIT_CONFIG_GLOBAL": str(evil)}).stdout)
    assert "user.email" not in shown["attributes"]


def test_a_managed_template_gives_the_email(home, tmp_path):
    evil = git_config(tmp_path / "evil", "ceo@corp.example")
    home.write_managed_profile('[identity]\nemail = "{user}@corp.example"\n')
    attrs = child_attributes(home, GIT_CONFIG_GLOBAL=str(evil), **SPOOFED)
    assert attrs["user.email"] == f"{ME}%40corp.example" and attrs["user.id"] == ME
    [recorded] = home.run_attributes()
    assert recorded["user.email"] == f"{ME}@corp.example" and SOURCE not in recorded
    origins = json.loads(home.run("profile", "show", "--json", "--origin").stdout)["origins"]
    assert "identity.email" in origins["attributes.user.email"]


def test_a_managed_attribute_wins_over_the_template(home):
    home.write_managed_profile('[attributes]\n"user.email" = "it@corp.example"\n'
                               '[identity]\nemail = "{user}@corp.example"\n')
    assert child_attributes(home)["user.email"] == "it%40corp.example"


def test_git_email_where_the_managed_profile_allows_it_is_marked(home, tmp_path, account):
    git_config(account / ".gitconfig", "dev@corp.example")
    home.write_managed_profile('[identity]\nemail_from_git = true\n')
    locations = paths.resolve(home.env)
    env = {**home.env, "HOME": str(account)}
    attrs = identity.resource_attributes(profile.load(locations, env), env=env)
    assert attrs["user.email"] == "dev@corp.example" and attrs[SOURCE] == "git"
    assert INTEGRITY not in attrs
    # git's configuration pointed elsewhere by the environment: not followed, and visible
    evil = git_config(tmp_path / "evil", "ceo@corp.example")
    for redirect in ({"GIT_CONFIG_GLOBAL": str(evil)}, {"HOME": str(evil.parent)},
                     {"XDG_CONFIG_HOME": str(tmp_path)},
                     {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "user.email",
                      "GIT_CONFIG_VALUE_0": "ceo@corp.example"}):
        changed = {**env, **redirect}
        identity.git_email.cache_clear()
        attrs = identity.resource_attributes(profile.load(locations, changed), env=changed)
        assert attrs["user.email"] == "dev@corp.example", redirect
        assert attrs[INTEGRITY] == "identity-env-ignored", redirect
        check = doctor.check_profile_integrity(context(changed))
        assert check.status == "WARN", redirect


def test_on_an_unmanaged_machine_git_email_stays_the_default_and_is_marked(home, tmp_path):
    gitconfig = git_config(tmp_path / "gitconfig", "me@example.com")
    shown = json.loads(home.run("profile", "show", "--json",
                                env={"GIT_CONFIG_GLOBAL": str(gitconfig)}).stdout)
    assert shown["attributes"]["user.email"] == "me@example.com"
    assert shown["attributes"][SOURCE] == "git"
    home.write_user_profile('[identity]\nemail = "{user}@home.example"\n')
    shown = json.loads(home.run("profile", "show", "--json",
                                env={"GIT_CONFIG_GLOBAL": str(gitconfig)}).stdout)
    assert shown["attributes"]["user.email"] == f"{ME}@home.example"
    assert SOURCE not in shown["attributes"]


def test_a_user_identity_table_is_refused_on_a_managed_machine(home, tmp_path, account):
    git_config(account / ".gitconfig", "dev@personal.example")
    home.write_managed_profile('[attributes]\n"team.id" = "it-team"\n')
    home.write_user_profile('[identity]\nemail_from_git = true\nemail = "ceo@corp.example"\n')
    p = profile.load(paths.resolve(home.env), home.env)
    attrs = identity.resource_attributes(p, env=home.env)
    assert "user.email" not in attrs
    assert any("identity comes from the managed profile" in line for line in p.problems)
    check = doctor.check_profile_integrity(context(dict(home.env)))
    assert check.status == "WARN"


@pytest.mark.parametrize("key", ["user_id", "User-Email", "useremail", "user.id\u200b"])
def test_look_alike_identity_keys_in_a_user_profile_are_refused_too(home, key):
    home.write_managed_profile('[attributes]\n"team.id" = "it-team"\n')
    home.write_user_profile(f'[attributes]\n"{key}" = "ceo"\n')
    p = profile.load(paths.resolve(home.env), home.env)
    assert key not in p.attributes


@pytest.mark.parametrize(("text", "problem"), [
    ('[identity]\nemail = "{login}@corp.example"\n', "{user}"),
    ('[identity]\nemail = "{user@corp.example"\n', "{user}"),
    ('[identity]\nemail = "corp.example"\n', "@"),
    ('[identity]\nemail = "{user}@corp.example\\u001b]0;x"\n', "control"),
    ('[identity]\nemail_from_git = "yes"\n', "boolean"),
    ('[identity]\nname = "x"\n', "unknown key"),
    (f'[attributes]\n"{SOURCE}" = "managed"\n', "reserved"),
])
def test_the_identity_table_is_validated(tmp_path, text, problem):
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(schema.ProfileError) as exc:
        profile_file.read_file(path)
    assert problem in " ".join(exc.value.problems)


def test_a_start_up_cache_another_account_wrote_is_not_read(home, monkeypatch):
    monkeypatch.setenv("AITRACK_HOME", home.env["AITRACK_HOME"])
    startup.settings()
    with other_user() as user:
        os.chown(startup.cache_file(), user.uid, user.gid)
        computed = []
        monkeypatch.setattr(startup, "compute", lambda: computed.append(1) or {})
        startup.settings()
        assert computed == [1]
