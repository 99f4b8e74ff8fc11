"""Issue 13, findings 5, 6 and 15, and the per-signal URL message: profiles that try to
escape IT's settings, break the tool, or hold secrets."""

from __future__ import annotations

import json
import os
import plistlib
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import otlp_client as oc
from aitrack.capture import startup
from aitrack.config import managed, paths, profile, profile_file, schema
from aitrack.egress import otlp
from aitrack.install import doctor

PRINT_ATTRS = [sys.executable, "-c",
               "import os; print(os.environ.get('OTEL_RESOURCE_ATTRIBUTES', ''))"]
INTEGRITY = "aitrack.profile.integrity"


def child_attributes(home, **env) -> dict[str, str]:
    result = home.run("run", "--", *PRINT_ATTRS, env=env)
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    return dict(item.split("=", 1) for item in line.split(",")) if line else {}


def context(env: dict) -> doctor.Context:
    locations = paths.resolve(env)
    return doctor.Context(env, locations, profile.load(locations, env),
                          Path(env.get("HOME") or "/"))


# ---------------------------------------------------------------- 5: escaping the managed profile


def test_a_plist_is_no_source_on_linux(home, tmp_path):
    """AITRACK_MANAGED_PLIST=evil.plist on Linux replaced the managed attribution."""
    if sys.platform == "darwin":
        pytest.skip("managed preferences are a real source on macOS")
    home.write_managed_profile('[attributes]\n"team.id" = "it-team"\n')
    evil = Path(home.env["AITRACK_MANAGED_PLIST"])
    evil.parent.mkdir(parents=True, exist_ok=True)
    evil.write_bytes(plistlib.dumps({"attributes": {"team.id": "evil-team"}}))
    assert child_attributes(home)["team.id"] == "it-team"
    shown = json.loads(home.run("profile", "show", "--origin", "--json").stdout)
    assert shown["attributes"]["team.id"] == "it-team"
    assert str(evil) not in json.dumps(shown)
    assert "managed_plist" not in json.loads(home.run("paths", "--json").stdout)
    check = doctor.check_profile_integrity(context(dict(home.env)))
    assert any("AITRACK_MANAGED_PLIST is ignored" in d for d in check.details)


def test_user_identity_is_refused_on_a_managed_machine(home):
    """A user profile set user.id/user.email where the managed profile left them out."""
    home.write_managed_profile('[attributes]\n"team.id" = "it-team"\n')
    home.write_user_profile('[attributes]\n"user.id" = "ceo"\n"User.Email" = "ceo@corp.example"\n'
                            'department = "r&d"\n')
    attrs = child_attributes(home)
    assert attrs["user.id"] != "ceo" and "ceo%40corp.example" not in attrs.values()
    assert attrs["department"] == "r%26d"  # the rest of the user's profile still applies
    [recorded] = home.run_attributes()
    assert recorded["user.id"] != "ceo" and "ceo@corp.example" not in recorded.values()
    result = home.run("profile", "show")
    assert "identity comes from the managed profile" in result.stderr
    assert "ceo" not in result.stdout
    check = doctor.check_profile_integrity(context(dict(home.env)))
    assert check.status == "WARN" and "identity" in check.summary


def test_without_a_managed_profile_the_user_sets_their_own_identity(home):
    home.write_user_profile('[attributes]\n"user.id" = "me"\n')
    assert child_attributes(home)["user.id"] == "me"


def test_an_override_that_replaces_an_existing_managed_file_is_marked(home, tmp_path,
                                                                      monkeypatch):
    it = tmp_path / "etc-aitrack" / "profile.toml"
    it.parent.mkdir()
    it.write_text('[attributes]\n"team.id" = "it-team"\n')
    monkeypatch.setattr(paths, "default_managed_profile", lambda env=None: it)
    home.write_managed_profile('[attributes]\n"team.id" = "mine"\n')  # AITRACK_MANAGED_PROFILE
    p = profile.load(paths.resolve())
    assert p.attributes[INTEGRITY] == "managed-profile-overridden"
    assert startup.compute()["attributes"][INTEGRITY] == "managed-profile-overridden"
    check = doctor.check_profile_integrity(context(dict(home.env)))
    assert check.status == "WARN" and "AITRACK_MANAGED_PROFILE" in check.summary
    assert str(it) in check.summary
    home.managed_profile.write_text(it.read_text())  # the same settings: nothing overridden
    assert INTEGRITY not in profile.load(paths.resolve()).attributes
    it.unlink()  # IT deployed nothing here: the variable replaces nothing
    home.write_managed_profile('[attributes]\n"team.id" = "staging"\n')
    assert INTEGRITY not in profile.load(paths.resolve()).attributes


def test_aitrack_sets_the_integrity_attribute_itself(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(f'[attributes]\n"{INTEGRITY}" = "ok"\n')
    with pytest.raises(schema.ProfileError, match="reserved"):
        profile_file.read_file(path)


IN_NAMESPACE = r"""
set -e
mount -t tmpfs tmpfs /etc/aitrack
cp "$1" /etc/aitrack/profile.toml
shift
exec "$@"
"""


@pytest.fixture
def etc_aitrack():
    """Run commands as if IT had deployed /etc/aitrack/profile.toml (a tmpfs over
    /etc/aitrack in a mount namespace: the real /etc is never written but for an empty
    mount point, removed afterwards)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("unshare") or \
            subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs root and mount namespaces (unshare -m)")
    target = Path("/etc/aitrack")
    created = not target.exists()
    target.mkdir(exist_ok=True)

    def run(profile_file: Path, argv: list[str], env: dict[str, str]):
        return subprocess.run(["unshare", "-m", "sh", "-c", IN_NAMESPACE, "sh",
                               str(profile_file), *argv], env=env, capture_output=True,
                              text=True, timeout=120)

    yield run
    if created:
        try:
            target.rmdir()
        except OSError:
            pass


def test_what_a_run_forwards_under_a_replaced_managed_profile_is_marked(home, tmp_path,
                                                                         etc_aitrack):
    """AITRACK_MANAGED_PROFILE=own.toml replaced IT's attribution, silently."""
    it = tmp_path / "it.toml"
    it.write_text('[endpoint]\nurl = "https://127.0.0.1:9"\n[attributes]\n"team.id" = "it"\n')
    home.write_managed_profile('[endpoint]\nurl = "https://127.0.0.1:9"\n'
                               '[attributes]\n"team.id" = "mine"\n')
    plan = oc.plan(tmp_path / "plan", [("metrics", oc.metrics(oc.sum_metric(
        "gen_ai.client.token.usage", [oc.point(5, **{"gen_ai.token.type": "input",
                                                       "gen_ai.response.model": "m"})])))])
    py = [sys.executable, "-m", "aitrack"]
    run = etc_aitrack(it, [*py, "run", "--", str(oc.sender(tmp_path))],
                      {**home.env, "OTLP_SEND": str(plan)})
    assert run.returncode == 0, run.stderr
    db = sqlite3.connect(home.ledger)
    bodies = [b for (b,) in db.execute("SELECT body FROM outbox WHERE signal = 'metrics'")]
    assert bodies, "nothing was queued for the endpoint"
    for body in bodies:
        request = otlp.decode("metrics", body, otlp.PROTOBUF)
        resource = {kv.key: kv.value.string_value
                    for kv in request.resource_metrics[0].resource.attributes}
        assert resource[INTEGRITY] == "managed-profile-overridden"
        assert resource["team.id"] == "mine"  # the user's choice holds, but visibly
    assert home.run_attributes()[0][INTEGRITY] == "managed-profile-overridden"
    checked = etc_aitrack(it, [*py, "doctor", "--json"], dict(home.env))
    checks = {c["name"]: c for c in json.loads(checked.stdout)["checks"]}
    assert checks["profile-integrity"]["status"] == "WARN"


# ---------------------------------------------------------------- 6: a profile nested 5,000 deep


@pytest.mark.parametrize("nested", [
    "a = " + "[" * 5000 + "]" * 5000,
    "a = " + "{b = " * 5000 + "1" + "}" * 5000,
], ids=["arrays", "inline-tables"])
def test_a_deeply_nested_user_profile_is_ignored_and_the_managed_one_applies(home, nested):
    """RecursionError made the run drop the managed profile and crashed doctor, profile show
    and profile validate with "unexpected error"."""
    home.write_managed_profile('[attributes]\n"team.id" = "it-team"\n')
    user = home.write_user_profile(f"[attributes]\n{nested}\n")
    run = home.run("run", "--", *PRINT_ATTRS)
    assert run.returncode == 0
    assert "team.id=it-team" in run.stdout
    [line] = run.stderr.splitlines()
    assert "nested too deeply" in line and str(user) in line
    show = home.run("profile", "show")
    assert show.returncode == 0 and "it-team" in show.stdout
    explained = show.stderr.splitlines()
    assert len(explained) == 1 and "nested too deeply" in explained[0]
    validate = home.run("profile", "validate", str(user))
    assert validate.returncode == 1
    assert validate.stderr.count("\n") == 1 and "nested too deeply" in validate.stderr
    doctor_run = home.run("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(doctor_run.stdout)["checks"]}
    assert checks["profile"]["status"] == "WARN"
    assert "invalid and ignored" in checks["profile"]["summary"]
    assert "unexpected error" not in doctor_run.stderr + show.stderr + validate.stderr


def deep_binary_plist(depth: int) -> bytes:
    """{"attributes": {"team.id": [[[...["x"]...]]]}}, `depth` arrays deep, written by hand
    (plistlib's own writer recurses too deeply to make one)."""
    import struct

    objects = [b"\xd1" + struct.pack(">HH", 1, 2), b"\x5a" + b"attributes",
               b"\xd1" + struct.pack(">HH", 3, 4), b"\x57" + b"team.id"]
    objects += [b"\xa1" + struct.pack(">H", 5 + i) for i in range(depth)] + [b"\x51x"]
    body, offsets = bytearray(b"bplist00"), []
    for obj in objects:
        offsets.append(len(body))
        body += obj
    table = len(body)
    body += b"".join(struct.pack(">I", o) for o in offsets)
    return bytes(body) + struct.pack(">6xBBQQQ", 4, 2, len(objects), 0, table)


def test_a_deeply_nested_plist_is_a_profile_error(tmp_path):
    path = tmp_path / "io.aitrack.plist"
    path.write_bytes(deep_binary_plist(5000))
    with pytest.raises(schema.ProfileError, match="nested too deeply"):
        managed.read_plist(path)
    path.write_bytes(deep_binary_plist(2))  # the builder makes a real plist
    assert plistlib.loads(path.read_bytes()) == {"attributes": {"team.id": [["x"]]}}


# ---------------------------------------------------------------- 15: secrets in a profile

SECRET = "sk-live-profile-9d2c4e"


@pytest.mark.parametrize("text,where", [
    (f'[endpoint.headers]\nAuthorization = "Bearer {SECRET}"\n', "endpoint.headers.Authorization"),
    (f'[endpoint.headers]\nauthorization = "{SECRET}"\n', "endpoint.headers.authorization"),
    (f'auth_header = "x-api-key"\nauth_scheme = ""\n[endpoint.headers]\nX-API-KEY = "{SECRET}"\n',
     "endpoint.headers.X-API-KEY"),
    (f'[endpoint.headers]\nx-goog-api-key = "{SECRET}"\n', "endpoint.headers.x-goog-api-key"),
    (f'[endpoint.headers]\nx-custom = "Basic {SECRET}"\n', "endpoint.headers.x-custom"),
], ids=["bearer", "auth-header-any-case", "equals-auth-header", "api-key-name", "basic-value"])
def test_validate_refuses_a_secret_in_a_static_header(home, tmp_path, text, where):
    path = tmp_path / "profile.toml"
    head, _, rest = text.partition("[endpoint.headers]")
    path.write_text(f'[endpoint]\nurl = "https://otlp.example.com"\n{head}'
                    f'[endpoint.headers]{rest}')
    result = home.run("profile", "validate", str(path))
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert where in line and "aitrack token set" in line and "keychain" in line
    assert SECRET not in line


@pytest.mark.parametrize("url", [f"https://user:{SECRET}@otlp.example.com",
                                 f"https://{SECRET}@otlp.example.com",
                                 f"https://otlp.example.com/v1?api_key={SECRET}"],
                         ids=["user-password", "user-only", "query-key"])
def test_validate_refuses_credentials_in_a_url(home, tmp_path, url):
    path = tmp_path / "profile.toml"
    path.write_text(f'[endpoint]\nurl = "{url}"\n')
    result = home.run("profile", "validate", str(path))
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert "endpoint.url (line 2)" in line and "aitrack token set" in line
    assert SECRET not in line


def test_profile_show_never_prints_them(home):
    home.write_managed_profile('[attributes]\n"team.id" = "it"\n')
    home.write_user_profile(f'[endpoint]\nurl = "https://u:{SECRET}@otlp.example.com"\n'
                            f'headers = {{ Authorization = "Bearer {SECRET}" }}\n')
    for args in (("profile", "show"), ("profile", "show", "--origin", "--json"), ("doctor",)):
        result = home.run(*args)
        assert SECRET not in result.stdout + result.stderr, args


def test_non_secret_static_headers_stay_valid(tmp_path):
    path = tmp_path / "profile.toml"
    path.write_text('[endpoint]\nurl = "https://otlp.example.com"\n[endpoint.headers]\n'
                    'x-aws-log-group = "/aitrack"\nx-aws-log-stream = "a"\nx-scope-orgid = "t"\n')
    assert profile_file.read_file(path)["endpoint"]["headers"]["x-scope-orgid"] == "t"


# ---------------------------------------------------------------- the per-signal URL message


def test_per_signal_urls_without_signals_name_the_real_problem(tmp_path):
    """It said "endpoint.signals (line 1): logs has no URL" for a profile that never set
    signals: line 1 is [endpoint], and the problem is the default signals."""
    path = tmp_path / "profile.toml"
    path.write_text('# forwarding\n[endpoint]\nprotocol = "http/json"\n'
                    'metrics_url = "https://m.example.com/v1/metrics"\n')
    with pytest.raises(schema.ProfileError) as caught:
        profile_file.read_file(path)
    [problem] = caught.value.problems
    assert problem.startswith("endpoint.metrics_url (line 4): ")
    assert "endpoint.signals is not set" in problem and "logs" in problem
    assert 'signals = ["metrics"]' in problem and "logs_url" in problem


def test_signals_set_without_a_url_still_names_signals(tmp_path):
    path = tmp_path / "profile.toml"
    path.write_text('[endpoint]\nmetrics_url = "https://m.example.com/v1/metrics"\n'
                    'signals = ["metrics", "traces"]\n')
    with pytest.raises(schema.ProfileError) as caught:
        profile_file.read_file(path)
    assert caught.value.problems == [
        "endpoint.signals (line 3): traces has no URL: set url or traces_url"]
