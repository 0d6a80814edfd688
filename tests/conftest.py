"""Shared fixtures: real git repositories in temp dirs, real subprocesses, a clean runtime."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flordb.runtime import RUNTIME

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.com",
}


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` and return its stdout."""
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True,
                          text=True, env={**os.environ, **GIT_ENV}).stdout


def make_repo(path: Path) -> Path:
    """A git repository with one commit."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    (path / "README.md").write_text("a project\n")
    git(path, "add", "README.md")
    git(path, "commit", "-q", "-m", "init")
    return path


@pytest.fixture(autouse=True, scope="session")
def flor_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``flor.HOMEDIR`` of every test (and of the scripts they run): never the user's."""
    home = tmp_path_factory.mktemp("flor-home")
    os.environ["FLORDB_HOME"] = str(home)
    return home


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "proj")


def write_script(repo: Path, code: str, name: str = "train.py") -> Path:
    path = repo / name
    path.write_text(textwrap.dedent(code))
    return path


def run_script(repo: Path, code: str | None = None, *args: str, name: str = "train.py",
               check: bool = True, env: dict[str, str] | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Write ``code`` to ``repo/name`` (when given) and run it with this interpreter."""
    if code is not None:
        write_script(repo, code, name)
    full_env = {**os.environ, "FLORDB_ECHO": "0", **(env or {})}
    proc = subprocess.run([sys.executable, name, *args], cwd=repo, capture_output=True,
                          text=True, env=full_env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"script failed ({proc.returncode}):\n{proc.stderr}")
    return proc


@pytest.fixture
def runtime(repo: Path, monkeypatch: pytest.MonkeyPatch):
    """The process runtime pointed at ``repo``; its run is ended and its store closed after."""
    monkeypatch.chdir(repo)
    monkeypatch.setenv("FLORDB_ECHO", "0")
    _detach()
    RUNTIME.echo.enabled = False
    yield RUNTIME
    _detach()


def _detach() -> None:
    RUNTIME.reset()
