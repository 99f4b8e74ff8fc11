"""The org token in the OS keychain: `aitrack token set/status/delete` on the real Secret Service.

Every test here runs the CLI as a user would and checks what ends up in the keychain with
`keyring` itself, the way an IT script or the platform's own tools would read it.
"""

from __future__ import annotations

import json
import os
import pty
import select
import sys
import time

import keyring
import keyring.backend
import pytest

from aitrack.config import keychain

TOKEN = "tok-5f3a9c1e-7b2d-4e8f-a6c0-d91b3e7f2a48"
NO_BACKENDS = ["keyring.backends.fail.Keyring", "keyring.backends.null.Keyring"]


def token_set(home, account: str, stdin: str, *args: str):
    return home.run("token", "set", "--account", account, *args, input=stdin)


def stored(account: str) -> str | None:
    """The main keychain entry, read the way IT scripts read it."""
    return keyring.get_password(keychain.SERVICE, account)


def one_line(text: str) -> str:
    assert text.endswith("\n") and text.count("\n") == 1, text
    return text


# ---------------------------------------------------------------- round trips


def test_a_short_token_is_stored_as_is_in_one_entry(home, keychain_account, real_keychain):
    result = token_set(home, keychain_account, TOKEN + "\n")
    assert result.returncode == 0, result.stderr
    assert stored(keychain_account) == TOKEN  # one trailing newline stripped
    assert stored(f"{keychain_account}#1") is None
    status = home.run("token", "status", "--account", keychain_account, "--json")
    assert status.returncode == 0
    assert json.loads(status.stdout) == {"account": keychain_account, "backend": real_keychain,
                                         "present": True}


def test_a_4kb_token_round_trips_in_chunks(home, keychain_account):
    token = "".join(f"{i:04d}" for i in range(1024))  # 4096 characters
    assert token_set(home, keychain_account, token).returncode == 0
    assert keychain.get_token(keychain_account) == token
    head = stored(keychain_account)
    assert head != token and token not in head  # a marker, not the token
    chunks = []
    while (chunk := stored(f"{keychain_account}#{len(chunks) + 1}")) is not None:
        chunks.append(chunk)
    assert "".join(chunks) == token
    assert len(chunks) == 5 and all(len(c) <= keychain.CHUNK for c in chunks)
    assert home.run("token", "status", "--account", keychain_account).returncode == 0

    assert home.run("token", "delete", "--account", keychain_account).returncode == 0
    assert stored(keychain_account) is None
    assert all(stored(f"{keychain_account}#{i}") is None for i in range(1, 6))


def test_a_short_token_replaces_a_chunked_one_and_its_chunks(home, keychain_account):
    assert token_set(home, keychain_account, "x" * 3000).returncode == 0
    assert stored(f"{keychain_account}#3") is not None
    assert token_set(home, keychain_account, TOKEN).returncode == 0
    assert stored(keychain_account) == TOKEN
    assert all(stored(f"{keychain_account}#{i}") is None for i in range(1, 4))


@pytest.mark.parametrize("token", [
    "tök€n-密钥-ключ-🔑",  # BMP and non-BMP
    "🔑" * 1000,  # 2000 UTF-16 code units: chunked, whole characters per chunk
], ids=["short", "long-non-bmp"])
def test_a_unicode_token_round_trips(home, keychain_account, token):
    result = token_set(home, keychain_account, token + "\n")
    assert result.returncode == 0, result.stderr
    assert keychain.get_token(keychain_account) == token


def test_a_unicode_token_from_a_non_utf8_console_round_trips(home, keychain_account):
    """Piped bytes are UTF-8 whatever the console's code page (Windows: cp1252)."""
    token = "tök€n-🔑"
    result = home.run("token", "set", "--account", keychain_account, input=token,
                      env={"PYTHONIOENCODING": "cp1252", "PYTHONUTF8": "0"}, encoding="utf-8")
    assert result.returncode == 0, result.stderr
    assert keychain.get_token(keychain_account) == token


def test_crlf_from_windows_is_one_newline(home, keychain_account):
    assert token_set(home, keychain_account, TOKEN + "\r\n").returncode == 0
    assert stored(keychain_account) == TOKEN


def test_the_account_comes_from_the_profile(home, keychain_account):
    home.write_managed_profile(f'[endpoint]\nurl = "https://otlp.example.com"\n'
                               f'keychain_account = "{keychain_account}"\n')
    assert home.run("token", "set", input=TOKEN).returncode == 0
    assert stored(keychain_account) == TOKEN
    status = json.loads(home.run("token", "status", "--json").stdout)
    assert status["account"] == keychain_account and status["present"] is True
    assert home.run("token", "set", input=TOKEN).stderr == (  # a used account: no note
        f"token stored in the keychain (account {keychain_account!r})\n")


def test_set_says_when_nothing_will_use_the_token(home, keychain_account):
    """A local-only profile (or an account the endpoint does not name) sends no token."""
    result = token_set(home, keychain_account, TOKEN)
    assert result.returncode == 0 and stored(keychain_account) == TOKEN
    assert result.stderr.splitlines()[1] == (
        "aitrack: the profile is local-only (no endpoint), so nothing uses this token until a "
        "profile names an endpoint: see `aitrack profile show`")
    home.write_managed_profile('[endpoint]\nurl = "https://otlp.example.com"\n'
                               'keychain_account = "org-otlp"\n')
    result = token_set(home, keychain_account, TOKEN)
    assert f"uses account 'org-otlp', not {keychain_account!r}" in result.stderr


def test_delete_help_says_it_removes_every_account(home):
    text = home.run("token", "delete", "--help").stdout
    assert "every account the profile names" in " ".join(text.split())
    assert "default: the profile's endpoint.keychain_account" not in " ".join(text.split())


def test_status_lists_every_account_the_profile_uses(home, keychain_account, logs_account,
                                                     real_keychain):
    home.write_managed_profile(f'[endpoint]\nurl = "https://otlp.example.com"\n'
                               f'keychain_account = "{keychain_account}"\n'
                               f'logs_keychain_account = "{logs_account}"\n')
    assert home.run("token", "set", input=TOKEN).returncode == 0  # the metrics key only
    result = home.run("token", "status")
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"token present for account {keychain_account!r} (metrics) in {real_keychain}",
        f"no token for account {logs_account!r} (logs) in {real_keychain}: "
        f"run `aitrack token set --account {logs_account}`"]
    data = json.loads(home.run("token", "status", "--json").stdout)
    assert data == {"account": keychain_account, "backend": real_keychain, "present": True,
                    "accounts": [
                        {"account": keychain_account, "signals": ["metrics"], "present": True},
                        {"account": logs_account, "signals": ["logs"], "present": False}]}

    assert token_set(home, logs_account, TOKEN + "-logs").returncode == 0
    assert stored(logs_account) == TOKEN + "-logs" and stored(keychain_account) == TOKEN
    result = home.run("token", "status")
    assert result.returncode == 0
    assert [line.split(" (")[0] for line in result.stdout.splitlines()] == [
        f"token present for account {keychain_account!r}",
        f"token present for account {logs_account!r}"]
    only = home.run("token", "status", "--account", logs_account, "--json")
    assert json.loads(only.stdout) == {"account": logs_account, "backend": real_keychain,
                                       "present": True}

    # offboarding: one `token delete` removes every account the profile names
    result = home.run("token", "delete")
    assert result.returncode == 0, result.stderr
    assert stored(keychain_account) is None and stored(logs_account) is None
    assert result.stderr.count("deleted") == 2


def test_status_and_delete_without_a_token(home, keychain_account, real_keychain):
    result = home.run("token", "status", "--account", keychain_account)
    assert result.returncode == 1
    assert result.stdout == (f"no token for account {keychain_account!r} in {real_keychain}: "
                             f"run `aitrack token set --account {keychain_account}`\n")
    data = json.loads(home.run("token", "status", "--account", keychain_account, "--json").stdout)
    assert data == {"account": keychain_account, "backend": real_keychain, "present": False}
    result = home.run("token", "delete", "--account", keychain_account)
    assert result.returncode == 0
    assert "was not stored" in result.stderr


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize("stdin", ["", "\n", " " + TOKEN, TOKEN + " ", "\t" + TOKEN,
                                   TOKEN + "\n\n", TOKEN + " \n"],
                         ids=["empty", "newline", "leading-space", "trailing-space", "tab",
                              "two-newlines", "space-newline"])
def test_set_refuses_an_empty_token_or_surrounding_whitespace(home, keychain_account, stdin):
    result = token_set(home, keychain_account, stdin)
    assert result.returncode == 1
    assert one_line(result.stderr).startswith("aitrack: the token is empty or has surrounding "
                                              "whitespace")
    assert stored(keychain_account) is None


@pytest.mark.parametrize("args", [[TOKEN], ["--token", TOKEN], [f"--token={TOKEN}"]])
def test_the_token_is_never_accepted_as_an_argument(home, keychain_account, args):
    result = token_set(home, keychain_account, TOKEN, *args)
    assert result.returncode != 0
    assert "never an argument" in one_line(result.stderr)
    assert TOKEN not in result.stdout + result.stderr
    assert stored(keychain_account) is None


@pytest.mark.parametrize("backend", NO_BACKENDS)
@pytest.mark.parametrize("command", [["set"], ["status"], ["status", "--json"], ["delete"]])
def test_no_backend_refuses_in_one_line_naming_the_fix(home, keychain_account, backend,
                                                       command, tmp_path):
    result = home.run("token", *command, "--account", keychain_account, input=TOKEN,
                      env={"PYTHON_KEYRING_BACKEND": backend})
    assert result.returncode == 1
    message = result.stderr or json.loads(result.stdout)["error"] + "\n"
    assert one_line(message).endswith(
        f"no usable keychain: PYTHON_KEYRING_BACKEND={backend} selects no secure keychain; "
        "unset it for aitrack (`env -u PYTHON_KEYRING_BACKEND aitrack ...`)\n")
    assert stored(keychain_account) is None  # nothing in the real keychain
    for path in tmp_path.rglob("*"):  # and no plaintext fallback on disk
        assert not path.is_file() or TOKEN.encode() not in path.read_bytes(), path


def test_no_keychain_configured_names_how_to_get_one(home, keychain_account, tmp_path):
    config = tmp_path / "xdg-config" / "python_keyring"
    config.mkdir(parents=True)
    (config / "keyringrc.cfg").write_text(
        "[backend]\ndefault-keyring=keyring.backends.fail.Keyring\n")
    result = home.run("token", "set", "--account", keychain_account, input=TOKEN,
                      env={"XDG_CONFIG_HOME": str(config.parent)})
    assert result.returncode == 1
    assert one_line(result.stderr).startswith("aitrack: no usable keychain: install and unlock "
                                              "one (macOS Keychain, Windows Credential Manager")
    assert stored(keychain_account) is None


# ---------------------------------------------------------------- the token is never shown


def test_no_command_prints_the_token(home, keychain_account):
    home.write_managed_profile(f'[endpoint]\nurl = "https://otlp.example.com"\n'
                               f'keychain_account = "{keychain_account}"\n')
    outputs = [home.run("token", "set", input=TOKEN + "\n")]
    assert stored(keychain_account) == TOKEN
    for args in (["token", "status"], ["token", "status", "--json"],
                 ["profile", "show"], ["profile", "show", "--origin"],
                 ["profile", "show", "--json", "--origin"], ["paths", "--json"]):
        outputs.append(home.run(*args))
    for result in outputs:
        assert result.returncode == 0, (result.args, result.stderr)
        assert TOKEN not in result.stdout + result.stderr, result.args


# ---------------------------------------------------------------- the hidden prompt


def in_terminal(home, args: list[str], answers: list[tuple[bytes, bytes]],
                env: dict[str, str] | None = None, timeout: float = 30) -> tuple[int, bytes]:
    """Run aitrack on a pseudo-terminal, answering each prompt; (exit code, what it showed)."""
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.execve(sys.executable, [sys.executable, "-m", "aitrack", *args],
                      {**home.env, **(env or {})})
        finally:
            os._exit(127)
    shown, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if answers and shown.endswith(answers[0][0]):
                os.write(fd, answers.pop(0)[1])
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                shown += data
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), shown


def test_on_a_terminal_the_token_is_prompted_for_hidden(home, keychain_account):
    code, shown = in_terminal(home, ["token", "set", "--account", keychain_account], [
        (b"Token: ", TOKEN.encode() + b"\n"),
        (b"Repeat for confirmation: ", TOKEN.encode() + b"\n"),
    ])
    assert code == 0, shown
    assert b"Repeat for confirmation: " in shown
    assert TOKEN.encode() not in shown  # not echoed
    assert stored(keychain_account) == TOKEN


def test_without_a_keychain_there_is_no_prompt(home, keychain_account):
    code, shown = in_terminal(home, ["token", "set", "--account", keychain_account], [],
                              env={"PYTHON_KEYRING_BACKEND": NO_BACKENDS[0]})
    assert code == 1
    assert b"Token" not in shown and b"no usable keychain" in shown


# ---------------------------------------------------------------- Windows' entry size


class CredentialLocker(keyring.backend.KeyringBackend):
    """Windows Credential Locker's limit, which cannot run here: 2560 bytes of UTF-16."""

    priority = 1

    def __init__(self):
        self.entries: dict[tuple[str, str], str] = {}
        self.locked = False

    def set_password(self, service, username, password):
        if self.locked:
            raise keyring.errors.KeyringLocked("the credential store is locked")
        if len(password.encode("utf-16-le")) > 2560:
            raise OSError("CredWrite: the stub received is too large (1783)")
        self.entries[service, username] = password

    def get_password(self, service, username):
        return self.entries.get((service, username))

    def delete_password(self, service, username):
        del self.entries[service, username]


# keyring registers every backend class it sees; this one must never be picked on its own
keyring.backend.KeyringBackend._classes.discard(CredentialLocker)


@pytest.fixture
def credential_locker():
    previous = keyring.get_keyring()
    locker = CredentialLocker()
    keyring.set_keyring(locker)
    yield locker
    keyring.set_keyring(previous)


@pytest.mark.parametrize("token", [
    "a" * 4096, "🔑" * 1000, "é" * 1280 + "🔑" * 700, "a" * 999 + "🔑", "🔑" * 501,
], ids=["4kb-ascii", "1000-non-bmp", "mixed", "split-inside-a-pair", "1002-units"])
def test_every_entry_fits_windows_credential_locker(credential_locker, token):
    keychain.set_token("acct", token)
    assert keychain.get_token("acct") == token
    assert len(credential_locker.entries) > 1  # chunked


@pytest.mark.parametrize("token", ["a" * keychain.CHUNK, "🔑" * (keychain.CHUNK // 2)])
def test_a_token_that_fits_is_one_plain_entry_on_windows(credential_locker, token):
    keychain.set_token("acct", token)
    assert credential_locker.entries == {(keychain.SERVICE, "acct"): token}


def test_nothing_is_left_behind_on_delete(credential_locker):
    keychain.set_token("acct", "a" * 4096)
    assert keychain.delete_token("acct") is True
    assert credential_locker.entries == {}
    assert keychain.get_token("acct") is None


def test_a_refused_write_keeps_the_earlier_token(credential_locker):
    keychain.set_token("acct", "a" * 4096)
    credential_locker.locked = True
    with pytest.raises(keychain.KeychainUnavailable):
        keychain.set_token("acct", "new-token")
    credential_locker.locked = False
    assert keychain.get_token("acct") == "a" * 4096


def test_a_shorter_chunked_token_leaves_no_stale_chunks(credential_locker):
    keychain.set_token("acct", "a" * 4096)
    keychain.set_token("acct", "b" * 2500)
    assert keychain.get_token("acct") == "b" * 2500
    assert len(credential_locker.entries) == 1 + len(keychain.split("b" * 2500))
