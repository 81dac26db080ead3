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


def _path(repo: Path, answers: bytes) -> Path | None:
    git_dir = repo / ".git"
    if not git_dir.is_dir():
        return None
    from .experiment_dir import DEST_ENV

    # The plan also depends on where the experiment is (experiment.dir's default, as
    # experiment_dir.read_answers gives it): a moved experiment never meets the entry of its old place.
    where = (os.environ.get(DEST_ENV) or str(repo.resolve())).encode("utf-8", "surrogateescape")
    key = hashlib.sha256(_code() + hashlib.sha256(answers).digest() + hashlib.sha256(where).digest()).hexdigest()[:40]
    return git_dir / DIR_NAME / f"plan-{key}.pickle"


def load(repo: Path, answers: bytes) -> tuple[dict[str, Any], Any] | None:
    """(answers mapping, plan) stored for these answers-file bytes, or None."""
    path = _path(repo, answers)
    if path is None:
        return None
    try:
        data = path.read_bytes()
    except OSError:
        return None
    collecting = gc.isenabled()
    gc.disable()  # the collector would run dozens of times over the objects being made (2-3x slower)
    try:
        stored = pickle.loads(data)  # noqa: S301 - written by store() below, in the repository's own git dir
    except Exception:  # noqa: BLE001 - partial or from elsewhere: plan again
        return None
    finally:
        if collecting:
            gc.enable()
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
        path.parent.mkdir(exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".plan-", delete=False) as handle:
            pickle.dump((design, the_plan), handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(handle.name, path)
        entries = sorted(path.parent.glob("plan-*.pickle"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
        for old in entries[KEEP:]:
            old.unlink(missing_ok=True)
    except OSError:
        pass  # a cache: a read-only or full git dir only makes the next command plan again


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
