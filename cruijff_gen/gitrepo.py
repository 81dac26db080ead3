"""Commit stage, and the one git runner: every git command cruijff_gen runs goes through run() or
call() (cruijff_gen/job/ aside: the training jobs' provenance asks git itself and never fails a job
over it).

How the runner runs git:

* `git -C <repo>`, never the process's working directory: relative paths in the arguments are the
  repository's, and a missing directory is git's one-line error, not an OSError. `repo=None` (only
  `git merge-file` of temporary files) runs outside any repository.
* `--no-optional-locks` on every command. The only optional lock git takes is the index refresh of
  a `git status` or `git diff`, which cruijff_gen never needs (its commits stage with `git add -A`,
  which refreshes as a required lock, as do checkout, read-tree, update-index and update-ref) and
  which would contend with the index lock of the `git commit` running a hook, or of jobs asking
  `git status` for their provenance while `submit` commits.
* The environment is inherited (a hook's GIT_INDEX_FILE is the index being committed; GIT_CONFIG_*
  and identities are the user's), `env` adds to it (the fallback identity). `isolate=True` drops the
  GIT_* variables a hook inherits from the experiment's git (GIT_DIR, GIT_INDEX_FILE, GIT_WORK_TREE,
  GIT_OBJECT_DIRECTORY, ...), keeping GIT_CONFIG*, GIT_AUTHOR_* and GIT_COMMITTER_*: for commands
  meant for another repository (the scratch repository the commit hook answers ignore rules in).
* Output is bytes, exactly as git wrote it (no newline stripped: head_text returns file bytes);
  text() decodes UTF-8 with surrogateescape (what a non-UTF-8 path name survives). Listings of paths
  use -z and are split on NUL, never parsed from quoted lines.
* A failure is a GitError naming the command and the repository, with the first line of git's
  stderr (`git commit --no-verify ... in /exp failed: fatal: ...`); call() returns the Result
  instead, for the commands whose exit status is the answer (`git var`, `git rev-parse --verify`,
  `git merge-file`'s conflict count). git missing from PATH is a GitError too.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import GitError

# Used only when the user has no git identity configured (fresh CI machines, containers).
FALLBACK_IDENTITY = {"name": "cruijff_gen", "email": "cruijff_gen@localhost"}

# --------------------------------------------------------------------------- the runner
SHOWN_ARGS = 60  # characters of the arguments a failure names (a checkout may name thousands of paths)


@dataclass(frozen=True)
class Result:
    """What one git command did: its arguments (after `git`), exit status and output (bytes)."""

    repo: Path | None
    args: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def text(self) -> str:
        return decode(self.stdout)

    def failure(self) -> str:
        """One line: the command, where it ran, and the first line of git's stderr."""
        shown = " ".join(self.args)
        if len(shown) > SHOWN_ARGS:
            shown = shown[:SHOWN_ARGS].rstrip() + " ..."
        lines = [line.strip() for line in decode(self.stderr).splitlines() if line.strip()]
        where = f" in {self.repo}" if self.repo is not None else ""
        return f"git {shown}{where} failed: {lines[0] if lines else f'exit status {self.returncode}'}"


def decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def clean_env() -> dict[str, str]:
    """The environment without the GIT_* variables that point git at the repository a hook runs
    for (GIT_DIR, GIT_INDEX_FILE, ...); the user's configuration and identity stay."""
    keep = ("GIT_CONFIG", "GIT_AUTHOR", "GIT_COMMITTER")
    return {k: v for k, v in os.environ.items() if not k.startswith("GIT_") or k.startswith(keep)}


def call(repo: Path | None, *args: str, input: bytes | None = None, env: Mapping[str, str] | None = None, isolate: bool = False) -> Result:
    """Run `git <args>` in `repo` (see the module docstring); the Result whatever the exit status."""
    argv = ["git", "--no-optional-locks", *(("-C", str(repo)) if repo is not None else ()), *args]
    environment = {**(clean_env() if isolate else os.environ), **(env or {})}
    try:
        proc = subprocess.run(argv, input=input, capture_output=True, env=environment)
    except OSError as exc:
        raise GitError(f"cannot run git ({exc.strerror or exc}): is git installed and on PATH?") from None
    return Result(repo, tuple(args), proc.returncode, proc.stdout, proc.stderr)


def run(repo: Path | None, *args: str, input: bytes | None = None, env: Mapping[str, str] | None = None, isolate: bool = False) -> bytes:
    """Run `git <args>` in `repo`; its stdout, or GitError when it fails."""
    result = call(repo, *args, input=input, env=env, isolate=isolate)
    if not result.ok:
        raise GitError(result.failure())
    return result.stdout


def text(repo: Path | None, *args: str, input: bytes | None = None, env: Mapping[str, str] | None = None, isolate: bool = False) -> str:
    """run(), its stdout decoded (nothing stripped)."""
    return decode(run(repo, *args, input=input, env=env, isolate=isolate))


def nul_list(out: bytes) -> list[str]:
    """The records of a -z listing."""
    return [decode(record) for record in out.split(b"\0") if record]


# --------------------------------------------------------------------------- the experiment's repository
def is_repo_root(path: Path) -> bool:
    return (path / ".git").exists()


def identity_env(path: Path) -> dict[str, str]:
    """Fallback author/committer only where git itself finds no identity (asked through `git var`,
    which honours GIT_CONFIG_GLOBAL and the environment like the commit will)."""
    env = {}
    for role in ("AUTHOR", "COMMITTER"):
        if not call(path, "var", f"GIT_{role}_IDENT").ok:
            env[f"GIT_{role}_NAME"] = FALLBACK_IDENTITY["name"]
            env[f"GIT_{role}_EMAIL"] = FALLBACK_IDENTITY["email"]
    return env


def identity_note(path: Path) -> str | None:
    """When git finds no identity in the repository at `path`: which one its commits got, and how
    to set yours (one line)."""
    if not identity_env(path):
        return None
    who = f"{FALLBACK_IDENTITY['name']} <{FALLBACK_IDENTITY['email']}>"
    return (f"no git identity is configured, so the commit's author is {who}; set yours with "
            "`git config --global user.name 'Your Name'` and `git config --global user.email you@example.edu` "
            "(then `git commit --amend --no-verify --reset-author --no-edit` in the experiment makes it yours)")


def open_or_init(path: Path) -> None:
    """Make `path` a repository unless it is one, on the user's init.defaultBranch (else main)."""
    if is_repo_root(path):
        return
    path.mkdir(parents=True, exist_ok=True)
    branch = call(path, "config", "--get", "init.defaultBranch").text.strip() or "main"
    run(path, "init", "--quiet", f"--initial-branch={branch}")


def head(path: Path) -> str | None:
    """HEAD's commit, or None when `path` is no repository root or has no commit yet."""
    if not is_repo_root(path):
        return None
    result = call(path, "rev-parse", "--quiet", "--verify", "HEAD^{commit}")
    return result.text.strip() if result.ok else None


def commit_all(path: Path, message: str) -> str | None:
    """Stage everything under `path` and commit it; returns the new commit's sha, or None when
    there was nothing to commit."""
    open_or_init(path)
    if head(path) is None:
        # A first scaffold killed while git ran may have left its index lock; nothing else can
        # hold it in a repository without a commit that this scaffold is creating.
        (Path(text(path, "rev-parse", "--absolute-git-dir").strip()) / "index.lock").unlink(missing_ok=True)
        first = _first_commit(path, message)
        if first is not None:
            return first
    run(path, "add", "-A", "--", ".")
    if head(path) is not None:
        staged = call(path, "diff-index", "--cached", "--quiet", "HEAD", "--")
        if staged.returncode == 0:
            return None
        if staged.returncode != 1:
            raise GitError(staged.failure())
    # Hooks are skipped: the tree was just verified in-process, and the experiment's own
    # pre-commit hook may not be installed on this machine yet.
    run(path, "commit", "--no-verify", "--quiet", "-m", message, env=identity_env(path))
    return text(path, "rev-parse", "HEAD").strip()


def _quote_path(rel: str) -> str:
    if not any(c in rel for c in '"\\\n') and not rel.startswith('"'):
        return rel
    return '"' + rel.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


IMPORT_REF = "refs/cruijff-gen/import"


def _first_commit(path: Path, message: str) -> str | None:
    """The first commit of a scaffold written with `git fast-import`: one pack file instead of a
    loose object per file (9,000 files at 1,000 runs). The index is filled from the new commit
    before the branch points to it, so a kill leaves either no commit (rerunning the copy
    finishes it) or the complete one. None when the tree holds something other than regular
    files (the plain `git add` + `git commit` path handles those)."""
    listed = nul_list(run(path, "ls-files", "--cached", "--others", "--exclude-standard", "-z"))
    files = sorted({rel for rel in listed if os.path.lexists(path / rel)})
    if not files:
        return None
    env = identity_env(path)
    idents = {role: text(path, "var", f"GIT_{role}_IDENT", env=env).strip() for role in ("AUTHOR", "COMMITTER")}
    branch = text(path, "symbolic-ref", "HEAD").strip()
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
    message_bytes = (message.rstrip("\n") + "\n").encode("utf-8")  # as `git commit` stores it
    chunks.append(
        f"commit {IMPORT_REF}\nauthor {idents['AUTHOR']}\ncommitter {idents['COMMITTER']}\n".encode("utf-8", "surrogateescape")
        + b"data %d\n%s\n" % (len(message_bytes), message_bytes)
        + "".join(entries).encode("utf-8", "surrogateescape")
        + b"\ndone\n"
    )
    run(path, "fast-import", "--quiet", "--done", "--force", input=b"".join(chunks))
    sha = text(path, "rev-parse", IMPORT_REF).strip()
    run(path, "read-tree", sha)  # the index says what the commit says ...
    call(path, "update-index", "-q", "--refresh")  # (stat information only: a file changed since is found by the next add)
    run(path, "update-ref", "-d", IMPORT_REF)
    run(path, "update-ref", branch, sha)  # ... before the branch points to it
    return sha


def files_in_commit(path: Path, sha: str) -> int:
    """How many files the commit `sha` changed (what `git show --stat` counts)."""
    return len(nul_list(run(path, "diff-tree", "--no-commit-id", "--name-only", "-r", "--root", "-z", sha)))


def restore(path: Path, *files: str) -> None:
    """Put files back as HEAD has them."""
    run(path, "checkout", "HEAD", "--", *files)


def head_text(path: Path, rel: str) -> str | None:
    """A file's content at HEAD (exactly: nothing stripped), or None when HEAD has no such file."""
    result = call(path, "cat-file", "blob", f"HEAD:{rel}")
    return result.text if result.ok else None


def restore_tracked(path: Path, keep: tuple[str, ...] = ()) -> list[str]:
    """Put every tracked file that differs from HEAD (modified or deleted) back as HEAD has it,
    except `keep`; returns the paths restored."""
    paths = [p for p in nul_list(run(path, "diff", "--name-only", "-z", "HEAD")) if p not in keep]
    if paths:
        run(path, "checkout", "HEAD", "--", *paths)
    return paths


def merge_text(ours: str, base: str, theirs: str, labels: tuple[str, str, str]) -> tuple[str, bool]:
    """3-way merge of one file's text with `git merge-file`: (merged text, had conflicts)."""
    with tempfile.TemporaryDirectory(prefix="cruijff-merge-") as tmp:
        names = []
        for name, content in zip(("ours", "base", "theirs"), (ours, base, theirs)):
            file = Path(tmp, name)
            file.write_bytes(content.encode("utf-8"))
            names.append(str(file))
        result = call(None, "merge-file", "-p", "-L", labels[0], "-L", labels[1], "-L", labels[2], *names)
    if result.returncode < 0 or result.returncode > 127:  # else the number of conflicts
        raise GitError(result.failure())
    return result.text, result.returncode > 0


def unmerged(path: Path) -> list[str]:
    """Paths with unmerged index entries (`<mode> <sha> <stage>\\t<path>` records of `ls-files -u -z`)."""
    return sorted({record.split("\t", 1)[1] for record in nul_list(run(path, "ls-files", "-u", "-z")) if "\t" in record})


def status_paths(out: bytes) -> list[str]:
    """The paths of `git status --porcelain -z`: `XY <path>` records, a rename's or copy's
    `XY <new>` followed by a record of its old path."""
    records = out.split(b"\0")
    paths = []
    i = 0
    while i < len(records):
        record = records[i]
        i += 1
        if len(record) < 4:
            continue
        paths.append(decode(record[3:]))
        if record[:1] in b"RC" or record[1:2] in b"RC":
            i += 1  # the old path
    return paths


def changed(path: Path) -> list[str]:
    """Paths that differ from HEAD (modified, added, deleted, untracked), as `git status` sees them."""
    return sorted(status_paths(run(path, "status", "--porcelain", "-z", "--untracked-files=all")))


def tree_entries(path: Path, commit: str = "HEAD") -> dict[str, tuple[str, str]]:
    """Every file of a commit's tree: path -> (mode, object id), from one `git ls-tree -r -z`
    (mode 160000: a submodule's commit, else a blob)."""
    entries = {}
    for record in nul_list(run(path, "ls-tree", "-r", "-z", "--full-tree", commit)):
        info, _, rel = record.partition("\t")
        mode, _, sha = info.split()
        entries[rel] = (mode, sha)
    return entries


def blobs(path: Path, shas: Iterable[str]) -> dict[str, bytes | None]:
    """Blob contents by id, from one `git cat-file --batch` (None: no such object). Naming blobs by
    id: resolving `HEAD:<path>` for each of thousands of files costs seconds."""
    todo = list(dict.fromkeys(shas))
    if not todo:
        return {}
    out = run(path, "cat-file", "--batch", input="".join(f"{sha}\n" for sha in todo).encode())
    found: dict[str, bytes | None] = {}
    pos = 0
    for sha in todo:  # one answer per line asked, in order
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        pos = end + 1
        if len(header) < 3:  # `<sha> missing`
            found[sha] = None
            continue
        size = int(header[2])
        found[sha] = out[pos:pos + size]
        pos += size + 1
    return found


def head_reader(path: Path, prefetch: Iterable[str] = ()) -> Callable[[str], str]:
    """read(relpath) -> text of that file in the commit HEAD is now (FileNotFoundError when it
    has none). The files of `prefetch` are read at once (one `git cat-file --batch`), others when
    asked."""
    entries = tree_entries(path, text(path, "rev-parse", "--verify", "HEAD^{commit}").strip())
    ids = {rel: sha for rel, (mode, sha) in entries.items() if mode != "160000"}
    cache = blobs(path, (ids[rel] for rel in prefetch if rel in ids))

    def read(rel: str) -> str:
        sha = ids.get(rel)
        if sha is not None and sha not in cache:
            cache.update(blobs(path, [sha]))
        data = None if sha is None else cache[sha]
        if data is None:
            raise FileNotFoundError(rel)
        return data.decode("utf-8")

    return read


# --------------------------------------------------------------------------- the hooks
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
    """The hooks directory of the repository `path` is in (git searches the parent directories):
    where pre-commit installs its scripts, the common git dir's (a linked worktree's too; pre-commit
    refuses to install where core.hooksPath is set)."""
    return Path(path, text(path, "rev-parse", "--git-common-dir").rstrip("\n")).resolve() / "hooks"


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
