"""Commit stage: the one module that touches git (through GitPython)."""

from __future__ import annotations

import os
from pathlib import Path

import git

from .errors import GitError

# Used only when the user has no git identity configured (fresh CI machines, containers).
FALLBACK_IDENTITY = {"name": "cruijff_gen", "email": "cruijff_gen@localhost"}


def is_repo_root(path: Path) -> bool:
    return (path / ".git").exists()


def _identity_env(repo: git.Repo) -> dict[str, str]:
    env = {}
    reader = repo.config_reader()
    for role in ("AUTHOR", "COMMITTER"):
        for field in ("name", "email"):
            var = f"GIT_{role}_{field.upper()}"
            if var in os.environ:
                continue
            if not reader.get_value("user", field, default=""):
                env[var] = FALLBACK_IDENTITY[field]
    return env


def open_or_init(path: Path) -> git.Repo:
    if is_repo_root(path):
        return git.Repo(path)
    branch = git.Git().config("--get", "init.defaultBranch", with_exceptions=False) or "main"
    return git.Repo.init(path, initial_branch=branch.strip() or "main")


def commit_all(path: Path, message: str) -> str | None:
    """Stage everything under `path` and commit it; returns the new commit's sha, or None when
    there was nothing to commit."""
    repo = open_or_init(path)
    try:
        repo.git.add("-A", "--", ".")
        if repo.head.is_valid() and not repo.index.diff("HEAD"):
            return None
        # Hooks are skipped: the tree was just verified in-process, and the experiment's own
        # pre-commit hook may not be installed on this machine yet.
        repo.git.commit("--no-verify", "--quiet", "-m", message, env=_identity_env(repo))
    except git.GitCommandError as exc:
        raise GitError(f"git commit in {path} failed: {exc.stderr.strip() or exc}") from exc
    return repo.head.commit.hexsha


def head(path: Path) -> str | None:
    if not is_repo_root(path):
        return None
    repo = git.Repo(path)
    return repo.head.commit.hexsha if repo.head.is_valid() else None
