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


def test_render_only_selected_runs(scaffold):
    dest = scaffold(designs.base())
    (dest / "r8/finetune.yaml").unlink()
    (dest / "r16/finetune.yaml").write_text("broken by hand\n")
    result = cli("render", "--only", "r8*", str(dest))
    assert result.returncode == 0, result.stderr
    assert (dest / "r8/finetune.yaml").exists()
    assert (dest / "r16/finetune.yaml").read_text() == "broken by hand\n"
    bad = cli("render", "--only", "r99", str(dest))
    assert bad.returncode != 0 and "--only: no run matches 'r99' (runs: r8, r16, base)" in bad.stderr


def test_plan_is_a_dry_run(scaffold, tmp_path):
    dest = scaffold(designs.base())
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
