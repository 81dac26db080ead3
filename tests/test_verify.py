"""The verifier: a mismatch per changed design value, `<file>: <key>: expected <x>, found <y>`;
hand edits the design does not govern pass."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import designs
from cruijff_gen.commands import render as render_command

RUN = "r8"


@pytest.fixture
def experiment(tmp_path: Path) -> Path:
    """A rendered experiment (in-process: the answers file written as Copier would)."""
    dest = tmp_path / "exp"
    dest.mkdir()
    answers = {"_src_path": "/template", "_commit": "abc", **designs.base(), "slurm_account": "acct", "conda_env": "tt"}
    (dest / ".copier-answers.yml").write_text(yaml.safe_dump(answers, sort_keys=False))
    assert render_command.run(dest, "copy", commit=True) == 0
    return dest


def verify(dest: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cruijff_gen", "verify", str(dest)], capture_output=True, text=True)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (old, path)
    path.write_text(text.replace(old, new, 1))


def test_clean_tree_passes(experiment):
    result = verify(experiment)
    assert result.returncode == 0, result.stderr
    assert "every generated value matches the design" in result.stderr


@pytest.mark.parametrize(
    "file,old,new,expected",
    [
        (f"{RUN}/finetune.yaml", "lr: 1.0e-05", "lr: 1.0e-04", f"{RUN}/finetune.yaml: optimizer.lr: expected 1.0e-05, found 0.0001"),
        (f"{RUN}/finetune.yaml", "lr: 1.0e-05", "lr: '1e-5'", f"{RUN}/finetune.yaml: optimizer.lr: expected 1.0e-05, found '1e-5'"),
        (f"{RUN}/finetune.yaml", "lora_rank: 8", "lora_rank: 16", f"{RUN}/finetune.yaml: model.lora_rank: expected 8, found 16"),
        (f"{RUN}/finetune.yaml", "batch_size: 4", "batch_size: 8", f"{RUN}/finetune.yaml: batch_size: expected 4, found 8"),
        (f"{RUN}/finetune.yaml", "epochs: 2", "epochs: true", f"{RUN}/finetune.yaml: epochs: expected 2, found true"),
        (f"{RUN}/finetune.yaml", "  system_prompt: You are terse.", "", f"{RUN}/finetune.yaml: dataset.system_prompt: expected You are terse., found nothing"),
        (f"{RUN}/setup_finetune.yaml", "lr: 1.0e-05", "lr: 2.0e-05", f"{RUN}/setup_finetune.yaml: parameters.lr: expected 1.0e-05, found 2.0e-05"),
        (f"{RUN}/finetune.slurm", "#SBATCH --mem=40G", "#SBATCH --mem=80G", f"{RUN}/finetune.slurm: #SBATCH --mem: expected 40G, found 80G"),
        (f"{RUN}/finetune.slurm", "#SBATCH --account=acct\n", "", f"{RUN}/finetune.slurm: #SBATCH --account: expected acct, found nothing"),
        (f"{RUN}/finetune.slurm", "recipes/lora_finetune_single_device.py", "recipes/lora_finetune_distributed.py", f"{RUN}/finetune.slurm: command argument 2: expected cruijff_gen/job/recipes/lora_finetune_single_device.py, found cruijff_gen/job/recipes/lora_finetune_distributed.py"),
        (f"{RUN}/finetune.slurm", "conda activate tt", "conda activate other", f"{RUN}/finetune.slurm: environment: expected the line 'conda activate tt', found nothing"),
        (f"{RUN}/eval/capitalization_epoch0.slurm", "--log-dir /scratch/u/exp_base/r8/eval/logs", "--log-dir /tmp", f"{RUN}/eval/capitalization_epoch0.slurm: command --log-dir: expected /scratch/u/exp_base/r8/eval/logs, found /tmp"),
        (f"{RUN}/eval/capitalization_epoch0.slurm", "export HF_HUB_OFFLINE=1", "export HF_HUB_OFFLINE=0", f"{RUN}/eval/capitalization_epoch0.slurm: export HF_HUB_OFFLINE: expected 1, found '0'"),
        (f"{RUN}/eval/capitalization_epoch0.yaml", "epoch: 0", "epoch: 1", f"{RUN}/eval/capitalization_epoch0.yaml: epoch: expected 0, found 1"),
        (f"{RUN}/eval/capitalization_epoch0.yaml", "do_sample: false", "do_sample: true", f"{RUN}/eval/capitalization_epoch0.yaml: generation.do_sample: expected false, found true"),
        (f"{RUN}/finetune.yaml", "epochs: 2\n", "epochs: 2\n<<<<<<< before updating\n", f"{RUN}/finetune.yaml: line"),
    ],
    ids=["lr", "lr-as-text", "rank", "batch", "bool-for-int", "system-prompt", "setup", "mem", "account", "recipe", "env", "log-dir", "export", "cell-epoch", "do-sample", "conflict"],
)
def test_mismatch_is_reported(experiment, file, old, new, expected):
    edit(experiment / file, old, new)
    result = verify(experiment)
    assert result.returncode == 1
    assert expected in result.stderr, result.stderr


def test_deleted_file_is_reported(experiment):
    (experiment / RUN / "finetune.slurm").unlink()
    result = verify(experiment)
    assert result.returncode == 1
    assert f"{RUN}/finetune.slurm: file: expected it to exist, found nothing" in result.stderr


def test_hand_edits_outside_the_design_pass(experiment):
    edit(experiment / RUN / "finetune.slurm", "#SBATCH --time=", "#SBATCH --qos=high\n#SBATCH --time=")
    edit(experiment / RUN / "finetune.slurm", "set -euo pipefail\n", "set -euo pipefail\necho starting  # mine\n")
    edit(experiment / RUN / "finetune.yaml", "compile: false\n", "compile: false\nprofiler:\n  enabled: false\n")
    (experiment / "notes.md").write_text("my notes\n")
    result = verify(experiment)
    assert result.returncode == 0, result.stderr


def test_stale_run_directory_is_reported(experiment):
    (experiment / "old_run" / "eval").mkdir(parents=True)
    result = verify(experiment)
    assert "old_run/: run directory: expected none (not in the design), found one" in result.stderr


def test_render_is_idempotent(experiment):
    before = {p: p.read_bytes() for p in experiment.rglob("*") if p.is_file() and ".git" not in p.parts}
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=experiment, capture_output=True, text=True).stdout
    assert render_command.run(experiment, "render", commit=True) == 0
    after = {p: p.read_bytes() for p in experiment.rglob("*") if p.is_file() and ".git" not in p.parts}
    assert before == after
    assert subprocess.run(["git", "rev-parse", "HEAD"], cwd=experiment, capture_output=True, text=True).stdout == head
