"""Commit stage: the one module that touches git (through GitPython)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
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


def identity_note(path: Path) -> str | None:
    """When git finds no identity in the repository at `path`: which one its commits got, and how
    to set yours (one line)."""
    if not _identity_env(git.Repo(path)):
        return None
    who = f"{FALLBACK_IDENTITY['name']} <{FALLBACK_IDENTITY['email']}>"
    return (f"no git identity is configured, so the commit's author is {who}; set yours with "
            "`git config --global user.name 'Your Name'` and `git config --global user.email you@example.edu` "
            "(then `git commit --amend --no-verify --reset-author --no-edit` in the experiment makes it yours)")


def open_or_init(path: Path) -> git.Repo:
    if is_repo_root(path):
        return git.Repo(path)
    branch = git.Git().config("--get", "init.defaultBranch", with_exceptions=False) or "main"
    return git.Repo.init(path, initial_branch=branch.strip() or "main")


def commit_all(path: Path, message: str) -> str | None:
    """Stage everything under `path` and commit it; returns the new commit's sha, or None when
    there was nothing to commit."""
    repo = open_or_init(path)
    if not repo.head.is_valid():
        # A first scaffold killed while git ran may have left its index lock; nothing else can
        # hold it in a repository without a commit that this scaffold is creating.
        (Path(repo.git_dir) / "index.lock").unlink(missing_ok=True)
        first = _first_commit(repo, path, message)
        if first is not None:
            return first
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


def _quote_path(rel: str) -> str:
    if not any(c in rel for c in '"\\\n') and not rel.startswith('"'):
        return rel
    return '"' + rel.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


IMPORT_REF = "refs/cruijff-gen/import"


def _first_commit(repo: git.Repo, path: Path, message: str) -> str | None:
    """The first commit of a scaffold written with `git fast-import`: one pack file instead of a
    loose object per file (9,000 files at 1,000 runs). The index is filled from the new commit
    before the branch points to it, so a kill leaves either no commit (rerunning the copy
    finishes it) or the complete one. None when the tree holds something other than regular
    files (the plain `git add` + `git commit` path handles those)."""
    listed = repo.git.ls_files("--cached", "--others", "--exclude-standard", "-z").split("\0")
    files = sorted({rel for rel in listed if rel and os.path.lexists(path / rel)})
    if not files:
        return None
    env = _identity_env(repo)
    idents = {role: repo.git.var(f"GIT_{role}_IDENT", env={**os.environ, **env}) for role in ("AUTHOR", "COMMITTER")}
    branch = repo.git.symbolic_ref("HEAD").strip()
    chunks: list[bytes] = []
    entries: list[str] = []
    for mark, rel in enumerate(files, 1):
        info = os.lstat(path / rel)
        if not stat.S_ISREG(info.st_mode):
            return None
        data = (path / rel).read_bytes()
        chunks.append(b"blob\nmark :%d\ndata %d\n%s\n" % (mark, len(data), data))
        mode = "100755" if info.st_mode & 0o111 else "100644"
        entries.append(f"M {mode} :{mark} {_quote_path(rel)}\n")
    text = (message.rstrip("\n") + "\n").encode("utf-8")  # as `git commit` stores it
    chunks.append(
        f"commit {IMPORT_REF}\nauthor {idents['AUTHOR']}\ncommitter {idents['COMMITTER']}\n".encode("utf-8")
        + b"data %d\n%s\n" % (len(text), text)
        + "".join(entries).encode("utf-8")
        + b"\ndone\n"
    )
    result = subprocess.run(
        ["git", "fast-import", "--quiet", "--done", "--force"], cwd=path, input=b"".join(chunks), capture_output=True,
    )
    if result.returncode != 0:
        raise GitError(f"git fast-import in {path} failed: {result.stderr.decode(errors='replace').strip()}")
    try:
        sha = repo.git.rev_parse(IMPORT_REF).strip()
        repo.git.read_tree(sha)  # the index says what the commit says ...
        repo.git.update_index("-q", "--refresh", with_exceptions=False)
        repo.git.update_ref("-d", IMPORT_REF)
        repo.git.update_ref(branch, sha)  # ... before the branch points to it
    except git.GitCommandError as exc:
        raise GitError(f"git in {path} failed: {exc.stderr.strip() or exc}") from exc
    return sha


def files_in_commit(path: Path, sha: str) -> int:
    """How many files the commit `sha` changed (what `git show --stat` counts)."""
    return len(git.Repo(path).git.diff_tree("--no-commit-id", "--name-only", "-r", "--root", sha).split("\n"))


def head(path: Path) -> str | None:
    if not is_repo_root(path):
        return None
    repo = git.Repo(path)
    return repo.head.commit.hexsha if repo.head.is_valid() else None


def restore(path: Path, *files: str) -> None:
    """Put files back as HEAD has them."""
    git.Repo(path).git.checkout("HEAD", "--", *files)


def head_text(path: Path, rel: str) -> str | None:
    """A file's content at HEAD, or None when HEAD has no such file."""
    try:
        return git.Repo(path).git.show(f"HEAD:{rel}", strip_newline_in_stdout=False)
    except git.GitCommandError:
        return None


def restore_tracked(path: Path, keep: tuple[str, ...] = ()) -> list[str]:
    """Put every tracked file that differs from HEAD (modified or deleted) back as HEAD has it,
    except `keep`; returns the paths restored."""
    repo = git.Repo(path)
    paths = [p for p in repo.git.diff("--name-only", "-z", "HEAD").split("\0") if p and p not in keep]
    if paths:
        repo.git.checkout("HEAD", "--", *paths)
    return paths


def merge_text(ours: str, base: str, theirs: str, labels: tuple[str, str, str]) -> tuple[str, bool]:
    """3-way merge of one file's text with `git merge-file`: (merged text, had conflicts)."""
    with tempfile.TemporaryDirectory(prefix="cruijff-merge-") as tmp:
        names = []
        for name, text in zip(("ours", "base", "theirs"), (ours, base, theirs)):
            file = Path(tmp, name)
            file.write_bytes(text.encode("utf-8"))
            names.append(str(file))
        args = ["-p", "-L", labels[0], "-L", labels[1], "-L", labels[2], *names]
        status, out, err = git.Git().execute(["git", "merge-file", *args], with_extended_output=True, with_exceptions=False, strip_newline_in_stdout=False)
    if status < 0 or status > 127:
        raise GitError(f"git merge-file failed: {err.strip()}")
    return out, status > 0


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


# pre-commit runs `<hook>.legacy` beside its own hook script before the hooks of
# .pre-commit-config.yaml (its migration mode), with the same arguments and, for pre-push, the refs
# on stdin. cruijff_gen's check lives there, so no commit can switch it off by editing that file;
# the configuration's own cruijff-verify hook then only reports this check's result (see
# commands/verify.py), and any hooks of the user's run as before.
SEALED_HOOK = """\
#!/usr/bin/env bash
# Installed by cruijff_gen: pre-commit runs this before the hooks of .pre-commit-config.yaml.
# cruijff-gen verify checks what git records (the staged files; every commit being pushed),
# whatever .pre-commit-config.yaml says.
if ! command -v cruijff-gen >/dev/null; then
  echo "cruijff-gen is not on PATH: activate the environment cruijff_gen is installed in (the experiment's git hooks run it)" >&2
  exit 1
fi
CRUIJFF_GEN_HOOK={hook_type} CRUIJFF_GEN_REMOTE="${{1:-}}" exec cruijff-gen verify --files
"""
HOOK_TYPES = ("pre-commit", "pre-push")


def install_hooks(path: Path) -> bool:
    """Install the experiment's pre-commit hooks (commit and push stages) if pre-commit is here,
    and cruijff_gen's own check beside them (SEALED_HOOK)."""
    result = subprocess.run(
        [sys.executable, "-m", "pre_commit", "install", *(a for t in HOOK_TYPES for a in ("--hook-type", t))],
        cwd=path, capture_output=True, text=True,
    )
    if result.returncode != 0:
        return False
    write_sealed_hooks(path)
    return True


def _hooks_dir(path: Path) -> Path:
    return Path(git.Repo(path, search_parent_directories=True).git_dir) / "hooks"


def sealed_hooks_missing(path: Path) -> list[str]:
    """The stages whose sealed hook is not (or no longer) cruijff_gen's: a fresh clone has none
    (git does not clone hooks)."""
    hooks = _hooks_dir(path)
    out = []
    for hook_type in HOOK_TYPES:
        legacy = hooks / f"{hook_type}.legacy"
        try:
            ours = legacy.read_text(encoding="utf-8") == SEALED_HOOK.format(hook_type=hook_type) and os.access(legacy, os.X_OK)
        except (OSError, UnicodeDecodeError):
            ours = False
        if not ours:
            out.append(hook_type)
    return out


def write_sealed_hooks(path: Path) -> None:
    hooks = _hooks_dir(path)
    hooks.mkdir(parents=True, exist_ok=True)
    for hook_type in HOOK_TYPES:
        legacy = hooks / f"{hook_type}.legacy"
        legacy.write_text(SEALED_HOOK.format(hook_type=hook_type), encoding="utf-8")
        legacy.chmod(0o755)


def head_reader(path: Path):
    """read(relpath) -> text of that file at HEAD (FileNotFoundError when HEAD has none)."""
    tree = git.Repo(path).head.commit.tree

    def read(rel: str) -> str:
        try:
            return (tree / rel).data_stream.read().decode("utf-8")
        except KeyError:
            raise FileNotFoundError(rel) from None

    return read
