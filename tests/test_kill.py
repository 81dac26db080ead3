"""Interrupted runs: `copier copy` and `copier update` killed (SIGKILL, whole process group) at
random points. Afterwards the experiment is in one of the states README.md documents, and the
documented recovery gets it to a complete, verified commit:

* copy: no destination; or files without a commit (re-running the same command finishes the job);
  or the complete first commit. `cruijff-gen new`: no destination, or the complete first commit.
* update: HEAD unchanged (possibly a dirty tree: `git reset --hard HEAD && git clean -fd`), or the
  complete update commit. A stale update lock never blocks the next update.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import designs
from conftest import copier, write_summary

pytestmark = pytest.mark.copier

TRIALS = 20
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def git(dest: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=dest, capture_output=True, text=True, check=check)


def run_and_kill(cmd: list[str], cwd: Path | None, after: float) -> int | None:
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV, start_new_session=True)
    try:
        return proc.wait(timeout=after)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return None


def verified_and_clean(dest: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "cruijff_gen", "verify", str(dest)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert git(dest, "status", "--porcelain").stdout == ""


def test_killed_copy_is_absent_or_finished_by_rerunning(template_repo, tmp_path):
    rng = random.Random(1234)
    summary = write_summary(tmp_path / "summary.yaml", designs.base())
    states: dict[str, int] = {}
    for trial in range(TRIALS):
        dest = tmp_path / f"exp{trial}"
        args = ["copy", "--trust", "--defaults", "--data-file", str(summary), str(template_repo), str(dest)]
        code = run_and_kill([sys.executable, "-m", "copier", *args], None, rng.uniform(0.2, 2.0))
        if not dest.exists():
            states["absent"] = states.get("absent", 0) + 1
            continue
        if (dest / ".git").exists() and git(dest, "rev-parse", "HEAD", check=False).returncode == 0:
            states["complete"] = states.get("complete", 0) + 1
            assert git(dest, "rev-list", "--count", "HEAD").stdout.strip() == "1"
            verified_and_clean(dest)
            continue
        states["partial"] = states.get("partial", 0) + 1
        assert code is None  # only a kill leaves a partial tree
        rerun = copier(*args)
        assert rerun.returncode == 0, rerun.stderr
        verified_and_clean(dest)
    print(f"copy kill trials: {states}")
    assert sum(states.values()) == TRIALS


def test_killed_new_leaves_no_destination_or_the_complete_commit(template_repo, tmp_path):
    """`cruijff-gen new` scaffolds into a hidden sibling and renames it into place: after a kill
    DEST does not exist or holds the complete first commit; never anything in between."""
    rng = random.Random(2468)
    summary = write_summary(tmp_path / "summary.yaml", designs.base())
    parent = tmp_path / "experiments"
    parent.mkdir()
    states: dict[str, int] = {}
    for trial in range(TRIALS):
        dest = parent / f"exp{trial}"
        cmd = [sys.executable, "-m", "cruijff_gen", "new", str(summary), str(dest), "--template", str(template_repo)]
        code = run_and_kill(cmd, None, rng.uniform(0.3, 3.0))
        if not dest.exists():
            states["absent"] = states.get("absent", 0) + 1
            assert code is None
            continue
        states["complete"] = states.get("complete", 0) + 1
        assert git(dest, "rev-list", "--count", "HEAD").stdout.strip() == "1"
        verified_and_clean(dest)
    print(f"new kill trials: {states}")
    assert sum(states.values()) == TRIALS
    # A killed destination is made by running the same command again; the killed runs' staging
    # directories for it are cleared away.
    killed = next((parent / f"exp{t}" for t in range(TRIALS) if not (parent / f"exp{t}").exists()), parent / "fresh")
    cmd = [sys.executable, "-m", "cruijff_gen", "new", str(summary), str(killed), "--template", str(template_repo)]
    result = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stderr
    verified_and_clean(killed)
    assert not list(parent.glob(f".{killed.name}.cruijff-new-*"))


def test_killed_update_keeps_the_last_good_commit(scaffold):
    rng = random.Random(4321)
    dest = scaffold(designs.base())
    states: dict[str, int] = {}
    for trial in range(TRIALS):
        summary = dest / "experiment_summary.yaml"
        design = yaml.safe_load(summary.read_text())
        design["runs"][0]["parameters"]["lora_rank"] = 8 + trial + 1
        summary.write_text(yaml.safe_dump(design, sort_keys=False, allow_unicode=True))
        git(dest, "commit", "-qam", f"rank {8 + trial + 1}", "--no-verify")
        last_good = git(dest, "rev-parse", "HEAD").stdout
        cmd = [sys.executable, "-m", "copier", "update", "--trust", "--defaults", "--data-file", "experiment_summary.yaml"]
        code = run_and_kill(cmd, dest, rng.uniform(0.2, 4.0))
        head = git(dest, "rev-parse", "HEAD").stdout
        if head != last_good:
            states["complete"] = states.get("complete", 0) + 1
            assert git(dest, "log", "-1", "--format=%s").stdout.startswith("Update base_sweep")
            verified_and_clean(dest)
            continue
        states["head unchanged"] = states.get("head unchanged", 0) + 1
        assert code is None
        (dest / ".git" / "index.lock").unlink(missing_ok=True)  # a git command killed mid-way leaves it (README)
        subprocess.run("git reset --hard HEAD && git clean -fd", shell=True, cwd=dest, check=True, capture_output=True)
        assert git(dest, "status", "--porcelain").stdout == "" and git(dest, "rev-parse", "HEAD").stdout == last_good
        if trial % 5 == 4:  # now and then finish the job: a lock the killed update left is stale
            finish = subprocess.run(cmd, cwd=dest, capture_output=True, text=True, env=ENV)
            assert finish.returncode == 0, finish.stderr
            verified_and_clean(dest)
    print(f"update kill trials: {states}")
    assert sum(states.values()) == TRIALS
