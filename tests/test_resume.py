"""Dry run, selective and resumable scaffolding: `plan` writes nothing, `render --only` touches only
the selected runs, an interrupted scaffold re-run finishes the job, a complete tree stays as is."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import designs
from conftest import copier

pytestmark = pytest.mark.copier


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cruijff_gen", *args], capture_output=True, text=True, cwd=cwd)


def git(dest: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=dest, check=True, capture_output=True, text=True).stdout


def snapshot(dest: Path) -> dict[str, bytes]:
    return {str(p.relative_to(dest)): p.read_bytes() for p in dest.rglob("*") if p.is_file() and ".git" not in p.relative_to(dest).parts}


def test_interrupted_scaffold_is_finished_by_running_it_again(template_repo, tmp_path):
    summary = tmp_path / "summary.yaml"
    from conftest import write_summary

    write_summary(summary, designs.base())
    dest = tmp_path / "exp"
    args = ("copy", "--trust", "--defaults", "--data-file", str(summary), str(template_repo), str(dest))
    assert copier(*args).returncode == 0
    # what a kill before the commit leaves: some files written, no repository yet
    shutil.rmtree(dest / ".git")
    shutil.rmtree(dest / "r16")
    (dest / "README.md").unlink()
    result = copier(*args)
    assert result.returncode == 0, result.stderr
    assert (dest / "r16/finetune.yaml").exists() and (dest / "README.md").exists()
    assert git(dest, "rev-list", "--count", "HEAD").strip() == "1"
    assert git(dest, "status", "--porcelain") == ""
    # a second run on a complete tree changes nothing and makes no commit
    head, before = git(dest, "rev-parse", "HEAD"), snapshot(dest)
    result = cli("render", "--commit", str(dest))
    assert result.returncode == 0, result.stderr
    assert "0 file(s) written" in result.stderr
    assert git(dest, "rev-parse", "HEAD") == head and snapshot(dest) == before


def test_render_only_selected_runs(scaffold_copy):
    dest = scaffold_copy(designs.base())
    (dest / "r8/finetune.yaml").unlink()
    (dest / "r16/finetune.yaml").write_text("broken by hand\n")
    git(dest, "commit", "-q", "--no-verify", "-am", "deleted and edited by hand")
    result = cli("render", "--only", "r8*", str(dest))
    assert result.returncode == 0, result.stderr
    assert (dest / "r8/finetune.yaml").exists()  # a missing generated file is generated again
    assert (dest / "r16/finetune.yaml").read_text() == "broken by hand\n"
    bad = cli("render", "--only", "r99", str(dest))
    assert bad.returncode != 0 and "--only: no run matches 'r99' (runs: r8, r16, base)" in bad.stderr


def _edit_lr(dest: Path, old: str, new: str) -> None:
    """Edit the design in the answers file (its record: one JSON value per line, see experiment_dir.py)."""
    answers = dest / ".copier-answers.yml"
    text = answers.read_text()
    assert f'"lr": "{old}"' in text
    answers.write_text(text.replace(f'"lr": "{old}"', f'"lr": "{new}"', 1))


def test_render_refuses_uncommitted_changes_and_keeps_committed_ones(scaffold_copy):
    """`render --only` used to overwrite hand edits without a word. Now: an uncommitted change to a
    generated file stops it before anything is written (one line naming the file); a committed
    hand edit is kept, merged with what the edited design changes (git merge-file, as update does)."""
    dest = scaffold_copy(designs.base())
    slurm = dest / "r8/finetune.slurm"
    slurm.write_text(slurm.read_text() + "# uncommitted note\n")
    before = snapshot(dest)
    result = cli("render", "--only", "r8", str(dest))
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert errors == ["cruijff-gen: error: uncommitted changes to generated files: r8/finetune.slurm; commit them "
                      "(`git commit -am ...`) or discard them (`git checkout -- FILE`), then run it again; nothing was written"], result.stderr
    assert snapshot(dest) == before and "Traceback" not in result.stderr
    git(dest, "commit", "-q", "--no-verify", "-am", "a note")
    config = dest / "r8/finetune.yaml"
    config.write_text(config.read_text() + "# kept\n")
    git(dest, "commit", "-q", "--no-verify", "-am", "a committed hand edit")
    _edit_lr(dest, "1e-5", "3e-5")  # the design render reads: .copier-answers.yml
    result = cli("render", "--only", "r8", str(dest))
    assert result.returncode == 0, result.stderr
    assert "merged the update into your hand edit: r8/finetune.yaml" in result.stderr
    text = config.read_text()
    assert text.endswith("# kept\n") and "lr: 3.0e-05" in text
    assert slurm.read_text().endswith("# uncommitted note\n")
    assert cli("verify", str(dest)).returncode == 0


def test_copier_recopy_keeps_committed_hand_edits(scaffold_copy, template_repo):
    """`copier recopy` is Copier's copy over the experiment (its tasks see _copier_operation ==
    "copy"): at the same template version it merges like an update, so a committed hand edit
    survives, in a "Re-render" commit; a recopy that changes nothing commits nothing."""
    dest = scaffold_copy(designs.base())
    slurm = dest / "r8/finetune.slurm"
    slurm.write_text(slurm.read_text() + "# my note\n")
    git(dest, "commit", "-q", "--no-verify", "-am", "hand edit")
    head = git(dest, "rev-parse", "HEAD")
    result = copier("recopy", "--trust", "--defaults", cwd=dest)
    assert result.returncode == 0, result.stderr
    assert git(dest, "rev-parse", "HEAD") == head and slurm.read_text().endswith("# my note\n")
    result = copier("recopy", "--trust", "--defaults", "--data", "slurm_account=abc", cwd=dest)
    assert result.returncode == 0, result.stderr
    assert git(dest, "log", "-1", "--format=%s").startswith("Re-render base_sweep")
    text = slurm.read_text()
    assert text.endswith("# my note\n") and "#SBATCH --account=abc" in text
    assert git(dest, "status", "--porcelain") == ""


def test_copier_recopy_across_template_versions_is_refused(scaffold_copy, template_repo):
    dest = scaffold_copy(designs.base())
    answers = dest / ".copier-answers.yml"
    answers.write_text(answers.read_text().replace("_commit: ", "_commit: 0000000-older-", 1))
    git(dest, "commit", "-q", "--no-verify", "-am", "as if scaffolded from an older template")
    before = snapshot(dest)
    result = copier("recopy", "--trust", "--defaults", cwd=dest)
    assert result.returncode != 0
    assert "run `copier update --trust --defaults` instead" in result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(dest) == before and git(dest, "status", "--porcelain") == ""


def test_plan_is_a_dry_run(scaffold_copy, tmp_path):
    dest = scaffold_copy(designs.base())
    before = snapshot(dest)
    design = designs.base()
    design["runs"][0]["parameters"]["lr"] = "2e-5"
    from conftest import write_summary

    summary = write_summary(tmp_path / "edited.yaml", design)
    result = cli("plan", str(summary), "--dest", str(dest))
    assert result.returncode == 0, result.stderr
    assert "changed   r8/finetune.yaml" in result.stdout and "r16/finetune.yaml" not in result.stdout
    assert "r8 " in result.stdout and "2.0e-05" in result.stdout
    assert snapshot(dest) == before
    only = cli("plan", str(summary), "--dest", str(dest), "--only", "r16")
    assert "r8/finetune.yaml" not in only.stdout
