"""What a job ran from, written by the job itself into its output directory, at start and at exit.

    python -m cruijff_gen.job.provenance start --dir DIR --name NAME --repo EXPERIMENT --file F [--file F ...]
    python -m cruijff_gen.job.provenance end --dir DIR --name NAME --exit-status N

Both write DIR/NAME-<job id>.json (the job id is $SLURM_JOB_ID; outside SLURM `local-<pid of the
calling shell>`): the experiment's commit (`git rev-parse HEAD`; `source_commit`: the last one that
changed anything but the job records) and whether its tracked files differed from it, the sha256 of each --file (the job's script and configs; paths inside the
experiment are recorded relative to it), host, GPUs (CUDA_VISIBLE_DEVICES, SLURM_JOB_GPUS, ...),
the SLURM job, versions of the tools, start time; `end` adds the end time and exit status. The
generated scripts call `start` after their preflight and `end` from a `trap ... EXIT`, so a job that
fails still records how it ended. `cruijff-gen status` and `results` read these records: a config
whose sha256 differs from the committed file now makes the job's result stale.

Standard library only (runs in the job's environment before any tool is imported), and never
fails the job: a record that cannot be written is one warning line on stderr, exit status 0.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

FORMAT = 1
GPU_VARIABLES = ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "SLURM_GPUS_ON_NODE", "GPU_DEVICE_ORDINAL")
SLURM_VARIABLES = {
    "job_id": "SLURM_JOB_ID", "job_name": "SLURM_JOB_NAME", "partition": "SLURM_JOB_PARTITION",
    "account": "SLURM_JOB_ACCOUNT", "cluster": "SLURM_CLUSTER_NAME", "nodelist": "SLURM_JOB_NODELIST",
    "restart_count": "SLURM_RESTART_COUNT", "array_job_id": "SLURM_ARRAY_JOB_ID", "array_task_id": "SLURM_ARRAY_TASK_ID",
}
JOB_RECORDS = "logs/jobs.jsonl"
TOOLS = ("cruijff_gen", "torch", "torchtune", "inspect_ai", "transformers", "peft")
DIRTY_SHOWN = 20


def job_id() -> str:
    """This job's id: SLURM's, or (outside SLURM) the pid of the shell running the script, which
    is the same for the `start` and the `end` call."""
    return os.environ.get("SLURM_JOB_ID") or f"local-{os.getppid()}"


def record_path(directory: str, name: str, job: str | None = None) -> Path:
    return Path(directory) / f"{name}-{job or job_id()}.json"


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def sha256(path: str | Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def _git(repo: str, *args: str) -> str | None:
    try:
        # --no-optional-locks: many jobs of one experiment may run this at once; a plain `git status`
        # would try to refresh (and lock) the experiment's index.
        proc = subprocess.run(["git", "--no-optional-locks", "-C", repo, *args], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def repo_state(repo: str) -> dict[str, Any]:
    """HEAD; the last commit that changed anything but the job records (`cruijff-gen submit`
    commits logs/jobs.jsonl alone: HEAD may be such a commit, with the same files as the one before
    it); and the tracked files that differ from HEAD (job records aside)."""
    commit = _git(repo, "rev-parse", "HEAD")
    source = _git(repo, "log", "-1", "--format=%H", "HEAD", "--", ".", f":(exclude){JOB_RECORDS}") if commit else None
    status = _git(repo, "status", "--porcelain", "--untracked-files=no", "--", ".", f":(exclude){JOB_RECORDS}") if commit else None
    dirty = None if status is None else [line[3:] for line in status.splitlines() if line.strip()]
    return {
        "repo": repo,
        "commit": commit.strip() if commit else None,
        "source_commit": (source or "").strip() or None,
        "dirty": None if dirty is None else bool(dirty),
        "dirty_files": (dirty or [])[:DIRTY_SHOWN],
    }


def _relative(path: str, repo: str) -> str:
    try:
        return Path(os.path.abspath(path)).relative_to(os.path.abspath(repo)).as_posix()
    except ValueError:
        return path


def files(paths: list[str], repo: str) -> dict[str, str | None]:
    """sha256 of each file (None: not readable), keyed by its path relative to the experiment."""
    return {_relative(p, repo): sha256(p) for p in paths}


def gpus() -> dict[str, Any]:
    out: dict[str, Any] = {k: os.environ[k] for k in GPU_VARIABLES if k in os.environ}
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            proc = subprocess.run([smi, "--query-gpu=index,name,uuid", "--format=csv,noheader"],
                                  capture_output=True, text=True, timeout=20)
            if proc.returncode == 0:
                out["devices"] = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
        except (OSError, subprocess.SubprocessError):
            pass
    return out


def versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in TOOLS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def start_record(repo: str, paths: list[str]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "job_id": job_id(),
        "slurm": {key: os.environ[var] for key, var in SLURM_VARIABLES.items() if var in os.environ},
        "host": os.environ.get("SLURMD_NODENAME") or socket.gethostname(),
        "gpus": gpus(),
        **repo_state(repo),
        "files": files(paths, repo),
        "python": sys.executable,
        "versions": versions(),
        "start": now(),
        "end": None,
        "exit_status": None,
    }


def end_record(previous: dict[str, Any] | None, exit_status: int) -> dict[str, Any]:
    record = dict(previous) if previous else {
        "format": FORMAT, "job_id": job_id(), "host": os.environ.get("SLURMD_NODENAME") or socket.gethostname(),
        "start": None, "note": "no start record (the job ended before its provenance start)",
    }
    record["end"] = now()
    record["exit_status"] = exit_status
    if exit_status > 128:
        record["signal"] = exit_status - 128  # 143: SIGTERM (scancel, time limit)
    try:
        started = dt.datetime.fromisoformat(record["start"]) if record.get("start") else None
        record["seconds"] = round((dt.datetime.fromisoformat(record["end"]) - started).total_seconds()) if started else None
    except ValueError:
        record["seconds"] = None
    return record


def write(path: Path, record: dict[str, Any]) -> None:
    """Atomically (temporary file + rename): a reader never sees half a record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(record, handle, indent=1, sort_keys=False)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cruijff_gen.job.provenance", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="event", required=True)
    for event in ("start", "end"):
        p = sub.add_parser(event, help=f"write the {event} record")
        p.add_argument("--dir", required=True, help="the job's output directory (the record goes there)")
        p.add_argument("--name", required=True, help="the record's file name before -<job id>.json")
        if event == "start":
            p.add_argument("--repo", required=True, help="the experiment directory (a git repository)")
            p.add_argument("--file", action="append", default=[], help="a file the job runs from (script, config), hashed")
        else:
            p.add_argument("--exit-status", type=int, required=True, help="the job's exit status ($? in the EXIT trap)")
    args = parser.parse_args(argv)
    path = record_path(args.dir, args.name)
    try:
        if args.event == "start":
            write(path, start_record(args.repo, args.file))
        else:
            write(path, end_record(read(path), args.exit_status))
    except Exception as exc:  # noqa: BLE001 - provenance never fails the job it describes
        print(f"provenance: warning: {path} not written: {exc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
