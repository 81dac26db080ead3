"""The gate: an edit that changes what a job does is refused at commit and at push, through real git
and the experiment's real pre-commit hooks; an edit that leaves the jobs as designed is accepted.

One real `copier copy` per module. Each mutation runs in a clone of it (reset to the scaffold commit
between mutations; a few clones side by side): the edit, `git add -A`, then the commit stage's check,
which must refuse it with a line naming the file; then the same edit committed (`--no-verify` when
refused) and pushed to a bare remote with the lane's other commits of its kind (the real pre-push
hooks must refuse it, again naming the file). A permitted edit must pass both.

The commit stage: for the mutations of THROUGH_GIT (a few of each family) a real `git commit` with
the installed hooks (pre-commit's script, the sealed `.git/hooks/pre-commit.legacy`, the
configuration's cruijff-verify hook: three Python start-ups per commit); for the others the sealed
hook's own entry point in this process (`cruijff-gen verify --files` with CRUIJFF_GEN_HOOK=pre-commit,
what .git/hooks/pre-commit.legacy execs, on the same staged index). Every push is real.
`pytest -s tests/test_gate.py` prints the table.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

import designs
from conftest import copier, write_summary

pytestmark = pytest.mark.copier

ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
WORKERS = 3
FT = "r8/finetune.slurm"
EV = "r8/eval/capitalization_epoch0.slurm"
EXP = "/scratch/u/exp_base"


# --------------------------------------------------------------------------- edits
def edit(rel: str, old: str, new: str, count: int = 1) -> Callable[[Path], None]:
    def apply(dest: Path) -> None:
        path = dest / rel
        text = path.read_text(encoding="utf-8")
        assert old in text, (rel, old)
        path.write_text(text.replace(old, new, count), encoding="utf-8")

    return apply


def after_command(rel: str, words: str) -> Callable[[Path], None]:
    """Words appended to the launch command (its last continuation line)."""
    def apply(dest: Path) -> None:
        path = dest / rel
        lines = path.read_text(encoding="utf-8").split("\n")
        last = max(i for i, line in enumerate(lines) if line.startswith("  --") and (i + 1 == len(lines) or not lines[i + 1].startswith("  ")))
        lines[last] += words
        path.write_text("\n".join(lines), encoding="utf-8")

    return apply


def append(rel: str, text: str) -> Callable[[Path], None]:
    def apply(dest: Path) -> None:
        path = dest / rel
        path.write_text((path.read_text(encoding="utf-8") if path.exists() else "") + text, encoding="utf-8")

    return apply


def write(rel: str, text: str) -> Callable[[Path], None]:
    def apply(dest: Path) -> None:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_text(text, encoding="utf-8")

    return apply


def chmod(rel: str, mode: int) -> Callable[[Path], None]:
    return lambda dest: os.chmod(dest / rel, mode)


def crlf(rel: str) -> Callable[[Path], None]:
    return lambda dest: (dest / rel).write_bytes((dest / rel).read_bytes().replace(b"\n", b"\r\n"))


def symlinked_dir(rel: str) -> Callable[[Path], None]:
    """The directory moved out of the experiment and a symlink to it left in its place: the files
    still read through the link, but git records the link and the deletion of the files."""
    def apply(dest: Path) -> None:
        outside = dest.parent / f"outside-{dest.name}"
        shutil.rmtree(outside, ignore_errors=True)
        shutil.move(str(dest / rel), outside)
        (dest / rel).symlink_to(outside, target_is_directory=True)

    return apply


def symlinked_file(rel: str) -> Callable[[Path], None]:
    def apply(dest: Path) -> None:
        outside = dest.parent / f"outside-{dest.name}.txt"
        outside.write_bytes((dest / rel).read_bytes())
        (dest / rel).unlink()
        (dest / rel).symlink_to(outside)

    return apply


def untracked(rel: str) -> Callable[[Path], None]:
    """Taken out of git but left on disk (`git rm --cached`): the work tree still has it."""
    def apply(dest: Path) -> None:
        subprocess.run(["git", "rm", "-q", "--cached", rel], cwd=dest, check=True, env=ENV)
        append(".git/info/exclude", f"/{rel}\n")(dest)

    return apply


def both(*edits: Callable[[Path], None]) -> Callable[[Path], None]:
    def apply(dest: Path) -> None:
        for e in edits:
            e(dest)

    return apply


@dataclass
class Mutation:
    family: str
    name: str
    apply: Callable[[Path], None]
    expect: str = ""  # a substring of the refusal line (it starts with the file it names)
    allowed: bool = False


R = Mutation
MUTATIONS = [
    # --- SLURM directives, read as sbatch reads them
    R("directives", "time-short-form", edit(FT, "#SBATCH --time=02:00:00\n", "#SBATCH --time=02:00:00\n#SBATCH -t 00:05:00\n"), f"{FT}: #SBATCH --time"),
    R("directives", "time-long-form-space", edit(FT, "#SBATCH --time=02:00:00", "#SBATCH --time 00:05:00"), f"{FT}: #SBATCH --time: expected 02:00:00, found 00:05:00"),
    R("directives", "gpus", edit(FT, "#SBATCH --gres=gpu:1\n", "#SBATCH --gres=gpu:1\n#SBATCH --gpus=4\n"), f"{FT}: #SBATCH --gpus: expected none"),
    R("directives", "gpus-short-G", edit(EV, "#SBATCH --gres=gpu:1\n", "#SBATCH --gres=gpu:1\n#SBATCH -G 4\n"), f"{EV}: #SBATCH --gpus: expected none"),
    R("directives", "gres-before-generated", edit(FT, "#SBATCH --job-name=r8\n", "#SBATCH --job-name=r8\n#SBATCH --gres=gpu:8\n"), f"{FT}: #SBATCH --gres: expected gpu:1 only"),
    R("directives", "gpus-per-node", edit(FT, "#SBATCH --mem=40G\n", "#SBATCH --mem=40G\n#SBATCH --gpus-per-node=2\n"), f"{FT}: #SBATCH --gpus-per-node: expected none"),
    R("directives", "mem-per-cpu", edit(FT, "#SBATCH --mem=40G\n", "#SBATCH --mem=40G\n#SBATCH --mem-per-cpu=16G\n"), f"{FT}: #SBATCH --mem-per-cpu: expected none"),
    R("directives", "qos", edit(FT, "#SBATCH --time=", "#SBATCH --qos=high\n#SBATCH --time="), f"{FT}: #SBATCH --qos: expected none"),
    R("directives", "qos-short-q", edit(EV, "#SBATCH --time=", "#SBATCH -q high\n#SBATCH --time="), f"{EV}: #SBATCH --qos: expected none"),
    R("directives", "nodes-short-N", edit(FT, "#SBATCH --ntasks=1\n", "#SBATCH --ntasks=1\n#SBATCH -N 2\n"), f"{FT}: #SBATCH --nodes"),
    R("directives", "exclusive", edit(FT, "#SBATCH --time=", "#SBATCH --exclusive\n#SBATCH --time="), f"{FT}: #SBATCH --exclusive: expected none"),
    R("directives", "array", edit(FT, "#SBATCH --time=", "#SBATCH --array=0-9\n#SBATCH --time="), f"{FT}: #SBATCH --array: expected none"),
    R("directives", "partition-short-p", edit(FT, "#SBATCH --time=", "#SBATCH -p nomig\n#SBATCH --time="), f"{FT}: #SBATCH --partition: expected none"),
    R("directives", "abbreviated-option", edit(FT, "#SBATCH --time=", "#SBATCH --partitio=nomig\n#SBATCH --time="), f"{FT}: #SBATCH --partitio: expected none"),
    R("directives", "two-options-one-line", edit(FT, "#SBATCH --time=", "#SBATCH --comment=x --mem=80G\n#SBATCH --time="), f"{FT}: #SBATCH --mem: expected 40G only"),
    R("directives", "account-quoted-other", edit(FT, "#SBATCH --account=acct", '#SBATCH --account="other"'), f"{FT}: #SBATCH --account: expected acct, found other"),
    R("directives", "command-before-block", edit(FT, "#!/bin/bash\n", "#!/bin/bash\necho starting\n"), f"{FT}: #SBATCH lines: expected them before the first command"),
    R("directives", "crlf", crlf(FT), f"{FT}: line endings: expected LF, found CRLF"),
    R("directives", "pbs-line", edit(FT, "set -euo pipefail\n", "set -euo pipefail\n#PBS -l walltime=99:00:00\n"), f"{FT}: #PBS: expected none"),
    # --- launch lines, word for word
    R("command", "tune-override-lr", after_command(FT, " optimizer.lr=0.1"), f"{FT}: command: expected no extra argument, found 'optimizer.lr=0.1'"),
    R("command", "tune-override-epochs", after_command(FT, " epochs=50"), f"{FT}: command: expected no extra argument, found 'epochs=50'"),
    R("command", "tune-or-true", after_command(FT, " || true"), f"{FT}: command: expected nothing after it on the line"),
    R("command", "tune-env-prefix", edit(FT, "tune run", "HF_HUB_OFFLINE=0 tune run"), f"{FT}: command: expected it to start with tune"),
    R("command", "tune-config-changed", after_command(FT, ".bak"), f"{FT}: command --config: expected {EXP}/r8/finetune.yaml, found"),
    R("command", "tune-second-run", append(FT, "tune run lora_finetune_single_device --config /tmp/other.yaml\n"), f"{FT}: command: expected one tune command, found another"),
    R("command", "tune-commented-out", edit(FT, "tune run", "# tune run"), f"{FT}: command: expected tune run"),
    R("command", "inspect-limit", edit(EV, "  --log-dir", "  --limit 3 \\\n  --log-dir"), f"{EV}: command: expected no extra argument, found '--limit 3'"),
    R("command", "inspect-temperature", edit(EV, "  --log-dir", "  --temperature 1.5 \\\n  --log-dir"), f"{EV}: command: expected no extra argument, found '--temperature 1.5'"),
    R("command", "inspect-task-arg", edit(EV, "  --log-dir", "  -T x=y \\\n  --log-dir"), f"{EV}: command: expected no extra argument, found '-T x=y'"),
    R("command", "inspect-model-arg", edit(EV, "  --log-dir", "  -M k=v \\\n  --log-dir"), f"{EV}: command: expected no extra argument, found '-M k=v'"),
    R("command", "inspect-long-model-arg", edit(EV, "  --log-dir", "  --model-arg do_sample=true \\\n  --log-dir"), f"{EV}: command -M do_sample: expected false, found false and true"),
    R("command", "inspect-model-path", edit(EV, "  --log-dir", "  -M model_path=/scratch/other \\\n  --log-dir"), f"{EV}: command -M model_path"),
    R("command", "inspect-task-arg-data", edit(EV, "  --log-dir", "  --task-arg data_path=/other.json \\\n  --log-dir"), f"{EV}: command -T data_path"),
    # --- the lines around the command
    R("shell", "preflight-removed", edit(FT, "python -m cruijff_gen.job check-train", ": python -m cruijff_gen.job check-train"), f"{FT}: preflight: expected the line"),
    R("shell", "export-changed", edit(EV, "export HF_HUB_OFFLINE=1", "export HF_HUB_OFFLINE=0"), f"{EV}: export HF_HUB_OFFLINE: expected 1, found '0'"),
    R("shell", "cd-changed", edit(FT, f"cd {EXP}/r8\n", "cd /tmp\n"), f"{FT}: working directory: expected the line 'cd {EXP}/r8'"),
    R("shell", "conda-env-changed", edit(FT, "conda activate tt", "conda activate other"), f"{FT}: environment: expected the line 'conda activate tt'"),
    R("shell", "line-added-before-command", edit(FT, "set -euo pipefail\n", "set -euo pipefail\nexport CUDA_VISIBLE_DEVICES=3\n"), f"{FT}: added line: expected nothing more before the last generated line"),
    R("shell", "set-e-removed", edit(FT, "set -euo pipefail\n", ""), f"{FT}: shell options: expected the line 'set -euo pipefail', found nothing"),
    R("shell", "shebang-sh", edit(FT, "#!/bin/bash", "#!/bin/sh"), f"{FT}: line 1: expected '#!/bin/bash'"),
    R("shell", "eval-status-masked", edit(EV, "status=$?", "status=0"), f"{EV}: eval status check: expected the line 'status=$?'"),
    # --- submit.sh, the hook, .gitignore, modes and links
    R("files", "submit-dependency-removed", edit("submit.sh", ' --dependency=afterok:"$job"', ""), "submit.sh: run r8: expected the line"),
    R("files", "submit-run-dropped", edit("submit.sh", 'job=$(submit "$here"/r16/finetune.slurm)', "job=0"), "submit.sh: run r16: expected the line"),
    R("files", "submit-exec-bit", chmod("submit.sh", 0o644), "submit.sh: file mode: expected executable"),
    R("files", "slurm-exec-bit", chmod(FT, 0o644), f"{FT}: file mode: expected executable"),
    R("files", "hook-entry-true", edit(".pre-commit-config.yaml", "entry: cruijff-gen verify --files", 'entry: "true"'), ".pre-commit-config.yaml: hook cruijff-verify entry"),
    R("files", "hook-no-push-stage", edit(".pre-commit-config.yaml", "stages: [pre-commit, pre-push]", "stages: [pre-commit]"), ".pre-commit-config.yaml: hook cruijff-verify stages"),
    R("files", "gitignore-slurm", append(".gitignore", "*.slurm\n"), ".gitignore: pattern '*.slurm'"),
    R("files", "nested-gitignore", write("r8/.gitignore", "eval/\n"), "r8/.gitignore: pattern 'eval/'"),
    R("files", "gitattributes-crlf", write(".gitattributes", "*.slurm eol=crlf\n"), ".gitattributes: eol=crlf"),
    R("files", "symlinked-eval-dir", symlinked_dir("r8/eval"), "r8/eval: directory: expected a directory"),
    R("files", "symlinked-config", symlinked_file("r8/finetune.yaml"), "r8/finetune.yaml: file: expected a regular file"),
    R("files", "untracked-generated", untracked("r16/finetune.slurm"), "r16/finetune.slurm: file: expected it to exist"),
    R("files", "deleted-script", lambda d: (d / "r16/finetune.slurm").unlink(), "r16/finetune.slurm: file: expected it to exist"),
    # --- values and the design
    R("values", "finetune-lr", edit("r8/finetune.yaml", "lr: 1.0e-05", "lr: 1.0e-03"), "r8/finetune.yaml: optimizer.lr: expected 1.0e-05, found 0.001"),
    R("values", "cell-do-sample", edit("r8/eval/capitalization_epoch0.yaml", "do_sample: false", "do_sample: true"), "r8/eval/capitalization_epoch0.yaml: generation.do_sample"),
    R("values", "conflict-markers", edit("r8/finetune.yaml", "epochs: 2\n", "epochs: 2\n<<<<<<< mine\n"), "r8/finetune.yaml: line"),
    R("values", "design-not-rendered", edit("experiment_summary.yaml", "lr: 1e-5", "lr: 2e-5"), "experiment_summary.yaml: design: expected the design the tree was rendered from"),
    # --- permitted: the jobs stay as designed
    Mutation("permitted", "comment-line", edit(FT, "set -euo pipefail\n", "set -euo pipefail\n# tried on the big queue first\n"), allowed=True),
    Mutation("permitted", "echo-after-command", append(FT, 'echo "training finished"\n'), allowed=True),
    Mutation("permitted", "free-sbatch-comment", edit(FT, "#SBATCH --account=acct\n", "#SBATCH --account=acct\n#SBATCH --comment=mine\n"), allowed=True),
    Mutation("permitted", "free-sbatch-mail", edit(EV, "#SBATCH --account=acct\n", "#SBATCH --account=acct\n#SBATCH --mail-type=END\n#SBATCH --mail-user=me@example.org\n"), allowed=True),
    Mutation("permitted", "sbatch-line-sbatch-ignores", append(FT, "#SBATCH --gpus=4\n"), allowed=True),
    Mutation("permitted", "config-key-profiler", append("r8/finetune.yaml", "profiler:\n  enabled: false\n"), allowed=True),
    Mutation("permitted", "file-outside", write("notes/ideas.md", "try rank 32\n"), allowed=True),
    Mutation("permitted", "readme-edit", append("README.md", "\nMy notes.\n"), allowed=True),
    Mutation("permitted", "trailing-comment", edit(FT, f"cd {EXP}/r8\n", f"cd {EXP}/r8  # the run's directory\n"), allowed=True),
    Mutation("permitted", "gitignore-extra", append(".gitignore", "*.pyc\n.venv/\n"), allowed=True),
    Mutation("permitted", "own-hook-beside", append(".pre-commit-config.yaml", "  - repo: local\n    hooks:\n      - {id: mine, name: mine, entry: 'true', language: system}\n"), allowed=True),
    Mutation("permitted", "command-on-one-line", edit(FT, " \\\n  --config", " --config"), allowed=True),
    Mutation("permitted", "line-after-eval-exit", append(EV, "echo unreachable\n"), allowed=True),
    Mutation("permitted", "submit-comment", edit("submit.sh", "set -euo pipefail\n", "set -euo pipefail\n# submitted from the login node\n"), allowed=True),
    Mutation("permitted", "summary-comment", append("experiment_summary.yaml", "# rank 32 next\n"), allowed=True),
]


# Committed through real `git commit` with the installed hooks: a few of each family, the edits of
# the hook configuration (the sealed hook must refuse them whatever the configuration says) and a
# permitted edit beside the user's own hook. The others' commit stage runs in this process.
THROUGH_GIT = {
    "time-short-form", "crlf", "tune-override-lr", "inspect-limit", "preflight-removed", "cd-changed",
    "hook-entry-true", "hook-no-push-stage", "untracked-generated", "symlinked-eval-dir", "design-not-rendered",
    "comment-line", "own-hook-beside", "file-outside",
}


# --------------------------------------------------------------------------- running them
def git(dest: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=dest, capture_output=True, text=True, env=ENV, check=check)


@dataclass
class Outcome:
    commit: subprocess.CompletedProcess  # `git commit` with the hooks
    sha: str = ""  # the commit pushed (made with --no-verify when the hook refused it)
    push: subprocess.CompletedProcess | None = None  # the push that carried it (one per lane and kind)

    @property
    def push_lines(self) -> str:
        """The pre-push hook's lines about this commit (`<sha>:<file>: ...`)."""
        assert self.push is not None
        return "\n".join(line for line in _output(self.push).splitlines() if line.startswith(self.sha[:8] + ":"))


def _output(p: subprocess.CompletedProcess) -> str:
    return p.stdout + p.stderr


def _worker(scaffolded: Path, base: Path, i: int) -> Path:
    clone = base / f"w{i}"
    subprocess.run(["git", "clone", "-q", str(scaffolded), str(clone)], check=True, env=ENV)
    for hook in ("pre-commit", "pre-push", "pre-commit.legacy", "pre-push.legacy"):
        shutil.copy2(scaffolded / ".git/hooks" / hook, clone / ".git/hooks" / hook)
    remote = base / f"remote{i}.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True, env=ENV)
    git(clone, "remote", "add", "gate", str(remote))
    git(clone, "push", "-q", "--no-verify", "gate", "HEAD:refs/heads/main")
    return clone


def _checkout(clone: Path, *how: str) -> None:
    """The scaffold commit, clean (leftovers of the last edit removed, even ignored ones)."""
    git(clone, "clean", "-qfdx")
    git(clone, "checkout", "-q", "-f", *how, "gate/main")
    (clone / ".git/info/exclude").write_text("")


_IN_PROCESS = threading.Lock()  # the check below sets os.environ and sys.stderr: one lane at a time


def sealed_commit_check(clone: Path) -> subprocess.CompletedProcess:
    """What `.git/hooks/pre-commit.legacy` does at `git commit` (gitrepo.SEALED_HOOK: `exec cruijff-gen
    verify --files` with CRUIJFF_GEN_HOOK=pre-commit, from the work tree's root, on the index git is
    about to commit), through the CLI's entry point in this process."""
    from cruijff_gen import cli

    out = io.StringIO()
    with _IN_PROCESS, pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        patch.setenv("CRUIJFF_GEN_HOOK", "pre-commit")
        patch.setenv("CRUIJFF_GEN_REMOTE", "")
        code = cli.main(["verify", str(clone), "--files"])  # (the hook's `.` is the root: the same experiment)
    return subprocess.CompletedProcess(["cruijff-gen", "verify", "--files"], code, "", out.getvalue())


def _commit(clone: Path, index: int, m: Mutation) -> Outcome:
    """The edit, staged and checked at the commit stage (THROUGH_GIT: `git commit` with the hooks);
    committed, with --no-verify when refused (for the push); either way on branch m<index>, pushed
    later with the lane's other branches."""
    _checkout(clone, "-B", f"m{index}")
    m.apply(clone)
    git(clone, "add", "-A")
    if m.name in THROUGH_GIT:
        commit = git(clone, "commit", "-m", f"mutation {m.name}", check=False)
        if commit.returncode != 0:
            git(clone, "commit", "-q", "--no-verify", "-m", f"mutation {m.name} (--no-verify)")
    else:
        commit = sealed_commit_check(clone)
        how = "checked in process" if commit.returncode == 0 else "refused in process"
        git(clone, "commit", "-q", "--no-verify", "-m", f"mutation {m.name} ({how}; --no-verify)")
    return Outcome(commit, git(clone, "rev-parse", "HEAD").stdout.strip())


def _lane(clone: Path, jobs: list[tuple[int, Mutation]]) -> dict[str, Outcome]:
    out = {m.name: _commit(clone, i, m) for i, m in jobs}
    _checkout(clone, "--detach")
    for allowed in (False, True):  # one push per kind: the pre-push hook names each commit's problems
        branches = [f"m{i}" for i, m in jobs if m.allowed is allowed]
        push = git(clone, "push", "gate", *branches, check=False)
        for _, m in jobs:
            if m.allowed is allowed:
                out[m.name].push = push
    return out


@pytest.fixture(scope="module")
def outcomes(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    base = tmp_path_factory.mktemp("gate")
    ENV["PRE_COMMIT_HOME"] = str(base / "pre-commit-home")
    summary = write_summary(base / "design.yaml", designs.base())
    dest = base / "exp"
    result = copier("copy", "--trust", "--defaults", "--data-file", str(summary), "--data=slurm_account=acct",
                    "--data=conda_env=tt", str(template_repo), str(dest))
    assert result.returncode == 0, result.stderr
    assert all((dest / ".git/hooks" / h).exists() for h in ("pre-commit", "pre-push", "pre-commit.legacy", "pre-push.legacy"))
    clones = [_worker(dest, base, i) for i in range(WORKERS)]
    # pre-commit's store, made once before the lanes share it
    subprocess.run([sys.executable, "-m", "pre_commit", "run", "--hook-stage", "pre-commit"], cwd=clones[0], capture_output=True, env=ENV)
    only = {n for n in os.environ.get("GATE_ONLY", "").split(",") if n}  # GATE_ONLY=gpus,crlf: just these
    jobs = [(i, m) for i, m in enumerate(MUTATIONS) if not only or m.name in only]
    with ThreadPoolExecutor(WORKERS) as pool:
        results: dict[str, Outcome] = {}
        for part in pool.map(lambda k: _lane(clones[k], jobs[k::WORKERS]), range(WORKERS)):
            results.update(part)
    return results


REFUSED = [m for m in MUTATIONS if not m.allowed]
PERMITTED = [m for m in MUTATIONS if m.allowed]


def test_enough_mutations():
    assert len(REFUSED) >= 40 and len(PERMITTED) >= 10
    assert len({m.name for m in MUTATIONS}) == len(MUTATIONS)
    through_git = [m for m in MUTATIONS if m.name in THROUGH_GIT]
    assert len(through_git) == len(THROUGH_GIT), "every name of THROUGH_GIT is a mutation"
    assert {m.family for m in through_git} == {m.family for m in MUTATIONS}, "real commits in every family"


def _refused_at_commit(o: Outcome, m: Mutation) -> bool:
    return o.commit.returncode != 0 and m.expect in _output(o.commit)


def _refused_at_push(o: Outcome, m: Mutation) -> bool:
    assert o.push is not None
    return o.push.returncode != 0 and m.expect in o.push_lines


@pytest.mark.parametrize("m", REFUSED, ids=[m.name for m in REFUSED])
def test_refused_at_commit_and_push(outcomes, m):
    if m.name not in outcomes:
        pytest.skip("not in GATE_ONLY")
    o = outcomes[m.name]
    assert o.commit.returncode != 0, f"commit accepted:\n{_output(o.commit)}"
    assert m.expect in _output(o.commit), _output(o.commit)
    assert o.push is not None and o.push.returncode != 0, "push accepted"
    assert m.expect in o.push_lines, _output(o.push)


@pytest.mark.parametrize("m", PERMITTED, ids=[m.name for m in PERMITTED])
def test_permitted_edit_commits_and_pushes(outcomes, m):
    if m.name not in outcomes:
        pytest.skip("not in GATE_ONLY")
    o = outcomes[m.name]
    assert o.commit.returncode == 0, _output(o.commit)
    assert o.push is not None and o.push.returncode == 0 and not o.push_lines, _output(o.push)


def test_table(outcomes):
    """The table of the closing note (printed with -s)."""
    rows: dict[str, list[int]] = {}
    for m in MUTATIONS:
        if m.name not in outcomes:
            continue
        o = outcomes[m.name]
        row = rows.setdefault(m.family, [0, 0, 0, 0])
        row[0] += 1
        if m.allowed:
            row[3] += o.commit.returncode == 0 and o.push is not None and o.push.returncode == 0 and not o.push_lines
        else:
            row[1] += _refused_at_commit(o, m)
            row[2] += _refused_at_push(o, m)
    lines = ["", "| family | tried | refused at commit | refused at push | accepted |", "|---|---|---|---|---|"]
    for family, (tried, at_commit, at_push, accepted) in rows.items():
        if family == "permitted":
            lines.append(f"| {family} | {tried} | - | - | {accepted} |")
        else:
            lines.append(f"| {family} | {tried} | {at_commit} | {at_push} | - |")
    changing = [r for f, r in rows.items() if f != "permitted"]
    lines.append(f"| all behaviour-changing | {sum(r[0] for r in changing)} | {sum(r[1] for r in changing)} | {sum(r[2] for r in changing)} | - |")
    print("\n".join(lines))


# --------------------------------------------------------------------------- what git records
def test_no_verify_commit_on_another_branch_pushed_as_main(outcomes, tmp_path_factory):
    """A --no-verify commit on a side branch, pushed as `bad:main` from another branch: the pre-push
    hook checks the commits being pushed, not the checked-out tree."""
    clone = next(tmp_path_factory.getbasetemp().glob("gate*/w0"))
    _checkout(clone, "-B", "bad")
    edit("r8/finetune.yaml", "lr: 1.0e-05", "lr: 0.1")(clone)
    git(clone, "commit", "-qam", "sneak", "--no-verify")
    git(clone, "checkout", "-q", "-B", "good", "gate/main")
    push = git(clone, "push", "gate", "bad:main", check=False)
    assert push.returncode != 0
    assert "r8/finetune.yaml: optimizer.lr: expected 1.0e-05, found 0.1" in _output(push)
    assert git(clone, "ls-remote", "gate", "refs/heads/main").stdout.split()[0] == git(clone, "rev-parse", "gate/main").stdout.strip()
    # and next to a good ref in the same push (pre-commit itself only looks at the first ref)
    push = git(clone, "push", "gate", "good:refs/heads/fine", "bad:refs/heads/other", check=False)
    assert push.returncode != 0 and "r8/finetune.yaml: optimizer.lr" in _output(push)


# --------------------------------------------------------------------------- a fresh clone
def _fresh_clone(tmp_path_factory, name: str) -> Path:
    """A `git clone` of the scaffolded experiment: git clones no hooks at all."""
    scaffolded = next(tmp_path_factory.getbasetemp().glob("gate*/exp"))
    clone = tmp_path_factory.mktemp("fresh") / name
    subprocess.run(["git", "clone", "-q", str(scaffolded), str(clone)], check=True, env=ENV)
    assert not [h for h in ("pre-commit", "pre-push", "pre-commit.legacy") if (clone / ".git/hooks" / h).exists()]
    return clone


def test_fresh_clone_install_hooks(outcomes, tmp_path_factory):
    """`cruijff-gen install-hooks` in a fresh clone: both stages and the sealed checks, so a commit
    the design disagrees with is refused even after .pre-commit-config.yaml is neutralised."""
    clone = _fresh_clone(tmp_path_factory, "installed")
    result = subprocess.run([sys.executable, "-m", "cruijff_gen", "install-hooks"], cwd=clone / "r8", capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stderr
    assert all((clone / ".git/hooks" / h).exists() for h in ("pre-commit", "pre-push", "pre-commit.legacy", "pre-push.legacy"))
    edit(".pre-commit-config.yaml", "entry: cruijff-gen verify --files", 'entry: "true"')(clone)
    git(clone, "commit", "-qam", "hook off", "--no-verify")
    edit("r8/finetune.yaml", "lr: 1.0e-05", "lr: 0.1")(clone)
    commit = git(clone, "commit", "-qam", "lr", check=False)
    assert commit.returncode != 0 and "r8/finetune.yaml: optimizer.lr: expected 1.0e-05, found 0.1" in _output(commit)


def test_fresh_clone_plain_pre_commit_install_seals_itself(outcomes, tmp_path_factory):
    """Plain `pre-commit install` (what the configuration's comment says) installs only the
    configuration's hook; its first run installs the sealed hooks beside it."""
    clone = _fresh_clone(tmp_path_factory, "plain")
    subprocess.run([sys.executable, "-m", "pre_commit", "install", "--hook-type", "pre-commit", "--hook-type", "pre-push"],
                   cwd=clone, check=True, capture_output=True, env=ENV)
    assert not (clone / ".git/hooks/pre-commit.legacy").exists()
    append("README.md", "\nnotes\n")(clone)
    commit = git(clone, "commit", "-qam", "notes", check=False)
    assert commit.returncode == 0, _output(commit)
    assert (clone / ".git/hooks/pre-commit.legacy").exists() and (clone / ".git/hooks/pre-push.legacy").exists()
    edit(".pre-commit-config.yaml", "entry: cruijff-gen verify --files", 'entry: "true"')(clone)
    git(clone, "commit", "-qam", "hook off", "--no-verify")
    edit("r8/finetune.yaml", "lr: 1.0e-05", "lr: 0.1")(clone)
    commit = git(clone, "commit", "-qam", "lr", check=False)
    assert commit.returncode != 0 and "r8/finetune.yaml: optimizer.lr" in _output(commit)
