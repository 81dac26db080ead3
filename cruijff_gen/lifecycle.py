"""An experiment's jobs after the scaffold: what there is to run, what was submitted, what SLURM and
the jobs themselves say about it, and whether a result is stale. Shared by `cruijff-gen submit`,
`status` and `results`.

* A **unit** is one generated SLURM script: a run's training (`<run>/finetune.slurm`) or an eval cell
  (`<run>/eval/<cell>.slurm`), keyed by that path. Its files are the script and what it reads
  (finetune.yaml; the cell's settings file and task file).
* **Job records** (`logs/jobs.jsonl`, committed by `submit`): one JSON line per submitted job, with
  the unit, the commit it was submitted from and the sha256 of the unit's files then. The last line
  of a unit is its current job. `submit.sh` appends lines too (without the sha256s).
* **Provenance records**, written by each job (cruijff_gen/job/provenance.py) into its output
  directory: the commit and sha256s at its start, its exit status at its end.
* **SLURM**: one `squeue` (this user's queue: live states, and how full the queue is) and one
  `sacct` for the recorded jobs not in it; without accounting (`sacct` refused) one `scontrol show
  job` instead, then the provenance end records for jobs SLURM no longer remembers.
* **Stale**: the files a job ran from (the provenance start record's sha256s, else the job
  record's) differ from the files committed now, or (eval cells) its training is stale or trained
  again after it.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import getpass
import hashlib
import json
import os
import posixpath
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from . import gitrepo
from .errors import CruijffError, GitError
from .job import provenance
from .plan import ExperimentPlan, SlurmJob

JOBS_FILE = "logs/jobs.jsonl"

# Display states, in the order a summary lists them.
NOT_SUBMITTED, PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMED_OUT, UNKNOWN = (
    "not submitted", "pending", "running", "completed", "failed", "cancelled", "timed out", "unknown")
STATES = (NOT_SUBMITTED, PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMED_OUT, UNKNOWN)
LIVE = (PENDING, RUNNING)
ENDED_BADLY = (FAILED, CANCELLED, TIMED_OUT, UNKNOWN)  # what --retry-failed resubmits

_SLURM_STATES = {
    "PENDING": PENDING, "REQUEUED": PENDING, "REQUEUE_HOLD": PENDING, "REQUEUE_FED": PENDING, "RESV_DEL_HOLD": PENDING,
    "RUNNING": RUNNING, "COMPLETING": RUNNING, "CONFIGURING": RUNNING, "SUSPENDED": RUNNING, "STAGE_OUT": RUNNING,
    "SIGNALING": RUNNING, "RESIZING": RUNNING, "STOPPED": RUNNING,
    "COMPLETED": COMPLETED,
    "FAILED": FAILED, "OUT_OF_MEMORY": FAILED, "NODE_FAIL": FAILED, "BOOT_FAIL": FAILED, "DEADLINE": FAILED,
    "PREEMPTED": FAILED, "SPECIAL_EXIT": FAILED, "REVOKED": CANCELLED,
    "CANCELLED": CANCELLED, "TIMEOUT": TIMED_OUT,
}
NEVER_SATISFIED = "DependencyNeverSatisfied"


class LifecycleError(CruijffError):
    exit_code = 1


# --------------------------------------------------------------------------- units
@dataclass(frozen=True)
class Unit:
    key: str  # the script, relative to the experiment: "rank4/finetune.slurm", "rank4/eval/capitalization_epoch0.slurm"
    run: str
    kind: str  # "train" | "eval"
    cell: str | None  # the eval cell's stem
    run_type: str
    files: tuple[str, ...]  # what the job runs from, relative to the experiment (script first)
    job: SlurmJob
    record_dir: str  # where the job writes its provenance record (a path on the cluster)
    record_name: str
    waits_for: str | None = None  # eval cells of fine-tuned runs: the key of their training

    @property
    def label(self) -> str:
        return "train" if self.kind == "train" else f"eval {self.cell}"

    @property
    def output(self) -> str:
        """The job's output file pattern (`#SBATCH --output`, %j = job id)."""
        return dict(self.job.directives)["output"]


def _inside(path: str, experiment_dir: str) -> str | None:
    prefix = experiment_dir.rstrip("/") + "/"
    return path[len(prefix):] if path.startswith(prefix) else None


def units(plan: ExperimentPlan) -> list[Unit]:
    """Every job of the experiment, in plan order: a run's training, then its eval cells."""
    out = []
    for run in plan.runs:
        train_key = None
        if run.finetune_job is not None:
            train_key = f"{run.name}/finetune.slurm"
            out.append(Unit(train_key, run.name, "train", None, run.type, (train_key, f"{run.name}/finetune.yaml"),
                            run.finetune_job, run.artifacts_dir.rstrip("/"), "provenance"))
        for cell in plan.cells_of(run.name):
            task_file = _inside(cell.job.argv[2].rsplit("@", 1)[0], plan.experiment_dir)
            files = (cell.slurm_relpath, cell.settings_relpath) + ((task_file,) if task_file else ())
            log_dir = cell.job.argv[cell.job.argv.index("--log-dir") + 1]
            out.append(Unit(cell.slurm_relpath, run.name, "eval", cell.stem, run.type, files, cell.job, log_dir,
                            f"{cell.stem}-provenance", waits_for=train_key))
    return out


def select(all_units: list[Unit], runs: Iterable[str]) -> list[Unit]:
    """The units of the runs named (names or shell patterns); all when none are named."""
    patterns = tuple(runs)
    if not patterns:
        return all_units
    names = list(dict.fromkeys(u.run for u in all_units))
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            raise LifecycleError(f"no run matches {pattern!r} (runs: {', '.join(names)})")
    return [u for u in all_units if any(fnmatch.fnmatchcase(u.run, p) for p in patterns)]


class Paths:
    """The plan's paths are the experiment's paths on the cluster (experiment.dir); this maps them
    onto the directory at hand (the same directory, on the cluster)."""

    def __init__(self, root: Path, plan: ExperimentPlan):
        self.root = root
        self.experiment_dir = plan.experiment_dir
        self._root = str(root).rstrip("/") + "/"

    def local(self, path: str) -> Path:
        rel = _inside(path, self.experiment_dir)
        return self.root / rel if rel is not None else Path(path)

    def shown(self, path: Path | str) -> str:
        """A path as a user reads it: relative to the experiment when inside it (a plan path, or a
        path under the directory at hand)."""
        text = str(path)
        rel = _inside(text, self.experiment_dir)
        if rel is None and text.startswith(self._root):
            rel = text[len(self._root):]
        return rel if rel is not None else text


def output_file(unit: Unit, job: str) -> str:
    """The job's output file (SLURM's %j filled in, %% unescaped), as a cluster path."""
    return re.sub(r"%%|%j", lambda m: "%" if m.group(0) == "%%" else job, unit.output)


def provenance_file(unit: Unit, job: str) -> str:
    return posixpath.join(unit.record_dir, f"{unit.record_name}-{job}.json")


# --------------------------------------------------------------------------- job records
def read_records(root: Path) -> list[dict[str, Any]]:
    """logs/jobs.jsonl, oldest first; a line that is not a JSON object (a write cut short) is skipped."""
    try:
        text = (root / JOBS_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("job") and record.get("script"):
            record["job"] = str(record["job"])
            if record.get("after") in ("", None):
                record["after"] = None
            else:
                record["after"] = str(record["after"])
            out.append(record)
    return out


def latest(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for record in records:
        out[record["script"]] = record
    return out


def append_record(root: Path, record: dict[str, Any]) -> None:
    """One line, flushed to disk before the next sbatch: a kill loses at most the job being submitted."""
    path = root / JOBS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, separators=(", ", ": ")) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).astimezone().isoformat(timespec="seconds")


# --------------------------------------------------------------------------- git
def git(root: Path, *args: str, input: bytes | None = None) -> bytes:
    """gitrepo's runner; a failure is a LifecycleError (submit/status/results exit 1 on it)."""
    try:
        return gitrepo.run(root, *args, input=input)
    except GitError as exc:
        raise LifecycleError(str(exc)) from None


def head(root: Path) -> str:
    return git(root, "rev-parse", "HEAD").decode().strip()


def source_commit(root: Path) -> str:
    """The last commit that changed anything but the job records: the version of the files jobs
    run from (HEAD may be a "Submit ..." commit, which changes logs/jobs.jsonl only)."""
    return git(root, "log", "-1", "--format=%H", "HEAD", "--", ".", f":(exclude){JOBS_FILE}").decode().strip() or head(root)


def dirty(root: Path) -> list[str]:
    """What `git status` lists (tracked changes and untracked files), except the job records, which
    a killed submit may leave uncommitted (the next submit commits them)."""
    return [name for name in gitrepo.status_paths(git(root, "status", "--porcelain", "-z", "--untracked-files=all")) if name != JOBS_FILE]


def committed_sha256(root: Path, paths: Iterable[str]) -> dict[str, str | None]:
    """sha256 of each file as HEAD has it (None: not in HEAD): one `git ls-tree` for the blob ids,
    one `git cat-file --batch` for their content (gitrepo.tree_entries, gitrepo.blobs)."""
    paths = list(dict.fromkeys(paths))
    if not paths:
        return {}
    try:
        ids = {rel: sha for rel, (mode, sha) in gitrepo.tree_entries(root, "HEAD").items() if mode != "160000"}
        contents = gitrepo.blobs(root, (ids[p] for p in paths if p in ids))
    except GitError as exc:
        raise LifecycleError(str(exc)) from None
    return {p: hashlib.sha256(data).hexdigest() if (data := contents.get(ids.get(p, ""))) is not None else None for p in paths}


def sha256_files(root: Path, paths: Iterable[str]) -> dict[str, str | None]:
    return {p: provenance.sha256(root / p) for p in paths}


# --------------------------------------------------------------------------- SLURM
@dataclass
class JobInfo:
    job: str
    slurm_state: str  # SLURM's word: PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, ...
    reason: str = ""
    exit_code: int | None = None
    signal: int | None = None
    elapsed: str = ""
    source: str = ""  # squeue | sacct | scontrol | provenance

    @property
    def state(self) -> str:
        return _SLURM_STATES.get(self.slurm_state, UNKNOWN)


def _exit(text: str) -> tuple[int | None, int | None]:
    """SLURM's ExitCode `<status>:<signal>`."""
    status, _, sig = text.strip().partition(":")
    try:
        return int(status), int(sig or 0)
    except ValueError:
        return None, None


def _state_word(text: str) -> str:
    return text.strip().split(" ")[0].rstrip("+")  # "CANCELLED by 1000", "RUNNING+" (squeue -l)


SQUEUE_FORMAT = "%i|%T|%r|%M"


def parse_squeue(text: str) -> dict[str, JobInfo]:
    """`squeue -h -r -o '%i|%T|%r|%M'`: job id | state | reason | time used."""
    out = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 4 or not parts[0]:
            continue
        job, state, reason, elapsed = parts[0], parts[1], parts[2], parts[3]
        out[job] = JobInfo(job, _state_word(state), "" if reason in ("None", "(null)") else reason, elapsed=elapsed, source="squeue")
    return out


SACCT_FIELDS = "JobIDRaw,State,ExitCode,Elapsed,Reason"


def parse_sacct(text: str) -> dict[str, JobInfo]:
    """`sacct -X -n -P -o JobIDRaw,State,ExitCode,Elapsed,Reason`; a job listed twice (requeued, or
    an id SLURM reused) keeps its last line."""
    out = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 4 or not parts[0] or "." in parts[0]:
            continue  # steps (123.batch) when -X was not honoured
        code, sig = _exit(parts[2])
        reason = parts[4] if len(parts) > 4 and parts[4] not in ("None", "(null)") else ""
        out[parts[0]] = JobInfo(parts[0], _state_word(parts[1]), reason, code, sig, parts[3], source="sacct")
    return out


_SCONTROL_FIELD = re.compile(r"(?:^|\s)([\w/:]+)=(\S*)")


def parse_scontrol(text: str) -> dict[str, JobInfo]:
    """`scontrol show job -o` (every job slurmctld still remembers, one line each)."""
    out = {}
    for line in text.splitlines():
        fields = dict(_SCONTROL_FIELD.findall(line))
        job = fields.get("JobId")
        if not job:
            continue
        code, sig = _exit(fields.get("ExitCode", ""))
        reason = fields.get("Reason", "")
        out[job] = JobInfo(job, _state_word(fields.get("JobState", "")), "" if reason == "None" else reason,
                           code, sig, fields.get("RunTime", ""), source="scontrol")
    return out


Runner = Callable[[list[str]], subprocess.CompletedProcess]


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=300)
    except FileNotFoundError:
        return subprocess.CompletedProcess(argv, 127, "", f"{argv[0]}: command not found")
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 124, "", f"{argv[0]}: no answer in 300 s")


def _last_line(text: str) -> str:
    lines = (text or "").strip().splitlines()
    return lines[-1] if lines else "failed"


class Slurm:
    """The SLURM commands lifecycle runs (each call logged in `calls`, so a test can count them)."""

    def __init__(self, runner: Runner = _run, user: str | None = None, strict: bool = True):
        self.runner = runner
        self.user = user or os.environ.get("USER") or getpass.getuser()
        self.strict = strict  # submit needs the queue; status can do without (states from provenance records)
        self.calls: list[list[str]] = []
        self.notes: list[str] = []

    def _call(self, *argv: str) -> subprocess.CompletedProcess:
        self.calls.append(list(argv))
        return self.runner(list(argv))

    def queue(self) -> dict[str, JobInfo]:
        """This user's jobs in the queue (all experiments': what a QoS cap counts), array tasks
        one by one."""
        proc = self._call("squeue", "-h", "-r", "-u", self.user, "-o", SQUEUE_FORMAT)
        if proc.returncode != 0:
            if self.strict:
                raise LifecycleError(f"squeue failed: {proc.stderr.strip() or proc.returncode}")
            self.notes.append(f"squeue: {_last_line(proc.stderr)}; states from the jobs' provenance records only")
            self.offline = True
        return parse_squeue(proc.stdout) if proc.returncode == 0 else {}

    def history(self, jobs: Iterable[str]) -> dict[str, JobInfo]:
        """States of these jobs from one sacct call; without accounting, from one scontrol call."""
        jobs = sorted(set(jobs), key=lambda j: (len(j), j))
        if not jobs or getattr(self, "offline", False):
            return {}
        proc = self._call("sacct", "-X", "-n", "-P", "-j", ",".join(jobs), "-o", SACCT_FIELDS)
        if proc.returncode == 0:
            return parse_sacct(proc.stdout)
        self.notes.append(f"no SLURM accounting here (sacct: {_last_line(proc.stderr)}): states from scontrol, "
                          "and for jobs SLURM has forgotten, from their provenance records")
        proc = self._call("scontrol", "show", "job", "-o")
        if proc.returncode != 0:
            self.notes.append(f"scontrol: {_last_line(proc.stderr)}")
            return {}
        wanted = set(jobs)
        return {k: v for k, v in parse_scontrol(proc.stdout).items() if k in wanted}

    def sbatch(self, script: Path, *options: str, cwd: Path) -> str:
        argv = ["sbatch", "--parsable", *options, str(script)]
        self.calls.append(argv)
        try:
            proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300)
        except FileNotFoundError:
            raise LifecycleError("sbatch: command not found (submit from a machine that can reach SLURM)") from None
        if proc.returncode != 0 or not proc.stdout.strip():
            raise SbatchFailed(proc.stderr.strip() or f"sbatch exited {proc.returncode}")
        return proc.stdout.strip().split(";")[0]

    def cancel(self, jobs: list[str]) -> None:
        if jobs:
            self._call("scancel", *jobs)


class SbatchFailed(LifecycleError):
    @property
    def queue_full(self) -> bool:
        return bool(re.search(r"QOSMax\w*(Submit|Job)|AssocMax\w*(Submit|Job)|MaxSubmit", str(self)))


# --------------------------------------------------------------------------- assessment
@dataclass
class Row:
    unit: Unit
    record: dict[str, Any] | None = None
    info: JobInfo | None = None
    start: dict[str, Any] | None = None  # the job's provenance record
    state: str = NOT_SUBMITTED
    detail: str = ""
    log: str | None = None  # the job's output file, relative to the experiment when inside it
    commit: str | None = None  # the version of the files the job ran from (provenance), else was submitted from
    stale: bool = False
    why_stale: list[str] = field(default_factory=list)

    @property
    def job(self) -> str | None:
        return self.record["job"] if self.record else None

    @property
    def exit_code(self) -> int | None:
        if self.info is not None and self.info.exit_code is not None:
            return self.info.exit_code
        return self.start.get("exit_status") if self.start else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "run": self.unit.run, "job": self.unit.label, "kind": self.unit.kind, "cell": self.unit.cell,
            "script": self.unit.key, "state": self.state, "detail": self.detail, "job_id": self.job,
            "slurm_state": self.info.slurm_state if self.info else None,
            "reason": self.info.reason if self.info else None,
            "elapsed": self.info.elapsed if self.info else None,
            "exit_code": self.exit_code, "log": self.log, "commit": self.commit,
            "stale": self.stale, "why_stale": self.why_stale,
        }


def never_runs(info: JobInfo | None) -> bool:
    return info is not None and info.state == PENDING and info.reason == NEVER_SATISFIED


def _describe(row: Row, paths: Paths) -> None:
    info, prov, job = row.info, row.start, row.job
    if job is None:
        return
    row.log = paths.shown(output_file(row.unit, job))
    if info is None and prov and prov.get("exit_status") is not None:
        code = int(prov["exit_status"])
        info = row.info = JobInfo(job, "COMPLETED" if code == 0 else ("CANCELLED" if code == 143 else "FAILED"),
                                  exit_code=code, source="provenance")
    if info is None:
        row.state = UNKNOWN
        started = f"; started {prov['start']} on {prov.get('host')}, no end recorded" if prov and prov.get("start") else ""
        row.detail = f"job {job}: SLURM no longer knows it{started}"
        return
    row.state = info.state
    if row.state == PENDING:
        row.detail = info.reason or "queued"
        if info.reason == NEVER_SATISFIED:
            row.detail += ": its training failed, so it can never run (--retry-failed resubmits both)"
        elif info.reason == "Dependency" and row.unit.waits_for:
            row.detail = f"waiting for its training ({row.unit.waits_for})"
    elif row.state == RUNNING:
        row.detail = info.elapsed
    elif row.state == FAILED:  # FAILED: its exit code; OUT_OF_MEMORY, NODE_FAIL, ...: SLURM's word
        what = f"exit {row.exit_code}" if info.slurm_state == "FAILED" else info.slurm_state.lower().replace("_", " ")
        row.detail = f"{what}; read {row.log}"
    elif row.state == CANCELLED:
        row.detail = "its training failed" if info.reason == NEVER_SATISFIED else (info.reason or "")
    elif row.state == TIMED_OUT:
        row.detail = f"time limit {dict(row.unit.job.directives).get('time', '?')}; read {row.log}"
    if info.source == "provenance":
        row.detail = (row.detail + "; " if row.detail else "") + "from its provenance record (SLURM no longer knows it)"


def assess(root: Path, plan: ExperimentPlan, slurm: Slurm | None, wanted: list[Unit] | None = None,
           records: list[dict[str, Any]] | None = None) -> tuple[list[Row], dict[str, JobInfo]]:
    """A row per unit (all of the plan's, or `wanted`), and this user's queue (empty without SLURM).
    SLURM is asked twice at most (squeue, then sacct or scontrol), whatever the number of jobs."""
    paths = Paths(root, plan)
    all_units = units(plan)
    shown = wanted if wanted is not None else all_units
    current = latest(read_records(root) if records is None else records)
    rows = {u.key: Row(u, current.get(u.key)) for u in all_units}
    queue: dict[str, JobInfo] = {}
    if slurm is not None:
        queue = slurm.queue()
        jobs = [r.job for r in rows.values() if r.job is not None]
        known = slurm.history(j for j in jobs if j not in queue)
        for row in rows.values():
            if row.job is not None:
                row.info = queue.get(row.job) or known.get(row.job)
    for row in rows.values():
        if row.job is not None:
            row.start = provenance.read(paths.local(provenance_file(row.unit, row.job)))
            row.commit = next((c for c in ((row.start or {}).get("source_commit"), (row.start or {}).get("commit"),
                                           row.record.get("source_commit"), row.record.get("commit")) if c), None)
    now_sha = committed_sha256(root, [f for r in rows.values() if r.job for f in r.unit.files])
    for row in rows.values():
        _describe(row, paths)
        _own_staleness(row, now_sha)
    for row in rows.values():  # eval cells: their training's staleness, or a newer training
        train = rows.get(row.unit.waits_for) if row.unit.waits_for else None
        if row.job is None or train is None or train.job is None:
            continue
        if train.stale:
            row.why_stale.append(f"its training is stale ({train.unit.key})")
        elif row.record.get("after") and row.record["after"] != train.job:
            row.why_stale.append(f"its training ran again after it (job {train.job})")
        row.stale = bool(row.why_stale)
    return [rows[u.key] for u in shown], queue


def _own_staleness(row: Row, now_sha: dict[str, str | None]) -> None:
    if row.job is None:
        return
    ran: dict[str, str | None] = dict(row.record.get("files") or {})
    for rel, digest in ((row.start or {}).get("files") or {}).items():
        if rel != row.unit.key or rel not in ran:  # the script: as submitted (SLURM keeps that copy)
            ran[rel] = digest
    for rel in row.unit.files:
        then, committed = ran.get(rel), now_sha.get(rel)
        if then and committed and then != committed:
            row.why_stale.append(f"{rel} changed since job {row.job} " + ("ran" if row.start else "was submitted"))
    row.stale = bool(row.why_stale)


def counts(rows: list[Row]) -> dict[str, int]:
    out = {s: 0 for s in STATES}
    for row in rows:
        out[row.state] += 1
    return {k: v for k, v in out.items() if v}
