"""The experiment's pre-commit hooks (installed by the first scaffold) re-verify on every commit and
push: real `git commit` / `git push` with the hooks installed, offline (a `local` hook, no hook
repository to fetch). The mutation suite is tests/test_gate.py; these are the workflows around it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import designs

pytestmark = pytest.mark.copier

ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def git(dest: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=dest, capture_output=True, text=True, env=ENV, check=check)


@pytest.fixture
def experiment(scaffold_copy) -> Path:
    dest = scaffold_copy(designs.base())  # one real copier copy per session, a copy of it per test
    for hook in ("pre-commit", "pre-push", "pre-commit.legacy", "pre-push.legacy"):
        assert (dest / ".git/hooks" / hook).exists(), hook
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
    edit(experiment / "r8/finetune.slurm", "#SBATCH --time=", "#SBATCH --comment='first try'\n#SBATCH --time=")
    git(experiment, "add", "-A")
    result = git(experiment, "commit", "-m", "extra SBATCH line", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cruijff-gen verify" in result.stdout + result.stderr and "Passed" in result.stdout + result.stderr


def test_passing_check_is_silent_and_a_failing_one_prints_a_line_per_problem(experiment):
    hook = {**ENV, "CRUIJFF_GEN_HOOK": "pre-commit"}
    ok = subprocess.run(["cruijff-gen", "verify", "--files"], cwd=experiment, capture_output=True, text=True, env=hook)
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "", "")
    edit(experiment / "r8/finetune.yaml", "lora_rank: 8", "lora_rank: 9")
    edit(experiment / "r16/finetune.slurm", "#SBATCH --time=", "#SBATCH --gpus=4\n#SBATCH --time=")
    git(experiment, "add", "-A")
    bad = subprocess.run(["cruijff-gen", "verify", "--files"], cwd=experiment, capture_output=True, text=True, env=hook)
    assert bad.returncode == 1 and bad.stdout == ""
    lines = bad.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("r8/finetune.yaml: model.lora_rank: expected 8, found 9")
    assert lines[1].startswith("r16/finetune.slurm: #SBATCH --gpus: expected none")


def test_staged_content_is_checked_not_the_work_tree(experiment):
    """`git commit <path>` commits what git records for it (a temporary index): a bad edit left in
    the work tree of another file is not part of that commit; one staged in it is."""
    edit(experiment / "r16/finetune.yaml", "lora_rank: 16", "lora_rank: 3")
    (experiment / "notes.md").write_text("ideas\n")
    git(experiment, "add", "notes.md")
    result = git(experiment, "commit", "-m", "notes only", "notes.md", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    result = git(experiment, "commit", "-am", "everything", check=False)
    assert result.returncode != 0 and "r16/finetune.yaml: model.lora_rank: expected 16, found 3" in result.stdout + result.stderr


def test_editing_the_hook_configuration_cannot_switch_the_check_off(experiment):
    edit(experiment / ".pre-commit-config.yaml", "entry: cruijff-gen verify --files", 'entry: "true"')
    edit(experiment / "r8/finetune.yaml", "lr: 1.0e-05", "lr: 0.5")
    git(experiment, "add", "-A")
    result = git(experiment, "commit", "-m", "switch it off", check=False)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert ".pre-commit-config.yaml: hook cruijff-verify entry: expected cruijff-gen verify --files, found 'true'" in out
    assert "r8/finetune.yaml: optimizer.lr: expected 1.0e-05, found 0.5" in out


def test_clone_with_plain_pre_commit_install_still_checks(experiment, tmp_path):
    """A clone whose hooks come from `pre-commit install` alone (no sealed hook): the configuration's
    hook does the check itself, for commits and for pushes (from the refs pre-commit exports)."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(experiment), str(clone)], check=True, env=ENV)
    subprocess.run([sys.executable, "-m", "pre_commit", "install", "--hook-type", "pre-commit", "--hook-type", "pre-push"],
                   cwd=clone, check=True, capture_output=True, env=ENV)
    assert not (clone / ".git/hooks/pre-commit.legacy").exists()
    edit(clone / "r8/finetune.slurm", "#SBATCH --time=", "#SBATCH -G 4\n#SBATCH --time=")
    git(clone, "add", "-A")
    result = git(clone, "commit", "-m", "more GPUs", check=False)
    assert result.returncode != 0 and "r8/finetune.slurm: #SBATCH --gpus: expected none" in result.stdout + result.stderr
    git(clone, "commit", "-qm", "more GPUs", "--no-verify")
    for stage in ("pre-commit", "pre-push"):  # that first run installed the sealed hooks (test_gate.py: fresh clones) ...
        legacy = clone / f".git/hooks/{stage}.legacy"
        assert legacy.exists()
        legacy.unlink()  # ... removed again here: the configuration's hook checks the push by itself too
    push = git(clone, "push", "origin", "HEAD:refs/heads/more", check=False)
    assert push.returncode != 0 and "r8/finetune.slurm: #SBATCH --gpus: expected none" in push.stdout + push.stderr


def test_design_change_is_refused_until_rendered_then_pushes(experiment, tmp_path):
    """The documented update: an edited summary is refused with the one command that renders it;
    that command (the design committed and rendered in one go) leaves a history that pushes."""
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    git(experiment, "remote", "add", "origin", str(remote))
    git(experiment, "push", "-q", "--no-verify", "origin", "HEAD:refs/heads/main")
    summary = experiment / "experiment_summary.yaml"
    edit(summary, "lr: 1e-5", "lr: 2e-5")
    git(experiment, "add", "-A")
    result = git(experiment, "commit", "-m", "lr 2e-5", check=False)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    line = next(line for line in out.splitlines() if line.startswith("experiment_summary.yaml: design:"))
    assert "changes to runs not rendered yet" in line
    command = line.split("render them: ", 1)[1]
    assert command == ("git commit --no-verify -m 'design: <what changed>' experiment_summary.yaml && "
                       "copier update --trust --defaults")
    # a push of the design commit alone is refused too, with the update to run
    git(experiment, "commit", "-qm", "lr 2e-5", "--no-verify")
    push = git(experiment, "push", "origin", "HEAD:refs/heads/main", check=False)
    assert push.returncode != 0 and "experiment_summary.yaml: design:" in push.stdout + push.stderr
    assert "copier update --trust --defaults, then push again" in push.stdout + push.stderr
    update = subprocess.run([sys.executable, "-m", "copier", "update", "--trust", "--defaults"],
                            cwd=experiment, capture_output=True, text=True, env=ENV)
    assert update.returncode == 0, update.stderr
    push = git(experiment, "push", "origin", "HEAD:refs/heads/main", check=False)
    assert push.returncode == 0, push.stdout + push.stderr


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


def test_kill_during_git_commit_leaves_unstaged_edits_in_pre_commits_patch(experiment, tmp_path):
    """The kill table's `git commit` row, for real: pre-commit (pre_commit/staged_files_only.py)
    saves the unstaged changes as a patch in its store (`$PRE_COMMIT_HOME`, default
    ~/.cache/pre-commit) named patch<time>-<pid>, checks the files out as staged, runs the hooks and
    applies the patch back. A kill while the hooks run leaves the edits only in that patch;
    `git apply <patch>` brings them back. The kill comes while a hook of the user's own blocks
    (hooks beside cruijff-verify are free), once it has said it started."""
    home, started = tmp_path / "pre-commit-home", tmp_path / "hook-started"
    env = {**ENV, "PRE_COMMIT_HOME": str(home)}
    config = experiment / ".pre-commit-config.yaml"
    config.write_text(config.read_text() + (
        "  - repo: local\n    hooks:\n      - id: slow\n        name: slow\n        language: system\n"
        f"        entry: sh -c 'touch {started}; exec tail -f /dev/null'\n        pass_filenames: false\n        always_run: true\n"))
    git(experiment, "commit", "-qam", "a slow hook of my own", "--no-verify")
    edit(experiment / "README.md", "# ", "# staged: ")
    git(experiment, "add", "README.md")
    notes = experiment / "r8/finetune.slurm"
    edit(notes, "set -euo pipefail\n", "set -euo pipefail\n# unstaged note\n")
    commit = subprocess.Popen(["git", "commit", "-qm", "staged"], cwd=experiment, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not started.exists():  # the condition: the hooks are running, the stash is made
            assert commit.poll() is None and time.monotonic() < deadline, "the hook never started"
            time.sleep(0.05)
    finally:
        os.killpg(commit.pid, signal.SIGKILL)
        commit.wait()
    assert "# unstaged note" not in notes.read_text()  # checked out as staged: the edit is gone from the tree ...
    patches = sorted(home.glob("patch*"))
    assert len(patches) == 1 and "# unstaged note" in patches[0].read_text()  # ... and lives in the patch
    (experiment / ".git/index.lock").unlink(missing_ok=True)  # (the table's note on a killed git command)
    assert git(experiment, "apply", str(patches[0])).returncode == 0  # the documented recovery
    assert "# unstaged note" in notes.read_text()
    assert git(experiment, "diff", "--cached", "--name-only").stdout.split() == ["README.md"]  # still staged, not committed
    assert git(experiment, "log", "-1", "--format=%s").stdout.strip() == "a slow hook of my own"
