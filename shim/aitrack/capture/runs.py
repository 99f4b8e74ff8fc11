"""A wrapped run's end, as its wrapper saw it: what travels to wherever it is recorded.

A run knows its exit status, its working directory and when it ran. A wrapped run records
its end itself, or, when the tool sends its telemetry to the per-user agent, has the agent
do it (`RunEnd` travels as JSON): the agent has the ledger open already. Linking the end to
the run's sessions and commits is linking.py's. The wrapper imports this module at its exit:
keep it free of heavy imports (`typing` alone costs ~9 ms).
"""

from __future__ import annotations

from aitrack import adapters
from aitrack.capture import commits

# the environment that says where the tools keep their transcripts and settings: HOME, and
# each tool's own (its adapter's HOME_ENV; the adapters are loaded on the wrapper's path)
TOOL_ENV = ("HOME", *dict.fromkeys(v for t in adapters.TOOLS
                                   for v in getattr(adapters.load(t), "HOME_ENV", ())))


class RunEnd:
    """A run's end, as its wrapper saw it."""

    __slots__ = ("id", "tool", "cwd", "started", "ended", "exit_code", "is_session",
                 "git_start", "env", "owned")

    def __init__(self, id: str, tool: str, cwd: str, started: float, ended: float,
                 exit_code: int, is_session: bool, git_start: commits.Start | None = None,
                 env: dict[str, str] | None = None, owned: list[tuple[str, str]] | None = None):
        self.id = id
        self.tool = tool
        self.cwd = cwd
        self.started = started
        self.ended = ended
        self.exit_code = exit_code
        self.is_session = is_session  # False: `--version` and the like
        self.git_start = git_start  # where git's HEAD was when the run started
        self.env = dict(env or {})  # TOOL_ENV of the wrapper's environment
        # (tool session id, its file) the run's own processes held open (capture/sampler.py)
        self.owned = [(str(t), str(p)) for t, p in owned or ()]

    def as_dict(self) -> dict:
        out = {k: getattr(self, k) for k in self.__slots__}
        s = self.git_start
        out["git_start"] = None if s is None else {
            "cwd": s.cwd, "at": s.at, "head": s.head, "by_files": s.by_files}
        return out

    @classmethod
    def from_dict(cls, data: dict) -> RunEnd:
        git = data.get("git_start")
        start = None if not git else commits.Start(str(git["cwd"]), float(git["at"]),
                                                     git["head"], bool(git["by_files"]))
        env = {k: str(v) for k, v in (data.get("env") or {}).items() if k in TOOL_ENV}
        owned = [(str(t), str(p)) for t, p in data.get("owned") or ()]
        return cls(str(data["id"]), str(data["tool"]), str(data["cwd"]),
                   float(data["started"]), float(data["ended"]), int(data["exit_code"]),
                   bool(data["is_session"]), start, env, owned)
