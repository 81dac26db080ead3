"""This repository's own pre-commit hooks (.pre-commit-config.yaml): a valid config whose hooks
pass on the checkout, and fail when the bundled example design is broken."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO

ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def pre_commit(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pre_commit", *args], cwd=cwd, capture_output=True, text=True, env=ENV)


def test_config_is_valid():
    result = pre_commit(REPO, "validate-config", ".pre-commit-config.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_example_hook_passes_and_catches_a_broken_design(template_repo: Path, tmp_path: Path):
    repo = tmp_path / "repo"
    shutil.copytree(template_repo, repo)
    ok = pre_commit(repo, "run", "example-design", "--all-files")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    design = repo / "examples/capitalization/experiment_summary.yaml"
    design.write_text(design.read_text().replace("lr: 1e-5", "lr: fast", 1))
    broken = pre_commit(repo, "run", "example-design", "--all-files")
    assert broken.returncode != 0
    assert "parameters.lr" in broken.stdout and "Traceback" not in broken.stdout
