"""Copier's render of the old template version during `copier update`, as start-update prepares it
(merge_base.prepare_old_copy), with real git.

What Copier does with that directory is reproduced here from Copier 9.19's `Worker._apply_update`
and `_git_initialize_repo` / `_git_commit` (copier/_main.py): after the "before" migration (our
start-update) it runs, in the old copy, `git write-tree` in the experiment, then `git init`, `git add .`, `git commit --allow-empty -am
"dumb commit 1" --no-gpg-sign`, then the same with "dumb commit 2" and `--no-verify`, borrows the
experiment's objects (`set_git_alternates`, copier/_tools.py); later
`git diff-tree -r --diff-filter=D --name-only HEAD <experiment's write-tree>` (files the user removed)
and `git diff-tree --unified=3 HEAD <experiment's write-tree>` (the patch it applies to the
experiment). Prepared, that patch must be the answers file alone, the commit's summary must name only
that file (a root commit's summary reads every blob of the tree), and nothing may look removed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cruijff_gen import merge_base

ANSWERS = ".copier-answers.yml"
ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
       "GIT_COMMITTER_EMAIL": "t@t", "GIT_CONFIG_GLOBAL": os.devnull}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True, env=ENV).stdout


def experiment(root: Path) -> Path:
    dest = root / "exp"
    files = {ANSWERS: "_commit: v1\n_cruijff_design: |\n {\"runs\": []}\n", "README.md": "# exp\n",
             **{f"r{i}/finetune.yaml": f"lr: {i}e-5\n" for i in range(40)}, "r0/eval/cell.slurm": "#!/bin/bash\n"}
    for rel, text in files.items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_text(text)
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "scaffold")
    return dest


def copier_steps(old_copy: Path, dest: Path) -> tuple[str, str, str]:
    """Copier's commands in the old copy, in its order: (commit 1's summary, removed files, patch)."""
    head = git(dest, "write-tree").strip()
    git(old_copy, "init")
    git(old_copy, "add", ".")
    summary = git(old_copy, "commit", "--allow-empty", "-am", "dumb commit 1", "--no-gpg-sign")
    git(old_copy, "commit", "--allow-empty", "-am", "dumb commit 2", "--no-gpg-sign", "--no-verify")
    (old_copy / ".git" / "objects" / "info" / "alternates").write_text(str(dest / ".git" / "objects"))  # set_git_alternates
    removed = git(old_copy, "diff-tree", "-r", "--diff-filter=D", "--name-only", "HEAD", head)
    patch = git(old_copy, "diff-tree", "--unified=3", "HEAD", head)
    return summary, removed, patch


@pytest.mark.parametrize("prepared", [True, False])
def test_the_old_copys_diff_and_first_commit_are_the_answers_file(tmp_path, monkeypatch, prepared):
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # merge_base's per-user store
    monkeypatch.setattr("tempfile.tempdir", None)
    dest = experiment(tmp_path)
    old_copy = tmp_path / f"{merge_base.OLD_COPY_PREFIX}abc123"
    old_copy.mkdir()
    (old_copy / ANSWERS).write_text("_commit: v1\n_src_path: /t\n")  # all the old version's render holds
    if prepared:
        merge_base.note_old_copy(old_copy, 4242)  # the throw-away render's task
        merge_base.prepare_old_copy(dest, 4242)  # start-update in the experiment
        assert sorted(p.name for p in old_copy.iterdir()) == [ANSWERS, ".git"], "nothing written to the copy's work tree"
    summary, removed, patch = copier_steps(old_copy, dest)
    touched = [line for line in patch.splitlines() if line.startswith("diff --git")]
    if not prepared:  # what Copier does by itself: every generated file is in its patch
        assert len(touched) == 43  # the answers file, and as added files all 42 the experiment has
        return
    assert touched == [f"diff --git a/{ANSWERS} b/{ANSWERS}"]
    assert removed == ""
    assert "1 file changed" in summary and "create mode" not in summary, summary
