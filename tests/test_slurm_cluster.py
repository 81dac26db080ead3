"""Tests of the SLURM test cluster itself (tests/slurm_cluster.py).

If these fail, every test that submits a generated script will too; they pin
down what the cluster accepts so those tests can rely on it.
"""

import pytest

pytestmark = pytest.mark.slurm


def write_script(path, body):
    path.write_text("#!/bin/bash\n" + body + "\n")
    return path


def test_trivial_job_runs_and_writes_output(slurm_cluster, tmp_path):
    script = write_script(tmp_path / "hello.sh", 'echo "hello from $SLURM_JOB_ID"')
    out = tmp_path / "hello.out"
    job = slurm_cluster.sbatch(script, f"--output={out}", cwd=tmp_path)
    assert slurm_cluster.wait(job) == ("COMPLETED", 0)
    assert out.read_text() == f"hello from {job}\n"


def test_test_only_accepts_a_full_gpu_node_request(slurm_cluster, tmp_path):
    script = write_script(tmp_path / "big.sh", "true")
    proc = slurm_cluster.sbatch(
        script, "--gres=gpu:4", "--mem=320G", "--cpus-per-task=8", "--time=12:00:00",
        "--constraint=gpu80", test_only=True, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "to start at" in proc.stderr


def test_test_only_rejects_what_the_node_cannot_have(slurm_cluster, tmp_path):
    # Guards the test above against a cluster that accepts anything.
    script = write_script(tmp_path / "huge.sh", "true")
    for bad in ("--gres=gpu:9", "--constraint=gpu40", "--partition=nosuch"):
        proc = slurm_cluster.sbatch(script, bad, test_only=True, cwd=tmp_path)
        assert proc.returncode != 0, bad


def test_non_default_partition(slurm_cluster, tmp_path):
    assert slurm_cluster.default_partition == "debug"
    assert "nomig" in slurm_cluster.partitions
    script = write_script(tmp_path / "p.sh", 'echo "$SLURM_JOB_PARTITION"')
    out = tmp_path / "p.out"
    job = slurm_cluster.sbatch(script, "--partition=nomig", f"--output={out}", cwd=tmp_path)
    assert slurm_cluster.wait(job) == ("COMPLETED", 0)
    assert out.read_text() == "nomig\n"


def test_any_account_is_accepted(slurm_cluster, tmp_path):
    # No accounting storage, so no association to check the account against.
    script = write_script(tmp_path / "a.sh", "true")
    job = slurm_cluster.sbatch(script, "--account=someacct", cwd=tmp_path)
    assert slurm_cluster.wait(job) == ("COMPLETED", 0)
    assert slurm_cluster.job(job)["Account"] == "someacct"


def test_dependency_chain_runs_in_order(slurm_cluster, tmp_path):
    log = tmp_path / "order.log"
    first = slurm_cluster.sbatch(
        write_script(tmp_path / "first.sh", f"sleep 2; echo first >> {log}"),
        "--output=/dev/null", cwd=tmp_path,
    )
    second = slurm_cluster.sbatch(
        write_script(tmp_path / "second.sh", f"echo second >> {log}"),
        f"--dependency=afterok:{first}", "--output=/dev/null", cwd=tmp_path,
    )
    assert slurm_cluster.job(second)["JobState"] == "PENDING"
    assert slurm_cluster.wait(first) == ("COMPLETED", 0)
    assert slurm_cluster.wait(second) == ("COMPLETED", 0)
    assert log.read_text() == "first\nsecond\n"


def test_failing_job_reports_its_exit_code(slurm_cluster, tmp_path):
    script = write_script(tmp_path / "fail.sh", "exit 3")
    job = slurm_cluster.sbatch(script, "--output=/dev/null", cwd=tmp_path)
    assert slurm_cluster.wait(job) == ("FAILED", 3)
