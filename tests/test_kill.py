"""Interrupted runs: `copier copy` and `copier update` killed (SIGKILL, whole process group) at
random points. Afterwards the experiment is in one of the states README.md documents, and the
documented recovery gets it to a complete, verified commit:

* copy: no destination; or files without a commit (re-running the same command finishes the job);
  or the complete first commit. `cruijff-gen new`: no destination, or the complete first commit.
* update: HEAD unchanged (possibly a dirty tree: `git reset --hard HEAD && git clean -fd`), or the
  complete update commit. A stale update lock never blocks the next update.

Each test kills at points chosen by condition (at once, at each stage it can be caught in, not at
all: every documented state is reached, checked below) and at a few random times."""

from __future__ import annotations

import atexit
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

import designs
from conftest import copier, write_summary

pytestmark = pytest.mark.copier

ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
RANDOM_TRIALS = 4  # besides the kill points chosen by condition, which reach every documented state


def git(dest: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=dest, capture_output=True, text=True, check=check)


LAST_STDERR = tempfile.TemporaryFile()  # what the last command run_and_kill ran said, for a failing assert
atexit.register(LAST_STDERR.close)


def last_stderr() -> str:
    LAST_STDERR.seek(0)
    return LAST_STDERR.read().decode(errors="replace")[-3000:]


def run_and_kill(cmd: list[str], cwd: Path | None, when) -> int | None:
    """Run cmd and SIGKILL its whole process group: at once (`when` is None), when `when()` first
    holds, or after `when` seconds; "never" lets it finish. Returns its exit code, None if killed."""
    LAST_STDERR.seek(0)
    LAST_STDERR.truncate()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=LAST_STDERR, env=ENV, start_new_session=True)
    try:
        if when == "never":
            return proc.wait(timeout=600)
        if isinstance(when, float):
            return proc.wait(timeout=when)
        if when is not None:
            deadline = time.monotonic() + 600
            while not when() and proc.poll() is None:
                assert time.monotonic() < deadline, "timed out"
                time.sleep(0.002)
            if proc.poll() is not None:
                return proc.returncode
    except subprocess.TimeoutExpired:
        pass
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return None


def kill_points(rng: random.Random, conditions: dict, low: float, high: float) -> list[tuple[str, object]]:
    return [*conditions.items(), *((f"after {t:.1f} s", t) for t in (rng.uniform(low, high) for _ in range(RANDOM_TRIALS)))]


def verified_and_clean(dest: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "cruijff_gen", "verify", str(dest)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert git(dest, "status", "--porcelain").stdout == ""


def test_killed_copy_is_absent_or_finished_by_rerunning(template_repo, tmp_path):
    rng = random.Random(1234)
    summary = write_summary(tmp_path / "summary.yaml", designs.base())
    states: dict[str, str] = {}
    dest = tmp_path / "exp0"
    conditions = {
        "at once": None,  # before Copier makes the destination
        "destination made": lambda: dest.exists(),  # rendering, before the task
        "task writing": lambda: (dest / "logs").exists() or (dest / "r8").exists(),
        "not killed": "never",
    }
    for trial, (point, when) in enumerate(kill_points(rng, conditions, 0.2, 4.0)):
        dest = tmp_path / f"exp{trial}"
        args = ["copy", "--trust", "--defaults", "--data-file", str(summary), str(template_repo), str(dest)]
        code = run_and_kill([sys.executable, "-m", "copier", *args], None, when)
        if not dest.exists():
            states[point] = "absent"
            continue
        if (dest / ".git").exists() and git(dest, "rev-parse", "HEAD", check=False).returncode == 0:
            states[point] = "complete"
            assert git(dest, "rev-list", "--count", "HEAD").stdout.strip() == "1"
            verified_and_clean(dest)
            continue
        states[point] = "partial"
        assert code is None  # only a kill leaves a partial tree
        answers = dest / ".copier-answers.yml"
        if answers.exists() and answers.stat().st_size == 0 and not (dest / ".git").exists():
            # Killed while Copier itself wrote its answers file (its own write, not atomic, before our
            # task runs): Copier's rerun stops on the empty file, so the README's recovery for this
            # state is to delete the destination, which holds nothing yet, and run again.
            states[point] = "partial (empty answers file)"
            assert copier(*args).returncode != 0
            shutil.rmtree(dest)
        rerun = copier(*args)
        assert rerun.returncode == 0, rerun.stderr
        verified_and_clean(dest)
    print(f"copy kill trials: {states}")
    assert [states[p].split(" (")[0] for p in conditions] == ["absent", "partial", "partial", "complete"], states


def test_killed_new_leaves_no_destination_or_the_complete_commit(template_repo, tmp_path):
    """`cruijff-gen new` scaffolds into a hidden sibling and renames it into place: after a kill
    DEST does not exist or holds the complete first commit; never anything in between."""
    rng = random.Random(2468)
    summary = write_summary(tmp_path / "summary.yaml", designs.base())
    parent = tmp_path / "experiments"
    parent.mkdir()
    states: dict[str, str] = {}

    def staging(*inside: str):
        return lambda: any((s.joinpath(*inside)).exists() for s in parent.glob(".*.cruijff-new-*"))

    conditions = {
        "at once": None,
        "staging made": staging(),
        "staging committing": staging(".git"),
        "not killed": "never",
    }
    points = kill_points(rng, conditions, 0.3, 5.0)
    for trial, (point, when) in enumerate(points):
        dest = parent / f"exp{trial}"
        cmd = [sys.executable, "-m", "cruijff_gen", "new", str(summary), str(dest), "--template", str(template_repo)]
        code = run_and_kill(cmd, None, when)
        if not dest.exists():
            states[point] = "absent"
            assert code is None
            continue
        states[point] = "complete"
        assert git(dest, "rev-list", "--count", "HEAD").stdout.strip() == "1"
        verified_and_clean(dest)
    print(f"new kill trials: {states}")
    assert [states[p] for p in conditions] == ["absent", "absent", "absent", "complete"], states
    # A killed destination is made by running the same command again; the killed runs' staging
    # directories for it are cleared away.
    killed = parent / "exp1"
    assert list(parent.glob(f".{killed.name}.cruijff-new-*"))  # the kill left its staging directory
    cmd = [sys.executable, "-m", "cruijff_gen", "new", str(summary), str(killed), "--template", str(template_repo)]
    result = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stderr
    verified_and_clean(killed)
    assert not list(parent.glob(f".{killed.name}.cruijff-new-*"))


def test_killed_update_keeps_the_last_good_commit(scaffold_copy):
    rng = random.Random(4321)
    dest = scaffold_copy(designs.base())
    lock_file = dest / ".git" / "cruijff-update.lock"
    states: dict[str, str] = {}
    conditions = {
        "at once": None,
        "holding the lock": lambda: lock_file.exists(),  # then finished by the next update: a stale lock
        # (--no-optional-locks: a plain `git status` takes .git/index.lock to refresh the index, and
        # Copier's own `git write-tree`, run at that moment, fails on it: the update then ends by itself)
        "writing the tree": lambda: lock_file.exists() and git(dest, "--no-optional-locks", "status", "--porcelain").stdout != "",
        "not killed": "never",
    }
    for trial, (point, when) in enumerate(kill_points(rng, conditions, 0.2, 6.0)):
        summary = dest / "experiment_summary.yaml"
        design = yaml.safe_load(summary.read_text())
        design["runs"][0]["parameters"]["lora_rank"] = 8 + trial + 1
        summary.write_text(yaml.safe_dump(design, sort_keys=False, allow_unicode=True))
        git(dest, "commit", "-qam", f"rank {8 + trial + 1}", "--no-verify")
        last_good = git(dest, "rev-parse", "HEAD").stdout
        cmd = [sys.executable, "-m", "copier", "update", "--trust", "--defaults"]
        code = run_and_kill(cmd, dest, when)
        head = git(dest, "rev-parse", "HEAD").stdout
        if head != last_good:
            states[point] = "complete"
            assert git(dest, "log", "-1", "--format=%s").stdout.startswith("Update base_sweep")
            verified_and_clean(dest)
            continue
        states[point] = "head unchanged" + (", lock left" if lock_file.exists() else "")
        assert code is None, f"{point}: the update ended ({code}) without committing; states so far {states}; it said:\n{last_stderr()}"
        (dest / ".git" / "index.lock").unlink(missing_ok=True)  # a git command killed mid-way leaves it (README)
        subprocess.run("git reset --hard HEAD && git clean -fd", shell=True, cwd=dest, check=True, capture_output=True)
        assert git(dest, "status", "--porcelain").stdout == "" and git(dest, "rev-parse", "HEAD").stdout == last_good
        if point == "holding the lock" or trial == len(conditions):  # finish the job: the lock the killed update left is stale
            finish = subprocess.run(cmd, cwd=dest, capture_output=True, text=True, env=ENV)
            assert finish.returncode == 0, finish.stderr
            assert not lock_file.exists()
            verified_and_clean(dest)
    print(f"update kill trials: {states}")
    assert [states[p] for p in conditions] == ["head unchanged", "head unchanged, lock left", "head unchanged, lock left", "complete"], states
