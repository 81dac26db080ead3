"""The commit hook checks in proportion to the change (issue 18): when HEAD's tree passed the whole
check, only what the index changes from it; anything that is not one file's business (ignore and
attribute rules, the answers file, a run's job file where no run is, a removed generated file), a
HEAD that was never checked (a `--no-verify` commit) and the design file fall back to the checks
that see it. Real `git commit` with the experiment's installed hooks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import designs
from cruijff_gen import plancache

pytestmark = pytest.mark.copier

ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def git(dest: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=dest, capture_output=True, text=True, env=ENV, check=check)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def commit(dest: Path, message: str, *extra: str) -> subprocess.CompletedProcess:
    git(dest, "add", "-A")
    return git(dest, "commit", *extra, "-m", message, check=False)


def head_verified(dest: Path) -> bool:
    return plancache.verified(dest, git(dest, "rev-parse", "HEAD^{tree}").stdout.strip()) is not None


@pytest.fixture
def checked(scaffold_copy) -> Path:
    """An experiment whose HEAD passed the hook: one allowed hand edit committed."""
    dest = scaffold_copy(designs.base())
    assert not head_verified(dest)  # the scaffold's own commit is not checked by the hook
    edit(dest / "r8/finetune.slurm", "#SBATCH --time=", "#SBATCH --comment='first try'\n#SBATCH --time=")
    result = commit(dest, "a comment")
    assert result.returncode == 0, result.stdout + result.stderr
    assert head_verified(dest)
    return dest


def test_allowed_edits_keep_the_record_and_bad_ones_are_refused(checked):
    edit(checked / "r16/finetune.slurm", "set -euo pipefail\n", "set -euo pipefail\n# a note\n")
    result = commit(checked, "a note")
    assert result.returncode == 0, result.stdout + result.stderr
    assert head_verified(checked)
    edit(checked / "r16/finetune.yaml", "lora_rank: 16", "lora_rank: 3")
    os.chmod(checked / "r8/finetune.slurm", 0o644)
    result = commit(checked, "bad")
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert "r16/finetune.yaml: model.lora_rank: expected 16, found 3" in out
    assert "r8/finetune.slurm: file mode: expected executable (100755)" in out


def test_after_a_no_verify_commit_of_a_bad_tree_the_whole_tree_is_checked(checked):
    edit(checked / "r8/finetune.yaml", "lora_rank: 8", "lora_rank: 9")
    assert commit(checked, "bad, unchecked", "--no-verify").returncode == 0
    assert not head_verified(checked)
    edit(checked / "r16/finetune.slurm", "set -euo pipefail\n", "set -euo pipefail\n# a note\n")  # allowed by itself
    result = commit(checked, "a note")
    assert result.returncode != 0
    assert "r8/finetune.yaml: model.lora_rank: expected 8, found 9" in result.stdout + result.stderr
    assert not head_verified(checked)


def test_a_bad_tree_no_hook_ever_checked_is_checked_whole(scaffold_copy):
    """No recorded tree among HEAD's ancestors (the scaffold, then a --no-verify commit): every file."""
    dest = scaffold_copy(designs.base())
    edit(dest / "r8/finetune.yaml", "lora_rank: 8", "lora_rank: 9")
    assert commit(dest, "bad, unchecked", "--no-verify").returncode == 0
    edit(dest / "r16/finetune.slurm", "set -euo pipefail\n", "set -euo pipefail\n# a note\n")
    result = commit(dest, "a note")
    assert result.returncode != 0
    assert "r8/finetune.yaml: model.lora_rank: expected 8, found 9" in result.stdout + result.stderr


def test_a_fixed_tree_after_unchecked_commits_is_checked_whole_and_recorded(checked):
    edit(checked / "r8/finetune.yaml", "lora_rank: 8", "lora_rank: 9")
    assert commit(checked, "bad, unchecked", "--no-verify").returncode == 0
    edit(checked / "r8/finetune.yaml", "lora_rank: 9", "lora_rank: 8")
    result = commit(checked, "fixed")
    assert result.returncode == 0, result.stdout + result.stderr
    assert head_verified(checked)


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda d: (d / ".gitignore").open("a").write("*.slurm\n"), "pattern '*.slurm'"),
        (lambda d: (d / "r8/.gitattributes").write_text("*.yaml eol=crlf\n"), ".gitattributes: eol=crlf"),
        (lambda d: ((d / "old_run").mkdir(), (d / "old_run/finetune.slurm").write_text("#!/bin/bash\n")),
         "old_run/: run directory: expected none"),
    ],
    ids=["ignore-rule", "attributes", "stale-run"],
)
def test_changes_beyond_one_file_get_the_whole_check(checked, change, expected):
    change(checked)
    result = commit(checked, "rules")
    assert result.returncode != 0
    assert expected in result.stdout + result.stderr


def test_free_files_beside_the_runs_are_free(checked):
    (checked / "r8/notes.md").write_text("ideas\n")
    (checked / "analysis").mkdir()
    (checked / "analysis/plot.py").write_text("print(1)\n")
    result = commit(checked, "notes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert head_verified(checked)


def test_a_design_edit_is_checked_against_the_rendered_design(checked):
    edit(checked / "experiment_summary.yaml", "lora_rank: 16", "lora_rank: 32")
    result = commit(checked, "design")
    assert result.returncode != 0
    assert "experiment_summary.yaml: design: expected the design the tree was rendered from" in result.stdout + result.stderr


def test_a_deleted_generated_file_is_refused(checked):
    (checked / "r16/eval/capitalization_epoch1.slurm").unlink()
    result = commit(checked, "delete")
    assert result.returncode != 0
    assert "r16/eval/capitalization_epoch1.slurm: file: expected it to exist, found nothing" in result.stdout + result.stderr


def run_hook(dest: Path) -> subprocess.CompletedProcess:
    """The sealed commit-stage hook on the staged index, without committing (as `pre-commit run`)."""
    git(dest, "add", "-A")
    return subprocess.run(["cruijff-gen", "verify", "--files"], cwd=dest, capture_output=True, text=True,
                          env={**ENV, "CRUIJFF_GEN_HOOK": "pre-commit"})


def test_a_check_of_the_whole_index_records_head_only_when_heads_side_of_the_change_passes(scaffold_copy):
    dest = scaffold_copy(designs.base())
    edit(dest / "r8/finetune.slurm", "set -euo pipefail\n", "set -euo pipefail\n# a note\n")
    assert run_hook(dest).returncode == 0
    assert head_verified(dest)  # the scaffold's tree: the index passed, and HEAD differs in an allowed edit

    dest = scaffold_copy(designs.base(), name="bad_head")
    edit(dest / "r8/finetune.yaml", "lora_rank: 8", "lora_rank: 9")
    assert commit(dest, "bad, unchecked", "--no-verify").returncode == 0
    edit(dest / "r8/finetune.yaml", "lora_rank: 9", "lora_rank: 8")
    result = run_hook(dest)
    assert result.returncode == 0, result.stderr
    assert not head_verified(dest)  # the index is right; HEAD's r8/finetune.yaml is not
