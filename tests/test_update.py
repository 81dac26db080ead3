"""`copier update` after editing the summary: one commit per update touching exactly the files the
change implies, hand edits kept, conflicts and bad designs refused with HEAD untouched.

Real git repositories, real `copier copy` / `copier update`, the experiment's summary edited the way
a user edits it (text edits of the committed experiment_summary.yaml)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import designs

pytestmark = pytest.mark.copier


def git(dest: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=dest, check=True, capture_output=True, text=True).stdout


def head(dest: Path) -> str:
    return git(dest, "rev-parse", "HEAD").strip()


def edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    assert old in text, (old, path)
    path.write_text(text.replace(old, new, count))


def commit(dest: Path, message: str) -> None:
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "--no-verify", "-m", message)


def update(dest: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        [sys.executable, "-m", "copier", "update", "--trust", "--defaults"],
        cwd=dest, capture_output=True, text=True, env=env,
    )


def files_of_last_commit(dest: Path) -> set[str]:
    return set(git(dest, "diff", "--name-only", "HEAD~1", "HEAD").split())


def verify_ok(dest: Path, template: Path | None = None) -> None:
    """`cruijff-gen verify` passes (run from `template`'s own checkout when given) and the tree is clean."""
    tool = [str(template / "hooks/copier_task.py")] if template else ["-m", "cruijff_gen"]
    result = subprocess.run([sys.executable, *tool, "verify", str(dest)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert git(dest, "status", "--porcelain") == ""


def design_update(dest: Path, change, message: str = "edit design") -> subprocess.CompletedProcess:
    """Edit the committed summary (through YAML, as a user would), commit it, run the update."""
    summary = dest / "experiment_summary.yaml"
    design = yaml.safe_load(summary.read_text())
    change(design)
    summary.write_text(yaml.safe_dump(design, sort_keys=False, allow_unicode=True))
    commit(dest, message)
    return update(dest)


@pytest.fixture
def experiment(scaffold_copy) -> Path:
    return scaffold_copy(designs.base())


LOGS = {"logs/scaffold-experiment.log", "logs/scaffold-torchtune.log"}


def test_change_one_lr_touches_only_that_run(experiment):
    before = head(experiment)
    result = design_update(experiment, lambda d: d["runs"][0]["parameters"].update(lr="2e-5"))
    assert result.returncode == 0, result.stderr
    assert git(experiment, "rev-list", "--count", f"{before}..HEAD").strip() == "2"  # the edit + the update
    assert files_of_last_commit(experiment) == {".copier-answers.yml", "r8/finetune.yaml", "r8/setup_finetune.yaml", "README.md"} | LOGS
    assert yaml.safe_load((experiment / "r8/finetune.yaml").read_text())["optimizer"]["lr"] == 2e-5
    subject = git(experiment, "log", "-1", "--format=%s").strip()
    assert subject == "Update base_sweep: runs.r8.parameters.lr: 1e-5 -> 2e-5"
    verify_ok(experiment)


def test_add_run(experiment):
    def add(d):
        d["runs"].append({"name": "r32", "type": "fine-tuned", "model": "Llama-3.2-1B-Instruct", "parameters": {"lora_rank": 32}})
        d["evaluation"]["matrix"].append({"run": "r32", "tasks": ["capitalization"], "epochs": [1]})

    result = design_update(experiment, add)
    assert result.returncode == 0, result.stderr
    changed = files_of_last_commit(experiment)
    assert {"r32/finetune.yaml", "r32/finetune.slurm", "r32/setup_finetune.yaml", "r32/eval/capitalization_epoch1.slurm", "submit.sh", "README.md"} <= changed
    assert not any(p.startswith(("r8/", "r16/", "base/")) for p in changed)
    assert "add run r32" in git(experiment, "log", "-1", "--format=%B")
    verify_ok(experiment)


@pytest.mark.parametrize("hand_edit", [False, True], ids=["clean", "hand-edited"])
def test_remove_run(experiment, hand_edit):
    if hand_edit:
        edit(experiment / "r16/finetune.slurm", "set -euo pipefail\n", "set -euo pipefail\necho my addition\n")
        commit(experiment, "hand edit")

    def remove(d):
        d["runs"] = [r for r in d["runs"] if r["name"] != "r16"]
        d["evaluation"]["matrix"] = [m for m in d["evaluation"]["matrix"] if m["run"] != "r16"]

    result = design_update(experiment, remove)
    assert result.returncode == 0, result.stderr
    assert not (experiment / "r16" / "finetune.yaml").exists()
    assert "remove run r16" in git(experiment, "log", "-1", "--format=%B")
    if hand_edit:
        assert "removed with its run although edited by hand: r16/finetune.slurm" in result.stderr
        assert "git show HEAD:r16/finetune.slurm" in result.stderr
    verify_ok(experiment)


def test_add_epoch(experiment):
    result = design_update(experiment, lambda d: d["evaluation"]["matrix"][1].update(epochs=[0, 1]))
    assert result.returncode == 0, result.stderr
    changed = files_of_last_commit(experiment)
    assert {"r16/eval/capitalization_epoch0.yaml", "r16/eval/capitalization_epoch0.slurm"} <= changed
    assert not any(p.startswith(("r8/", "base/")) for p in changed)
    verify_ok(experiment)


def test_change_system_prompt(experiment):
    result = design_update(experiment, lambda d: d["controls"].update(system_prompt="Answer in capitals. \"Always\" $(no)"))
    assert result.returncode == 0, result.stderr
    for rel in ("r8/finetune.yaml", "r16/finetune.yaml"):
        assert yaml.safe_load((experiment / rel).read_text())["dataset"]["system_prompt"] == "Answer in capitals. \"Always\" $(no)"
    assert yaml.safe_load((experiment / "base/eval/capitalization.yaml").read_text())["system_prompt"] == "Answer in capitals. \"Always\" $(no)"
    verify_ok(experiment)


def hand_edit_then_change_r8_lr(experiment: Path, run: str) -> subprocess.CompletedProcess:
    """Hand edits in `run` (an extra #SBATCH line, a design value), committed; then r8's lr changed
    in the design and the update run."""
    edit(experiment / f"{run}/finetune.slurm", "#SBATCH --time=", "#SBATCH --comment=high\n#SBATCH --time=")
    edit(experiment / f"{run}/finetune.yaml", "batch_size: 4", "batch_size: 8")
    commit(experiment, "hand edits")
    result = design_update(experiment, lambda d: d["runs"][0]["parameters"].update(lr="2e-5"))
    assert result.returncode == 0, result.stderr
    return result


def test_hand_edits_elsewhere_survive(experiment):
    hand_edit_then_change_r8_lr(experiment, "r16")
    assert "#SBATCH --comment=high" in (experiment / "r16/finetune.slurm").read_text()
    assert "batch_size: 8" in (experiment / "r16/finetune.yaml").read_text()
    assert not any(f.startswith("r16/") for f in files_of_last_commit(experiment))  # not the update's business
    assert yaml.safe_load((experiment / "r8/finetune.yaml").read_text())["optimizer"]["lr"] == 2e-5
    assert git(experiment, "status", "--porcelain") == ""
    # the design value edited by hand is still reported by a full verify
    check = subprocess.run([sys.executable, "-m", "cruijff_gen", "verify", str(experiment)], capture_output=True, text=True)
    assert check.returncode == 1 and "r16/finetune.yaml: batch_size: expected 4, found 8" in check.stderr


def test_hand_edit_in_a_file_the_update_changes_is_merged_and_reported(experiment):
    result = hand_edit_then_change_r8_lr(experiment, "r8")
    config = yaml.safe_load((experiment / "r8/finetune.yaml").read_text())
    assert config["optimizer"]["lr"] == 2e-5 and config["batch_size"] == 8
    assert "#SBATCH --comment=high" in (experiment / "r8/finetune.slurm").read_text()
    assert "kept your hand edit" in result.stderr and "r8/finetune.yaml: batch_size: expected 4, found 8" in result.stderr
    assert "merged the update into your hand edit: r8/finetune.yaml" in result.stderr
    assert git(experiment, "status", "--porcelain") == ""


def test_hand_edit_on_the_same_line_conflicts_and_nothing_is_committed(experiment):
    edit(experiment / "r8/finetune.yaml", "  lr: 1.0e-05", "  lr: 3.0e-05  # tried by hand")
    commit(experiment, "hand edit lr")
    last_good = head(experiment)
    result = design_update(experiment, lambda d: d["runs"][0]["parameters"].update(lr="2e-5"), "lr 2e-5")
    assert result.returncode != 0
    assert "conflicts in 1 file(s)" in result.stderr and "r8/finetune.yaml" in result.stderr
    assert "git reset --hard HEAD && git clean -fd" in result.stderr
    assert git(experiment, "log", "-1", "--format=%s").strip() == "lr 2e-5"  # no update commit
    assert "<<<<<<<" in (experiment / "r8/finetune.yaml").read_text()
    subprocess.run("git reset --hard HEAD && git clean -fd", shell=True, cwd=experiment, check=True, capture_output=True)
    assert git(experiment, "status", "--porcelain") == ""
    assert head(experiment) != last_good  # HEAD is the design commit, the last good one


def test_file_that_is_not_text_anymore_stops_the_update(experiment):
    (experiment / "r8/finetune.yaml").write_bytes(b"# edited in a latin-1 editor: caf\xe9\n" + (experiment / "r8/finetune.yaml").read_bytes())
    commit(experiment, "latin-1 edit")
    last_good = head(experiment)
    result = design_update(experiment, lambda d: d["runs"][0]["parameters"].update(lr="2e-5"))
    assert result.returncode != 0
    assert "r8/finetune.yaml  (not readable as UTF-8 text: left as it was)" in result.stderr
    assert git(experiment, "rev-parse", "HEAD~1").strip() == last_good  # only the design edit was committed
    assert (experiment / "r8/finetune.yaml").read_bytes().startswith(b"# edited in a latin-1 editor: caf\xe9")


def test_bad_summary_changes_nothing(experiment):
    result = design_update(experiment, lambda d: d["runs"][1]["parameters"].update(lr="fast"), "typo")
    assert result.returncode != 0
    assert "runs[1].parameters.lr: expected a number, got 'fast'" in result.stderr
    assert "HEAD is still the last good commit" in result.stderr
    assert git(experiment, "status", "--porcelain") == ""
    assert git(experiment, "log", "-1", "--format=%s").strip() == "typo"


def test_design_the_plan_refuses_changes_nothing(experiment):
    """A design that parses but that the plan stage refuses (a cluster setting in the summary that
    overrides a value the design sets) stops the update the way a parse error does: the answers
    file Copier rewrote is back to HEAD's, the lock is released, the tree is the last good commit."""
    result = design_update(experiment, lambda d: d.update(finetune_overrides={"lr": 0.5}), "override lr")
    assert result.returncode != 0
    assert "settings.finetune_overrides.lr: the design sets lr" in result.stderr
    assert "HEAD is still the last good commit" in result.stderr
    assert git(experiment, "status", "--porcelain") == ""
    assert not (experiment / ".git" / "cruijff-update.lock").exists()
    assert git(experiment, "log", "-1", "--format=%s").strip() == "override lr"


def test_the_task_knows_the_experiment_by_its_update_lock(experiment, tmp_path):
    """`render --operation update` (Copier's task in each of an update's three renders) does the
    experiment's step only where the update lock names the process running it (Copier; here this
    test): then a bad design is refused and the answers file put back. Anywhere else, a git
    repository or not, it is a throw-away render: it keeps the template version's code and reads
    no design."""
    from cruijff_gen import lock
    from cruijff_gen.experiment_dir import read_design_file

    answers_file = experiment / ".copier-answers.yml"
    answers = read_design_file(answers_file)  # (the committed file holds the design as one record)
    answers["runs"][1]["parameters"]["lr"] = "fast"
    # what Copier writes before the task: every section a YAML entry (the answers template)
    answers_file.write_text(yaml.safe_dump(answers, sort_keys=False))
    store = tmp_path / "store"
    store.mkdir()
    env = {**os.environ, "TMPDIR": str(store), "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    given = ",".join(k for k in answers if not k.startswith("_"))  # as Copier passes a --data-file's keys
    task = [sys.executable, "-m", "cruijff_gen", "render", "--operation", "update", "--data-keys", given, "--no-commit", str(experiment)]
    other = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        for holder in (None, other.pid):  # no lock, and the lock of another (live) update
            if holder:
                (experiment / ".git" / lock.LOCK_NAME).write_text(f'{{"pid": {holder}, "since": "now"}}')
            result = subprocess.run(task, capture_output=True, text=True, env=env)
            assert result.returncode == 0, result.stderr
            assert "fast" in answers_file.read_text()  # not read, not restored
            assert list(store.glob("cruijff_gen-*/code-*")), "the version's code was not kept"
    finally:
        other.communicate("")
    lock.release(experiment)
    lock.acquire(experiment, os.getpid())  # as start-update takes it for the Copier process
    result = subprocess.run(task, capture_output=True, text=True, env=env)
    assert result.returncode != 0
    assert "runs[1].parameters.lr: expected a number, got 'fast'" in result.stderr
    assert "HEAD is still the last good commit" in result.stderr
    assert git(experiment, "status", "--porcelain") == ""
    assert lock.holder(experiment) is None


def test_removed_section_is_reported(experiment):
    result = design_update(experiment, lambda d: d.pop("evaluation"))
    assert result.returncode != 0
    assert "section 'evaluation' was removed" in result.stderr


def test_template_upgraded_between_copy_and_update(experiment, template_repo):
    edit(experiment / "r16/finetune.slurm", "#SBATCH --time=", "#SBATCH --comment=high\n#SBATCH --time=")
    commit(experiment, "hand edit")
    # a newer template commit: a different product default
    defaults = template_repo / "cruijff_gen/data/defaults.yaml"
    original = defaults.read_text()
    try:
        edit(defaults, "log_every_n_steps:        {type: int, min: 1, at: log_every_n_steps, default: 5}",
             "log_every_n_steps:        {type: int, min: 1, at: log_every_n_steps, default: 10}")
        git(template_repo, "commit", "-qam", "log every 10 steps")
        result = update(experiment)
        assert result.returncode == 0, result.stderr
        assert "was not kept" not in result.stderr  # the base came from the old version's own code (merge_base.py)
        assert yaml.safe_load((experiment / "r8/finetune.yaml").read_text())["log_every_n_steps"] == 10
        assert "#SBATCH --comment=high" in (experiment / "r16/finetune.slurm").read_text()
        assert yaml.safe_load((experiment / ".copier-answers.yml").read_text())["_commit"] in git(template_repo, "rev-parse", "HEAD")
        verify_ok(experiment, template_repo)
    finally:
        defaults.write_text(original)
        git(template_repo, "commit", "-qam", "back to log every 5 steps")


def wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)


UPDATE = [sys.executable, "-m", "copier", "update", "--trust", "--defaults"]
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def test_concurrent_updates_one_wins(experiment):
    """A second update while the first is inside its locked phase is refused by the lock. The
    first is held there (SIGSTOP) the moment its lock appears, before it writes into the tree, so
    the second gets past Copier's own check (a dirty tree) and reaches the lock for certain."""
    lock_file = experiment / ".git" / "cruijff-update.lock"
    for lr in ["2e-5", "3e-5", "4e-5"]:
        last_good = head(experiment)
        design = yaml.safe_load((experiment / "experiment_summary.yaml").read_text())
        design["runs"][0]["parameters"]["lr"] = lr
        (experiment / "experiment_summary.yaml").write_text(yaml.safe_dump(design, sort_keys=False))
        commit(experiment, f"lr {lr}")
        design_commit = head(experiment)
        first = subprocess.Popen(UPDATE, cwd=experiment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, start_new_session=True)
        wait_for(lambda: lock_file.exists() or first.poll() is not None)
        assert first.poll() is None, f"the update ended without ever holding the lock: {first.communicate()}"
        os.killpg(first.pid, signal.SIGSTOP)
        try:
            in_window = lock_file.exists() and git(experiment, "status", "--porcelain") == ""
            if in_window:
                second = subprocess.run(UPDATE, cwd=experiment, capture_output=True, text=True, env=ENV)
                assert second.returncode != 0
                assert f"another update of this experiment is running (process {first.pid}," in second.stderr, second.stderr
                assert git(experiment, "status", "--porcelain") == "" and head(experiment) == design_commit
        finally:
            os.killpg(first.pid, signal.SIGCONT)
        _, err = first.communicate(timeout=300)
        assert first.returncode == 0, err
        assert git(experiment, "log", "-1", "--format=%s").startswith("Update base_sweep")
        assert git(experiment, "rev-parse", "HEAD~2").strip() == last_good
        assert git(experiment, "status", "--porcelain") == ""
        assert not lock_file.exists()
        if in_window:
            break
    assert in_window, "the first update was never caught in its locked phase before writing"
    verify_ok(experiment)


def test_a_live_lock_refuses_the_update_and_changes_nothing(experiment):
    """The lock of an update still running (its process alive) is never taken over."""
    holder = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        (experiment / ".git" / "cruijff-update.lock").write_text(f'{{"pid": {holder.pid}, "since": "now"}}')
        result = design_update(experiment, lambda d: d["runs"][0]["parameters"].update(lr="2e-5"), "lr 2e-5")
        assert result.returncode != 0
        assert f"another update of this experiment is running (process {holder.pid}, since now)" in result.stderr
        assert git(experiment, "log", "-1", "--format=%s").strip() == "lr 2e-5"
        assert git(experiment, "status", "--porcelain") == ""
    finally:
        holder.communicate("")
    result = update(experiment)  # its process gone, the same lock is stale: taken over
    assert result.returncode == 0, result.stderr
    assert not (experiment / ".git" / "cruijff-update.lock").exists()
    verify_ok(experiment)


def earlier_layout(answers_file: Path) -> str:
    """The answers file as template versions before the design record left it (Copier's own
    rendering, committed as it was: every section a YAML entry, to_nice_yaml)."""
    from cruijff_gen import experiment_dir

    answers = experiment_dir.read_design_file(answers_file)
    return experiment_dir.ANSWERS_HEADER + yaml.dump(answers, indent=4, allow_unicode=True, default_flow_style=False)


def test_an_experiment_with_the_earlier_answers_layout_verifies_and_updates(experiment):
    """Answers files written before the design record: verify and the hooks read them, and an
    update writes the record."""
    answers_file = experiment / ".copier-answers.yml"
    answers_file.write_text(earlier_layout(answers_file))
    assert "\nruns:\n" in answers_file.read_text()
    git(experiment, "commit", "-q", "--no-verify", "-am", "as scaffolded by an earlier version")
    verify_ok(experiment)
    edit(experiment / "r16/finetune.slurm", "#SBATCH --time=", "#SBATCH --comment=high\n#SBATCH --time=")
    hooked = subprocess.run(["git", "commit", "-qam", "hand edit"], cwd=experiment, capture_output=True, text=True, env=ENV)
    assert hooked.returncode == 0, hooked.stderr  # the installed hook read the earlier layout
    result = design_update(experiment, lambda d: d["runs"][0]["parameters"].update(lr="2e-5"))
    assert result.returncode == 0, result.stderr
    text = answers_file.read_text()
    assert "_cruijff_design: |" in text and "\nruns:\n" not in text
    assert yaml.safe_load((experiment / "r8/finetune.yaml").read_text())["optimizer"]["lr"] == 2e-5
    assert "#SBATCH --comment=high" in (experiment / "r16/finetune.slurm").read_text()
    assert git(experiment, "log", "-1", "--format=%s").strip() == "Update base_sweep: runs.r8.parameters.lr: 1e-5 -> 2e-5"
    verify_ok(experiment)


def _tree_without_logs(dest: Path) -> list[str]:
    return [line for line in git(dest, "ls-tree", "-r", "HEAD").splitlines() if not line.split("\t")[1].startswith("logs/")]


def test_the_update_reads_the_experiments_summary(experiment, tmp_path):
    """`copier update --trust --defaults` (the README's command) gives Copier no design: the task
    reads experiment_summary.yaml itself, with cruijff_gen's loader. It renders exactly what the
    earlier command, `--data-file experiment_summary.yaml`, renders; a section another data file
    gives must agree with the summary; a summary that is not YAML is one line naming it (Copier's
    own loader, given it as --data-file, ends in a traceback)."""
    plain = [sys.executable, "-m", "copier", "update", "--trust", "--defaults"]
    before = head(experiment)
    result = subprocess.run(plain, cwd=experiment, capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stderr
    assert "the design did not change; nothing to commit" in result.stderr
    assert head(experiment) == before and git(experiment, "status", "--porcelain") == ""
    summary = experiment / "experiment_summary.yaml"
    edit(summary, "lr: 1e-5", "lr: 2e-5")
    commit(experiment, "edit lr")
    edited = head(experiment)
    result = subprocess.run(plain, cwd=experiment, capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stderr
    assert git(experiment, "log", "-1", "--format=%s").strip() == "Update base_sweep: runs.r8.parameters.lr: 1e-5 -> 2e-5"
    assert yaml.safe_load((experiment / "r8/finetune.yaml").read_text())["optimizer"]["lr"] == 2e-5
    verify_ok(experiment)
    by_summary = _tree_without_logs(experiment)
    # the same update through Copier's data file: the same files, byte for byte
    git(experiment, "reset", "-q", "--hard", edited)
    result = subprocess.run([*plain, "--data-file", "experiment_summary.yaml"], cwd=experiment, capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stderr
    assert _tree_without_logs(experiment) == by_summary
    # a data file that says another design than the summary: refused, nothing committed
    git(experiment, "reset", "-q", "--hard", edited)
    other = yaml.safe_load(summary.read_text())
    other["runs"][0]["parameters"]["lr"] = "3e-5"
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(other))
    result = subprocess.run([*plain, "--data-file", str(tmp_path / "other.yaml")], cwd=experiment, capture_output=True, text=True, env=ENV)
    assert result.returncode != 0
    assert ("experiment_summary.yaml: section 'runs' differs from the design Copier was given (--data-file or --data); "
            "to render the summary, run `copier update --trust --defaults`") in result.stderr
    assert head(experiment) == edited and "git reset --hard HEAD && git clean -fd" in result.stderr
    git(experiment, "reset", "-q", "--hard", edited)
    # a summary that is not YAML: one line naming the file and the place, the tree as it was
    edit(summary, "lr: 2e-5", "lr: [2e-5")
    commit(experiment, "broken summary")
    broken = head(experiment)
    result = subprocess.run(plain, cwd=experiment, capture_output=True, text=True, env=ENV)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert any(line.startswith("cruijff-gen: error: experiment_summary.yaml: line ") and "not valid YAML" in line
               for line in result.stderr.splitlines()), result.stderr
    assert head(experiment) == broken and git(experiment, "status", "--porcelain") == ""
