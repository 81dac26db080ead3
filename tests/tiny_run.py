"""ONE real run of the bundled tiny experiment (examples/tiny) per session, on the real single-node
SLURM cluster, shared by tests/test_lifecycle.py (submit, status, retry, results, update) and
tests/test_tiny_experiment.py (what each training and eval job left behind).

Both files used to train and evaluate the same experiment each (five jobs, each two Python start-ups
with torch: the job's preflight and `tune run` / `inspect eval`); the run here serves both. The
fixtures are registered once in tests/conftest.py (a fixture imported into two test modules would be
two fixtures, run once per module).

`tiny_experiment`: examples/tiny/experiment_summary.yaml scaffolded by the real `copier copy` with
the cluster settings of examples/tiny/run.py (CPU execution, models_dir, scratch_dir, model_catalog),
max_in_queue=2, and a `venv` whose activation script puts this interpreter's tools first on PATH and
makes `inspect` fail (exit 3) in a job whose name has a flag file.

`tiny_submitted`: the base model's eval cell flagged to fail; `cruijff-gen submit --wait` (queue
cap 2) watched until it returns; a second `submit`; once the flagged job has failed, the flag
removed and `submit --retry-failed --wait`; then until every job has ended. Every job then ran the
experiment's committed scripts: the two trainings and their eval cells once, the base eval cell
twice (failed, then completed).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, copier
from cruijff_gen import lifecycle as lc


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # (dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


tiny = _load("tiny_experiment_run", REPO / "examples" / "tiny" / "run.py")

BUDGET = 420  # seconds for the jobs of one pass to end (measured: 2-3 min on 2 busy cores)
FAILING_JOB = "eval-base-capitalization"  # the base model's eval cell (its SLURM job name)
BASE_EVAL = "base/eval/capitalization.slurm"


def _failing_venv(path: Path, flags: Path) -> Path:
    """The `venv` setting of the tiny experiment: this interpreter's tools first on PATH, and a job
    whose name has a flag file in `flags` gets an `inspect` that fails (exit 3) at once."""
    (path / "bin").mkdir(parents=True)
    flags.mkdir(parents=True)
    (path / "bin" / "activate").write_text(
        "# test environment: the real tools of the interpreter running the tests\n"
        f"export VIRTUAL_ENV={path}\n"
        f'export PATH="{Path(sys.executable).parent}:$PATH"\n'
        f'if [ -e "{flags}/${{SLURM_JOB_NAME:-none}}" ]; then\n'
        '  inspect() { echo "inspect: made to fail by the test" >&2; return 3; }\n'
        "fi\n")
    return path


class Experiment:
    def __init__(self, dest: Path, env: dict[str, str], flags: Path, cluster, where: dict[str, Path]):
        self.dest, self.env, self.flags, self.cluster, self.where = dest, env, flags, cluster, where

    def cli(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        # from a directory inside the experiment: commands find its root
        proc = subprocess.run([sys.executable, "-m", "cruijff_gen", *args], cwd=self.dest / "rank4", env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        if check:
            assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
        return proc

    def status(self) -> dict:
        return json.loads(self.cli("status", "--json").stdout)

    def states(self) -> dict[str, str]:
        """What status says, in this process (a sample every few seconds while jobs run: no
        interpreter start-up taking CPU from the jobs)."""
        from cruijff_gen.experiment_dir import read_answers
        from cruijff_gen.parse import parse
        from cruijff_gen.plan import plan

        slurm = lc.Slurm(runner=lambda argv: subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=60))
        rows, _ = lc.assess(self.dest, plan(parse(read_answers(self.dest))), slurm)
        return {r.unit.key: r.state for r in rows}

    def git(self, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=self.dest, capture_output=True, text=True, check=True).stdout

    def records(self) -> list[dict]:
        return lc.read_records(self.dest)

    def queued(self) -> list[str]:
        out = self.cluster.run("squeue", "-h", "-u", self.cluster.user, "-o", "%i", check=False).stdout
        return out.split()

    def wait_all(self, jobs: list[str], budget: float = BUDGET) -> None:
        deadline = time.monotonic() + budget
        for job in jobs:
            state = self.cluster.wait(int(job), timeout=max(1.0, deadline - time.monotonic()))
            assert state[0] in ("COMPLETED", "FAILED"), (job, state)


@pytest.fixture(scope="session")
def tiny_experiment(slurm_cluster, template_repo, tmp_path_factory):
    for module in ("torchtune", "inspect_ai", "transformers"):
        pytest.importorskip(module, reason=f"{module} is not installed (pip install .[tools])")
    started = time.monotonic()
    base = tmp_path_factory.mktemp("lifecycle")
    where = tiny.prepare(base)  # model, data, task file; scratch_dir = base
    flags = base / "fail-flags"
    venv = _failing_venv(base / "venv", flags)
    settings = {**tiny.settings(base, str(venv)), "max_in_queue": "2"}
    proc = copier("copy", "--trust", "--defaults", "--data-file", str(tiny.SUMMARY), *(f"--data={k}={v}" for k, v in settings.items()),
                  str(template_repo), str(where["experiment"]))
    assert proc.returncode == 0, proc.stderr
    env = slurm_cluster.env
    env.update(TIKTOKEN_CACHE_DIR="", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_MODE="offline", INSPECT_DISPLAY="none")
    env["PYTHONPATH"] = str(REPO)  # this checkout's cruijff_gen, for the commands and the jobs alike
    # The jobs find tune/inspect/python only through the venv setting (the commands are run with this
    # interpreter by path).
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if Path(p) != Path(sys.executable).parent)
    exp = Experiment(where["experiment"], env, flags, slurm_cluster, where)
    print(f"\ntiny experiment: model, data and copier copy {time.monotonic() - started:.1f} s")
    try:
        yield exp
    finally:
        for record in exp.records():
            slurm_cluster.run("scancel", record["job"], check=False)


@pytest.fixture(scope="session")
def tiny_submitted(tiny_experiment):
    """`submit --wait` with the queue cap of 2, watched; once it has submitted everything, a second
    `submit`; once the base model's eval cell has failed, `submit --retry-failed --wait` (under the
    same cap, it overlaps the last jobs); then until every job has ended."""
    exp = tiny_experiment
    (exp.flags / FAILING_JOB).touch()
    head_before = exp.git("rev-parse", "HEAD").strip()
    started = time.monotonic()
    most, seen = 0, []

    def watch(proc: subprocess.Popen | None, until) -> None:
        nonlocal most
        last = 0.0
        while not until():
            most = max(most, len(exp.queued()))
            if time.monotonic() - last > 3:
                seen.append(exp.states())
                last = time.monotonic()
            assert time.monotonic() - started < BUDGET, f"not done in {BUDGET} s; queue: {exp.queued()}"
            time.sleep(0.3)
        if proc is not None:
            assert proc.returncode == 0, proc.stderr.read()

    def background(*args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "cruijff_gen", *args], cwd=exp.dest, env=exp.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    loop = background("submit", "--wait", "--poll", "1")
    try:
        watch(loop, lambda: loop.poll() is not None)
        first = {"stdout": loop.stdout.read(), "stderr": loop.stderr.read()}
        # everything is submitted, some jobs still run: a second submit finds them queued, running or done
        again = exp.cli("submit")
        head_after_first = exp.git("rev-parse", "HEAD").strip()
        records = exp.records()
        job = {r["script"]: r["job"] for r in records}[BASE_EVAL]
        watch(None, lambda: exp.cluster.job(int(job)).get("JobState") == "FAILED")
        failed = exp.status()  # the failed job, as status shows it
        failed_text = exp.cli("status").stdout
        (exp.flags / FAILING_JOB).unlink()
        retry = background("submit", "--retry-failed", "--wait", "--poll", "1")
        watch(retry, lambda: retry.poll() is not None)
        retried = {"stdout": retry.stdout.read(), "stderr": retry.stderr.read(), "new": exp.records()[len(records):]}
        watch(None, lambda: not exp.queued())
    finally:
        for proc in (loop, locals().get("retry")):
            if proc is not None and proc.poll() is None:
                proc.kill()
    exp.wait_all([r["job"] for r in exp.records()])
    seen.append(exp.states())
    seconds = time.monotonic() - started
    status_text = exp.cli("status").stdout
    print(f"\nsubmit --wait (max_in_queue 2), submit --retry-failed --wait, to the last job's end: {seconds:.0f} s\n"
          f"status once the base eval had failed:\n{failed_text}\nstatus at the end:\n{status_text}")
    return {"most_queued": most, "seen": seen, "first": first, "again": again, "records": records, "retried": retried,
            "head_before": head_before, "head_after_first": head_after_first, "failed": failed, "failed_text": failed_text,
            "status_text": status_text, "status": exp.status(), "jobs": {r["script"]: r["job"] for r in exp.records()}}
