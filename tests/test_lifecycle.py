"""After the scaffold: `cruijff-gen submit`, `status` and `results`, and the provenance every job writes.

On the real single-node SLURM cluster, ONE tiny experiment (examples/tiny: two LoRA ranks and a
base-model control, trained and evaluated for real on CPU) is shared by the module's tests (and by
tests/test_tiny_experiment.py: the session's one run, tests/tiny_run.py):

1. scaffolded with the cluster setting max_in_queue=2, it is submitted with `submit --wait`: while
   the loop runs, the queue never holds more than 2 jobs, `status` shows the jobs move from
   pending/running to completed, a second `submit` submits nothing, and the base model's eval cell,
   made to fail (its `inspect` exits 3 while a flag file exists, through the test's `venv`
   activation script), shows as failed with its log;
2. `submit --retry-failed` resubmits that one job only, and it completes;
3. `results` writes the table, the CSV and the plots from the real inspect logs;
4. an update that changes rank8's lr marks exactly rank8's training and eval cell stale.

In-process tests cover the parsing of squeue / sacct / scontrol output and of the loss lines, the
submission order, and the provenance records' trap; one times `status` on a synthetic 1,000-run
experiment (fake squeue/sacct on PATH) and checks it asks SLURM once each.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from tiny_run import BASE_EVAL, _load

from conftest import REPO
from cruijff_gen import lifecycle as lc
from cruijff_gen.commands import results as results_cmd
from cruijff_gen.commands import submit as submit_cmd
from cruijff_gen.job import provenance

UNITS = {"rank4/finetune.slurm", "rank4/eval/capitalization_epoch0.slurm", "rank8/finetune.slurm",
         "rank8/eval/capitalization_epoch0.slurm", BASE_EVAL}


# =========================================================================== in-process
def test_parse_squeue_sacct_scontrol():
    queue = lc.parse_squeue("12|PENDING|Dependency|0:00\n13|RUNNING|None|1:02:03\n14_2|PENDING|JobArrayTaskLimit|0:00\n\n")
    assert {k: (v.state, v.reason, v.elapsed) for k, v in queue.items()} == {
        "12": ("pending", "Dependency", "0:00"), "13": ("running", "", "1:02:03"), "14_2": ("pending", "JobArrayTaskLimit", "0:00")}
    done = lc.parse_sacct("20|COMPLETED|0:0|00:01:10|None\n21|FAILED|3:0|00:00:04|NonZeroExitCode\n"
                          "22|CANCELLED by 1000|0:15|00:00:00|None\n23|TIMEOUT|0:0|02:00:03|TimeLimit\n"
                          "24|OUT_OF_MEMORY|0:125|00:10:00|OutOfMemory\n21|FAILED|7:0|00:00:05|NonZeroExitCode\n")
    assert {k: (v.state, v.exit_code, v.signal) for k, v in done.items()} == {
        "20": ("completed", 0, 0), "21": ("failed", 7, 0), "22": ("cancelled", 0, 15), "23": ("timed out", 0, 0),
        "24": ("failed", 0, 125)}  # a job listed twice (requeued): its last line
    known = lc.parse_scontrol(
        "JobId=5 JobName=eval-base-capitalization UserId=root(0) JobState=FAILED Reason=NonZeroExitCode "
        "Dependency=(null) ExitCode=3:0 RunTime=00:00:07 StdOut=/x/base/eval/logs/capitalization-5.out\n"
        "JobId=6 JobName=x JobState=CANCELLED Reason=DependencyNeverSatisfied Dependency=afterok:5(failed) ExitCode=0:0 RunTime=00:00:00\n")
    assert {k: (v.state, v.reason, v.exit_code) for k, v in known.items()} == {
        "5": ("failed", "NonZeroExitCode", 3), "6": ("cancelled", "DependencyNeverSatisfied", 0)}


def test_parse_losses_from_a_training_log():
    """torchtune's progress bar rewrites its line with \\r and repeats the last step's text; the
    validation loop prints its own lines (the last of an epoch marked `(epoch end)`)."""
    text = (" 25%|##| 1/4 [00:03<00:09]1|1|Loss: 11.757118225097656:  25%|##| 1/4\r"
            "validation: epoch=0 step=2 loss=11.825341 batches=1\n"
            "1|1|Loss: 11.757118225097656:  50%|##| 2/4\r1|2|Loss: 11.679718:  50%\r1|2|Loss: 11.679718: 75%\r1|3|Loss: 11.70: 75%\n"
            "1|4|Loss: 11.73843765258789: 100%\n"
            "validation: epoch=0 step=4 loss=11.820336 batches=1 (epoch end)\n"
            "2|5|Loss: 9.5e-01: 20%\r2|8|Loss: nan: 100%\n"
            "validation: epoch=1 step=6 loss=1.25 batches=1\n")
    losses = results_cmd.parse_losses(text)
    assert sorted(losses.train) == [(0, 1), (0, 2), (0, 3), (0, 4), (1, 5), (1, 8)]
    assert losses.train_loss(0) == pytest.approx(11.73843765258789)
    assert losses.val_loss(0) == pytest.approx(11.820336)  # the epoch's end, not step 2's
    assert losses.val_loss(1) == 1.25  # no (epoch end) line: the epoch's last
    assert str(losses.train_loss(1)) == "nan" and losses.train_loss(None) is losses.train_loss(1)
    assert results_cmd.parse_losses("no progress lines").train_loss(0) is None


def _row(key: str, state: str, job: str | None = None, waits_for: str | None = None, stale: bool = False) -> lc.Row:
    unit = lc.Unit(key, key.split("/")[0], "eval" if "/eval/" in key else "train", None, "fine-tuned", (key,),
                   None, "/x", "p", waits_for)  # type: ignore[arg-type]
    record = {"job": job, "script": key, "after": None} if job else None
    return lc.Row(unit, record, state=state, stale=stale)


def test_submission_order_and_what_is_held_back():
    """Eval cells that can start at once first, then run by run (training before its cells); an
    eval cell whose training failed waits for --retry-failed, which resubmits both."""
    rows = [
        _row("a/finetune.slurm", lc.NOT_SUBMITTED),
        _row("a/eval/t.slurm", lc.NOT_SUBMITTED, waits_for="a/finetune.slurm"),
        _row("b/finetune.slurm", lc.COMPLETED, "10"),
        _row("b/eval/t.slurm", lc.NOT_SUBMITTED, waits_for="b/finetune.slurm"),
        _row("c/finetune.slurm", lc.FAILED, "11"),
        _row("c/eval/t.slurm", lc.CANCELLED, "12", waits_for="c/finetune.slurm"),
        _row("d/finetune.slurm", lc.COMPLETED, "13", stale=True),
        _row("e/eval/t.slurm", lc.NOT_SUBMITTED),
    ]
    by_key = {r.unit.key: r for r in rows}
    order, notes = submit_cmd.choose(rows, by_key, retry_failed=False, stale=False)
    assert [c.unit.key for c in order] == ["b/eval/t.slurm", "e/eval/t.slurm", "a/finetune.slurm", "a/eval/t.slurm"]
    assert any(n.startswith("c/finetune.slurm: failed (job 11)") for n in notes)
    assert any(n.startswith("d/finetune.slurm: stale") for n in notes)
    order, _ = submit_cmd.choose(rows, by_key, retry_failed=True, stale=True)
    assert [(c.unit.key, c.why) for c in order] == [
        ("b/eval/t.slurm", "new"), ("e/eval/t.slurm", "new"), ("a/finetune.slurm", "new"), ("a/eval/t.slurm", "new"),
        ("c/finetune.slurm", "retry"), ("c/eval/t.slurm", "retry"), ("d/finetune.slurm", "stale")]
    # a --wait loop's later passes resubmit only what its first pass chose to
    order, _ = submit_cmd.choose(rows, by_key, retry_failed=True, stale=True, again={"d/finetune.slurm"})
    assert [c.unit.key for c in order if c.why != "new"] == ["d/finetune.slurm"]


def test_provenance_records_the_exit_status_of_a_failing_script(tmp_path):
    """The generated lines as bash runs them: the start record, then the EXIT trap's end record
    with the status of the command that failed under `set -e`."""
    from cruijff_gen.plan import provenance as provenance_lines

    repo = tmp_path / "exp"
    (repo / "r" / "artifacts").mkdir(parents=True)
    (repo / "r" / "finetune.yaml").write_text("lr: 1\n")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "x"], check=True)
    lines = provenance_lines(str(repo / "r" / "artifacts") + "/", "provenance", str(repo), (str(repo / "r" / "finetune.yaml"),))
    script = "\n".join(["#!/bin/bash", "set -euo pipefail", *lines, "echo working", "false", "echo never"]) + "\n"
    env = {**os.environ, "PYTHONPATH": str(REPO), "SLURM_JOB_ID": "4242", "CUDA_VISIBLE_DEVICES": "0,1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    proc = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)
    assert (proc.returncode, proc.stdout) == (1, "working\n"), proc.stderr
    record = json.loads((repo / "r" / "artifacts" / "provenance-4242.json").read_text())
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert (record["job_id"], record["commit"], record["dirty"], record["exit_status"]) == ("4242", head, False, 1)
    assert record["files"] == {"r/finetune.yaml": provenance.sha256(repo / "r" / "finetune.yaml")}
    assert record["gpus"]["CUDA_VISIBLE_DEVICES"] == "0,1" and record["start"] and record["end"]


# =========================================================================== on SLURM
# The session's one run of the tiny experiment (tests/tiny_run.py, registered in conftest.py).
@pytest.fixture(scope="module")
def experiment(tiny_experiment):
    return tiny_experiment


@pytest.fixture(scope="module")
def submitted(tiny_submitted):
    return tiny_submitted


@pytest.mark.slurm
@pytest.mark.tools
def test_queue_cap_of_two_holds_at_most_two_jobs(submitted):
    assert submitted["most_queued"] == 2, submitted["most_queued"]  # the cap was used, never exceeded
    assert "wait for room in the queue (max_in_queue 2)" in submitted["first"]["stderr"]
    assert sorted(r["script"] for r in submitted["records"]) == sorted(UNITS)  # each job once
    # evals of fine-tuned runs held until their training succeeds
    by_script = {r["script"]: r for r in submitted["records"]}
    for run in ("rank4", "rank8"):
        assert by_script[f"{run}/eval/capitalization_epoch0.slurm"]["after"] == by_script[f"{run}/finetune.slurm"]["job"]
    assert re.search(r"^submitted rank\d/eval/capitalization_epoch0.slurm: job \d+ \(after job \d+ succeeds\)$",
                     submitted["first"]["stdout"], re.M), submitted["first"]["stdout"]


@pytest.mark.slurm
@pytest.mark.tools
def test_states_change_to_completed_and_the_failed_job_names_its_log(submitted, experiment):
    seen = submitted["seen"]
    for unit in UNITS:
        states = [s.get(unit) for s in seen]
        assert states[-1] == "completed", (unit, states)
        assert {"pending", "running"} & set(states), (unit, states)  # seen before it completed
    failed = {r["script"]: r for r in submitted["failed"]["rows"]}[BASE_EVAL]
    assert (failed["state"], failed["exit_code"]) == ("failed", 3), failed
    log = experiment.dest / failed["log"]
    assert failed["log"] == f"base/eval/logs/capitalization-{failed['job_id']}.out" and "made to fail" in log.read_text()
    text = submitted["failed_text"]
    assert re.search(rf"^base +eval capitalization +failed +{failed['job_id']} .*exit 3; read {re.escape(failed['log'])}$", text, re.M), text
    assert "resubmit them with: cruijff-gen submit --retry-failed" in text
    assert submitted["status"]["counts"] == {"completed": 5} and submitted["status"]["stale"] == 0


@pytest.mark.slurm
@pytest.mark.tools
def test_second_submit_submits_nothing(submitted):
    again = submitted["again"]
    assert "nothing to submit" in again.stderr and "submitted" not in again.stdout, again.stdout + again.stderr
    assert submitted["head_before"] != submitted["head_after_first"]  # the first submit committed its records
    assert len(submitted["records"]) == len(UNITS)


@pytest.mark.slurm
@pytest.mark.tools
def test_every_job_recorded_its_provenance(submitted, experiment):
    design_commit = submitted["head_before"]
    committed = subprocess.run(["git", "show", f"{submitted['head_after_first']}:{lc.JOBS_FILE}"], cwd=experiment.dest,
                               capture_output=True, text=True, check=True).stdout
    assert [json.loads(line)["job"] for line in committed.splitlines()] == [r["job"] for r in submitted["records"]]
    for record in submitted["records"]:
        assert record["commit"] == record["source_commit"] == design_commit
        out_dir = "artifacts" if record["cell"] is None else "eval/logs"
        name = "provenance" if record["cell"] is None else f"{record['cell']}-provenance"
        prov = json.loads((experiment.dest / record["run"] / out_dir / f"{name}-{record['job']}.json").read_text())
        # a job that started after a records' commit has that as HEAD: the same files, the same source
        assert experiment.git("diff", "--name-only", design_commit, prov["commit"]) in ("", f"{lc.JOBS_FILE}\n"), prov["commit"]
        assert (prov["source_commit"], prov["dirty"], prov["job_id"]) == (design_commit, False, record["job"])
        assert prov["exit_status"] == (3 if record["script"] == BASE_EVAL else 0)
        assert prov["gpus"]["SLURM_JOB_GPUS"] in set("01234567") and prov["host"] and prov["end"] >= prov["start"]
        for rel, digest in record["files"].items():  # what it ran from is what was committed
            assert prov["files"][rel] == digest == provenance.sha256(experiment.dest / rel)


@pytest.mark.slurm
@pytest.mark.tools
def test_retry_failed_resubmits_only_the_failed_job(submitted):
    old = {r["script"]: r["job"] for r in submitted["records"]}
    new = submitted["retried"]["new"]
    assert [(r["script"], r["replaces"], r["why"]) for r in new] == [(BASE_EVAL, old[BASE_EVAL], "retry")]
    assert submitted["retried"]["stdout"].splitlines() == [f"submitted {BASE_EVAL}: job {new[0]['job']} (replaces job {old[BASE_EVAL]}: retry)"]
    final = {r["script"]: r for r in submitted["status"]["rows"]}
    assert (final[BASE_EVAL]["state"], final[BASE_EVAL]["job_id"]) == ("completed", new[0]["job"])


@pytest.mark.slurm
@pytest.mark.tools
def test_results_table_csv_and_plots_from_the_inspect_logs(submitted, experiment):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed (pip install .[tools])")
    from inspect_ai.log import list_eval_logs, read_eval_log

    started = time.monotonic()
    proc = experiment.cli("results")
    print(f"\nresults ({time.monotonic() - started:.1f} s):\n{proc.stdout}")
    out = experiment.dest / "results"
    with open(out / "results.csv", newline="") as handle:
        rows = {r["run"]: r for r in csv.DictReader(handle)}
    assert set(rows) == {"rank4", "rank8", "base"}
    for run, row in rows.items():
        logs = [read_eval_log(i.name) for i in list_eval_logs(str(experiment.dest / run / "eval" / "logs"), recursive=False)]
        log = max((lg for lg in logs if lg.status == "success"), key=lambda lg: lg.eval.created)
        accuracy = log.results.scores[0].metrics["accuracy"].value
        assert float(row["match/accuracy"]) == accuracy and int(row["samples"]) == 4
        assert (row["log_status"], row["stale"]) == ("success", "False")
    for run, rank in (("rank4", 4), ("rank8", 8)):
        row = rows[run]
        assert (row["run_type"], row["epoch"], row["lora_rank"]) == ("fine-tuned", "0", str(rank))
        output = (experiment.dest / run / "artifacts").glob("slurm-*.out")
        text = next(output).read_text(errors="replace")
        last = re.findall(r"1\|4\|Loss: ([0-9.]+)", text)[-1]
        val = re.findall(r"validation: epoch=0 step=4 loss=(\S+) batches=1 \(epoch end\)", text)[-1]
        assert (float(row["train_loss"]), float(row["val_loss"])) == (float(last), float(val))
    base = rows["base"]
    assert (base["run_type"], base["epoch"], base["train_loss"], base["lora_rank"]) == ("control", "", "", "")
    assert base["commit"] == submitted["status"]["rows"][-1]["commit"] == submitted["head_before"]
    for name in ("capitalization_score_vs_epoch.png", "capitalization_score_vs_lora_rank.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert re.search(r"^rank8 +capitalization_epoch0 +8 +", proc.stdout, re.M), proc.stdout
    assert experiment.git("status", "--porcelain") == ""  # results/ ignores itself


@pytest.fixture(scope="module")
def updated(submitted, experiment):
    exp = experiment
    summary = exp.dest / "experiment_summary.yaml"
    design = yaml.safe_load(summary.read_text())
    next(r for r in design["runs"] if r["name"] == "rank8")["parameters"]["lr"] = 5e-4
    summary.write_text(yaml.safe_dump(design, sort_keys=False))
    exp.git("commit", "-q", "--no-verify", "-am", "rank8: lr 5e-4")
    refused = exp.cli("submit", "--stale", "--dry-run", check=False)  # committed but not rendered yet
    started = time.monotonic()
    update = exp.cli("update", timeout=600)
    status_text = exp.cli("status").stdout
    print(f"\nupdate ({time.monotonic() - started:.0f} s), then status:\n{status_text}")
    return {"refused": refused, "update": update, "status": exp.status(), "status_text": status_text,
            "dry_run": exp.cli("submit", "--stale", "--dry-run")}


@pytest.mark.slurm
@pytest.mark.tools
def test_an_update_of_one_lr_marks_exactly_that_runs_jobs_stale(updated):
    assert updated["refused"].returncode == 1 and "run the update first" in updated["refused"].stderr
    rows = {r["script"]: r for r in updated["status"]["rows"]}
    assert {k for k, r in rows.items() if r["stale"]} == {"rank8/finetune.slurm", "rank8/eval/capitalization_epoch0.slurm"}
    assert rows["rank8/finetune.slurm"]["why_stale"] == [f"rank8/finetune.yaml changed since job {rows['rank8/finetune.slurm']['job_id']} ran"]
    assert rows["rank8/eval/capitalization_epoch0.slurm"]["why_stale"] == ["its training is stale (rank8/finetune.slurm)"]
    assert "2 stale (the files they ran from have changed since); resubmit them with: cruijff-gen submit --stale" in updated["status_text"]
    assert updated["dry_run"].stdout.splitlines() == [
        f"would submit rank8/finetune.slurm (replaces job {rows['rank8/finetune.slurm']['job_id']}: stale)",
        f"would submit rank8/eval/capitalization_epoch0.slurm (after rank8/finetune.slurm succeeds) "
        f"(replaces job {rows['rank8/eval/capitalization_epoch0.slurm']['job_id']}: stale)"]


# =========================================================================== 1,000 runs
FAKE = """#!/bin/bash
echo "$(basename "$0") $*" >> {calls}
cat {answer}
"""


@pytest.mark.copier
def test_status_of_a_1000_run_experiment_asks_slurm_once(tmp_path):
    """A synthetic 1,000-run experiment (benchmarks/run.py's design: 3,002 jobs), every job
    recorded, fake squeue and sacct on PATH: one call each, and the time of `status`."""
    from cruijff_gen import gitrepo, yamlio
    from cruijff_gen.experiment_dir import write_tree
    from cruijff_gen.parse import parse
    from cruijff_gen.plan import plan
    from cruijff_gen.render import render

    bench = _load("bench_run_lifecycle", REPO / "benchmarks" / "run.py")
    dest = tmp_path / "exp"
    answers = {**bench.design(1000), "_commit": "test", "_src_path": str(REPO)}
    the_plan = plan(parse(answers))
    files = render(the_plan, answers)
    files[".copier-answers.yml"] = yamlio.dump(answers)
    write_tree(dest, files, set())
    gitrepo.commit_all(dest, "scaffold")
    head = lc.head(dest)
    units = lc.units(the_plan)
    assert len(units) == 3002
    sha = lc.committed_sha256(dest, [f for u in units for f in u.files])
    (dest / "logs").mkdir(exist_ok=True)
    queue, history = [], []
    with open(dest / lc.JOBS_FILE, "w") as handle:
        for i, unit in enumerate(units, 1000):
            handle.write(json.dumps({"job": str(i), "script": unit.key, "commit": head, "after": None,
                                     "files": {f: sha[f] for f in unit.files}}) + "\n")
            if i % 10 == 0:
                queue.append(f"{i}|PENDING|Priority|0:00")
            elif i % 10 == 1:
                queue.append(f"{i}|RUNNING|None|1:00:00")
            else:
                history.append(f"{i}|{'FAILED' if i % 10 == 2 else 'COMPLETED'}|{1 if i % 10 == 2 else 0}:0|01:00:00|None")
    changed = units[0].files[1]  # one run's finetune.yaml: that run's training and eval cells go stale
    (dest / changed).write_text((dest / changed).read_text().replace("lr: ", "lr: 0.5 #", 1))
    subprocess.run(["git", "-C", str(dest), "commit", "-qam", "lr"], check=True)
    fake = tmp_path / "bin"
    fake.mkdir()
    for name, lines in (("squeue", queue), ("sacct", history)):
        (tmp_path / f"{name}.txt").write_text("\n".join(lines) + "\n")
        (fake / name).write_text(FAKE.format(calls=tmp_path / "calls", answer=tmp_path / f"{name}.txt"))
        (fake / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(REPO)}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "cruijff_gen", "status", "--json"], cwd=dest, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    status = json.loads(proc.stdout)
    calls = (tmp_path / "calls").read_text().splitlines()
    assert [c.split()[0] for c in calls] == ["squeue", "sacct"], calls
    assert len(status["rows"]) == 3002 and status["counts"]["failed"] > 0 and status["counts"]["running"] > 0
    assert {r["script"] for r in status["rows"] if r["stale"]} == {units[0].key, units[1].key, units[2].key}
    plain = subprocess.run([sys.executable, "-m", "cruijff_gen", "status"], cwd=dest, env=env, capture_output=True, text=True)
    assert plain.returncode == 0 and len(plain.stdout.splitlines()) > 3002
    print(f"\nstatus of 1,000 runs (3,002 jobs): {seconds:.2f} s (--json, one squeue + one sacct)")
    assert seconds < 10
