"""The base of an update's 3-way merge: what the *old* design generated, with the *old* template.

`copier update` renders the old template version into a throw-away directory first; our task there
(running that old version's code) stores its rendering here as one file, keyed by the answers file
it rendered, instead of writing thousands of files Copier would then have to commit and delete.
`finish-update`, in the experiment, looks the base up by the answers file of the last commit. When it
is not here (an experiment made by a template version that did not store it), the base is rendered
from the old design with the current code, which is exact when the template version did not change.

The store is one private directory per user under the system's temporary directory; entries are
removed once an update used them, and entries older than a day by any later update.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
import time
from pathlib import Path

MAX_AGE_S = 24 * 3600


def _store() -> Path | None:
    """The per-user directory (created 0700), or None when it is not safely ours."""
    path = Path(tempfile.gettempdir()) / f"cruijff_gen-{os.getuid()}"
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        info = path.lstat()
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        return None
    return path


def _key(answers_text: str) -> str:
    return hashlib.sha256(answers_text.encode("utf-8")).hexdigest()[:40]


def save(answers_text: str, files: dict[str, str]) -> None:
    store = _store()
    if store is None:
        return
    fd, tmp = tempfile.mkstemp(dir=store, prefix=".base-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(files, handle, ensure_ascii=False)
        os.replace(tmp, store / f"base-{_key(answers_text)}.json")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def take(answers_text: str) -> dict[str, str] | None:
    """The stored base for this answers file (removed from the store), or None."""
    store = _store()
    if store is None:
        return None
    path = store / f"base-{_key(answers_text)}.json"
    try:
        files = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    finally:
        path.unlink(missing_ok=True)
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        return None
    return files


def discard(answers_text: str) -> None:
    """Forget the entry for this answers file, and every entry older than a day."""
    store = _store()
    if store is None:
        return
    (store / f"base-{_key(answers_text)}.json").unlink(missing_ok=True)
    now = time.time()
    for entry in store.glob("base-*.json"):
        try:
            if now - entry.stat().st_mtime > MAX_AGE_S:
                entry.unlink()
        except OSError:
            pass
