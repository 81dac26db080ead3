"""The verifier: a mismatch per changed design value, `<file>: <key>: expected <x>, found <y>`;
hand edits the design does not govern pass. Also, in process: the #SBATCH reader against sbatch's
rules (and against `sbatch --test-only -v` itself on the test cluster) and the launch-command
comparison. The same checks through real git commits and pushes: tests/test_gate.py."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import designs
from cruijff_gen import cli, sbatch, shell
from cruijff_gen import verify as V
from cruijff_gen.commands import render as render_command
from cruijff_gen.plan import SlurmJob

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
    """`cruijff-gen verify DEST` in-process, through the CLI's entry point (its exit code and what it
    prints); test_clean_tree_passes runs the installed command itself."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["verify", str(dest)])
    return subprocess.CompletedProcess(["cruijff-gen", "verify", str(dest)], code, out.getvalue(), err.getvalue())


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (old, path)
    path.write_text(text.replace(old, new, 1))


def test_clean_tree_passes(experiment):
    result = subprocess.run([sys.executable, "-m", "cruijff_gen", "verify", str(experiment)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "every generated value matches the design" in result.stderr
    in_process = verify(experiment)  # what the other tests run: the same exit code and lines
    assert (in_process.returncode, in_process.stdout, in_process.stderr) == (0, result.stdout, result.stderr)


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
        (f"{RUN}/finetune.slurm", "conda activate tt", "conda activate other", f"{RUN}/finetune.slurm: environment: expected the line 'conda activate tt', found 'conda activate other'"),
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
    edit(experiment / RUN / "finetune.slurm", "#SBATCH --time=", "#SBATCH --comment='tried on the big queue'\n#SBATCH --time=")
    edit(experiment / RUN / "finetune.slurm", "set -euo pipefail\n", "set -euo pipefail\n# mine\n")
    script = experiment / RUN / "finetune.slurm"
    script.write_text(script.read_text() + "echo finished  # after the command: mine\n")
    edit(experiment / RUN / "finetune.yaml", "compile: false\n", "compile: false\nprofiler:\n  enabled: false\n")
    (experiment / "notes.md").write_text("my notes\n")
    result = verify(experiment)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "change,expected",
    [
        (lambda d: edit(d / RUN / "finetune.slurm", "#SBATCH --time=", "#SBATCH --qos=high\n#SBATCH --time="), f"{RUN}/finetune.slurm: #SBATCH --qos: expected none"),
        (lambda d: edit(d / RUN / "finetune.slurm", "set -euo pipefail\n", "set -euo pipefail\necho starting\n"), f"{RUN}/finetune.slurm: added line"),
        (lambda d: os.chmod(d / "submit.sh", 0o644), "submit.sh: file mode: expected executable"),
        (lambda d: edit(d / "submit.sh", ' --dependency=afterok:"$job"', ""), "submit.sh: run r8: expected the line"),
        (lambda d: edit(d / ".pre-commit-config.yaml", "entry: cruijff-gen verify --files", "entry: 'true'"), ".pre-commit-config.yaml: hook cruijff-verify entry"),
        (lambda d: (d / ".gitignore").write_text((d / ".gitignore").read_text() + "*.slurm\n"), ".gitignore: pattern '*.slurm'"),
        (lambda d: (d / ".gitignore").write_text("__pycache__/\n"), ".gitignore: pattern '*/artifacts/*': expected it"),
        (lambda d: (d / ".git/info/exclude").write_text("*.yaml\n"), ".git/info/exclude: pattern '*.yaml'"),
        (lambda d: (d / ".gitattributes").write_text("*.slurm eol=crlf\n"), ".gitattributes: eol=crlf"),
        (lambda d: (shutil.move(str(d / RUN / "eval"), str(d.parent / "elsewhere")), (d / RUN / "eval").symlink_to(d.parent / "elsewhere")), f"{RUN}/eval: directory: expected a directory"),
        (lambda d: ((d / RUN / "finetune.yaml").rename(d.parent / "ft.yaml"), (d / RUN / "finetune.yaml").symlink_to(d.parent / "ft.yaml")), f"{RUN}/finetune.yaml: file: expected a regular file"),
    ],
    ids=["qos", "line-before-command", "submit-exec", "submit-dependency", "hook-entry", "gitignore", "gitignore-pattern-removed",
         "info-exclude", "gitattributes", "symlinked-dir", "symlinked-file"],
)
def test_work_tree_checks(experiment, change, expected):
    change(experiment)
    result = verify(experiment)
    assert result.returncode == 1
    assert expected in result.stderr, result.stderr


def test_stale_run_directory_is_reported(experiment):
    (experiment / "old_run" / "eval").mkdir(parents=True)
    (experiment / "old_run" / "eval" / "cap.slurm").write_text("#!/bin/bash\n")  # a job file left behind
    (experiment / "done_run" / "artifacts").mkdir(parents=True)  # a removed run's outputs only: the user's
    result = verify(experiment)
    assert "old_run/: run directory: expected none (not in the design), found one with job files (eval/cap.slurm)" in result.stderr
    assert "done_run" not in result.stderr


def test_render_is_idempotent(experiment):
    before = {p: p.read_bytes() for p in experiment.rglob("*") if p.is_file() and ".git" not in p.parts}
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=experiment, capture_output=True, text=True).stdout
    assert render_command.run(experiment, "render", commit=True) == 0
    after = {p: p.read_bytes() for p in experiment.rglob("*") if p.is_file() and ".git" not in p.parts}
    assert before == after
    assert subprocess.run(["git", "rev-parse", "HEAD"], cwd=experiment, capture_output=True, text=True).stdout == head



# --------------------------------------------------------------------------- #SBATCH, as sbatch reads it

def effective(text: str) -> dict[str, str | None]:
    """The options sbatch applies (the last occurrence of each wins)."""
    return {o.name: o.value for o in sbatch.read_directives(text, V.KNOWN_DIRECTIVES).options}


@pytest.mark.parametrize(
    "rest,words",
    [
        (" --time=1:00", ["--time=1:00"]),
        ("\t--time=1:00  --mem=4G ", ["--time=1:00", "--mem=4G"]),
        ("--mem=5G", ["--mem=5G"]),  # `#SBATCH--mem=5G`: no space needed
        (' --job-name="a b" --comment=\'c d\'', ["--job-name=a b", "--comment=c d"]),
        (' -J"q r"', ["-Jq r"]),
        (" --job-name=a#b --comment=x", ["--job-name=a"]),  # an unquoted # ends the line
        (" --comment='a#b'", ["--comment=a#b"]),  # ... but not a quoted one
        (' --comment="a \\" b"', ['--comment=a " b']),  # a backslash keeps the next character
        (" --comment=a\\#b", ["--comment=a#b"]),
        (" --comment=a\\ b", ["--comment=a", "b"]),  # ... but never protects whitespace
        (' --time=1:00 "" --mem=4G', ["--time=1:00"]),  # an empty argument ends the line
        (" # --time=1:00", []),
        ("", []),
    ],
)
def test_sbatch_words(rest, words):
    assert sbatch.sbatch_words(rest) == words


@pytest.mark.parametrize("rest", [' --comment "open', " :x", " --comment='x"])
def test_sbatch_words_refused_like_sbatch(rest):
    with pytest.raises(sbatch.SbatchSyntax):
        sbatch.sbatch_words(rest)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("#!/bin/bash\n#SBATCH --time=00:10:00\n#SBATCH -t 00:05:00\necho\n", {"time": "00:05:00"}),  # the last one wins
        ("#!/bin/bash\n#SBATCH --time 00:02:00 --mem 3G\n", {"time": "00:02:00", "mem": "3G"}),
        ("#!/bin/bash\n#SBATCH -c2 -n 3 -J nm -o out -C gpu80 -p nomig -A acc -q hi -G 2 -N1\n",
         {"cpus-per-task": "2", "ntasks": "3", "job-name": "nm", "output": "out", "constraint": "gpu80", "partition": "nomig",
          "account": "acc", "qos": "hi", "gpus": "2", "nodes": "1"}),
        ("#!/bin/bash\n#SBATCH -Ht 00:06:00\n", {"hold": None, "time": "00:06:00"}),  # bundled flags
        ("#!/bin/bash\n#SBATCH --comment --gpus=4\n", {"comment": "--gpus=4"}),  # a value may look like an option
        ("#!/bin/bash\n#SBATCH --exclusive --time=00:01:00\n", {"exclusive": None, "time": "00:01:00"}),  # optional value
        ("#!/bin/bash\n\n# a comment\n   \n\t# indented comment\n#SBATCH --mem=3G\necho\n#SBATCH --mem=9G\n", {"mem": "3G"}),
        ("#!/bin/bash\necho hi\n#SBATCH --time=00:09:00\n", {}),  # a command first: no directive is read
        ("#!/bin/bash\n  #SBATCH --mem=3G\n#SBATCH --time=00:01:00\n", {"time": "00:01:00"}),  # indented: not a directive
        ("#!/bin/bash\n#sbatch --mem=3G\n", {}),
        ("#!/bin/bash\n#SLURM --time=00:04:00\n", {"time": "00:04:00"}),
        ("#!/bin/bash\n#SBATCH --time=00:01:00 --\n", {"time": "00:01:00"}),
    ],
    ids=["last-wins", "long-space", "short-forms", "bundle", "value-like-option", "optional-value", "comments-blank",
         "command-first", "indented", "lowercase", "slurm-magic", "double-dash"],
)
def test_directives_read_as_sbatch_reads_them(text, expected):
    assert effective(text) == expected


def test_directive_positions():
    found = sbatch.read_directives("#!/bin/bash\n#SBATCH --mem=3G\nx=1\n#SBATCH --time=1\n#PBS -l walltime=1:00:00\n#BSUB -W 30\n", V.KNOWN_DIRECTIVES)
    assert found.first_command == (3, "x=1")
    assert found.ignored == [(4, "#SBATCH --time=1")]
    assert [n for n, _ in found.wrappers] == [5, 6]


@pytest.mark.parametrize(
    "block",
    ["#SBATCH --time=00:01:00 -- --mem=3G", "#SBATCH x --ntasks=2", "#SBATCH hetjob", "#SBATCH --comment", "#SBATCH -t"],
)
def test_directives_sbatch_refuses_are_problems(block):
    assert sbatch.read_directives(f"#!/bin/bash\n{block}\necho\n", V.KNOWN_DIRECTIVES).problems


JOB = SlurmJob(
    directives=(("job-name", "r8"), ("nodes", "1"), ("ntasks", "1"), ("cpus-per-task", "4"), ("mem", "40G"),
                ("gres", "gpu:1"), ("time", "02:00:00"), ("output", "/x/slurm-%j.out")),
    environment=(), exports=(), workdir="/x", argv=("tune", "run", "r.py", "--config", "/x/finetune.yaml"),
)
BLOCK = "".join(f"#SBATCH --{k}={v}\n" for k, v in JOB.directives)


@pytest.mark.parametrize(
    "extra,expected",
    [
        ("", None),
        ("#SBATCH --comment=mine\n", None),
        ("#SBATCH --mail-type=END --mail-user=me@example.org\n", None),  # free: the design sets no mail
        ("#SBATCH --open-mode=append\n", None),
        ("#SBATCH -t 00:05:00\n", "#SBATCH --time: expected 02:00:00 only"),
        ("#SBATCH --gpus=4\n", "#SBATCH --gpus: expected none"),
        ("#SBATCH -G 4\n", "#SBATCH --gpus: expected none"),
        ("#SBATCH --gpus-per-node=2\n", "#SBATCH --gpus-per-node: expected none"),
        ("#SBATCH --gpus-per-task=1\n", "#SBATCH --gpus-per-task: expected none"),
        ("#SBATCH --mem-per-cpu=4G\n", "#SBATCH --mem-per-cpu: expected none"),
        ("#SBATCH --mem-per-gpu=4G\n", "#SBATCH --mem-per-gpu: expected none"),
        ("#SBATCH --qos=high\n", "#SBATCH --qos: expected none"),
        ("#SBATCH -q high\n", "#SBATCH --qos: expected none"),
        ("#SBATCH --nodes=2\n", "#SBATCH --nodes: expected 1 only"),
        ("#SBATCH --ntasks=8\n", "#SBATCH --ntasks: expected 1 only"),
        ("#SBATCH --exclusive\n", "#SBATCH --exclusive: expected none"),
        ("#SBATCH --array=0-3\n", "#SBATCH --array: expected none"),
        ("#SBATCH --partition=big\n", "#SBATCH --partition: expected none (the design sets none here"),
        ("#SBATCH --partitio=big\n", "#SBATCH --partitio: expected none"),
        ("#SBATCH --export=NONE\n", "#SBATCH --export: expected none"),
        ("#SBATCH --comment --gpus=4\n", None),  # --gpus=4 is the comment's value
    ],
)
def test_directive_policy(extra, expected):
    text = "#!/bin/bash\n" + BLOCK + extra + "\nset -euo pipefail\n"
    problems = V._check_directives("f.slurm", text, JOB, "finetune_slurm")
    if expected is None:
        assert problems == []
    else:
        assert any(p.startswith("f.slurm: " + expected) for p in problems), problems


def test_directive_after_first_command_is_reported_once():
    text = "#!/bin/bash\necho hi\n" + BLOCK
    problems = V._check_directives("f.slurm", text, JOB, "finetune_slurm")
    assert problems == ["f.slurm: #SBATCH lines: expected them before the first command, found the command 'echo hi' at line 2 "
                        "first (sbatch ignores every #SBATCH line after it: 8 here)"]


# --------------------------------------------------------------------------- the launch command, word for word
TUNE = ("tune", "run", "recipes/lora_finetune_single_device.py", "--config", "/x/finetune.yaml")
INSPECT = ("inspect", "eval", "/t.py@cap", "--model", "hf/r8", "-M", "model_path=/x/epoch_0", "-M", "do_sample=false",
           "-T", "data_path=/d.json", "-T", "config_path=/x/c.yaml", "--log-dir", "/x/logs", "--metadata", "cruijff={run: r8, epoch: 0}")


@pytest.mark.parametrize(
    "argv,line,expected",
    [
        (TUNE, "tune run recipes/lora_finetune_single_device.py --config /x/finetune.yaml", []),
        (TUNE, "tune run recipes/lora_finetune_single_device.py  --config   '/x/finetune.yaml'", []),  # same words
        (TUNE, "tune run recipes/lora_finetune_single_device.py --config /x/finetune.yaml optimizer.lr=0.1",
         ["command: expected no extra argument, found 'optimizer.lr=0.1'", "edit the design field lr instead"]),
        (TUNE, "tune run recipes/lora_finetune_single_device.py --config /x/finetune.yaml epochs=50", ["found 'epochs=50'", "edit the design field epochs"]),
        (TUNE, "tune run recipes/lora_finetune_single_device.py --config /x/other.yaml", ["command --config: expected /x/finetune.yaml, found /x/other.yaml"]),
        (TUNE, "tune run recipes/lora_finetune_single_device.py", ["command --config: expected /x/finetune.yaml, found nothing"]),
        (TUNE, "srun tune run recipes/lora_finetune_single_device.py --config /x/finetune.yaml", ["command: expected it to start with tune, found 'srun'"]),
        (TUNE, "tune run recipes/lora_finetune_single_device.py --config /x/finetune.yaml || true", ["command: expected nothing after it on the line, found '|| true'"]),
        (TUNE, "tune run recipes/lora_finetune_single_device.py --config /x/finetune.yaml &", ["command: expected nothing after it on the line"]),
        (TUNE, "tune run recipes/lora_finetune_single_device.py --config $CFG", ["command --config: expected /x/finetune.yaml, found $CFG"]),
        (TUNE, "tune run recipes/lora_finetune_single_device.py --config /x/finetune.yaml # a comment", ["found '#'"]),
        (TUNE, "echo tune-run", ["command: expected tune run"]),
        (INSPECT, "inspect eval /t.py@cap --model hf/r8 -M model_path=/x/epoch_0 -M do_sample=false -T data_path=/d.json "
                  "-T config_path=/x/c.yaml --log-dir /x/logs --metadata 'cruijff={run: r8, epoch: 0}'", []),
        (INSPECT, "inspect eval /t.py@cap --model hf/r8 -M model_path=/x/epoch_0 -M do_sample=false -T data_path=/d.json "
                  "-T config_path=/x/c.yaml --log-dir /x/logs --metadata 'cruijff={run: r8, epoch: 0}' --limit 3",
         ["command: expected no extra argument, found '--limit 3'", "not a design field"]),
        (INSPECT, "inspect eval /t.py@cap --model hf/r8 -M model_path=/x/epoch_0 -M do_sample=false -T data_path=/d.json "
                  "-T config_path=/x/c.yaml --log-dir /x/logs --metadata 'cruijff={run: r8, epoch: 0}' --temperature 1.5",
         ["found '--temperature 1.5'", "evaluation.temperature"]),
        (INSPECT, "inspect eval /t.py@cap --model hf/r8 -M model_path=/x/epoch_0 -M do_sample=false -T data_path=/d.json "
                  "-T config_path=/x/c.yaml --log-dir /x/logs --metadata 'cruijff={run: r8, epoch: 0}' -T x=y", ["found '-T x=y'"]),
        (INSPECT, "inspect eval /t.py@cap --model hf/r8 -M model_path=/x/epoch_0 -M do_sample=false -T data_path=/d.json "
                  "-T config_path=/x/c.yaml --log-dir /x/logs --metadata 'cruijff={run: r8, epoch: 0}' -M k=v", ["found '-M k=v'", "eval_model_args"]),
        (INSPECT, "inspect eval /t.py@cap --model hf/r8 -M model_path=/x/epoch_0 -M do_sample=false -T data_path=/d.json "
                  "-T config_path=/x/c.yaml --log-dir /x/logs --metadata 'cruijff={run: r8, epoch: 0}' --model-arg do_sample=true",
         ["command -M do_sample: expected false, found false and true (given 2 times)"]),
        (INSPECT, "inspect eval /t.py@cap --model hf/r8 -M model_path=/x/epoch_0 -M do_sample=false -T data_path=/d.json "
                  "-T config_path=/x/c.yaml --log-dir /x/logs --metadata 'cruijff={run: r8, epoch: 0}' --task-arg data_path=/e.json",
         ["command -T data_path: expected /d.json, found /d.json and /e.json"]),
        (INSPECT, "inspect eval /t.py@cap --model hf/r8 -M do_sample=false -T data_path=/d.json "
                  "-T config_path=/x/c.yaml --log-dir /x/logs --metadata 'cruijff={run: r8, epoch: 0}'",
         ["command -M model_path: expected /x/epoch_0, found nothing"]),
        (INSPECT, "inspect eval /t.py@cap --model hf/r8 -M model_path=/x/epoch_0 -M do_sample=false -T data_path=/d.json "
                  "-T config_path=/x/c.yaml --log-dir /x/logs --metadata cruijff={run:r8}",
         ["command --metadata cruijff: expected {run: r8, epoch: 0}, found {run:r8}"]),
    ],
    ids=["same", "same-words", "override-lr", "override-epochs", "config", "config-missing", "prefix", "or-true", "background",
         "variable", "comment", "not-a-launch", "inspect-same", "limit", "temperature", "task-arg", "model-arg", "long-model-arg",
         "long-task-arg", "model-path-missing", "metadata"],
)
def test_command_comparison(argv, line, expected):
    problems = V.compare_command("f.slurm", argv, shell.Line(7, line))
    if not expected:
        assert problems == []
    else:
        assert problems, line
        text = "\n".join(problems)
        assert all(p.startswith("f.slurm: command") for p in problems), problems
        assert all(e in text for e in expected), problems


def test_command_missing():
    assert V.compare_command("f.slurm", TUNE, None) == [f"f.slurm: command: expected {' '.join(TUNE)}, found nothing"]


def test_shell_lines_join_continuations_and_keep_heredocs_exact():
    text = "#!/bin/bash\n# c\n  a \\\n  b\ncat <<'EOF' || x\n  # data\n\nEOF\nc  # tail\n"
    assert shell.shell_lines(text) == [shell.Line(3, "a   b"), shell.Line(5, "cat <<'EOF' || x"), shell.Line(6, "  # data", True),
                                       shell.Line(8, "EOF", True), shell.Line(9, "c  # tail")]


# --------------------------------------------------------------------------- checked against sbatch itself
ORACLE = [
    "#!/bin/bash\n#SBATCH --job-name=a\n#SBATCH --time=00:10:00\n#SBATCH -t 00:05:00\n#SBATCH -c 2 -N 1\necho\n",
    "#!/bin/bash\necho hi\n#SBATCH --time=00:09:00\n",
    "#!/bin/bash\n# c\n\n  # indented\n#SBATCH --mem=3G\necho\n#SBATCH --mem=9G\n",
    "#!/bin/bash\n  #SBATCH --mem=3G\n#SBATCH--mem=5G\n#sbatch --ntasks=2\necho\n",
    "#!/bin/bash\n#SLURM --mem=4G\necho\n",
    "#!/bin/bash\n#SBATCH --job-name=\"a b\" --comment='c d'\necho\n",
    "#!/bin/bash\n#SBATCH --job-name=a#b --comment=x\necho\n",
    "#!/bin/bash\n#SBATCH --comment=\"a \\\" b\" -J'x\"y'\necho\n",
    "#!/bin/bash\n#SBATCH --comment --gpus=4\necho\n",
    "#!/bin/bash\n#SBATCH --time 00:02:00 --mem 3G\necho\n",
    "#!/bin/bash\n#SBATCH -Ht 00:06:00\necho\n",
    "#!/bin/bash\n#SBATCH --gres=gpu:8\n#SBATCH --gres=gpu:1\necho\n",
    "#!/bin/bash\n#SBATCH --exclusive --time=00:01:00\necho\n",
    "#!/bin/bash\n#SBATCH -G 4 --gpus-per-node=2 --qos=normal -q x\necho\n",
    "#!/bin/bash\n#SBATCH -c2 -n 3 -J nm -C gpu80 -p nomig -A acc\necho\n",
    "#!/bin/bash\n#SBATCH --time=00:01:00 --\necho\n",
    "#!/bin/bash\n#SBATCH --mail-type=END --mail-user=me@example.org --open-mode=append\necho\n",
]
SBATCH_REFUSES = [
    "#!/bin/bash\n#SBATCH --comment \"unterminated\necho\n",
    "#!/bin/bash\n#SBATCH   :x\necho\n",
    "#!/bin/bash\n#SBATCH x --ntasks=2\necho\n",
    "#!/bin/bash\n#SBATCH --time=00:01:00 -- --mem=3G\necho\n",
    "#!/bin/bash\n#SBATCH --time=00:01:00\r\necho\n",
]


def sbatch_view(cluster, tmp_path: Path, text: str) -> tuple[int, dict[str, str]]:
    """What `sbatch --test-only -v` says it would submit: its defined options."""
    script = tmp_path / "probe.sh"
    script.write_bytes(text.encode())
    proc = cluster.run("sbatch", "--test-only", "-v", str(script), check=False, cwd=tmp_path)
    block = proc.stderr.split("defined options", 1)[1].split("end of defined options", 1)[0] if "defined options" in proc.stderr else ""
    options = dict(re.findall(r"sbatch: (\S+)\s+: (.*)", block))
    for own in ("test-only", "verbose"):
        options.pop(own, None)
    return proc.returncode, options


def _as_sbatch_shows(name: str, value: str | None, cwd: Path) -> str:
    if value is None:
        return {"hold": "set", "exclusive": "exclusive"}.get(name, "set")
    if name == "gres":
        return "gres:" + value
    if name == "output":
        return str(cwd / value)
    if name == "open-mode":
        return value[0]
    return value


@pytest.mark.slurm
@pytest.mark.parametrize("text", ORACLE, ids=range(len(ORACLE)))
def test_directives_agree_with_sbatch(slurm_cluster, tmp_path, text):
    _, shown = sbatch_view(slurm_cluster, tmp_path, text)
    mine = {name: _as_sbatch_shows(name, value, tmp_path) for name, value in effective(text).items()}
    assert mine == shown


@pytest.mark.slurm
@pytest.mark.parametrize("text", SBATCH_REFUSES, ids=range(len(SBATCH_REFUSES)))
def test_scripts_sbatch_refuses_are_refused(slurm_cluster, tmp_path, text):
    code, _ = sbatch_view(slurm_cluster, tmp_path, text)
    assert code != 0
    job = SlurmJob(directives=(), environment=(), exports=(), workdir="/x", argv=("tune",))
    assert V._check_slurm("f.slurm", text, job, "#!/bin/bash\ntune\n", "finetune_slurm")


@pytest.mark.slurm
def test_wrapper_directives_override_sbatch_ones(slurm_cluster, tmp_path):
    """#PBS lines anywhere (even after the command) win over #SBATCH: why they are refused."""
    text = "#!/bin/bash\n#SBATCH --time=00:02:00\necho hi\n#PBS -l walltime=01:00:00\n"
    _, shown = sbatch_view(slurm_cluster, tmp_path, text)
    assert shown["time"] == "01:00:00" and effective(text) == {"time": "00:02:00"}
    assert sbatch.read_directives(text, V.KNOWN_DIRECTIVES).wrappers == [(4, "#PBS -l walltime=01:00:00")]
