"""The update lock (cruijff_gen/lock.py) under real concurrency: processes (forked, each its own
PID, as two `copier update`s are) race to take the same lock, many times over.

What a user relies on: whatever the interleaving, exactly one update holds the lock, and a stale
lock (its process gone: an update that was killed) is taken over by exactly one of the updates that
find it."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

from cruijff_gen import lock

CTX = multiprocessing.get_context("fork")
RACERS = 6
TRIALS = 20


def dead_pid() -> int:
    """The PID of a process that has exited and been reaped (a killed update's)."""
    proc = CTX.Process(target=os._exit, args=(0,))
    proc.start()
    proc.join()
    assert not lock.alive(proc.pid)
    return proc.pid


def _racer(dest: Path, go, done, results) -> None:
    go.wait()
    try:
        lock.acquire(dest, os.getpid())
        results.put((os.getpid(), "won"))
    except lock.Locked as exc:
        results.put((os.getpid(), f"locked: {exc}"))
    except BaseException as exc:  # noqa: BLE001 - anything else is a bug: report it to the test
        results.put((os.getpid(), f"error: {exc!r}"))
    done.wait()  # stay alive: a lock held by a live process is not stale


def race(dest: Path, n: int = RACERS) -> dict[int, str]:
    """Start n processes at once (all released by one event), each taking the lock for itself;
    wait for every verdict. The processes live until all have answered."""
    go, done, results = CTX.Event(), CTX.Event(), CTX.Queue()
    procs = [CTX.Process(target=_racer, args=(dest, go, done, results)) for _ in range(n)]
    for proc in procs:
        proc.start()
    go.set()
    try:
        verdicts = dict(results.get(timeout=60) for _ in procs)
    finally:
        done.set()
        for proc in procs:
            proc.join(timeout=60)
    return verdicts


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    (tmp_path / ".git").mkdir()
    return tmp_path


def holder(dest: Path) -> int:
    import json

    return json.loads((dest / ".git" / lock.LOCK_NAME).read_text())["pid"]


@pytest.mark.parametrize("start", ["free", "stale"])
def test_exactly_one_racer_takes_the_lock(dest: Path, start: str):
    for trial in range(TRIALS):
        lock.release(dest)
        if start == "stale":
            (dest / ".git" / lock.LOCK_NAME).write_text(f'{{"pid": {dead_pid()}, "since": "killed"}}')
        verdicts = race(dest)
        winners = [pid for pid, verdict in verdicts.items() if verdict == "won"]
        assert len(winners) == 1, (trial, verdicts)
        assert holder(dest) == winners[0]
        for pid, verdict in verdicts.items():
            if pid != winners[0]:
                assert verdict.startswith(f"locked: another update of this experiment is running (process {winners[0]},"), verdict


def test_a_live_holder_is_never_taken_over(dest: Path):
    lock.acquire(dest, os.getpid())
    verdicts = race(dest)
    assert all(v.startswith(f"locked: another update of this experiment is running (process {os.getpid()},") for v in verdicts.values()), verdicts
    assert holder(dest) == os.getpid()
    lock.acquire(dest, os.getpid())  # the holder itself (finish-update after start-update) passes
    lock.release(dest)
    assert not (dest / ".git" / lock.LOCK_NAME).exists()


def test_unreadable_lock_is_not_taken_over(dest: Path):
    (dest / ".git" / lock.LOCK_NAME).write_text("not json")
    with pytest.raises(lock.Locked, match=r"process \?, since \?.*delete .*cruijff-update.lock"):
        lock.acquire(dest, os.getpid())


@pytest.mark.parametrize("layout", ["worktree", "inside another repository"])
def test_start_update_refuses_an_experiment_without_its_own_git_directory(tmp_path, layout):
    """The lock (and the kept plan) live in the experiment's .git directory; where .git is a file
    (`git worktree add`, `--separate-git-dir`) or absent (a directory inside a bigger repository),
    start-update refuses with one line instead of failing on the lock file."""
    import subprocess

    from cruijff_gen.commands import update
    from cruijff_gen.errors import UsageError

    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    if layout == "worktree":
        dest = tmp_path / "wt"
        subprocess.run(["git", "-C", str(repo), "worktree", "add", "-q", str(dest)], check=True)
        assert (dest / ".git").is_file()
    else:
        dest = repo / "experiment"
        dest.mkdir()
    with pytest.raises(UsageError, match="not an experiment's own git repository"):
        update.start(dest)
    assert not list(tmp_path.rglob(lock.LOCK_NAME))
