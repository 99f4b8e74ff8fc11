"""Unwiring: each settings file aitrack wrote put back as it was before install, from the
state file. A file still exactly as aitrack left it gets its original bytes back; one the
user edited since loses only aitrack's keys (a key the user changed is left, and said so);
a file that did not exist is removed again, with the directories aitrack made for it.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

from aitrack.capture import agent
from aitrack.config.paths import Paths
from aitrack.install.wiring import files
from aitrack.install.wiring.files import home_relative
from aitrack.install.wiring.state import (
    Outcome,
    helper_file,
    helper_tools,
    load_state,
    lock_file,
    save_state,
    settings_module,
)

SAID = {  # what happened to a file, as uninstall says it
    "exact": "restored {where} byte for byte",
    "removed": "removed {where} (it did not exist before)",
    "keys": "removed aitrack's settings from {where} (your other changes kept)",
    "gone": "{where} was deleted since install: nothing to restore",
    "left": "left {where} as it is",
}


def unwire(paths: Paths, env: Mapping[str, str] | None = None) -> Outcome:
    """Put every tool's settings files back as they were before install."""
    env = os.environ if env is None else env
    try:
        with files.locked(lock_file(paths)):
            return _unwire(paths, env)
    except TimeoutError as exc:
        return Outcome(lines=[str(exc)])


def _unwire(paths: Paths, env: Mapping[str, str]) -> Outcome:
    state = load_state(paths)
    out = Outcome(data={"files": {}})
    for name, record in list(state["files"].items()):
        mod = settings_module(record.get("tool", ""))
        path = Path(name)
        try:
            result, lines = restore(mod, path, record)
        except mod.SettingsError as exc:
            # its record (the original bytes) stays: a second uninstall can still restore it
            out.lines.append(f"{exc}; aitrack's keys are still in it ("
                             + ", ".join(key_name(tuple(k["path"])) for k in record["keys"])
                             + "): its backup is kept, run `aitrack agent uninstall` again "
                             "once it is fixed")
            out.data["files"][name] = "left"
            continue
        out.data["files"][name] = result
        out.changed |= result != "left"
        out.lines.append(SAID[result].format(where=home_relative(path, env)))
        out.lines += lines
        del state["files"][name]
        save_state(paths, state)
    if not state["files"]:  # a file left wired may still name its helper
        for tool in helper_tools():
            helper = helper_file(paths, tool)
            if helper.exists():
                helper.unlink()
                out.changed = True
    if not out.data["files"]:
        out.lines.append("no tool settings were wired by aitrack: nothing to restore")
    return out


def restore(mod: ModuleType, path: Path, record: dict) -> tuple[str, list[str]]:
    """Put one file back: (what happened, as a key of SAID; notes on keys left as they are)."""
    file = files.read(mod, path)
    if file.data is None:
        files.remove_dirs(record.get("dirs", []))
        return "gone", []
    mode = record.get("mode")
    if record.get("exact") and files.digest(file.data) == record.get("written"):
        if not record.get("existed"):
            file.target.unlink()
            files.remove_dirs(record.get("dirs", []))
            return "removed", []
        files.write(file.target, base64.b64decode(record["original"]), mode)
        return "exact", []
    doc = mod.parse(files.decode(mod, file.data, path), path)
    notes = [n for n in (put_back(mod, doc, k) for k in record["keys"]) if n]
    for container in record.get("created", []):
        if doc.keys(tuple(container)) == []:
            doc.delete(tuple(container))
    if not record.get("existed") and not doc.value():
        file.target.unlink()
        files.remove_dirs(record.get("dirs", []))
        return "removed", notes
    new = doc.text().encode("utf-8")
    secret_left = False
    if getattr(mod, "HOLDS_SECRET", False):
        secret_left = agent.SECRET_HEADER.encode() in new
    keep_mode = file.mode if secret_left or mode is None else mode
    if new != file.data or keep_mode != file.mode:
        files.write(file.target, new, keep_mode)
    return "keys", notes


def put_back(mod: ModuleType, doc, entry: dict) -> str | None:
    """Give one key the value it had before install, unless the user changed it since;
    then a note saying it was left."""
    key_path = tuple(entry["path"])
    current = doc.get(key_path)
    if entry.get("removed"):
        if current is not mod.MISSING:
            return f"{key_name(key_path)}: you set it again since install; kept yours"
        if entry.get("before") is not None:
            doc.set_raw(key_path, entry["before"])
        return None
    if current is mod.MISSING:
        return None  # the user removed aitrack's value: nothing of aitrack's is left
    if current != entry.get("after"):
        return f"{key_name(key_path)}: you changed it since install; left as you set it"
    if entry.get("before") is None:
        doc.delete(key_path)
    else:
        doc.set_raw(key_path, entry["before"])
    return None


def key_name(path: tuple[str, ...]) -> str:
    """A key as the user knows it, in messages."""
    return f"[{path[0]}] {'.'.join(path[1:])}" if path[0] == "otel" else path[-1]
