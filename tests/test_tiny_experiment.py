"""Proof by execution: the bundled tiny experiment (examples/tiny) trains and evaluates for real.

The session's one run of it (tests/tiny_run.py, shared with tests/test_lifecycle.py) makes what the
design refers to (examples/tiny/run.py: the model Tiny-Llama-3.2 with random weights, from the user
catalog examples/tiny/catalog.yaml; the data; the inspect task file), scaffolds
examples/tiny/experiment_summary.yaml with the real `copier copy`, submits it with `cruijff-gen
submit --wait` on the real single-node SLURM cluster and waits for every job. CPU execution comes
only from the documented cluster settings (finetune_overrides, eval_model_args, venv), as on a
user's CPU-only cluster; the jobs find tune, inspect and python only through the venv setting. Then:

* each training job COMPLETED with exit code 0, running the stock `tune run
  lora_finetune_single_device` on its finetune.yaml; its output shows a loss per step, the
  DiskLogger log has one line per step, and epoch_0/ holds the LoRA adapter (PEFT files, the run's
  rank, trained B matrices) and the merged model;
* each eval job COMPLETED with exit code 0 after its training job (afterok), having run `inspect
  eval` with the hf provider on that epoch's checkpoint (the control: on the base model), and its
  inspect log says success and holds a score for every test sample.

The generated submit.sh submits the same five scripts with the same chaining (held, then cancelled:
one real run of the jobs serves both ways of submitting them).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_real_tools import make_venv, named_args, slurm_argv
from tiny_run import tiny

from conftest import REPO
from cruijff_gen.job.recipes import tune_run_target

RUN_PY = REPO / "examples" / "tiny" / "run.py"

def slurm_time(value: str) -> float:
    """scontrol's StartTime/EndTime (2026-11-23T09:40:30) as seconds since the epoch."""
    return time.mktime(time.strptime(value, "%Y-%m-%dT%H:%M:%S"))


def check_training(dest: Path, run: str, rank: int, job: int, design: dict) -> dict:
    from safetensors import safe_open

    run_dir = dest / run
    artifacts = run_dir / "artifacts"
    output = (artifacts / f"slurm-{job}.out").read_text(errors="replace")
    assert slurm_argv(run_dir / "finetune.slurm", "tune") == [
        "tune", "run", tune_run_target("lora_finetune_single_device"), "--config", str(run_dir / "finetune.yaml")]
    assert output.startswith("preflight ok: torch "), output[:500]
    assert "Running LoRAFinetuneWithValidationSingleDevice with resolved config" in output, output[-3000:]
    assert f"lora_rank: {rank}" in output and "device: cpu" in output and "dtype: fp32" in output

    # one optimizer step per batch (no gradient accumulation, drop_last), each with a finite loss
    steps = design["data"]["training"]["splits"]["train"] // design["controls"]["batch_size"]
    progress = {int(step): float(loss) for step, loss in re.findall(r"\b1\|(\d+)\|Loss: (\S+?):", output)}
    assert sorted(progress) == list(range(1, steps + 1)), output[-3000:]
    logs = list((artifacts / "logs").glob("log_*.txt"))
    assert len(logs) == 1, logs
    logged = re.findall(r"^Step (\d+) \| loss:(\S+) lr:", logs[0].read_text(), re.M)
    assert [int(s) for s, _ in logged] == list(range(1, steps + 1))
    losses = [float(loss) for _, loss in logged]
    assert all(math.isfinite(x) and x > 0 for x in losses), losses

    # validation: every run_val_every_n_steps optimizer steps and at the epoch's end, in the job log
    every = design["controls"]["run_val_every_n_steps"]
    validations = re.findall(r"validation: epoch=(\d+) step=(\d+) loss=(\S+) batches=(\d+)( \(epoch end\))?", output)
    expected = [("0", str(s), "") for s in range(every, steps + 1, every)] + [("0", str(steps), " (epoch end)")]
    assert [(e, s, end) for e, s, _, _, end in validations] == expected, output[-3000:]
    assert all(math.isfinite(float(loss)) for _, _, loss, _, _ in validations)

    # the epoch's checkpoint: PEFT adapter of this rank (trained), merged model, HF files for inspect
    epoch = artifacts / "epoch_0"
    names = {p.name for p in epoch.iterdir()}
    adapter_only = design["runs"][[r["name"] for r in design["runs"]].index(run)]["parameters"].get("save_adapter_weights_only", False)
    assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json"} <= names, names
    merged = any(re.fullmatch(r"model-\d{5}-of-\d{5}\.safetensors", n) for n in names)
    assert merged != adapter_only, names  # the merged model only when the design asks for it
    if adapter_only:  # the base it belongs to, for the eval cell's provider
        assert json.loads((epoch / "adapter_config.json").read_text())["base_model_name_or_path"] == yaml.safe_load((run_dir / "finetune.yaml").read_text())["checkpointer"]["checkpoint_dir"]
    adapter_config = json.loads((epoch / "adapter_config.json").read_text())
    assert (adapter_config["r"], adapter_config["lora_alpha"], adapter_config["peft_type"]) == (rank, 2 * rank, "LORA")
    with safe_open(str(epoch / "adapter_model.safetensors"), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    a = [t for k, t in tensors.items() if "lora_A" in k]
    b = [t for k, t in tensors.items() if "lora_B" in k]
    assert a and all(t.shape[0] == rank for t in a) and all(t.shape[1] == rank for t in b)
    assert any(t.abs().sum() > 0 for t in b), "LoRA B matrices start at zero: no optimizer step changed them"
    return {"steps": steps, "losses": losses}


def check_eval(dest: Path, run: str, stem: str, job: int, model_path: Path, n_samples: int) -> dict:
    from inspect_ai.log import list_eval_logs, read_eval_log

    eval_dir = dest / run / "eval"
    output = (eval_dir / "logs" / f"{stem}-{job}.out").read_text(errors="replace")
    assert "inspect log status: success" in output, output[-3000:]
    argv = slurm_argv(eval_dir / f"{stem}.slurm", "inspect")
    label = argv[argv.index("--model") + 1]
    assert argv[:2] == ["inspect", "eval"] and label.split("/")[0] in ("hf", "cruijff-hf")
    model_args = named_args(argv, "-M")
    assert (model_args["model_path"], model_args["device"]) == (str(model_path), "cpu")

    logs = list_eval_logs(str(eval_dir / "logs"), recursive=False)
    assert len(logs) == 1, logs
    log = read_eval_log(logs[0].name)
    assert log.status == "success", log.error
    assert log.eval.model == label and log.eval.model_args["model_path"] == str(model_path)
    assert log.eval.model_args["device"] == "cpu" and log.eval.model_args["do_sample"] is False
    assert log.results is not None and log.results.total_samples == n_samples == len(log.samples)
    assert [s.name for s in log.results.scores] == ["match"]
    accuracy = log.results.scores[0].metrics["accuracy"].value
    assert 0 <= accuracy <= 1
    assert all(sample.scores and "match" in sample.scores for sample in log.samples)
    return {"accuracy": accuracy, "outputs": [s.output.completion for s in log.samples]}


@pytest.mark.slurm
@pytest.mark.tools
def test_tiny_experiment_trains_and_evaluates_on_slurm(tiny_submitted, tiny_experiment):
    """The session's run of the tiny experiment (tests/tiny_run.py: `cruijff-gen submit --wait`,
    the base eval cell failed once on purpose and retried): every job of each unit's current
    submission COMPLETED with exit code 0, each eval of a fine-tuned run started after its training
    ended, and each left what it should."""
    exp, design = tiny_experiment, tiny.design()
    jobs = tiny_submitted["jobs"]  # script -> its current (last) job
    fine_tuned = {r["name"]: r["parameters"]["lora_rank"] for r in design["runs"] if r["type"] == "fine-tuned"}
    controls = [r["name"] for r in design["runs"] if r["type"] == "control"]
    assert len(fine_tuned) == 2 and len(controls) == 1
    assert set(jobs) == {f"{r}/{k}" for r in fine_tuned for k in ("finetune.slurm", "eval/capitalization_epoch0.slurm")} | {
        f"{c}/eval/capitalization.slurm" for c in controls}, jobs
    ends = {}
    for script, job in jobs.items():
        info = ends[script] = exp.cluster.job(int(job))
        assert (info["JobState"], info["ExitCode"]) == ("COMPLETED", "0:0"), f"{script} (job {job}): Reason={info.get('Reason')}"

    n_test = design["data"]["training"]["splits"]["test"]
    report = []
    for run, rank in fine_tuned.items():
        train, evaluation = ends[f"{run}/finetune.slurm"], ends[f"{run}/eval/capitalization_epoch0.slurm"]
        assert slurm_time(evaluation["StartTime"]) >= slurm_time(train["EndTime"]), (train, evaluation)
        trained = check_training(exp.dest, run, rank, int(jobs[f"{run}/finetune.slurm"]), design)
        scored = check_eval(exp.dest, run, "capitalization_epoch0", int(jobs[f"{run}/eval/capitalization_epoch0.slurm"]),
                            exp.dest / run / "artifacts" / "epoch_0", n_test)
        report.append(f"{run}: losses {', '.join(f'{x:.3f}' for x in trained['losses'])}; accuracy {scored['accuracy']}")
    for run in controls:
        scored = check_eval(exp.dest, run, "capitalization", int(jobs[f"{run}/eval/capitalization.slurm"]), exp.where["model"], n_test)
        report.append(f"{run}: accuracy {scored['accuracy']}")
    durations = {name: slurm_time(info["EndTime"]) - slurm_time(info["StartTime"]) for name, info in ends.items()}
    print("\ntiny experiment jobs: " + ", ".join(f"{k} {v:.0f}s" for k, v in durations.items()) + "\n  " + "\n  ".join(report))


@pytest.mark.slurm
def test_submit_sh_submits_every_job_in_order(slurm_cluster, scaffold, tmp_path):
    """The generated submit.sh (plain sbatch, what a user without cruijff_gen runs) submits the tiny
    experiment's five scripts: each eval of a fine-tuned run held until its training succeeds
    (afterok), the control's eval at once, each job recorded in logs/jobs.jsonl. Submitted held (an
    `sbatch` first on PATH runs the real one with --hold) and cancelled: the same scripts ran to
    completion in the session's run above; tests/test_real_tools.py runs a submit.sh's jobs for real."""
    design = tiny.design()
    where = tiny.paths(tmp_path)
    dest = scaffold(tiny.SUMMARY, design["experiment"]["dir"], **tiny.settings(tmp_path, str(make_venv(tmp_path / "venv"))))
    assert dest == where["experiment"]
    held = tmp_path / "held-bin"  # the real sbatch, called with --hold first
    held.mkdir()
    (held / "sbatch").write_text(f'#!/bin/bash\nexec {shutil.which("sbatch", path=slurm_cluster.env["PATH"])} --hold "$@"\n')
    (held / "sbatch").chmod(0o755)
    env = slurm_cluster.env
    env["PATH"] = f"{held}{os.pathsep}{env['PATH']}"
    proc = subprocess.run(["bash", str(dest / "submit.sh")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    jobs = {f"{m[0]}:{m[1]}": int(m[2]) for m in re.findall(r"^(\S+): (finetune|eval \S+) job (\d+)$", proc.stdout, re.M)}
    try:
        assert proc.returncode == 0, proc.stderr
        fine_tuned = [r["name"] for r in design["runs"] if r["type"] == "fine-tuned"]
        controls = [r["name"] for r in design["runs"] if r["type"] == "control"]
        scripts = {f"{r}:finetune": f"{r}/finetune.slurm" for r in fine_tuned} | {
            f"{r}:eval capitalization_epoch0": f"{r}/eval/capitalization_epoch0.slurm" for r in fine_tuned} | {
            f"{c}:eval capitalization": f"{c}/eval/capitalization.slurm" for c in controls}
        assert set(jobs) == set(scripts), proc.stdout
        for name, job in jobs.items():
            info = slurm_cluster.job(job)
            assert (info["JobState"], info["Reason"]) == ("PENDING", "JobHeldUser"), (name, info)
            assert info["Command"] == str(dest / scripts[name]), (name, info["Command"])
        for run in fine_tuned:  # held until training succeeds
            dependency = slurm_cluster.job(jobs[f"{run}:eval capitalization_epoch0"])["Dependency"]
            assert re.fullmatch(rf"afterok:{jobs[f'{run}:finetune']}(\(\w+\))?", dependency), dependency
        assert slurm_cluster.job(jobs[f"{controls[0]}:eval capitalization"]).get("Dependency") in (None, "", "(null)")
        records = [json.loads(line) for line in (dest / "logs" / "jobs.jsonl").read_text().splitlines()]
        assert {(r["script"], int(r["job"])) for r in records} == {(scripts[n], j) for n, j in jobs.items()}
    finally:
        for job in jobs.values():
            slurm_cluster.run("scancel", str(job), check=False)


@pytest.mark.tools
def test_run_py_scaffolds_the_tiny_experiment(tmp_path):
    """The one-command way (`python examples/tiny/run.py DIR`), without submitting: it builds the
    inputs, scaffolds a verified, committed experiment with the CPU settings, says how to submit,
    and refuses to scaffold over an existing experiment."""
    pytest.importorskip("transformers", reason="transformers is not installed (pip install .[tools])")
    pytest.importorskip("torchtune", reason="torchtune is not installed (pip install .[tools])")
    import yaml

    proc = subprocess.run([sys.executable, str(RUN_PY), str(tmp_path), "--no-submit"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dest = tiny.paths(tmp_path)["experiment"]
    assert f"not submitted; on a SLURM cluster that sees {tmp_path}:\n  {dest}/submit.sh" in proc.stdout
    assert subprocess.run(["git", "status", "--porcelain"], cwd=dest, capture_output=True, text=True).stdout == ""
    assert "tasks/tiny_task.py" in subprocess.run(["git", "ls-files"], cwd=dest, capture_output=True, text=True).stdout
    verify = subprocess.run([sys.executable, "-m", "cruijff_gen", "verify", str(dest)], cwd=REPO, capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    answers = yaml.safe_load((dest / ".copier-answers.yml").read_text())
    assert answers["finetune_overrides"] == {"device": "cpu", "dtype": "fp32"} and answers["eval_model_args"] == {"device": "cpu"}
    assert answers["models_dir"] == str(tmp_path / "models") and answers["scratch_dir"] == str(tmp_path)
    finetune = yaml.safe_load((dest / "rank4" / "finetune.yaml").read_text())
    assert finetune["checkpointer"]["checkpoint_dir"] == str(tiny.paths(tmp_path)["model"])
    assert (tiny.paths(tmp_path)["model"] / "model.safetensors").is_file()

    # a rerun needs no cleanup: it replaces the experiment it made (and keeps the model)
    again = subprocess.run([sys.executable, str(RUN_PY), str(tmp_path), "--no-submit"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and f"removed the tiny experiment made before in {dest}" in again.stdout, again.stderr[-3000:]
    assert subprocess.run(["git", "rev-list", "--count", "HEAD"], cwd=dest, capture_output=True, text=True).stdout.strip() == "1"
