"""A real single-node SLURM cluster (slurmctld + slurmd + munged) for tests.

Everything lives under one base directory: slurm.conf, gres.conf, the munge
key and socket, state and spool directories, pid files and daemon logs.
Clients find the cluster through ``SLURM_CONF`` (see ``SlurmCluster.env``);
nothing under /etc is read or written, so a session never disturbs the host
or another session (TCP ports are picked free at start).

The node is a fiction sized like a GPU node of the clusters the generated
scripts target (64 CPUs, ~390 GiB, 8 GPUs, feature ``gpu80``), so
``sbatch --test-only`` answers the same "is this request schedulable?"
question it would there. Jobs really run, on this box, as the user running
pytest: the daemons need no root (root is only needed to install them).

Usage in a test module (the fixture is registered in tests/conftest.py, once for the session: a
test module that imported it would get a cluster of its own)::

    @pytest.mark.slurm
    def test_x(slurm_cluster, tmp_path):
        job = slurm_cluster.sbatch(script, "--partition=nomig", cwd=tmp_path)
        assert slurm_cluster.wait(job) == ("COMPLETED", 0)
"""

from __future__ import annotations

import ctypes
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
INSTALL_SCRIPT = REPO_ROOT / ".ci" / "install-slurm.sh"
# Daemons and clients the fixture needs (slurm-client brings sinfo/scontrol).
REQUIRED_BINARIES = ("slurmctld", "slurmd", "sbatch", "scontrol", "sinfo", "munged", "mungekey")
# Debian installs the daemons in /usr/sbin, which a non-root PATH may lack.
_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
# Job states after which a job never changes again.
TERMINAL_STATES = frozenset(
    {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
     "PREEMPTED", "BOOT_FAIL", "DEADLINE", "SPECIAL_EXIT"}
)


class SlurmError(RuntimeError):
    """A cluster that would not start, or a submission slurmctld rejected."""


def missing_binaries() -> list[str]:
    return [b for b in REQUIRED_BINARIES if shutil.which(b, path=_SEARCH_PATH) is None]


def _free_ports(n: int) -> list[int]:
    """n distinct TCP ports free right now (bound together, so all differ)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _die_with_parent() -> None:
    """preexec_fn: have the kernel TERM a daemon if pytest dies without stop()."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class SlurmCluster:
    node = "node1"
    partitions = ("debug", "nomig")
    default_partition = "debug"
    features = ("gpu80",)
    cpus = 64
    memory_mb = 400_000  # > 320G, the largest --mem the generated scripts ask for
    gpus = 8

    def __init__(self, base_dir: os.PathLike | str, startup_timeout: float = 30.0):
        self.base = Path(base_dir).resolve()
        self.startup_timeout = startup_timeout
        self.conf = self.base / "slurm.conf"
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.logs: dict[str, Path] = {}
        self._procs: list[tuple[str, subprocess.Popen]] = []
        self._socket_dir: str | None = None  # set if the socket had to move to a short path
        self.munge_socket = self.base / "munge" / "munge.socket"
        if len(str(self.munge_socket)) > 100:  # AF_UNIX paths are limited to 108 bytes
            self._socket_dir = tempfile.mkdtemp(prefix="munge-")
            self.munge_socket = Path(self._socket_dir) / "munge.socket"

    # ------------------------------------------------------------------ env
    @property
    def env(self) -> dict[str, str]:
        """os.environ pointing every slurm client at this cluster.

        SLURM_*/SBATCH_* variables inherited from an enclosing real job (a
        developer running pytest inside salloc) would leak into submissions,
        so they are dropped.
        """
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SLURM_", "SBATCH_", "SALLOC_", "SRUN_"))}
        env["SLURM_CONF"] = str(self.conf)
        env["PATH"] = _SEARCH_PATH
        return env

    def run(self, *args: str, check: bool = True, cwd=None, timeout: float = 30.0):
        """Run a slurm client command (``run("squeue", "-h")``) against this cluster."""
        proc = subprocess.run(list(args), env=self.env, cwd=cwd, capture_output=True,
                              text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise SlurmError(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
        return proc

    # ------------------------------------------------------------- config
    def _write_config(self, ctld_port: int, slurmd_port: int) -> None:
        b = self.base
        gpu_dir = b / "dev"
        gpu_dir.mkdir()
        # gres.conf needs a File= per GPU: with a count-only line slurmd
        # reports 0 GPUs and slurmctld sets the node INVAL/DRAIN ("gres/gpu
        # count reported lower than configured"). /dev/null stands in for
        # /dev/nvidiaN; AutoDetect=off keeps a real GPU box from overriding it.
        for i in range(self.gpus):
            (gpu_dir / f"nvidia{i}").symlink_to("/dev/null")
        (b / "gres.conf").write_text(
            "AutoDetect=off\n"
            f"NodeName={self.node} Name=gpu File={gpu_dir}/nvidia[0-{self.gpus - 1}]\n"
        )
        self.conf.write_text(f"""\
ClusterName=pytest
# "localhost" is accepted as this host by slurmctld whatever the hostname is.
SlurmctldHost=localhost
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
# Run as whoever runs pytest (root on CI) instead of a dedicated slurm user.
SlurmUser={self.user}
SlurmdUser={self.user}
# Our own munged: its socket, not the system's /run/munge.
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
# Fresh per session: reused state can bring the node back drained.
StateSaveLocation={b}/state
SlurmdSpoolDir={b}/spool
# No *LogFile: in the foreground (-D) the daemons log to stderr, which
# _spawn() sends to <base>/<daemon>.log.
SlurmctldPidFile={b}/slurmctld.pid
SlurmdPidFile={b}/slurmd.pid
SlurmctldDebug=info
SlurmdDebug=info
# No cgroup plugins (they need cgroup.conf, root and a writable cgroup fs):
# track job processes by parentage and bind them to nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
# No slurmdbd. Without accounting storage (and so AccountingStorageEnforce
# unset) slurmctld records --account=<anything> without checking it.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
# The default /usr/bin/mail is not installed; --mail-type=... must not error.
MailProg=/bin/true
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default every job would be given the whole node's memory and
# jobs (e.g. a dependency chain plus a test job) could not share it.
DefMemPerCPU=1024
GresTypes=gpu
# Start a submitted batch job at the next scheduler pass rather than up to
# 3 s later (the default delay): halves the wall time of a short job.
SchedulerParameters=batch_sched_delay=0
# A node that restarts / was down comes back as soon as it registers.
ReturnToService=2
# Keep finished jobs in slurmctld for an hour: `scontrol show job` is the only
# way to read their final state, as there is no accounting (sacct).
MinJobAge=3600
# scancel'ed jobs get SIGKILL 5 s after SIGTERM (default 30) so stop() is quick.
KillWait=5
# The node declares hardware this box lacks (64 CPUs, 400 GB, 8 GPUs);
# config_overrides makes slurmd report the slurm.conf values instead of
# draining the node for "Low RealMemory" / "Low CPUs".
SlurmdParameters=config_overrides
NodeName={self.node} NodeAddr=127.0.0.1 NodeHostname=localhost CPUs={self.cpus} \
RealMemory={self.memory_mb} Gres=gpu:{self.gpus} Feature={",".join(self.features)} State=UNKNOWN
PartitionName={self.partitions[0]} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
PartitionName={self.partitions[1]} Nodes={self.node} MaxTime=INFINITE State=UP
""")

    # ------------------------------------------------------- start / stop
    def _spawn(self, name: str, *argv: str) -> None:
        log = self.logs[name] = self.base / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [shutil.which(argv[0], path=_SEARCH_PATH) or argv[0], *argv[1:]],
                env=self.env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
            )
        self._procs.append((name, proc))

    def _check_alive(self) -> None:
        for name, proc in self._procs:
            if proc.poll() is not None:
                raise SlurmError(f"{name} exited with {proc.returncode}")

    def start(self) -> "SlurmCluster":
        t0 = time.monotonic()
        try:
            self._start()
        except BaseException as exc:
            report = self.diagnostics()
            self.stop()
            if isinstance(exc, Exception):
                raise SlurmError(f"SLURM test cluster did not start: {exc}\n{report}") from exc
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def _start(self) -> None:
        for sub in ("munge", "state", "spool"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        key = self.base / "munge" / "munge.key"
        subprocess.run([shutil.which("mungekey", path=_SEARCH_PATH), "--create", "--force",
                        "--keyfile", str(key)], check=True, capture_output=True)
        key.chmod(0o600)
        # --force: munged's strict ownership/permission checks on the key and
        # socket directories become warnings (temp dirs may not pass them).
        self._spawn("munged", "munged", "--foreground", "--force", f"--key-file={key}",
                    f"--socket={self.munge_socket}",
                    f"--pid-file={self.base}/munge/munged.pid",
                    f"--seed-file={self.base}/munge/munged.seed")
        self._wait_for(self.munge_socket.exists, "munged socket", self.startup_timeout)

        self._write_config(*_free_ports(2))
        self._spawn("slurmctld", "slurmctld", "-D", "-f", str(self.conf))
        # -N: our node name is not this host's name.
        self._spawn("slurmd", "slurmd", "-D", "-N", self.node, "-f", str(self.conf))
        self._wait_for(lambda: self.node_state() == "idle", "node idle", self.startup_timeout)

    def _wait_for(self, ready, what: str, timeout: float) -> None:
        """Poll ready() until true; raise if it times out or a daemon died."""
        deadline = time.monotonic() + timeout
        while not ready():
            self._check_alive()
            if time.monotonic() > deadline:
                raise SlurmError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(0.2)

    def node_state(self) -> str:
        """sinfo's short node state ("idle", "mix", "drain", ...), "" if unknown."""
        try:
            out = self.run("sinfo", "-h", "-N", "-o", "%t", check=False, timeout=10).stdout
        except subprocess.TimeoutExpired:
            return ""
        return out.split()[0] if out.split() else ""

    def diagnostics(self) -> str:
        """Node state and the tail of each daemon's log, for error messages."""
        parts = [f"node state: {self.node_state() or '?'}"]
        for log in reversed(self.logs.values()):  # slurmd first: it fails most
            parts.append(f"--- {log} ---\n{_tail(log)}")
        return "\n".join(parts)

    def stop(self, timeout: float = 10.0) -> None:
        if any(name == "slurmctld" and p.poll() is None for name, p in self._procs):
            # Jobs' slurmstepd processes outlive slurmd: cancel them first.
            try:
                self.run("scancel", f"--user={self.user}", check=False, timeout=10)
                self._wait_for(lambda: not self.run(
                    "squeue", "-h", "-t", "running,completing", check=False, timeout=10
                ).stdout.strip(), "jobs to end", timeout)
            except (SlurmError, subprocess.TimeoutExpired):
                pass  # stop the daemons anyway
        # Reverse start order: slurmd, slurmctld, then munged they talk through.
        for _, proc in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self._procs.clear()
        if self._socket_dir:
            shutil.rmtree(self._socket_dir, ignore_errors=True)

    def __enter__(self) -> "SlurmCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---------------------------------------------------------------- jobs
    def sbatch(self, script_path, *extra_args: str, test_only: bool = False, cwd=None):
        """Submit ``script_path`` with ``extra_args`` (sbatch options).

        test_only=True: ``sbatch --test-only``; returns the CompletedProcess
        (returncode 0 = schedulable; slurm writes its verdict to stderr).
        Otherwise returns the job id (int); raises SlurmError with sbatch's
        stderr if the submission is rejected.
        """
        args = ["sbatch", *extra_args]
        if test_only:
            return self.run(*args, "--test-only", str(script_path), check=False, cwd=cwd)
        proc = self.run(*args, "--parsable", str(script_path), check=True, cwd=cwd)
        return int(proc.stdout.strip().split(";")[0])

    def job(self, job_id: int) -> dict[str, str]:
        """``scontrol show job -o`` as a dict (values containing spaces are cut)."""
        out = self.run("scontrol", "show", "job", "-o", str(job_id)).stdout
        return dict(re.findall(r"(?:^|\s)([\w/:]+)=(\S*)", out))

    def wait(self, job_id: int, timeout: float = 60.0) -> tuple[str, int]:
        """Wait for a job to finish; return (state, exit code), e.g. ("FAILED", 3)."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.job(job_id)
            state = info.get("JobState", "")
            if state in TERMINAL_STATES:
                # ExitCode=<exit status>:<signal>
                return state, int(info.get("ExitCode", "0:0").split(":")[0])
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {state} after {timeout}s: "
                                   f"Reason={info.get('Reason')}")
            time.sleep(0.2)


# ---------------------------------------------------------------- fixture
def _install() -> str | None:
    """Run .ci/install-slurm.sh if we can; return why not, or None on success."""
    if os.geteuid() != 0:
        return "not root, so cannot apt-get install them (run .ci/install-slurm.sh as root)"
    proc = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True)
    if proc.returncode != 0:
        return f"{INSTALL_SCRIPT.name} failed ({proc.returncode}):\n{proc.stderr[-2000:]}"
    return None


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A started single-node SLURM cluster, shared by the whole session.

    Skips only when the binaries are missing and cannot be installed; under
    CI (CI=true) that is a failure instead, so CI never silently skips.
    """
    missing = missing_binaries()
    if missing:
        why = _install() or (f"still missing after install: {missing_binaries()}"
                             if missing_binaries() else None)
        if why:
            reason = f"SLURM binaries missing ({', '.join(missing)}): {why}"
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(reason, pytrace=False)
            pytest.skip(reason)
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
