"""A session's project: the name people know its working directory by."""

from __future__ import annotations

import os


def project_of(cwd: str) -> str:
    """The repository's name when inside a git work tree, else the directory's name.

    os.path, not pathlib: the wrapper imports this before the tool starts."""
    directory = os.path.abspath(cwd) if cwd else ""
    while directory:
        if os.path.exists(os.path.join(directory, ".git")):
            return os.path.basename(directory) or directory
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    return os.path.basename(os.path.normpath(cwd)) if cwd else ""
