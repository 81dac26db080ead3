"""`cruijff-gen submit [RUN ...]`: submit the experiment's jobs that are not queued, running or done.

* Refuses a tree that is not what a commit says (changes, untracked files), a design edited and
  committed but not rendered (run the update), and a tree the verifier disagrees with: every job
  runs from committed, verified files, and its record names that commit.
* Each job is recorded at once in logs/jobs.jsonl (job id, script, the commit, the sha256 of the
  files it runs from, the training job it waits for); the file is committed alone when `submit`
  ends ("Submit <experiment>: ..."; a --wait loop: once, at its end, also when interrupted), so a
  second `submit` finds everything queued, running or done and submits nothing.
* An eval cell of a fine-tuned run waits for its training: `--dependency=afterok:<id>` while the
  training is queued or running (with `--kill-on-invalid-dep=yes`, so a failed training cancels it
  instead of leaving it pending forever, holding a place in the queue); none when the training has
  completed; not submitted while its training has failed (`--retry-failed` resubmits both).
* Queue cap (cluster setting `max_in_queue`, or `--max-in-queue`): never more than that many of
  this user's jobs (all experiments', as a QoS limit counts them) pending or running; the rest waits.
  With `--wait` it stays and submits more as jobs leave the queue (one squeue + one sacct per poll).
  Order: eval cells that can start now first, then run by run (training, then its eval cells).
* `--retry-failed`: resubmit units whose last job failed, was cancelled or timed out;
  `--stale`: resubmit units whose last job ran from files that have changed since (an update).
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import gitrepo
from .. import lifecycle as lc
from ..experiment_dir import SUMMARY_FILE, misplaced, read_answers, read_design_file, unrendered_sections
from ..parse import DESIGN_SECTIONS, parse
from ..plan import ExperimentPlan, plan
from ..render import renderer
from ..verify import verify

LOCK = "cruijff-submit.lock"


# --------------------------------------------------------------------------- preconditions
def unrendered(root: Path, answers: dict[str, Any]) -> list[str]:
    """The design sections experiment_summary.yaml has changed but .copier-answers.yml (what the
    files were rendered from) does not have yet."""
    try:
        edited = read_design_file(root / SUMMARY_FILE)
    except Exception:  # noqa: BLE001 - a summary that does not parse is not rendered either
        return [SUMMARY_FILE]
    return unrendered_sections(edited, answers, DESIGN_SECTIONS)


def check(root: Path, the_plan: ExperimentPlan, answers: dict[str, Any]) -> None:
    elsewhere = misplaced(the_plan, str(root))
    if elsewhere:
        raise lc.LifecycleError(f"nothing was submitted: {elsewhere}")
    changes = lc.dirty(root)
    if changes:
        shown = ", ".join(changes[:5]) + (f" and {len(changes) - 5} more" if len(changes) > 5 else "")
        raise lc.LifecycleError(f"the experiment has changes not committed ({shown}); commit them (or `git stash`) "
                                "first: every job runs from, and is recorded with, a commit")
    sections = unrendered(root, answers)
    if sections:
        raise lc.LifecycleError(f"{SUMMARY_FILE} has changes the generated files do not have yet ({', '.join(sections)}); "
                                "run the update first (cruijff-gen update)")
    mismatches = verify(root, the_plan, rendered=renderer(answers))
    if mismatches:
        raise lc.LifecycleError("\n".join(["the generated files disagree with the design; nothing was submitted:",
                                           *(f"  {m}" for m in mismatches[:20]),
                                           *([f"  ... and {len(mismatches) - 20} more (cruijff-gen verify)"] if len(mismatches) > 20 else [])]))


class _Lock:
    """One submit at a time per experiment (two would submit the same jobs twice)."""

    def __init__(self, root: Path):
        self.path = root / ".git" / LOCK
        self.handle = None

    def __enter__(self) -> "_Lock":
        self.handle = open(self.path, "a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.seek(0)
            holder = self.handle.read().strip() or "?"
            self.handle.close()
            raise lc.LifecycleError(f"another `cruijff-gen submit` is running in this experiment (process {holder}); "
                                    "wait for it (a --wait loop ends when everything is submitted) or stop it") from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(str(os.getpid()))
        self.handle.flush()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.handle is not None:
            self.handle.close()


# --------------------------------------------------------------------------- choosing
@dataclass
class Choice:
    row: lc.Row
    why: str  # new | retry | stale

    @property
    def unit(self) -> lc.Unit:
        return self.row.unit


def _wanted(row: lc.Row, retry_failed: bool, stale: bool) -> str | None:
    if row.state == lc.NOT_SUBMITTED:
        return "new"
    if lc.never_runs(row.info):  # pending forever behind a failed training (submitted without --kill-on-invalid-dep)
        return "retry" if retry_failed else None
    if row.state in lc.LIVE:
        return None
    if stale and row.stale:
        return "stale"
    if row.state in lc.ENDED_BADLY and retry_failed:
        return "retry"
    return None


def choose(rows: list[lc.Row], all_rows: dict[str, lc.Row], retry_failed: bool, stale: bool,
           again: set[str] | None = None) -> tuple[list[Choice], list[str]]:
    """What to submit, in submission order, and notes on what is held back and why. `again`: the
    only units --retry-failed / --stale may resubmit (a --wait loop's later passes: those chosen in
    its first pass, so a job that fails meanwhile is not resubmitted over and over)."""
    chosen: dict[str, Choice] = {}
    notes: list[str] = []
    for row in rows:
        why = _wanted(row, retry_failed, stale)
        if why and why != "new" and again is not None and row.unit.key not in again:
            why = None
        if why:
            chosen[row.unit.key] = Choice(row, why)
        elif row.state in lc.ENDED_BADLY and not retry_failed:
            notes.append(f"{row.unit.key}: {row.state} (job {row.job}); not resubmitted (--retry-failed resubmits it)")
        elif row.stale and not stale and row.state not in lc.LIVE:
            notes.append(f"{row.unit.key}: stale ({'; '.join(row.why_stale)}); not resubmitted (--stale resubmits it)")
    ready: list[Choice] = []  # eval cells that can start at once: submitted first
    rest: list[Choice] = []  # then run by run, each training before its eval cells (plan order)
    for choice in chosen.values():
        train_key = choice.unit.waits_for
        if choice.unit.kind == "eval":
            train = all_rows[train_key] if train_key else None
            if train is None or (train_key not in chosen and train.state == lc.COMPLETED):
                ready.append(choice)
                continue
            if train_key not in chosen and train.state not in lc.LIVE:
                hint = " (--retry-failed resubmits both)" if train.state in lc.ENDED_BADLY else ""
                notes.append(f"{choice.unit.key}: not submitted: its training {train_key} is {train.state}{hint}")
                continue
        rest.append(choice)
    return ready + rest, notes


# --------------------------------------------------------------------------- submitting
@dataclass
class Pass:
    submitted: list[dict[str, Any]]
    left: int  # chosen but not submitted (queue full)
    notes: list[str]
    again: set[str]  # chosen to resubmit (--retry-failed, --stale) but not submitted yet


def _one_pass(root: Path, the_plan: ExperimentPlan, wanted: list[lc.Unit], slurm: lc.Slurm, commit: str, source: str, cap: int,
              retry_failed: bool, stale: bool, dry_run: bool, say, again: set[str] | None = None) -> Pass:
    rows, queue = lc.assess(root, the_plan, slurm)
    by_key = {r.unit.key: r for r in rows}
    keys = {u.key for u in wanted}
    choices, notes = choose([r for r in rows if r.unit.key in keys], by_key, retry_failed, stale, again)
    free = cap - len(queue) if cap else len(choices)
    now_sha = lc.sha256_files(root, [f for c in choices for f in c.unit.files])
    submitted: list[dict[str, Any]] = []
    jobs: dict[str, tuple[str, str]] = {k: (r.job, r.state) for k, r in by_key.items() if r.job}  # key -> (job, state)
    waiting = 0
    for choice in choices:
        unit = choice.unit
        options: list[str] = []
        after = None
        if unit.waits_for:
            train_job, train_state = jobs.get(unit.waits_for, (None, lc.NOT_SUBMITTED))
            if train_state in lc.LIVE:
                options = [f"--dependency=afterok:{train_job}", "--kill-on-invalid-dep=yes"]
                after = train_job
            elif train_state == lc.COMPLETED:
                after = train_job
            else:  # its training was not submitted in this pass (queue full): later
                waiting += 1
                continue
        if free <= 0:
            waiting += 1
            continue
        when = f" (after job {after} succeeds)" if options else ""
        previous = f" (replaces job {choice.row.job}: {choice.why})" if choice.row.job else ""
        if dry_run:
            say(f"would submit {unit.key}" + (f" (after {unit.waits_for} succeeds)" if options else "") + previous)
            jobs[unit.key] = ("?", lc.PENDING)
            free -= 1
            submitted.append({"script": unit.key})
            continue
        if lc.never_runs(choice.row.info):
            slurm.cancel([choice.row.job])  # it would wait forever for the training that failed
        try:
            job = slurm.sbatch(root / unit.key, *options, cwd=root)
        except lc.SbatchFailed as exc:
            if exc.queue_full:
                notes.append(f"SLURM refused more jobs ({exc}); the rest waits")
                waiting += len(choices) - len(submitted)
                break
            raise
        record = {
            "job": job, "script": unit.key, "run": unit.run, "cell": unit.cell, "after": after,
            "commit": commit, "source_commit": source, "files": {f: now_sha[f] for f in unit.files}, "submitted": lc.now(),
            "by": "cruijff-gen submit", **({"replaces": choice.row.job, "why": choice.why} if choice.row.job else {}),
        }
        lc.append_record(root, record)
        submitted.append(record)
        jobs[unit.key] = (job, lc.PENDING)
        free -= 1
        say(f"submitted {unit.key}: job {job}{when}{previous}")
    done = {r["script"] for r in submitted}
    return Pass(submitted, waiting, notes, {c.unit.key for c in choices if c.why != "new" and c.unit.key not in done})


class Interrupted(lc.LifecycleError):
    exit_code = 130


def _interrupted(signum: int, frame: object) -> None:
    raise Interrupted("stopped by SIGTERM; the jobs submitted so far are recorded")


def commit_records(root: Path, the_plan: ExperimentPlan, records: list[dict[str, Any]], submitted: list[dict[str, Any]]) -> str | None:
    """Commit logs/jobs.jsonl alone (whatever else is staged stays staged), hooks skipped: the
    records are not generated files. Once per `submit` (a --wait loop: at its end), so the jobs of
    one submit run from, and name, the same commit. Records a killed submit left uncommitted are
    committed by the next one."""
    if not lc.git(root, "status", "--porcelain", "--", lc.JOBS_FILE).strip():
        return None
    if not submitted:  # only what an earlier, killed submit left
        submitted = [r for r in records if r.get("commit") == lc.head(root)]
    trainings = sum(1 for r in submitted if r["script"].endswith("/finetune.slurm"))
    what = ", ".join(p for p in (f"{trainings} training" if trainings else "", f"{len(submitted) - trainings} eval" if len(submitted) > trainings else "") if p)
    message = f"Submit {the_plan.design.experiment.name}: {len(submitted)} job(s)" + (f" ({what})" if what else "")
    lc.git(root, "add", "--", lc.JOBS_FILE)
    result = gitrepo.call(root, "commit", "--no-verify", "--quiet", "-m", message, "--only", "--", lc.JOBS_FILE, env=gitrepo.identity_env(root))
    if not result.ok:
        raise lc.LifecycleError(f"the jobs were submitted and recorded in {lc.JOBS_FILE}, but committing it failed: {result.failure()}")
    return lc.head(root)


def run(root: Path, runs: tuple[str, ...] = (), retry_failed: bool = False, stale: bool = False, dry_run: bool = False,
        wait: bool = False, poll: float = 60.0, max_in_queue: int | None = None, slurm: lc.Slurm | None = None) -> int:
    root = root.resolve()
    answers = read_answers(root)
    the_plan = plan(parse(answers))
    wanted = lc.select(lc.units(the_plan), runs)
    cap = the_plan.settings.max_in_queue if max_in_queue is None else max_in_queue
    slurm = slurm or lc.Slurm()

    def say(line: str) -> None:
        print(line, flush=True)

    with _Lock(root):
        check(root, the_plan, answers)
        commit, source = lc.head(root), lc.source_commit(root)
        total: list[dict[str, Any]] = []
        again: set[str] | None = None
        told = None
        previous = signal.signal(signal.SIGTERM, _interrupted)
        try:
            while True:
                step = _one_pass(root, the_plan, wanted, slurm, commit, source, cap, retry_failed, stale, dry_run, say, again)
                again = step.again
                total += step.submitted
                if not wait or dry_run or step.left == 0:
                    break
                if step.left != told:
                    print(f"cruijff-gen: {step.left} job(s) wait for room in the queue (max_in_queue {cap}); "
                          f"looking again every {poll:g} s", file=sys.stderr, flush=True)
                    told = step.left
                time.sleep(poll)
                if lc.head(root) != commit or lc.dirty(root):
                    print("cruijff-gen: the experiment changed while waiting (a new commit or uncommitted changes); stopping: "
                          "run `cruijff-gen submit` again to submit the rest from what is committed now", file=sys.stderr)
                    return 1
        finally:  # also when interrupted: the records of what was submitted are committed
            signal.signal(signal.SIGTERM, previous)
            if not dry_run:
                sha = commit_records(root, the_plan, [r for r in lc.read_records(root)], total)
                if sha:
                    print(f"cruijff-gen: recorded in {lc.JOBS_FILE} (commit {sha[:8]})", file=sys.stderr, flush=True)
    for note in dict.fromkeys([*slurm.notes, *step.notes]):
        print(f"cruijff-gen: note: {note}", file=sys.stderr)
    verb = "would submit" if dry_run else "submitted"
    if total:
        print(f"cruijff-gen: {verb} {len(total)} job(s) from commit {source[:8]}"
              + (f"; {step.left} wait for room in the queue (max_in_queue {cap}): run submit again, or submit --wait" if step.left else ""),
              file=sys.stderr)
    elif step.left:
        print(f"cruijff-gen: nothing submitted: the queue is full (max_in_queue {cap}); {step.left} job(s) wait: "
              "run submit again later, or submit --wait", file=sys.stderr)
    else:
        print("cruijff-gen: nothing to submit: every job is queued, running or done (cruijff-gen status)", file=sys.stderr)
    return 0
