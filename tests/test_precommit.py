"""The experiment's pre-commit hooks (installed by the first scaffold) re-verify on every commit:
real `git commit` with the hooks installed, offline (a `local` hook, no hook repository to fetch)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import designs

pytestmark = pytest.mark.copier

ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def git(dest: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=dest, capture_output=True, text=True, env=ENV, check=check)


@pytest.fixture
def experiment(scaffold) -> Path:
    dest = scaffold(designs.base())
    assert (dest / ".git/hooks/pre-commit").exists() and (dest / ".git/hooks/pre-push").exists()
    return dest


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    "change,expected",
    [
        (lambda d: edit(d / "r8/finetune.yaml", "lr: 1.0e-05", "lr: 1.0e-03"), "r8/finetune.yaml: optimizer.lr: expected 1.0e-05, found 0.001"),
        (lambda d: (d / "r16/finetune.slurm").unlink(), "r16/finetune.slurm: file: expected it to exist, found nothing"),
        (lambda d: edit(d / "r8/finetune.slurm", "set -euo pipefail\n", "<<<<<<< before updating\nset -euo pipefail\n=======\n>>>>>>> after updating\n"), "r8/finetune.slurm: line"),
    ],
    ids=["lr", "deleted-script", "conflict-markers"],
)
def test_commit_disagreeing_with_the_design_is_refused(experiment, change, expected):
    change(experiment)
    git(experiment, "add", "-A")
    result = git(experiment, "commit", "-m", "hand edit", check=False)
    assert result.returncode != 0
    assert expected in result.stdout + result.stderr
    assert git(experiment, "rev-list", "--count", "HEAD").stdout.strip() == "1"


def test_allowed_hand_edit_commits(experiment):
    edit(experiment / "r8/finetune.slurm", "#SBATCH --time=", "#SBATCH --qos=high\n#SBATCH --time=")
    git(experiment, "add", "-A")
    result = git(experiment, "commit", "-m", "extra SBATCH line", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cruijff-gen verify" in result.stdout + result.stderr and "Passed" in result.stdout + result.stderr


def test_pre_commit_run_and_push_stage(experiment, tmp_path):
    result = subprocess.run([sys.executable, "-m", "pre_commit", "run", "--all-files"], cwd=experiment, capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stdout
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    git(experiment, "remote", "add", "origin", str(remote))
    edit(experiment / "r8/finetune.yaml", "lora_rank: 8", "lora_rank: 9")
    git(experiment, "commit", "-qam", "bypass the commit hook", "--no-verify")
    push = git(experiment, "push", "origin", "HEAD", check=False)
    assert push.returncode != 0
    assert "r8/finetune.yaml: model.lora_rank: expected 8, found 9" in push.stdout + push.stderr
