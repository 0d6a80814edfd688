"""Where the project is: its root directory, its id and the running script's name."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from flordb import settings


@dataclass(frozen=True)
class Project:
    """The project a process logs into.

    ``root`` is the enclosing git work tree of the working directory (or the working directory
    itself outside git); ``projid`` defaults to the root's directory name.
    """

    root: Path
    projid: str
    in_git: bool

    def relative(self, path: str | os.PathLike[str]) -> str:
        """``path`` relative to the project root (POSIX separators) when it lies inside it."""
        p = Path(path).resolve()
        try:
            return p.relative_to(self.root).as_posix()
        except ValueError:
            return p.as_posix()


def find_git_root(start: Path) -> Path | None:
    """The nearest ancestor of ``start`` that holds ``.git`` (a directory or a worktree file)."""
    for candidate in (start, *start.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def locate(cwd: Path | None = None) -> Project:
    """The project of ``cwd``; ``$FLORDB_ROOT`` and ``$FLORDB_PROJID`` override the defaults."""
    env = settings.read()
    start = Path(env.root or cwd or os.getcwd()).resolve()
    git_root = find_git_root(start)
    root = git_root or start
    projid = env.projid or root.name
    return Project(root=root, projid=projid, in_git=git_root is not None)


def script_name(project: Project) -> str:
    """The running script relative to the project root, or a stand-in for interactive use."""
    from flordb.notebook import notebook_path, shell

    if shell() is not None:
        notebook = notebook_path()
        return project.relative(notebook) if notebook else "<notebook>"
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None) or (sys.argv[0] if sys.argv and sys.argv[0] else "")
    if not path or path in ("-c", "-"):
        return "<interactive>"
    return project.relative(path)


def home_dir(create: bool = True) -> Path:
    """``flor.HOMEDIR``: ``$FLORDB_HOME``, else ``~/.flor`` (created, unless ``create`` is
    false)."""
    home = settings.read().home_dir
    if create:
        home.mkdir(parents=True, exist_ok=True)
    return home
