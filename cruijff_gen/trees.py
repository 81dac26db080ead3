"""Where the verifier reads an experiment's files from (a Tree), and what git records of them:

* a path's kind as git would record it (gitformat-index(5): a regular file, 100644, or executable,
  100755, from the owner's execute bit; a symlink, 120000, the link itself and never what it points
  to; a submodule, 160000); anything else, or a path under a symlink or a file, is not a file git
  records (`git add` refuses a path beyond a symbolic link);
* whether git ignores a path (gitignore(5)), asked from git itself (`git check-ignore --no-index`:
  every .gitignore, .git/info/exclude and core.excludesFile counts, tracked files too);
* the attributes that make a checkout write other bytes than the ones git records (gitattributes(5):
  `eol`, `filter`, `working-tree-encoding`), asked from `git check-attr`.

Here: the work tree on disk (WorkTree), contents from a function (ReadTree, e.g. a file's text at
HEAD) and git's index or a commit (GitTree, for the hooks of commands/verify.py).
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Callable

from . import gitrepo


class Tree:
    """Where the files are read from: `kind(rel)` is (kind, detail) with kind one of file, exec,
    missing, symlink, submodule, other, or under-symlink / under-file (detail: that directory);
    `text(rel)` raises FileNotFoundError or UnicodeDecodeError. `ignored` and `attributes` answer
    git's questions about generated paths (empty when the tree has no git to ask)."""

    modes = True  # False: only contents are known (no existence or mode checks)

    def kind(self, rel: str) -> tuple[str, str]:
        raise NotImplementedError

    def text(self, rel: str) -> str:
        raise NotImplementedError

    def prefetch(self, rels: list[str]) -> None:
        pass

    def ignored(self, rels: list[str]) -> dict[str, tuple[str, str, str]]:
        """{path: (source file, line, pattern)} for generated paths git would ignore."""
        return {}

    def attributes(self, rels: list[str]) -> dict[str, dict[str, str]]:
        """{path: {attribute: value}} for attributes that change a generated file on checkout."""
        return {}

    def top_dirs(self) -> dict[str, set[str]]:
        """{top-level directory: names directly in it} (stale run directories)."""
        return {}


class WorkTree(Tree):
    """The files on disk under `root` (symlinks are not followed); with `git=True`, git's ignore
    and attribute rules of the repository at `root` are asked too."""

    def __init__(self, root: Path, git: bool = False):
        self.root = root
        self.git = git and (root / ".git").exists()
        self._dirs: dict[str, tuple[str, str] | None] = {}

    def _under(self, rel: str) -> tuple[str, str] | None:
        directory = rel.rpartition("/")[0]
        if not directory:
            return None
        if directory not in self._dirs:
            result = self._under(directory)
            if result is None:
                try:
                    mode = os.lstat(self.root / directory).st_mode
                except OSError:
                    mode = None
                if mode is not None and stat.S_ISLNK(mode):
                    result = ("under-symlink", directory)
                elif mode is not None and not stat.S_ISDIR(mode):
                    result = ("under-file", directory)
            self._dirs[directory] = result
        return self._dirs[directory]

    def kind(self, rel: str) -> tuple[str, str]:
        under = self._under(rel)
        if under is not None:
            return under
        try:
            mode = os.lstat(self.root / rel).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return ("missing", "")
        if stat.S_ISLNK(mode):
            return ("symlink", "")
        if not stat.S_ISREG(mode):
            return ("other", "")
        return ("exec" if mode & stat.S_IXUSR else "file", "")

    def text(self, rel: str) -> str:
        return (self.root / rel).read_bytes().decode("utf-8")

    def ignored(self, rels: list[str]) -> dict[str, tuple[str, str, str]]:
        return check_ignore(self.root, rels) if self.git else {}

    def attributes(self, rels: list[str]) -> dict[str, dict[str, str]]:
        return check_attributes(self.root, rels) if self.git else {}

    def top_dirs(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for child in sorted(self.root.iterdir()) if self.root.is_dir() else []:
            if child.is_dir() and not child.is_symlink():
                out[child.name] = {c.name for c in child.iterdir()}
                if (child / "eval").is_dir() and not (child / "eval").is_symlink():
                    out[child.name] |= {f"eval/{c.name}" for c in (child / "eval").iterdir()}
        return out


class ReadTree(Tree):
    """Contents only, from a function (e.g. a file's text at HEAD): no existence or mode checks."""

    modes = False

    def __init__(self, read: Callable[[str], str]):
        self.read = read

    def kind(self, rel: str) -> tuple[str, str]:
        return ("file", "")

    def text(self, rel: str) -> str:
        return self.read(rel)


Entries = dict[str, tuple[str, str]]  # path -> (mode, blob sha), as git records them


class Blobs:
    """Blob contents by sha, read with one `git cat-file --batch` per batch of shas."""

    def __init__(self, repo: Path):
        self.repo = repo
        self.cache: dict[str, bytes | None] = {}

    def fetch(self, shas: list[str]) -> None:
        todo = [s for s in dict.fromkeys(shas) if s not in self.cache]
        if not todo:
            return
        self.cache.update(gitrepo.blobs(self.repo, todo))

    def get(self, sha: str) -> bytes | None:
        self.fetch([sha])
        return self.cache[sha]


GIT_MODE_KINDS = {"100644": "file", "100755": "exec", "120000": "symlink", "160000": "submodule"}


class GitTree(Tree):
    """A tree as git records it (the index, or a commit): modes from git, contents from blobs."""

    def __init__(self, repo: Path, entries: Entries, blobs: Blobs):
        self.repo = repo
        self.entries = entries
        self.blobs = blobs
        self._scratch: tempfile.TemporaryDirectory | None = None

    def kind(self, rel: str) -> tuple[str, str]:
        entry = self.entries.get(rel)
        if entry is not None:
            return (GIT_MODE_KINDS.get(entry[0], "other"), "")
        parts = rel.split("/")
        for k in range(1, len(parts)):
            above = self.entries.get("/".join(parts[:k]))
            if above is not None:
                return ("under-symlink" if above[0] == "120000" else "under-file", "/".join(parts[:k]))
        return ("missing", "")

    def text(self, rel: str) -> str:
        entry = self.entries.get(rel)
        data = None if entry is None else self.blobs.get(entry[1])
        if data is None:
            raise FileNotFoundError(rel)
        return data.decode("utf-8")

    def prefetch(self, rels: list[str]) -> None:
        self.blobs.fetch([self.entries[r][1] for r in rels if r in self.entries])

    def _rules_repo(self) -> Path:
        """A scratch repository holding only this tree's .gitignore and .gitattributes files: git
        answers ignore and attribute questions from the files of a work tree. Its git commands are
        isolated from the GIT_DIR / GIT_INDEX_FILE / ... git exports to the experiment's hooks."""
        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="cruijff-verify-")
            root = Path(self._scratch.name)
            gitrepo.run(root, "init", "-q", isolate=True)
            for rel, (mode, sha) in self.entries.items():
                if rel.rpartition("/")[2] in (".gitignore", ".gitattributes") and mode in ("100644", "100755"):
                    (root / rel).parent.mkdir(parents=True, exist_ok=True)
                    (root / rel).write_bytes(self.blobs.get(sha) or b"")
        return Path(self._scratch.name)

    def ignored(self, rels: list[str]) -> dict[str, tuple[str, str, str]]:
        if not any(rel.rpartition("/")[2] == ".gitignore" for rel in self.entries):
            return {}
        return check_ignore(self._rules_repo(), rels, isolate=True)

    def attributes(self, rels: list[str]) -> dict[str, dict[str, str]]:
        if not any(rel.rpartition("/")[2] == ".gitattributes" for rel in self.entries):
            return {}
        return check_attributes(self._rules_repo(), rels, isolate=True)

    def top_dirs(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for rel in self.entries:
            top, sep, rest = rel.partition("/")
            if sep:
                out.setdefault(top, set()).add(rest.split("/", 1)[0])
                if rest.startswith("eval/"):  # as WorkTree.top_dirs: the names in <run>/eval/ too
                    out[top].add("eval/" + rest[5:].split("/", 1)[0])
        return out

    def close(self) -> None:
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None


def check_ignore(repo: Path, rels: list[str], isolate: bool = False) -> dict[str, tuple[str, str, str]]:
    """`git check-ignore --no-index`: which of `rels` the ignore rules of the work tree at `repo`
    (its .gitignore files, .git/info/exclude, core.excludesFile) ignore, tracked or not.
    `isolate`: `repo` is not the repository a hook runs for (gitrepo.call)."""
    result = gitrepo.call(repo, "check-ignore", "--no-index", "-v", "-z", "--stdin",
                          input="".join(f"{r}\0" for r in rels).encode("utf-8"), isolate=isolate)
    if result.returncode not in (0, 1):
        return {}
    fields = result.stdout.decode("utf-8", "replace").split("\0")
    out = {}
    for source, line, pattern, rel in zip(fields[0::4], fields[1::4], fields[2::4], fields[3::4]):
        if rel and not pattern.startswith("!"):
            out[rel] = (source, line, pattern)
    return out


ATTRIBUTES = ("eol", "filter", "working-tree-encoding")


def check_attributes(repo: Path, rels: list[str], isolate: bool = False, cached: bool = False) -> dict[str, dict[str, str]]:
    """The attributes that make git write a file other than what it records (CRLF line ends, a
    filter, another encoding), for each of `rels` that has one. `isolate`: as check_ignore's."""
    result = gitrepo.call(repo, "check-attr", *(["--cached"] if cached else []), "-z", "--stdin", *ATTRIBUTES,
                          input="".join(f"{r}\0" for r in rels).encode("utf-8"), isolate=isolate)
    if result.returncode != 0:
        return {}
    fields = result.stdout.decode("utf-8", "replace").split("\0")
    out: dict[str, dict[str, str]] = {}
    for rel, attribute, value in zip(fields[0::3], fields[1::3], fields[2::3]):
        if value in ("unspecified", "unset") or (attribute == "eol" and value == "lf"):
            continue
        out.setdefault(rel, {})[attribute] = value
    return out
