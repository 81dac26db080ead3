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
    """Fallback author/committer only where git itself finds no identity (asked through `git var`,
    which honours GIT_CONFIG_GLOBAL and the environment like the commit will)."""
    env = {}
    for role in ("AUTHOR", "COMMITTER"):
        try:
            repo.git.var(f"GIT_{role}_IDENT")
        except git.GitCommandError:
            env[f"GIT_{role}_NAME"] = FALLBACK_IDENTITY["name"]
            env[f"GIT_{role}_EMAIL"] = FALLBACK_IDENTITY["email"]
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


RECOVER = "git reset --hard HEAD && git clean -fd"  # (after `rm .git/index.lock` if git says it exists)


def restore(path: Path, *files: str) -> None:
    """Put files back as HEAD has them."""
    git.Repo(path).git.checkout("HEAD", "--", *files)


def head_text(path: Path, rel: str) -> str | None:
    """A file's content at HEAD, or None when HEAD has no such file."""
    try:
        return git.Repo(path).git.show(f"HEAD:{rel}", strip_newline_in_stdout=False)
    except git.GitCommandError:
        return None


def head_files(path: Path, under: str = "") -> list[str]:
    repo = git.Repo(path)
    args = ["-r", "--name-only", "HEAD"] + (["--", under] if under else [])
    return [line for line in repo.git.ls_tree(*args).splitlines() if line]


def unmerged(path: Path) -> list[str]:
    return sorted({line.split("\t", 1)[1] for line in git.Repo(path).git.ls_files("-u").splitlines() if "\t" in line})


def changed(path: Path) -> list[str]:
    """Paths that differ from HEAD (modified, added, deleted, untracked), as `git status` sees them."""
    out = []
    for line in git.Repo(path).git.status("--porcelain", "--untracked-files=all").splitlines():
        name = line[3:]
        if " -> " in name:
            name = name.split(" -> ", 1)[1]
        out.append(name.strip('"'))
    return sorted(out)


def install_hooks(path: Path) -> bool:
    """Install the experiment's pre-commit hooks (commit and push stages) if pre-commit is here."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "pre_commit", "install", "--hook-type", "pre-commit", "--hook-type", "pre-push"],
        cwd=path, capture_output=True, text=True,
    )
    return result.returncode == 0


def head_reader(path: Path):
    """read(relpath) -> text of that file at HEAD (FileNotFoundError when HEAD has none)."""
    tree = git.Repo(path).head.commit.tree

    def read(rel: str) -> str:
        try:
            return (tree / rel).data_stream.read().decode("utf-8")
        except KeyError:
            raise FileNotFoundError(rel) from None

    return read
