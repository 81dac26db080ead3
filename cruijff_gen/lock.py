"""One update at a time per experiment: a lock file in the experiment's .git directory.

`copier update` runs our "before" migration first (lock), then renders and merges, then our "after"
migration (finish-update: unlock). The lock holds the PID of the Copier process; a lock whose process
is gone (an update that crashed or was killed) is stale and is taken over.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from pathlib import Path

from .errors import CruijffError

LOCK_NAME = "cruijff-update.lock"


class Locked(CruijffError):
    exit_code = 3


def _path(dest: Path) -> Path:
    return dest / ".git" / LOCK_NAME


def alive(pid: int) -> bool:
    """Whether a process with this PID exists (ours or another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def acquire(dest: Path, owner_pid: int) -> None:
    path = _path(dest)
    record = json.dumps({"pid": owner_pid, "since": dt.datetime.now().isoformat(timespec="seconds")})
    # The record is written to a private file first and then hard-linked into place: link() fails
    # when the lock exists, and a reader never sees a lock without its owner.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".cruijff-lock.")
    with os.fdopen(fd, "w") as handle:
        handle.write(record)
    try:
        for _ in range(2):
            try:
                os.link(tmp, path)
                return
            except FileExistsError:
                pass
            try:
                held = json.loads(path.read_text())
            except FileNotFoundError:
                continue  # released meanwhile: try again
            except (OSError, ValueError):
                held = {}
            pid = int(held.get("pid", 0) or 0)
            if pid == owner_pid:
                return
            if not pid or alive(pid):
                raise Locked(
                    f"another update of this experiment is running (process {pid or '?'}, since {held.get('since', '?')}); "
                    f"wait for it to finish, then run your update again (a lock no process holds: delete {path})"
                )
            path.unlink(missing_ok=True)  # stale: its process is gone
        raise Locked(f"could not take the update lock {path}")
    finally:
        Path(tmp).unlink(missing_ok=True)


def release(dest: Path) -> None:
    _path(dest).unlink(missing_ok=True)
