"""The base of an update's 3-way merge: what the *old* design generated with the *old* template.

When the template version did not change (the usual update: the summary changed), the base is the
old design rendered by the current code, which is exact. When it did change, the base must come
from the old version's code: `copier update` runs our task in a throw-away render of the old
template version, and that task keeps a copy of its own `cruijff_gen` package here (a few dozen
small files, instead of rendering thousands), keyed by the template version (`_src_path` and
`_commit` of the answers file it rendered: there the answers file holds only these, which spares
Copier dumping the whole design into each throw-away copy; versions before that keyed it by the
whole answers text, which is looked up too). finish-update looks it up by the answers file of the
last commit and runs it in a subprocess:

    PYTHONPATH=<stored> python -m cruijff_gen base-render ANSWERS_FILE   ->  {path: text} as JSON

`base-render` is the interface between template versions: keep it stable.

The store is one private directory per user under the system's temporary directory; entries are
removed by the update that used them, and entries older than a day by any later update.

Copier's own diff. After rendering the old version (our answers file alone), Copier commits that
copy and diffs it against the experiment's tree (`git diff-tree -p`) to carry the user's edits
over: with thousands of generated files that diff adds every one of them (18 MB at 1,000 runs),
which Copier reads and pipes to `git apply`, all to no effect (the files exist; finish-update
does the real merge). So the old copy's render notes where it is (note_old_copy), and start-update,
which Copier runs next in the experiment, gives that copy a git index holding the experiment's
tree with every file but the ones rendered there marked skip-worktree, and a first commit of that
tree (prepare_old_copy): Copier's `git add` and commit then record the experiment's tree plus its
own answers file, and its diff (and its commit's summary) is that one file. Nothing is written
to the copy's work tree (Copier's removal of files the new version no longer has compares the
copies' directories).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .bytecode import CACHE_PREFIX
from .bytecode import store as _store
from .errors import GitError

# gitrepo, subprocess and yamlio are imported where used: Copier's throw-away renders run keep_code
# and note_old_copy, which need none of them (about 40 ms of imports in each).

MAX_AGE_S = 24 * 3600
PACKAGE = Path(__file__).resolve().parent


# How the throw-away renders' answers file writes both entries (to_json): a double-quoted text without
# escapes is its characters as they stand, in YAML as in JSON; anything else is read as YAML.
_PLAIN_ENTRY = re.compile(r'(_commit|_src_path): "([\x20-\x21\x23-\x5b\x5d-\x7e]+)"\r?\n?')


def _version(answers_text: str) -> tuple[str, str] | None:
    """(_src_path, _commit) of an answers file: the template version it was rendered from. Read
    from those two top-level entries alone (a full answers file is large; the throw-away renders'
    holds nothing else, see the answers file's template)."""
    lines = answers_text.splitlines(keepends=True)
    picked, keep = [], False
    for line in lines:
        if not line.startswith((" ", "\t")):
            keep = line.startswith(("_commit:", "_src_path:"))
        if keep:
            picked.append(line)
    plain = dict(m.groups() for m in map(_PLAIN_ENTRY.fullmatch, picked) if m)
    if len(plain) == len(picked) == 2:
        return plain["_src_path"], plain["_commit"]
    from . import yamlio

    try:
        data = yamlio.load("".join(picked))
    except Exception:  # noqa: BLE001 - an unusual layout: read the whole file
        try:
            data = yamlio.load(answers_text)
        except Exception:  # noqa: BLE001
            return None
    if not isinstance(data, dict) or not data.get("_src_path") or not data.get("_commit"):
        return None
    return str(data["_src_path"]), str(data["_commit"])


def _entries(store: Path, answers_text: str) -> list[Path]:
    """Where the code for this answers file's template version is kept: by its version, and (how
    versions before that keyed it) by the whole answers text."""
    version = _version(answers_text)
    keys = [hashlib.sha256("\0".join(version).encode("utf-8")).hexdigest()[:40]] if version else []
    keys.append(hashlib.sha256(answers_text.encode("utf-8")).hexdigest()[:40])
    return [store / f"code-{key}" for key in keys]


def keep_code(answers_text: str) -> None:
    """Called in Copier's throw-away renders: keep this template version's package."""
    store = _store()
    if store is None or not answers_text.strip():
        return  # (Copier's render of the new version may leave its answers file empty: not needed)
    target = _entries(store, answers_text)[0]
    if (target / PACKAGE.name).is_dir():
        return
    tmp = Path(tempfile.mkdtemp(dir=store, prefix=".code-"))
    try:
        shutil.copytree(PACKAGE, tmp / PACKAGE.name, ignore=shutil.ignore_patterns("__pycache__"))
        (tmp / "answers.yml").write_text(answers_text, encoding="utf-8")  # what it is for (to inspect)
        tmp.rename(target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another update stored the same version first


def old_rendering(answers_text: str) -> dict[str, str] | None:
    """The old version's rendering of the old design (its stored package run on the answers
    file of the last commit), or None when that version's package is not stored or fails."""
    store = _store()
    if store is None:
        return None
    code = next((entry for entry in _entries(store, answers_text) if (entry / PACKAGE.name).is_dir()), None)
    if code is None:
        return None
    import subprocess

    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".yml", dir=store, delete=False) as handle:
        handle.write(answers_text)
    try:
        result = subprocess.run(
            [sys.executable, "-m", PACKAGE.name, "base-render", handle.name],
            env={**os.environ, "PYTHONPATH": str(code)}, capture_output=True, text=True,
        )
    finally:
        os.unlink(handle.name)
    if result.returncode != 0:
        return None
    try:
        files = json.loads(result.stdout)
    except ValueError:
        return None
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        return None
    return files


OLD_COPY_PREFIX = "copier._main.old_copy."  # the directory Copier renders the old version into


def _run(repo: Path, *args: str, input: bytes | None = None) -> bytes:
    """git in the experiment or the old copy, never in a repository a hook's GIT_* variables name."""
    from . import gitrepo

    return gitrepo.run(repo, *args, input=input, isolate=True)


def note_old_copy(copy: Path, copier_pid: int) -> None:
    """Called in the throw-away renders: in the old version's, say where it is, for start-update."""
    store, copy = _store(), copy.resolve()
    if store is None or not copy.name.startswith(OLD_COPY_PREFIX):
        return
    try:
        (store / f"old-copy-{copier_pid}").write_text(str(copy), encoding="utf-8")
    except OSError:
        pass


def prepare_old_copy(repo: Path, copier_pid: int) -> None:
    """Called by start-update in the experiment: give the old copy Copier rendered (see
    note_old_copy) the experiment's tree as its index (module docstring). Any problem leaves the
    copy as Copier made it (its diff is then large, not wrong)."""
    store = _store()
    if store is None:
        return
    pointer = store / f"old-copy-{copier_pid}"
    try:
        copy = Path(pointer.read_text(encoding="utf-8"))
        pointer.unlink()
    except OSError:
        return
    if not copy.name.startswith(OLD_COPY_PREFIX) or not copy.is_dir() or (copy / ".git").exists():
        return
    try:
        rendered = {str((Path(top) / name).relative_to(copy)) for top, dirs, names in os.walk(copy) for name in names}
        tree = _run(repo, "write-tree").decode().strip()  # what Copier diffs against: the experiment's index
        objects = Path(repo, _run(repo, "rev-parse", "--git-common-dir").decode().strip(), "objects").resolve()
        _run(copy, "init", "-q")
        _run(copy, "config", "gc.auto", "0")  # Copier deletes the copy right after: never a background gc in it
        (copy / ".git" / "objects" / "info" / "alternates").write_text(f"{objects}\n", encoding="utf-8")
        _run(copy, "read-tree", tree)
        paths = [p for p in _run(copy, "ls-files", "-z").split(b"\0") if p and p.decode("utf-8", "surrogateescape") not in rendered]
        _run(copy, "update-index", "-z", "--skip-worktree", "--stdin", input=b"\0".join(paths) + b"\0")
        # ...and a first commit of that tree: Copier's own first commit in the copy (`commit -am`,
        # without -q) prints a summary of what it changes, which for a root commit means reading
        # every blob of the tree (0.5 s at 1,000 runs); as a child of this one it is the answers file
        base = _run(copy, "-c", "user.name=cruijff-gen", "-c", "user.email=cruijff-gen@localhost", "commit-tree", tree,
                    "-m", "the experiment's tree (cruijff-gen start-update)").decode().strip()
        _run(copy, "update-ref", "HEAD", base)
    except (OSError, GitError, ValueError):
        shutil.rmtree(copy / ".git", ignore_errors=True)


def discard(*answers_texts: str) -> None:
    """Forget the entries for these answers files, and every entry older than a day (the kept
    bytecode's too, bytecode.py)."""
    store = _store()
    if store is None:
        return
    for text in answers_texts:
        for entry in _entries(store, text):
            shutil.rmtree(entry, ignore_errors=True)
    now = time.time()
    for entry in [*store.glob("code-*"), *store.glob("old-copy-*"), *store.glob(f"{CACHE_PREFIX}*/*")]:
        try:
            if now - entry.stat().st_mtime > MAX_AGE_S:
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink()
        except OSError:
            pass
