"""`aitrack agent install|uninstall`: the tools' own settings pointed at the agent, and back.

Install sets aitrack's keys in each tool's user settings file (what and where: the tools'
`adapters/<tool>/settings.py`), writes Claude Code's headers helper, and installs the
per-user service (service.py), or starts the agent detached where there is no service
manager. It is idempotent: a second install changes nothing and says so.

Uninstall puts the files back. A private state file (`<agent dir>/wiring.json`, 0600)
keeps, per file, its original bytes and mode and, per key aitrack set, the value it had
before (its text, as written in the file) and the value aitrack gave it. A file that is
still exactly as aitrack left it gets its original bytes back; one the user edited since
loses only aitrack's keys (a key the user changed is left, and said so); a file that did
not exist is removed again, with the directories aitrack made for it. The original bytes
may hold a token the user had there (a CloudWatch header, say): hence 0600.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from aitrack.adapters.endpoints import shown

TOOLS = ("claude", "codex")
STATE_VERSION = 1
CODEX_MODE = 0o600  # Codex's config.toml holds the agent's key


class WiringError(Exception):
    """Install or uninstall cannot go on: one line naming the fix."""


@dataclass
class Outcome:
    changed: bool = False
    lines: list[str] = field(default_factory=list)
    data: dict = field(default_factory=dict)

    def add(self, other: Outcome) -> Outcome:
        self.changed |= other.changed
        self.lines += other.lines
        self.data.update(other.data)
        return self


def settings_module(tool: str) -> ModuleType:
    return importlib.import_module(f"aitrack.adapters.{tool}.settings")


def state_file(paths) -> Path:
    from aitrack.capture import agent

    return agent.agent_dir(paths) / "wiring.json"


def helper_file(paths) -> Path:
    from aitrack.capture import agent

    return agent.agent_dir(paths) / settings_module("claude").helper_name()


def load_state(paths) -> dict:
    try:
        state = json.loads(state_file(paths).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"version": STATE_VERSION, "files": {}}
    if not isinstance(state, dict) or not isinstance(state.get("files"), dict):
        return {"version": STATE_VERSION, "files": {}}
    return state


def save_state(paths, state: dict) -> None:
    from aitrack.config.private_files import write_private

    if state["files"]:
        write_private(state_file(paths), json.dumps(state, indent=1).encode())
    else:
        state_file(paths).unlink(missing_ok=True)


def installed(paths) -> list[str]:
    """The tools whose settings aitrack has wired (per the state file)."""
    files = load_state(paths)["files"].values()
    return [t for t in TOOLS if any(r.get("tool") == t for r in files)]


def _digest(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


def _name(path: tuple[str, ...]) -> str:
    return f"[{path[0]}] {'.'.join(path[1:])}" if path[0] == "otel" else path[-1]


def _home_relative(path: Path, env: Mapping[str, str]) -> str:
    home = env.get("HOME")
    if home and str(path).startswith(home.rstrip("/") + "/"):
        return "~/" + str(path)[len(home.rstrip("/")) + 1:]
    return str(path)


# ---------------------------------------------------------------- reading and writing files


@dataclass
class _File:
    path: Path  # what the user knows the file as
    target: Path  # where its bytes are (a Claude settings link is written through)
    data: bytes | None  # None: it does not exist
    mode: int | None


def _read(tool: str, mod: ModuleType, path: Path) -> _File:
    target = path
    if path.is_symlink():
        if getattr(mod, "HOLDS_SECRET", False):
            raise mod.SettingsError(
                f"{path} is a symbolic link (to {os.readlink(path)}): aitrack would put the "
                "agent's key in the file it points to, which may be shared or under version "
                "control; replace the link with a copy of the file, then try again")
        target = path.resolve()
    try:
        st = os.stat(target)
        data = target.read_bytes()
    except FileNotFoundError:
        return _File(path, target, None, None)
    except OSError as exc:
        raise mod.SettingsError(f"cannot read {path}: {exc.strerror or exc}") from None
    if getattr(mod, "HOLDS_SECRET", False) and hasattr(os, "geteuid") and \
            st.st_uid != os.geteuid():
        owner = _user_name(st.st_uid)
        raise mod.SettingsError(
            f"{path} belongs to {owner}, not to you: it would hold the agent's key, so it "
            f"must be yours and private; run `sudo chown $USER {path}`, then try again")
    return _File(path, target, data, stat.S_IMODE(st.st_mode))


def _text(mod: ModuleType, data: bytes, path: Path) -> str:
    """A settings file's text: both tools read them as UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise mod.SettingsError(f"{path} is not UTF-8 text: save it as UTF-8, then try "
                                "again") from None


def _user_name(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return f"uid {uid}"


def _missing_dirs(directory: Path) -> list[Path]:
    missing = []
    while not directory.exists() and directory != directory.parent:
        missing.append(directory)
        directory = directory.parent
    return list(reversed(missing))


def _write(target: Path, data: bytes, mode: int) -> list[str]:
    """Replace `target` with `data` atomically, with exactly `mode`; the directories it
    needed, made 0700, are returned (to remove them again at uninstall)."""
    made = _missing_dirs(target.parent)
    for directory in made:
        os.mkdir(directory, 0o700)
    tmp = target.with_name(f".{target.name}.aitrack-{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            if hasattr(os, "fchmod"):
                os.fchmod(fh.fileno(), mode)  # exactly, whatever the umask
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return [str(d) for d in made]


def _remove_dirs(dirs: list[str]) -> None:
    for directory in reversed(dirs):
        try:
            os.rmdir(directory)  # only when empty: the tool may have put files there since
        except OSError:
            break


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


# ---------------------------------------------------------------- install


def _wanted(tool: str, mod: ModuleType, paths, profile, secret: str) -> dict:
    from aitrack.capture import agent

    url = agent.url(profile.agent.port)
    if tool == "claude":
        return mod.wanted(url, str(helper_file(paths)), profile.telemetry)
    return mod.wanted(url, {agent.SECRET_HEADER: secret}, profile.telemetry,
                      profile.attributes.get("environment"))


@dataclass
class _Plan:
    tool: str
    mod: ModuleType
    file: _File
    record: dict
    new: bytes
    mode: int
    notes: list[str]


def _plan(tool: str, mod: ModuleType, path: Path, wanted: dict, record: dict | None,
          env: Mapping[str, str], url: str) -> _Plan:
    file = _read(tool, mod, path)
    doc = mod.parse(_text(mod, file.data or b"", path), path)
    if record is not None and _digest(file.data) != record.get("written"):
        if file.data is None:
            record = None  # the user removed the file since: start afresh
        else:
            record["exact"] = False  # edited since: only key by key from now on
    if record is None:
        record = {"tool": tool, "existed": file.data is not None, "exact": True,
                  "original": base64.b64encode(file.data).decode() if file.data is not None
                  else None, "mode": file.mode, "keys": [], "created": [], "dirs": []}
    notes = _found_before(tool, mod, doc, path, env, url) if not record["keys"] else []
    keys = {tuple(k["path"]): k for k in record["keys"]}
    for key_path in {p[:-1] for p in wanted if len(p) > 1}:
        if doc.get(key_path) is mod.MISSING and list(key_path) not in record["created"]:
            record["created"].append(list(key_path))
    for key_path, value in wanted.items():
        current = doc.get(key_path)
        entry = keys.get(key_path) or {"path": list(key_path), "before": doc.raw(key_path)}
        if value is mod.MISSING:
            if current is mod.MISSING and key_path not in keys:
                continue  # nothing to remove, nothing to put back
            entry.pop("after", None)
            entry["removed"] = True
            if current is not mod.MISSING:
                doc.delete(key_path)
        else:
            entry.pop("removed", None)
            entry["after"] = value
            if current != value:
                doc.set_raw(key_path, mod.raw(value))
        keys[key_path] = entry
    for key_path in [p for p in keys if p not in wanted]:  # no longer set (profile changed)
        _put_back(mod, doc, keys.pop(key_path))
    record["keys"] = list(keys.values())
    mode = CODEX_MODE if getattr(mod, "HOLDS_SECRET", False) else (
        file.mode if file.mode is not None else _default_mode())
    return _Plan(tool, mod, file, record, doc.text().encode("utf-8"), mode, notes)


def _found_before(tool: str, mod: ModuleType, doc, path: Path, env: Mapping[str, str],
                  url: str) -> list[str]:
    """What the first install replaces that the user should know of (never a value)."""
    from aitrack.capture import agent

    where = _home_relative(path, env)
    notes = []
    data = doc.value()
    if tool == "claude":
        block = data.get("env") if isinstance(data.get("env"), dict) else {}
        leaked = mod.plaintext_headers(block)
        endpoint = str(block.get(mod.ENDPOINT_KEY) or "")
        if endpoint and endpoint.rstrip("/") != url:
            notes.append(f"{mod.TITLE} sent its telemetry to {shown(endpoint)} ({where}); "
                         "it now goes to the agent, which forwards to your profile's endpoint")
        if data.get(mod.HELPER_KEY):
            notes.append(f"replaced your {mod.HELPER_KEY} in {where} (put back at uninstall)")
    else:
        otel = data.get("otel") if isinstance(data.get("otel"), dict) else {}
        leaked = [f"[otel] {k} headers" for k in mod.plaintext_headers(otel, agent.SECRET_HEADER)]
        endpoint = next((mod.endpoint_of(otel.get(k)) for k in mod.EXPORTERS
                         if mod.endpoint_of(otel.get(k))), None)
        if endpoint and not endpoint.startswith(url + "/"):
            notes.append(f"{mod.TITLE} sent its telemetry to {shown(endpoint)} ({where}); "
                         "it now goes to the agent, which forwards to your profile's endpoint")
    if leaked:
        notes.append(f"a plaintext token was found in {where} ({', '.join(leaked)}) and is no "
                     "longer used: the agent forwards with the token in your keychain "
                     "(`aitrack token set`); consider rotating the old one")
    return notes


def _put_back(mod: ModuleType, doc, entry: dict) -> str | None:
    """Give one key the value it had before install, unless the user changed it since;
    then a note saying it was left."""
    key_path = tuple(entry["path"])
    current = doc.get(key_path)
    if entry.get("removed"):
        if current is not mod.MISSING:
            return f"{_name(key_path)}: you set it again since install; kept yours"
        if entry.get("before") is not None:
            doc.set_raw(key_path, entry["before"])
        return None
    if current is mod.MISSING:
        return None  # the user removed aitrack's value: nothing of aitrack's is left
    if current != entry.get("after"):
        return f"{_name(key_path)}: you changed it since install; left as you set it"
    if entry.get("before") is None:
        doc.delete(key_path)
    else:
        doc.set_raw(key_path, entry["before"])
    return None


def _write_helper(paths, secret_path: Path) -> bool:
    from aitrack.capture import agent
    from aitrack.config.private_files import private_dir

    mod = settings_module("claude")
    text = mod.helper_script(secret_path, agent.SECRET_HEADER, agent.RUN_HEADER).encode()
    target = helper_file(paths)
    private_dir(target.parent)
    try:
        if target.read_bytes() == text and stat.S_IMODE(target.stat().st_mode) == 0o700:
            return False
    except OSError:
        pass
    _write(target, text, 0o700)
    return True


def wire(paths, profile, env: Mapping[str, str] | None = None) -> Outcome:
    """Point both tools' user settings at the agent (idempotent)."""
    from aitrack.capture import agent

    env = os.environ if env is None else env
    secret = agent.ensure_secret(paths)
    state = load_state(paths)
    plans, problems = [], []
    for tool in TOOLS:
        mod = settings_module(tool)
        path = mod.user_file(env)
        record = state["files"].get(str(path))
        try:
            plans.append(_plan(tool, mod, path, _wanted(tool, mod, paths, profile, secret),
                               json.loads(json.dumps(record)) if record else None, env,
                               agent.url(profile.agent.port)))
        except mod.SettingsError as exc:
            problems.append(str(exc))
    if problems:
        raise WiringError("; ".join(problems) + " (nothing was changed)")
    out = Outcome(data={"files": {}})
    out.changed = _write_helper(paths, agent.secret_file(paths))
    for plan in plans:
        path, file = plan.file.path, plan.file
        where = _home_relative(path, env)
        out.data["files"][str(path)] = plan.tool
        if plan.new == file.data and plan.mode == file.mode:
            state["files"][str(path)] = plan.record
            continue
        made = _write(file.target, plan.new, plan.mode)
        plan.record["dirs"] = plan.record.get("dirs", []) + made
        plan.record["written"] = _digest(plan.new)
        state["files"][str(path)] = plan.record
        save_state(paths, state)  # after each file: an interrupted install can be undone
        out.changed = True
        if plan.new == file.data:
            out.lines.append(f"made {where} private (0600): it holds the agent's key")
        else:
            what = f"{plan.mod.TITLE} sends its telemetry to the agent"
            out.lines.append(f"{what}: {'wrote' if file.data is None else 'updated'} {where}"
                             + (" (0600: it holds the agent's key)"
                                if getattr(plan.mod, "HOLDS_SECRET", False) else ""))
        out.lines += plan.notes
    save_state(paths, state)
    if not out.changed:
        out.lines.append("the settings of Claude Code and Codex already point at the agent")
    return out


# ---------------------------------------------------------------- uninstall


def unwire(paths, env: Mapping[str, str] | None = None) -> Outcome:
    """Put both tools' settings files back as they were before install."""
    env = os.environ if env is None else env
    state = load_state(paths)
    out = Outcome(data={"files": {}})
    for name, record in list(state["files"].items()):
        mod = settings_module(record.get("tool", ""))
        path = Path(name)
        where = _home_relative(path, env)
        try:
            result, lines = _restore(mod, path, record)
        except mod.SettingsError as exc:
            out.lines.append(f"{exc}; aitrack's keys are still in it: "
                             + ", ".join(_name(tuple(k["path"])) for k in record["keys"]))
            result, lines = "left", []
        out.data["files"][name] = result
        out.changed |= result != "left"
        out.lines.append({
            "exact": f"restored {where} byte for byte",
            "removed": f"removed {where} (it did not exist before)",
            "keys": f"removed aitrack's settings from {where} (your other changes kept)",
            "gone": f"{where} was deleted since install: nothing to restore",
            "left": f"left {where} as it is",
        }[result])
        out.lines += lines
        del state["files"][name]
        save_state(paths, state)
    helper = helper_file(paths)
    if helper.exists():
        helper.unlink()
        out.changed = True
    if not out.data["files"]:
        out.lines.append("no tool settings were wired by aitrack: nothing to restore")
    return out


def _restore(mod: ModuleType, path: Path, record: dict) -> tuple[str, list[str]]:
    file = _read(record["tool"], mod, path)
    if file.data is None:
        _remove_dirs(record.get("dirs", []))
        return "gone", []
    mode = record.get("mode")
    if record.get("exact") and _digest(file.data) == record.get("written"):
        if not record.get("existed"):
            file.target.unlink()
            _remove_dirs(record.get("dirs", []))
            return "removed", []
        _write(file.target, base64.b64decode(record["original"]), mode)
        return "exact", []
    doc = mod.parse(_text(mod, file.data, path), path)
    notes = [n for n in (_put_back(mod, doc, k) for k in record["keys"]) if n]
    for container in record.get("created", []):
        if doc.keys(tuple(container)) == []:
            doc.delete(tuple(container))
    if not record.get("existed") and not doc.value():
        file.target.unlink()
        _remove_dirs(record.get("dirs", []))
        return "removed", notes
    new = doc.text().encode("utf-8")
    from aitrack.capture import agent

    secret_left = False
    if getattr(mod, "HOLDS_SECRET", False):
        secret_left = agent.SECRET_HEADER.encode() in new
    keep_mode = file.mode if secret_left or mode is None else mode
    if new != file.data or keep_mode != file.mode:
        _write(file.target, new, keep_mode)
    return "keys", notes


# ---------------------------------------------------------------- the whole of it


def install(paths, profile, env: Mapping[str, str] | None = None,
            use_service: bool = True) -> Outcome:
    """Wire both tools, then install and start the per-user service (or, with no service
    manager or `use_service` False, start the agent detached)."""
    from aitrack.capture import agent
    from aitrack.install import service

    env = os.environ if env is None else env
    out = wire(paths, profile, env)
    manager = service.detect(env) if use_service else None
    out.data["service"] = manager.name if manager else None
    if manager is not None:
        try:
            changed, lines = manager.install(paths, profile)
        except service.ServiceError as exc:
            raise WiringError(f"{exc}; the settings are wired: run `aitrack agent install` "
                              "again once it is fixed, or `aitrack agent start`") from None
        out.changed |= changed
        if changed or out.changed:
            out.lines += lines
    else:
        try:
            line = agent.start_detached(paths, profile)
        except agent.AgentError as exc:
            raise WiringError(f"{exc} (the settings are wired)") from None
        started = "already running" not in line
        out.changed |= started
        if started:
            why = "no service manager here (a container or CI?)" if use_service else \
                "no service (--no-service)"
            out.lines += [line, f"{why}: the next `aitrack claude` or `aitrack codex` starts "
                          "the agent whenever it is down; so does `aitrack agent start`"]
    if not out.changed:
        out.lines = ["already installed: nothing changed (both tools' settings point at the "
                     f"agent on {agent.url(profile.agent.port)}, and it is running)"]
    return out


def uninstall(paths, env: Mapping[str, str] | None = None) -> Outcome:
    """Stop the agent, remove the service, put the settings files back."""
    from aitrack.capture import agent
    from aitrack.install import service

    env = os.environ if env is None else env
    out = Outcome()
    manager = service.for_platform(env)
    if manager is not None and manager.installed(paths):
        if manager.available():
            try:
                changed, lines = manager.uninstall(paths)
            except service.ServiceError as exc:
                out.lines.append(f"{exc}: remove {manager.file(paths)} by hand")
                changed, lines = False, []
        else:  # its manager is not running here: the file is all there is
            manager.file(paths).unlink(missing_ok=True)
            changed, lines = True, [f"removed {manager.file(paths)}"]
        out.changed |= changed
        out.lines += lines
    if agent.stop(paths):
        out.changed = True
        out.lines.append("stopped the agent")
    return out.add(unwire(paths, env))
