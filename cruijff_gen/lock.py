"""One update at a time per experiment: a lock file in the experiment's .git directory.

`copier update` runs our "before" migration first (lock), then renders and merges, then our "after"
migration (finish-update: unlock). The lock holds the PID of the Copier process; a lock whose process
is gone (an update that crashed or was killed) is stale and is taken over.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from .errors import CruijffError

LOCK_NAME = "cruijff-update.lock"


class Locked(CruijffError):
    exit_code = 3


def _path(dest: Path) -> Path:
    return dest / ".git" / LOCK_NAME


def _alive(pid: int) -> bool:
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
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                held = json.loads(path.read_text())
            except (OSError, ValueError):
                held = {}
            pid = int(held.get("pid", 0) or 0)
            if pid and pid != owner_pid and _alive(pid):
                raise Locked(
                    f"another update of this experiment is running (process {pid}, since {held.get('since', '?')}); "
                    "wait for it to finish, then run your update again"
                ) from None
            path.unlink(missing_ok=True)  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(record)
        return
    raise Locked(f"could not take the update lock {path}")


def release(dest: Path) -> None:
    _path(dest).unlink(missing_ok=True)
