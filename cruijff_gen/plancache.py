"""The plan of a design, kept in the experiment's git directory between commands.

Parsing and planning a design costs time in proportion to its size (about 1 s at 1,000 runs: the
answers file's YAML, then the plan), while a commit of one file or an update of one run should cost
little more than the change. Every command that plans a design found in an experiment (the render
task, `finish-update`, `cruijff-gen verify`, the git hooks) first looks here, and stores what it
planned. An entry is keyed by the exact bytes of the answers file, by where the experiment is
(the default of experiment.dir) and by this package's code
(its files' contents, wherever it runs from: Copier runs each task from a fresh clone of the
template; and the Python version), so a changed design, a
changed or reinstalled cruijff_gen, or a user model catalog (a file outside the experiment: such
designs are never kept) can never meet an old entry. The entries are pickles in `.git/cruijff_gen/`,
written by cruijff_gen only (anyone who can write there can also rewrite `.git/hooks`); the newest
few are kept.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import os
import pickle
import sys
import tempfile
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parent
DIR_NAME = "cruijff_gen"
KEEP = 4  # entries kept: the designs of the last commits (an update needs the old and the new one)


@functools.lru_cache(maxsize=1)
def _code() -> bytes:
    h = hashlib.sha256(sys.version.encode())
    for path in sorted(PACKAGE.rglob("*")):
        if "__pycache__" in path.parts or not path.is_file():
            continue
        data = path.read_bytes()
        h.update(f"{path.relative_to(PACKAGE)}\0{len(data)}\0".encode())
        h.update(data)
    return h.digest()


def _where(repo: Path) -> bytes:
    from .experiment_dir import DEST_ENV

    # The plan also depends on where the experiment is (experiment.dir's default, as
    # experiment_dir.read_answers gives it): a moved experiment never meets the entry of its old place.
    where = (os.environ.get(DEST_ENV) or str(repo.resolve())).encode("utf-8", "surrogateescape")
    return hashlib.sha256(where).digest()


def key(repo: Path, answers: bytes) -> str:
    """The store's key of these answers-file bytes, in this place, for this code."""
    return hashlib.sha256(_code() + hashlib.sha256(answers).digest() + _where(repo)).hexdigest()[:40]


def _dir(repo: Path) -> Path | None:
    git_dir = repo / ".git"
    return git_dir / DIR_NAME if git_dir.is_dir() else None


def _path(repo: Path, answers: bytes) -> Path | None:
    where = _dir(repo)
    return None if where is None else where / f"plan-{key(repo, answers)}.pickle"


def _unpickle(data: bytes) -> Any:
    """pickle.loads with the collector off (it would run dozens of times over the objects being
    made: 2-3x slower); None when the data does not load (partial or from elsewhere)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        return pickle.loads(data)  # noqa: S301 - written by this module, in the repository's own git dir
    except Exception:  # noqa: BLE001 - partial or from elsewhere: plan again
        return None
    finally:
        if collecting:
            gc.enable()


def load(repo: Path, answers: bytes) -> tuple[dict[str, Any], Any] | None:
    """(answers mapping, plan) stored for these answers-file bytes, or None."""
    path = _path(repo, answers)
    return None if path is None else _load_path(path)


def load_key(repo: Path, plan_key: str) -> tuple[dict[str, Any], Any] | None:
    """What load() gives, by the key (see key())."""
    where = _dir(repo)
    return None if where is None else _load_path(where / f"plan-{plan_key}.pickle")


def _load_path(path: Path) -> tuple[dict[str, Any], Any] | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    stored = _unpickle(data)
    if not (isinstance(stored, tuple) and len(stored) == 2 and isinstance(stored[0], dict)):
        return None
    try:
        os.utime(path)  # recently used: kept longest
    except OSError:
        pass
    return stored


def store(repo: Path, answers: bytes, design: dict[str, Any], the_plan: Any) -> None:
    if design.get("model_catalog"):
        return  # the plan also depends on that file, which is not part of the key
    path = _path(repo, answers)
    if path is None:
        return
    try:
        _write(path, pickle.dumps((design, the_plan), protocol=pickle.HIGHEST_PROTOCOL))
        entries = sorted(path.parent.glob("plan-*.pickle"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
        for old in entries[KEEP:]:
            old.unlink(missing_ok=True)
            _runs_path(old).unlink(missing_ok=True)
    except OSError:
        pass  # a cache: a read-only or full git dir only makes the next command plan again


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".tmp-", delete=False) as handle:
        handle.write(data)
    os.replace(handle.name, path)


# --------------------------------------------------------------------------- one run's files
# A commit of one file needs the expected values of that file only: beside a kept plan, the
# generated files' entries (filekinds.Entry) of each run, pickled run by run behind an index, so
# that a hook reads one run's entries (~10 KB) instead of the whole plan (7.4 MB at 1,000 runs).
_HEADER = 8  # bytes: the length of the pickled index that follows


def _runs_path(plan_path: Path) -> Path:
    return plan_path.with_name("runs-" + plan_path.name.removeprefix("plan-"))


def store_runs(repo: Path, plan_key: str, by_run: dict[str, list[Any]]) -> None:
    """Keep `by_run` (run name -> its generated files' entries) beside the plan of `plan_key`
    (only while that plan is kept: the two are removed together)."""
    where = _dir(repo)
    plan_path = None if where is None else where / f"plan-{plan_key}.pickle"
    if plan_path is None or not plan_path.exists():
        return
    parts, index, offset = [], {}, 0
    for name, entries in by_run.items():
        data = pickle.dumps(entries, protocol=pickle.HIGHEST_PROTOCOL)
        index[name] = (offset, len(data))
        parts.append(data)
        offset += len(data)
    head = pickle.dumps(index, protocol=pickle.HIGHEST_PROTOCOL)
    try:
        _write(_runs_path(plan_path), len(head).to_bytes(_HEADER, "little") + head + b"".join(parts))
    except OSError:
        pass


def load_runs(repo: Path, plan_key: str, names: set[str]) -> tuple[list[str], dict[str, list[Any]]] | None:
    """(every run's name, in the plan's order; {name: entries} of the runs asked for that exist),
    or None when nothing is kept for `plan_key`."""
    where = _dir(repo)
    if where is None:
        return None
    try:
        with open(where / f"runs-{plan_key}.pickle", "rb") as handle:
            index = _unpickle(handle.read(int.from_bytes(handle.read(_HEADER), "little")))
            if not isinstance(index, dict):
                return None
            body = handle.tell()
            out = {}
            for name in sorted(names & index.keys()):
                offset, length = index[name]
                handle.seek(body + offset)
                entries = _unpickle(handle.read(length))
                if not isinstance(entries, list):
                    return None
                out[name] = entries
    except (OSError, ValueError, TypeError):
        return None
    return list(index), out


# --------------------------------------------------------------------------- verified trees
# The git trees (by object id) that passed the hook's check of every generated file with this code
# in this place: a commit on top of one needs only its changes checked (commands/verify.py).
VERIFIED = "verified-trees"
VERIFIED_KEEP = 64


def _tree_key(repo: Path, tree: str) -> str:
    return hashlib.sha256(_code() + _where(repo) + tree.encode("ascii", "replace")).hexdigest()[:40]


def verified(repo: Path, tree: str) -> str | None:
    """The plan key of `tree` when it passed the full check, else None."""
    where = _dir(repo)
    if where is None:
        return None
    try:
        lines = (where / VERIFIED).read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    wanted = _tree_key(repo, tree)
    for line in reversed(lines):
        tree_key, _, plan_key = line.partition(" ")
        if tree_key == wanted and plan_key:
            return plan_key
    return None


def mark_verified(repo: Path, tree: str, plan_key: str) -> None:
    """Record that `tree` (whose answers file has the plan `plan_key`) passed the full check."""
    where = _dir(repo)
    if where is None:
        return
    line = f"{_tree_key(repo, tree)} {plan_key}"
    try:
        lines = (where / VERIFIED).read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError):
        lines = []
    if line in lines:
        return
    try:
        _write(where / VERIFIED, "".join(f"{x}\n" for x in [*lines, line][-VERIFIED_KEEP:]).encode("ascii"))
    except OSError:
        pass


def plan_of(repo: Path, answers: bytes, design: dict[str, Any] | None = None) -> tuple[dict[str, Any], Any]:
    """(answers mapping, plan) of these answers-file bytes: from the store, else parsed (`design`:
    the bytes already loaded) and planned, and stored. Raises what loading and parsing raise."""
    found = load(repo, answers)
    if found is not None:
        return found
    from .experiment_dir import ANSWERS_FILE, design_from_text
    from .parse import parse
    from .plan import plan

    if design is None:
        design = design_from_text(answers, ANSWERS_FILE)
    the_plan = plan(parse(design))
    store(repo, answers, design, the_plan)
    return design, the_plan


# --------------------------------------------------------------------------- an update's summary
SUMMARY_MARK = "rendered-summary"


def _summary_line(repo: Path, answers: bytes, summary: bytes) -> str:
    return f"{key(repo, answers)} {hashlib.sha256(summary).hexdigest()}"


def mark_summary(repo: Path, answers: bytes, summary: bytes) -> None:
    """The update's render task made the answers file `answers` with every design section taken
    from the summary `summary` (commands/update.py): finish need not parse the summary again to
    know that the two agree. One update at a time (its lock), so one line."""
    where = _dir(repo)
    if where is None:
        return
    try:
        where.mkdir(exist_ok=True)
        (where / SUMMARY_MARK).write_text(_summary_line(repo, answers, summary), encoding="ascii")
    except OSError:
        pass  # finish then parses the summary


def summary_marked(repo: Path, answers: bytes, summary: bytes) -> bool:
    """Whether mark_summary recorded exactly these bytes of both files (and this code, this place);
    the mark is used once."""
    where = _dir(repo)
    if where is None:
        return False
    try:
        line = (where / SUMMARY_MARK).read_text(encoding="ascii")
        (where / SUMMARY_MARK).unlink()
    except (OSError, UnicodeDecodeError):
        return False
    return line == _summary_line(repo, answers, summary)
