"""One update at a time per experiment: a lock file in the experiment's .git directory.

`copier update` runs our "before" migration (lock), then renders and merges, then our "after"
migration (finish-update: unlock); commands/update.py has the steps. The lock holds the PID of the
Copier process; a lock whose process is gone (an update that crashed or was killed) is stale and is
taken over. It also tells the update's task which of Copier's renders is the experiment: the one
whose lock names the Copier process running it (`holder`).

Taking a lock that is free is one atomic `link()`. Taking over a stale one is not (read it, judge
its process gone, remove it, link ours), so two updates that both find the same stale lock could
each remove it and both go on. The takeover is therefore done under an exclusive `flock` of a
guard file next to the lock, and re-checked under it: the second process to get the guard reads
the first one's live lock and is refused. The kernel drops a flock when its process dies, so a
killed update never leaves the guard held. (On a file system without flock support the guard is
skipped, as if only one update ran at a time.)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import Locked

LOCK_NAME = "cruijff-update.lock"
GUARD_NAME = LOCK_NAME + ".guard"


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


@contextlib.contextmanager
def _guard(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive flock on the guard file (blocking: held only for a takeover, milliseconds)."""
    fd = os.open(lock_path.parent / GUARD_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # no flock on this file system
            pass
        yield
    finally:
        os.close(fd)  # closing drops the flock


def _held(path: Path) -> dict | None:
    """The lock's record, {} when unreadable, None when there is no lock."""
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def acquire(dest: Path, owner_pid: int) -> None:
    path = _path(dest)
    record = json.dumps({"pid": owner_pid, "since": dt.datetime.now().isoformat(timespec="seconds")})
    # The record is written to a private file first and then hard-linked into place: link() fails
    # when the lock exists, and a reader never sees a lock without its owner.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".cruijff-lock.")
    with os.fdopen(fd, "w") as handle:
        handle.write(record)
    try:
        for _ in range(3):
            try:
                os.link(tmp, path)
                return
            except FileExistsError:
                pass
            with _guard(path):
                held = _held(path)  # read under the guard: no other takeover can change it now
                if held is None:
                    continue  # released meanwhile: try again
                pid = _pid(held)
                if pid == owner_pid:
                    return
                if not pid or alive(pid):
                    raise Locked(
                        f"another update of this experiment is running (process {pid or '?'}, since {held.get('since', '?')}); "
                        f"wait for it to finish, then run your update again (a lock no process holds: delete {path})"
                    )
                path.unlink(missing_ok=True)  # stale: its process is gone
                try:
                    os.link(tmp, path)
                    return
                except FileExistsError:
                    continue  # a free-lock taker came first: judge its lock
        raise Locked(f"could not take the update lock {path}")
    finally:
        Path(tmp).unlink(missing_ok=True)


def _pid(record: dict) -> int:
    """The PID a lock record names, 0 when it names none."""
    try:
        return int(record.get("pid") or 0)
    except (TypeError, ValueError):
        return 0


def holder(dest: Path) -> int | None:
    """The PID the experiment's update lock names; None when there is no lock (or it names none)."""
    return _pid(_held(_path(dest)) or {}) or None


def release(dest: Path) -> None:
    _path(dest).unlink(missing_ok=True)
