"""The commits a wrapped run made, read from git: contribution figures for tools that report
none of their own (Codex, `aitrack run`; Claude Code reports its own and is not asked about).

At the run's start (after the spawn, in a thread: the tool never waits for git) aitrack
notes the commit HEAD names. At its end, if HEAD moved, it reads the commits reachable from
HEAD and not from that start commit, authored by the user (`git var GIT_AUTHOR_IDENT`) at or
after the run's start, merges left out, with their lines added and removed (`git log
--numstat`; binary files count no lines). Author time, not commit time: a rebase during the
run rewrites older commits with a new commit time but keeps their author time, so they are
not counted as made during the run. HEAD is noted a few milliseconds after the tool starts:
a commit made sooner than that would be taken for the start (no agent commits that fast).

HEAD is read from the repository's files where they say it plainly (`.git/HEAD`, a loose or
packed ref; worktrees too): outside a work tree, or when HEAD has not moved, which is most
runs, git is never run. Otherwise every git call is bounded by a timeout, and any failure
(no git, no commit yet, a detached HEAD, a rebase in progress, no identity) means "no
figures", never an error for the run.
"""

from __future__ import annotations

import os

TIMEOUT_S = 2.0
MAX_COMMITS = 1000  # a run that "made" more switched to another history: count what is read
# no pager, colour, signature check (it may run gpg), external diff or textconv; no locks
_GIT = ("git", "--no-pager", "-c", "log.showSignature=false", "-c", "color.ui=false",
        "-c", "core.quotePath=false")
_HEX = frozenset("0123456789abcdef")
_GIT_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR", "GIT_CEILING_DIRECTORIES")
_UNKNOWN = object()  # what the files cannot tell: git is asked


class Start:
    """Where a run began, as git sees it. (Plain classes: this module is imported on the
    wrapper's path, and dataclasses read `typing` half-imported from a thread.)"""

    __slots__ = ("cwd", "at", "head", "by_files")

    def __init__(self, cwd: str, at: float, head: str | None, by_files: bool = False):
        self.cwd = cwd
        self.at = at  # the run's start, unix seconds
        self.head = head  # the commit HEAD named; None in a repository without commits yet
        self.by_files = by_files  # HEAD was read from the files: they can say it did not move

    def __repr__(self) -> str:
        return f"Start({self.cwd!r}, {self.at!r}, {self.head!r})"


class Made:
    """What the commits made during a run add up to."""

    __slots__ = ("commits", "lines_added", "lines_removed")

    def __init__(self, commits: int, lines_added: int, lines_removed: int):
        self.commits = commits
        self.lines_added = lines_added
        self.lines_removed = lines_removed

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Made) and self._key() == other._key()

    def _key(self) -> tuple[int, int, int]:
        return self.commits, self.lines_added, self.lines_removed

    def __repr__(self) -> str:
        return f"Made({self.commits}, {self.lines_added}, {self.lines_removed})"

    def figures(self) -> dict[str, int]:
        """Ledger metric names (model '') and their values, zeros left out."""
        named = {"commits": self.commits, "lines_added": self.lines_added,
                 "lines_removed": self.lines_removed}
        return {name: value for name, value in named.items() if value}


def start(cwd: str, at: float, timeout_s: float = TIMEOUT_S) -> Start | None:
    """HEAD now; None outside a work tree."""
    head = read_head(cwd)
    if head is None:
        return None
    if head is not _UNKNOWN:
        return Start(cwd, at, head[0], by_files=True)
    found = _git(cwd, "rev-parse", "--is-inside-work-tree", "HEAD", timeout_s=timeout_s)
    lines = found.stdout.decode(errors="replace").split() if found else []
    if not lines or lines[0] != "true":
        return None
    commit = lines[1] if len(lines) > 1 and _is_commit_id(lines[1]) else None
    if commit is None and found.returncode == 0:
        return None  # HEAD named something that is not a commit id
    return Start(cwd, at, commit)


def made_since(begin: Start, timeout_s: float = TIMEOUT_S) -> Made | None:
    """The commits the user authored in the work tree since `begin`; None if git cannot say."""
    if begin.by_files and read_head(begin.cwd) == (begin.head,):
        return Made(0, 0, 0)  # HEAD did not move: nothing was committed, git is not asked
    ident = _git(begin.cwd, "var", "GIT_AUTHOR_IDENT", timeout_s=timeout_s)
    # "Name <email> 1700000000 +0000"
    text = ident.stdout.decode(errors="replace") if ident and ident.returncode == 0 else ""
    author = text.rpartition("<")[2].partition(">")[0].strip().casefold() if ">" in text else ""
    if not author:
        return None  # no identity: git could not have made commits for this user either
    since = int(begin.at)  # author times are whole seconds, cut down
    args = ["log", "--no-merges", "--numstat", "--no-ext-diff", "--no-textconv",
            "--format=%x00%H %at %ae", f"--max-count={MAX_COMMITS}", f"--since=@{since}",
            "HEAD"]
    if begin.head is not None:
        args += ["--not", begin.head]
    found = _git(begin.cwd, *args, "--", timeout_s=timeout_s)
    if found is None or found.returncode != 0:
        return None  # no commit at all yet, the repository is gone, the timeout...
    commits = added = removed = 0
    for record in found.stdout.decode(errors="replace").split("\0")[1:]:
        header, _, numstat = record.partition("\n")
        parts = header.split(" ", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            continue
        if parts[2].strip().casefold() != author or int(parts[1]) < since:
            continue
        commits += 1
        for line in numstat.splitlines():
            plus, _, rest = line.partition("\t")
            minus = rest.partition("\t")[0]
            if plus.isdigit() and minus.isdigit():  # "-" for binary files
                added += int(plus)
                removed += int(minus)
    return Made(commits, added, removed)


# ---------------------------------------------------------------- HEAD from the files


def read_head(cwd: str):
    """(commit id or None when no commit yet,) from the repository's files; None outside a
    work tree; _UNKNOWN where only git can tell (its environment variables, a reftable
    repository, a symbolic ref chain...)."""
    if any(os.environ.get(name) for name in _GIT_ENV):
        return _UNKNOWN
    git_dir = _git_dir(cwd)
    if git_dir is None or git_dir is _UNKNOWN:
        return git_dir
    head = _read(os.path.join(git_dir, "HEAD"))
    if head is None:
        return _UNKNOWN
    if _is_commit_id(head):
        return (head,)  # detached
    if not head.startswith("ref: refs/") or os.path.isdir(os.path.join(git_dir, "reftable")):
        return _UNKNOWN
    ref = head[5:]
    common = _read(os.path.join(git_dir, "commondir"))
    common_dir = os.path.join(git_dir, common) if common else git_dir
    for base in dict.fromkeys((git_dir, common_dir)):
        value = _read(os.path.join(base, *ref.split("/")))
        if value is not None:
            return (value,) if _is_commit_id(value) else _UNKNOWN
    packed = _read(os.path.join(common_dir, "packed-refs"))
    for line in (packed or "").splitlines():
        commit, _, name = line.partition(" ")
        if name == ref and _is_commit_id(commit):
            return (commit,)
    return (None,)  # a branch with no commit yet


def _git_dir(cwd: str):
    """The repository directory of the work tree around `cwd`; None when there is none."""
    path = os.path.abspath(cwd) if cwd else ""
    while path:
        dot_git = os.path.join(path, ".git")
        if os.path.isdir(dot_git):
            return dot_git
        if os.path.isfile(dot_git):  # a worktree or a submodule: "gitdir: PATH"
            text = _read(dot_git) or ""
            if not text.startswith("gitdir: "):
                return _UNKNOWN
            return os.path.normpath(os.path.join(path, text[len("gitdir: "):]))
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent
    return None


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(4096).strip()
    except OSError:
        return None


def _is_commit_id(text: str) -> bool:
    return len(text) in (40, 64) and set(text) <= _HEX  # SHA-1 or SHA-256


def _git(cwd: str, *args: str, timeout_s: float):
    """The git command's CompletedProcess, or None. subprocess is imported here (~6 ms):
    most runs read HEAD from the files and never ask git."""
    import subprocess  # ~6 ms, in an agent-mode wrapper too (bench/agent.py (b))

    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    try:
        return subprocess.run([*_GIT, *args], cwd=cwd or None, capture_output=True,
                              timeout=timeout_s, stdin=subprocess.DEVNULL, env=env)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None  # no git, a cwd that is gone, the timeout
