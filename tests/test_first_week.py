"""A researcher's first week (issue 15): each flow run the way a user runs it, through the real CLI
(real `copier copy` / `copier update`, real git, the `cruijff-gen` front door).

Where a behaviour comes from: the ignore rules are the generated .gitignore's (`*/artifacts/*`,
`*/eval/logs/*`), which is what keeps a run's checkpoints and eval logs out of git on a real
experiment; the notebook is committed the way a user commits one."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import designs

pytestmark = pytest.mark.copier

BIN = str(Path(sys.executable).parent)


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **extra}


def git(dest: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=dest, check=True, capture_output=True, text=True).stdout


def cli(*args: str, cwd: Path | None = None, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cruijff_gen", *args], cwd=cwd, capture_output=True, text=True, env=env(**extra))


def update(dest: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "copier", "update", "--trust", "--defaults"],
                          cwd=dest, capture_output=True, text=True, env=env())


def commit_design(dest: Path, text: str, message: str = "design") -> None:
    (dest / "experiment_summary.yaml").write_text(text)
    git(dest, "commit", "-q", "--no-verify", "-m", message, "experiment_summary.yaml")


# ----------------------------------------------------------------------------- item 1
def test_a_run_with_results_can_be_removed_and_renamed(scaffold_copy):
    dest = scaffold_copy(designs.base())
    # r16 has trained and been evaluated: a checkpoint and an eval log (git-ignored), and a
    # notebook the user committed beside the eval cells.
    ckpt = dest / "r16/artifacts/epoch_0/adapter_model.safetensors"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"\0" * 64)
    (dest / "r16/eval/logs/2025-10-22_capitalization.eval").write_text("{}")
    (dest / "r16/eval/analysis.ipynb").write_text("{\"cells\": []}\n")
    git(dest, "add", "r16/eval/analysis.ipynb")
    git(dest, "commit", "-q", "--no-verify", "-m", "my notebook")
    assert git(dest, "status", "--porcelain", "--ignored").count("!!") == 2  # the outputs are ignored, as on a cluster

    design = yaml.safe_load((dest / "experiment_summary.yaml").read_text())
    # rename r16 -> r16b (a remove and an add)
    design["runs"][1]["name"] = "r16b"
    design["evaluation"]["matrix"][1]["run"] = "r16b"
    commit_design(dest, yaml.safe_dump(design, sort_keys=False), "rename r16")
    result = update(dest)
    assert result.returncode == 0, result.stderr
    assert "r16/" in result.stderr and "did not generate" in result.stderr, result.stderr
    assert sum("r16/" in line and "did not generate" in line for line in result.stderr.splitlines()) == 1
    # what it generated is gone; what it did not generate is where it was
    assert not (dest / "r16/finetune.yaml").exists() and not (dest / "r16/eval/capitalization_epoch1.slurm").exists()
    assert ckpt.read_bytes() == b"\0" * 64
    assert (dest / "r16/eval/logs/2025-10-22_capitalization.eval").exists()
    assert "r16/eval/analysis.ipynb" in git(dest, "ls-files")
    assert (dest / "r16b/finetune.yaml").exists()
    assert git(dest, "status", "--porcelain") == ""
    check = cli("verify", str(dest))
    assert check.returncode == 0, check.stderr
    # and the next update still works (the leftovers are not an error)
    design["runs"][0]["parameters"]["lr"] = "2e-5"
    commit_design(dest, yaml.safe_dump(design, sort_keys=False), "lr")
    result = update(dest)
    assert result.returncode == 0, result.stderr
    assert "r16/" not in result.stderr


# ----------------------------------------------------------------------------- item 2
COMMENTED = """\
# My capitalization sweep. Comments, key order and flow style are mine.
experiment: {name: base_sweep, project: cap, question: "Does rank matter?", date: "2025-10-22", dir: /scratch/u/exp_base}
runs:   # fine-tuned first
  - {name: r8, type: fine-tuned, model: Llama-3.2-1B-Instruct, parameters: {lora_rank: 8, lr: 1e-5}}
  - {name: base, type: control, model: Llama-3.2-1B-Instruct, parameters: {}}
controls: {epochs: 2, batch_size: 4, system_prompt: "You are terse.", prompt: "Capitalize: {input}", dataset_type: chat_completion}
models: {base: [{name: Llama-3.2-1B-Instruct, path: /models/Llama-3.2-1B-Instruct}]}
data: {training: {path: /data/words.json, format: json, splits: {train: 240, validation: 30}}}
evaluation:
  tasks: [{name: capitalization, script: /tasks/cap_task.py, dataset: /data/words.json}]
  matrix:
    - {run: r8, tasks: [capitalization], epochs: [1]}
    - {run: base, tasks: [capitalization], epochs: null}
"""


@pytest.mark.parametrize("door", ["copier", "front"])
def test_the_design_file_stays_the_users_bytes(template_repo, tmp_path, door):
    summary = tmp_path / "experiment_summary.yaml"
    summary.write_text(COMMENTED)
    dest = tmp_path / "exp"
    if door == "copier":  # plain copier, run from the directory that holds the summary (a relative --data-file;
        # PWD as a shell sets it for the commands it starts)
        result = subprocess.run([sys.executable, "-m", "copier", "copy", "--trust", "--defaults", "--data-file", "experiment_summary.yaml",
                                 str(template_repo), str(dest)], cwd=tmp_path, capture_output=True, text=True, env=env(PWD=str(tmp_path)))
    else:
        result = cli("new", str(summary), str(dest), "--template", str(template_repo))
    assert result.returncode == 0, result.stderr
    assert (dest / "experiment_summary.yaml").read_bytes() == COMMENTED.encode()
    assert git(dest, "show", "HEAD:experiment_summary.yaml") == COMMENTED
    edited = COMMENTED.replace("lr: 1e-5}}", "lr: 2e-5}}  # faster")
    commit_design(dest, edited)
    result = update(dest) if door == "copier" else cli("update", str(dest))
    assert result.returncode == 0, result.stderr
    assert git(dest, "log", "-1", "--format=%s").startswith("Update base_sweep: runs.r8.parameters.lr")
    assert (dest / "experiment_summary.yaml").read_text() == edited
    assert git(dest, "show", "HEAD:experiment_summary.yaml") == edited
    # a summary that leaves sections to their defaults (tools) is the rendered design for every check
    check = cli("verify", str(dest))
    assert check.returncode == 0, check.stderr
    (dest / "README.md").write_text((dest / "README.md").read_text() + "\nnotes\n")  # the commit hook checks the design too
    hooked = subprocess.run(["git", "commit", "-q", "-am", "notes"], cwd=dest, capture_output=True, text=True, env=env())
    assert hooked.returncode == 0, hooked.stdout + hooked.stderr


def test_section_defaults_are_copier_ymls():
    from conftest import REPO
    from cruijff_gen.experiment_dir import SECTION_DEFAULTS
    from cruijff_gen.parse import DESIGN_SECTIONS

    questions = yaml.safe_load((REPO / "copier.yml").read_text())
    assert {k: questions[k]["default"] for k in DESIGN_SECTIONS if questions[k]["default"] not in ({}, [])} == SECTION_DEFAULTS


# ----------------------------------------------------------------------------- item 3
def test_experiment_dir_defaults_to_the_destination_and_a_different_one_is_flagged(scaffold, template_repo, tmp_path):
    design = designs.base()
    del design["experiment"]["dir"]
    plain = scaffold(design, "plain")  # plain copier copy
    summary = tmp_path / "nodir.yaml"
    summary.write_text(yaml.safe_dump(design, sort_keys=False))
    front = tmp_path / "front"
    result = cli("new", str(summary), str(front), "--template", str(template_repo))  # renders into a staging sibling first
    assert result.returncode == 0, result.stderr
    assert "experiment.dir" not in result.stderr
    for dest in (plain, front):
        assert f"\ncd {dest}/r8\n" in (dest / "r8/finetune.slurm").read_text()
        assert f"`{dest}`" in (dest / "README.md").read_text()
        assert cli("verify", str(dest)).returncode == 0
    # the commit hook (reading the design from git's index) knows the default too
    (plain / "README.md").write_text((plain / "README.md").read_text() + "\nmy notes\n")
    hooked = subprocess.run(["git", "commit", "-q", "-am", "notes"], cwd=plain, capture_output=True, text=True, env=env())
    assert hooked.returncode == 0, hooked.stdout + hooked.stderr
    # the design names a cluster path, the scaffold goes elsewhere (a laptop): a warning at scaffold,
    # a refusal at submit (the jobs would cd into a directory that is not this experiment)
    elsewhere = tmp_path / "laptop.yaml"
    elsewhere.write_text(yaml.safe_dump(designs.base("/scratch/u/exp_base"), sort_keys=False))
    result = cli("new", str(elsewhere), str(tmp_path / "laptop"), "--template", str(template_repo))
    assert result.returncode == 0, result.stderr
    warning = f"experiment.dir: the jobs cd into /scratch/u/exp_base and write there, but this experiment is in {tmp_path / 'laptop'}"
    assert warning in result.stderr
    result = cli("submit", "--dry-run", cwd=tmp_path / "laptop")
    assert result.returncode != 0 and warning in result.stderr and "nothing was submitted" in result.stderr, result.stderr


# ----------------------------------------------------------------------------- item 7
def test_plan_against_an_existing_experiment_resolves_settings_like_copier(template_repo, tmp_path):
    # Copier's user settings file, with its `defaults:` wrapper, found through COPIER_SETTINGS_PATH
    settings = tmp_path / "copier-settings.yml"
    settings.write_text("defaults:\n  slurm_account: from_settings\n  conda_env: cruijff\n")
    summary = tmp_path / "experiment_summary.yaml"
    summary.write_text(COMMENTED.replace("dir: /scratch/u/exp_base", f"dir: {tmp_path / 'exp'}"))
    dest = tmp_path / "exp"
    result = subprocess.run([sys.executable, "-m", "copier", "copy", "--trust", "--defaults", "--data-file", str(summary),
                             "--data", "slurm_partition=from_data", str(template_repo), str(dest)],
                            capture_output=True, text=True, env=env(COPIER_SETTINGS_PATH=str(settings)))
    assert result.returncode == 0, result.stderr
    assert "#SBATCH --account=from_settings" in (dest / "r8/finetune.slurm").read_text()
    assert "#SBATCH --partition=from_data" in (dest / "r8/finetune.slurm").read_text()
    unchanged = "Files: 0 new, 0 changed,"
    for args in ((str(dest / "experiment_summary.yaml"), "--dest", str(dest)), (str(dest),)):
        result = cli("plan", *args, COPIER_SETTINGS_PATH=str(settings))
        assert result.returncode == 0, result.stderr
        assert unchanged in result.stdout, result.stdout
    # the recorded answers win over a changed settings file, as in `copier update`
    settings.write_text("defaults:\n  slurm_account: other\n")
    result = cli("plan", str(dest / "experiment_summary.yaml"), "--dest", str(dest), COPIER_SETTINGS_PATH=str(settings))
    assert unchanged in result.stdout, result.stdout
    # --only: the run table and the cells too
    result = cli("plan", str(dest), "--only", "base", COPIER_SETTINGS_PATH=str(settings))
    table = result.stdout.split("\n\n")[1]
    assert [line.split()[0] for line in table.splitlines()[1:]] == ["base"], result.stdout
    assert "1 eval cell(s) of 2:" in result.stdout and "r8/eval" not in result.stdout


# ----------------------------------------------------------------------------- item 8
def test_template_addresses(template_repo, tmp_path):
    summary = tmp_path / "experiment_summary.yaml"
    design = designs.base()
    del design["experiment"]["dir"]
    summary.write_text(yaml.safe_dump(design, sort_keys=False))
    # plain copier with a relative template path: refused at copy, in one line, nothing left behind
    rel = os.path.relpath(template_repo, tmp_path)
    result = subprocess.run([sys.executable, "-m", "copier", "copy", "--trust", "--defaults", "--data-file", str(summary), rel, "plain"],
                            cwd=tmp_path, capture_output=True, text=True, env=env(PWD=str(tmp_path)))
    assert result.returncode != 0
    ours = [line for line in result.stderr.splitlines() if line.startswith("cruijff-gen:")]
    assert ours == [f"cruijff-gen: error: template {rel}: a relative path, which Copier records as given and `copier update` cannot "
                    f"follow later; give it as an absolute path (copier copy ... {template_repo} DEST) or a git URL"], result.stderr
    assert not (tmp_path / "plain").exists()
    # the front door: a file:// URL and a relative path both become the absolute path Copier records
    for address, name in ((f"file://{template_repo}", "url"), (rel, "relative")):
        result = cli("new", str(summary), name, "--template", address, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert yaml.safe_load((tmp_path / name / ".copier-answers.yml").read_text())["_src_path"] == str(template_repo)
    commit_design(tmp_path / "url", (tmp_path / "url/experiment_summary.yaml").read_text().replace("lr: 1e-5", "lr: 2e-5"))
    result = cli("update", str(tmp_path / "url"))
    assert result.returncode == 0, result.stderr
    result = cli("new", str(summary), "nowhere", "--template", "file:///no/such/checkout", cwd=tmp_path)
    assert result.stderr.splitlines() == ["cruijff-gen: error: --template: file:///no/such/checkout: no such directory "
                                          "(give the cruijff_gen checkout as a path, or a git URL)"]


# ----------------------------------------------------------------------------- item 9 (second half)
def test_the_fix_the_design_suffix_follows_design_errors_only(tmp_path, capsys):
    from cruijff_gen.cli import main

    summary = tmp_path / "experiment_summary.yaml"
    bad = designs.base()
    bad["runs"][0]["parameters"]["lr"] = "fast"
    summary.write_text(yaml.safe_dump(bad, sort_keys=False))
    suffix = "cruijff-gen: nothing was written; fix the design and run again."
    assert main(["new", str(summary), str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == suffix
    summary.write_text(yaml.safe_dump(designs.base(), sort_keys=False))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "file").write_text("")
    for argv in (["new", str(summary), str(tmp_path / "full")], ["new", str(summary), str(tmp_path / "y"), "--data", "novalue"],
                 ["plan", str(summary), "--only", "r99"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and "fix the design" not in err, err
    # a file that is missing or unreadable, a markdown document, a command-line value: not the design
    missing = tmp_path / "missing.yaml"
    markdown = tmp_path / "old.md"
    markdown.write_text("# Experiment: x\n\n## All Runs\n| Run Name | Model |\n| a | b |\n")
    (tmp_path / "not_an_experiment").mkdir()
    for argv, line in (
        (["plan", str(missing)], f"{missing}: no such file"),
        (["new", str(missing), str(tmp_path / "z")], f"{missing}: no such file"),
        (["new", str(tmp_path / "not_an_experiment"), str(tmp_path / "u")], f"{tmp_path / 'not_an_experiment'}: cannot read (Is a directory)"),
        (["verify", str(tmp_path / "not_an_experiment")], f"{tmp_path / 'not_an_experiment' / '.copier-answers.yml'}: no such file"),
        (["import", str(tmp_path / "missing.md")], f"{tmp_path / 'missing.md'}: cannot read (No such file or directory)"),
        (["import", str(markdown)], "All Runs, line 4: the table header is not followed by a separator row (line 5 should be | --- | --- |)"),
        (["new", str(summary), str(tmp_path / "w"), "--data", "_copier_conf=x"],
         "--data _copier_conf: names starting with '_' are Copier's own variables, not design fields; remove it"),
    ):
        assert main(argv) == 2
        assert capsys.readouterr().err.splitlines() == [f"cruijff-gen: error: {line}"], argv
    # ... while a Copier variable in the design file is the design's
    summary.write_text(yaml.safe_dump({**designs.base(), "_copier_conf": "x"}, sort_keys=False))
    assert main(["new", str(summary), str(tmp_path / "v")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "cruijff-gen: error: _copier_conf: names starting with '_' are Copier's own variables, not design fields; remove it", suffix]


# ----------------------------------------------------------------------------- item 11
@pytest.mark.tools
def test_make_tiny_is_self_contained(tmp_path, monkeypatch, capsys):
    """examples/tiny/run.py (what `make tiny` runs): the user's Copier settings do not reach it, a
    rerun needs no cleanup, and with no cluster and no SLURM to start one it says so in one line.
    (Starting its own cluster and running the jobs: measured by hand, see the closing note; the
    cluster code is tests/slurm_cluster.py's, which tests/test_slurm_cluster.py checks.)"""
    pytest.importorskip("transformers", reason="transformers is not installed (pip install .[tools])")
    import importlib.util

    from conftest import REPO

    spec = importlib.util.spec_from_file_location("tiny_run_first_week", REPO / "examples/tiny/run.py")
    tiny = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tiny)
    leaky = tmp_path / "my-settings.yml"
    leaky.write_text("defaults:\n  slurm_account: my_account\n  conda_env: my_env\n")
    monkeypatch.setenv("COPIER_SETTINGS_PATH", str(leaky))  # a user's real settings file
    monkeypatch.setattr(tiny, "reachable_cluster", lambda: "sinfo: no cluster configured")
    monkeypatch.setattr(tiny.slurm_cluster, "missing_binaries", lambda: ["slurmctld", "munged"])
    assert tiny.main([str(tmp_path / "t")]) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("not submitted")]
    experiment = tiny.paths(tmp_path / "t")["experiment"]
    assert lines == [f"not submitted: no SLURM cluster answers (sinfo: no cluster configured) and none can be started here (missing "
                     f"slurmctld, munged: as root, bash .ci/install-slurm.sh); the experiment is scaffolded in {experiment}"]
    again = subprocess.run([sys.executable, str(REPO / "examples/tiny/run.py"), str(tmp_path / "t"), "--no-submit"],
                           capture_output=True, text=True, env=env(COPIER_SETTINGS_PATH=str(leaky)), timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"removed the tiny experiment made before in {experiment}" in again.stdout
    answers = (experiment / ".copier-answers.yml").read_text()
    assert "my_account" not in answers and "my_env" not in answers
    assert git(experiment, "rev-list", "--count", "HEAD").strip() == "1"


# ----------------------------------------------------------------------------- item 12
def test_no_git_identity_environment_order_and_file_counts(template_repo, tmp_path):
    summary = tmp_path / "experiment_summary.yaml"
    summary.write_text(COMMENTED.replace("dir: /scratch/u/exp_base", f"dir: {tmp_path / 'exp'}"))
    # a fresh machine: no git identity anywhere (git itself refuses `git commit` here)
    bare = {k: v for k, v in env().items() if not k.startswith(("GIT_AUTHOR_", "GIT_COMMITTER_")) and k != "EMAIL"}
    bare.update(GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1")
    result = subprocess.run([sys.executable, "-m", "copier", "copy", "--trust", "--defaults", "--data-file", str(summary),
                             "--data", "conda_env=cruijff", "--data", "venv=/opt/venvs/tools", "--data", "modules=anaconda3/2024",
                             str(template_repo), str(tmp_path / "exp")], capture_output=True, text=True, env=bare)
    assert result.returncode == 0, result.stderr
    dest = tmp_path / "exp"
    notes = [line for line in result.stderr.splitlines() if "git identity" in line]
    assert notes == ["cruijff-gen: note: no git identity is configured, so the commit's author is cruijff_gen <cruijff_gen@localhost>; "
                     "set yours with `git config --global user.name 'Your Name'` and `git config --global user.email you@example.edu` "
                     "(then `git commit --amend --no-verify --reset-author --no-edit` in the experiment makes it yours)"]
    assert git(dest, "log", "-1", "--format=%an <%ae>").strip() == "cruijff_gen <cruijff_gen@localhost>"
    # modules, then conda, then the venv (documented order)
    script = (dest / "r8/finetune.slurm").read_text()
    order = [script.index(s) for s in ("module load anaconda3/2024", "conda activate cruijff", "source /opt/venvs/tools/bin/activate")]
    assert order == sorted(order)
    # the summary line counts what git counts
    committed = len(git(dest, "show", "--name-only", "--format=", "HEAD").split())
    line = [line for line in result.stderr.splitlines() if "committed" in line][0]
    assert f": {committed} files in git" in line, line


def test_a_big_scaffold_shows_progress_on_a_terminal_only(template_repo, tmp_path):
    import pty

    design = designs.base(str(tmp_path / "big"))
    design["runs"] = []
    design["variables"] = {"lora_rank": [2, 4, 8, 16, 32, 64, 128, 256, 512], "lr": ["1e-5", "2e-5", "3e-5", "4e-5", "5e-5", "6e-5", "7e-5", "8e-5", "9e-5"]}
    design["evaluation"].pop("matrix")
    summary = tmp_path / "big.yaml"
    summary.write_text(yaml.safe_dump(design, sort_keys=False))
    master, slave = pty.openpty()  # a terminal, as when a user runs copier by hand
    proc = subprocess.Popen([sys.executable, "-m", "copier", "copy", "--trust", "--defaults", "--data-file", str(summary), str(template_repo),
                             str(tmp_path / "big")], stdout=slave, stderr=slave, env=env())
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the terminal closed: copier has exited
            break
        if not chunk:
            break
        seen += chunk
    assert proc.wait() == 0, seen.decode(errors="replace")[-3000:]
    text = seen.decode(errors="replace")
    total = int(re.search(r"cruijff-gen: 81 runs, 81 eval cells, (\d+) file\(s\) written", text)[1])  # a first scaffold writes them all
    assert f"\rcruijff-gen: rendering {total}/{total} files" in text and f"\rcruijff-gen: writing {total}/{total} files" in text, text[-2000:]
    assert "\rcruijff-gen: rendering 100/" in text
    # in a pipe (a log, CI): no counter at all
    piped = cli("render", str(tmp_path / "big"))
    assert piped.returncode == 0 and "\r" not in piped.stderr and "rendering" not in piped.stderr, piped.stderr


def test_make_example_ends_with_what_to_do_next(tmp_path):
    from conftest import REPO

    if shutil.which("make") is None:
        pytest.skip("no make")
    venv = Path(sys.prefix)
    # this environment as the Makefile's .venv (-o: never reinstall it), the example scaffolded under tmp_path
    result = subprocess.run(["make", "-s", "-C", str(REPO), f"VENV={venv}", "-o", f"{venv}/bin/.base", "example", f"EXAMPLE_OUT={tmp_path / 'ex'}"],
                            capture_output=True, text=True, env=env())
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    tail = result.stdout.split("== next ==\n", 1)[1].splitlines()
    assert [line.split(":")[0].strip() for line in tail] == ["your own design", "see what it makes", "scaffold it", "run it",
                                                              "a whole tiny experiment, trained and evaluated on this machine's CPU"]
    assert "every generated value matches the design" in result.stdout + result.stderr


def test_an_edited_model_catalog_is_rendered_and_verified_by_the_update(scaffold, tmp_path):
    catalog = tmp_path / "cluster-catalog.yaml"
    catalog.write_text("Llama-3.2-1B-Instruct:\n  resources: {mem: 48G}\n")
    dest = scaffold(designs.base(), model_catalog=str(catalog))
    assert "#SBATCH --mem=48G" in (dest / "r8/finetune.slurm").read_text()
    assert git(dest, "show", "HEAD:logs/model_catalog.yaml") == catalog.read_text()  # what the update compares with
    catalog.write_text("Llama-3.2-1B-Instruct:\n  resources: {mem: 64G}\n")  # the cluster's catalog changes, the design does not
    result = update(dest)
    assert result.returncode == 0, result.stderr
    assert git(dest, "log", "-1", "--format=%s").strip() == f"Update base_sweep: model_catalog: {catalog} edited"
    changed = set(git(dest, "diff", "--name-only", "HEAD~1", "HEAD").split())
    assert {"r8/finetune.slurm", "r16/finetune.slurm", "logs/model_catalog.yaml"} <= changed, changed
    assert "#SBATCH --mem=64G" in (dest / "r8/finetune.slurm").read_text()
    assert cli("verify", str(dest)).returncode == 0 and git(dest, "status", "--porcelain") == ""
    assert not (dest / ".git/cruijff-gen-old-catalog.yaml").exists()
    again = update(dest)  # nothing changed since: nothing to commit
    assert again.returncode == 0 and "nothing to commit" in again.stderr, again.stderr


def test_a_removed_runs_leftovers_read_alike_from_git_and_from_disk(tmp_path):
    """The push stage reads the tree from git, `verify` from disk: a removed run's committed notebook
    is no error in either; a leftover job file is one in both (in-process, a real git index)."""
    from cruijff_gen.commands.verify import index_entries
    from cruijff_gen.parse import parse
    from cruijff_gen.plan import plan
    from cruijff_gen.trees import Blobs, GitTree, WorkTree
    from cruijff_gen.verify import _stale_runs

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    for rel in ("old/eval/analysis.ipynb", "old/artifacts/.keep", "gone/eval/cap.slurm"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    git(tmp_path, "add", "-A")
    the_plan = plan(parse(designs.base()))
    want = ["gone/: run directory: expected none (not in the design), found one with job files (eval/cap.slurm)"]
    assert _stale_runs(GitTree(tmp_path, index_entries(tmp_path)[0], Blobs(tmp_path)), the_plan) == want
    assert _stale_runs(WorkTree(tmp_path, git=True), the_plan) == want


def test_plan_of_a_summary_without_experiment_dir(tmp_path, capsys):
    from cruijff_gen.cli import main

    design = designs.base()
    del design["experiment"]["dir"]
    summary = tmp_path / "s.yaml"
    summary.write_text(yaml.safe_dump(design, sort_keys=False))
    assert main(["plan", str(summary)]) == 2
    assert capsys.readouterr().err.splitlines()[0] == ("cruijff-gen: error: experiment.dir: not given, and no destination to default to: "
                                                       "give it, or --dest DIR (its default is the experiment's directory)")
    assert main(["plan", str(summary), "--dest", str(tmp_path / "new")]) == 0
    assert capsys.readouterr().out.startswith(f"Experiment base_sweep -> {tmp_path / 'new'}\n")
