#!/usr/bin/env python3
"""The tiny experiment end to end, in one command:

    python examples/tiny/run.py [DIR] [--no-submit]        (DIR defaults to build/tiny-experiment)

1. makes what the design refers to, under DIR: the model Tiny-Llama-3.2 (random weights, the
   architecture of examples/tiny/catalog.yaml) in DIR/models/, the data in DIR/data/words.json and
   the inspect task file in DIR/tiny_lora_rank/tasks/;
2. scaffolds examples/tiny/experiment_summary.yaml into DIR/tiny_lora_rank with `copier copy`, the
   cluster settings saying where those are (models_dir, scratch_dir, model_catalog), that jobs run on
   a CPU (finetune_overrides, eval_model_args) and which Python environment they use (venv: the one
   running this script, if it is a virtualenv);
3. submits it with `cruijff-gen submit` to the SLURM cluster this machine reaches (`sinfo` answers);
   when none answers, it starts its own single-node cluster (tests/slurm_cluster.py: slurmctld,
   slurmd and munged under DIR, no root needed), waits for every job, shows `cruijff-gen status`
   and `cruijff-gen results`, and stops it. When SLURM is not installed either, it says so in one
   line (the experiment stays scaffolded).

Your own Copier settings file is not read (COPIER_SETTINGS_PATH points at an empty one under DIR):
the settings above are the whole configuration. A rerun replaces the tiny experiment it made
before (the model is kept). Needs the tools the jobs run (`pip install '.[tools]'`: torch,
torchtune, inspect-ai, transformers). Nothing is downloaded. tests/test_tiny_experiment.py runs the
same experiment on a real SLURM cluster.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SUMMARY = HERE / "experiment_summary.yaml"
CATALOG = HERE / "catalog.yaml"
TASK_FILE = REPO / "examples" / "task.py"  # the example inspect task file (task `capitalization`)
DEFAULT_DIR = REPO / "build" / "tiny-experiment"

sys.path.insert(0, str(REPO / "tests"))
import slurm_cluster  # noqa: E402  (the single-node cluster the tests start, reused here)
from tiny_models import make_tiny_llama3_2  # noqa: E402

# Settings that make the generated jobs run on a CPU (README: Cluster settings).
CPU_SETTINGS = {"finetune_overrides": "{device: cpu, dtype: fp32}", "eval_model_args": "{device: cpu}"}

_WORDS = ("cat dog cow owl yak elk emu ant bee fox hen pig rat bat eel gnu "
          "ape asp cod doe jay koi ram sow").split()
WORDS = {  # the data's layout when the design gives `splits`: one list of records per split
    "train": [{"input": w, "output": w.capitalize()} for w in _WORDS[:16]],
    "validation": [{"input": w, "output": w.capitalize()} for w in _WORDS[16:20]],
    "test": [{"input": w, "output": w.capitalize()} for w in _WORDS[20:24]],
}


def design() -> dict:
    return yaml.safe_load(SUMMARY.read_text(encoding="utf-8"))


def paths(base: Path) -> dict[str, Path]:
    """Where the design's relative paths land when models_dir = base/models and scratch_dir = base."""
    d = design()
    experiment = base / d["experiment"]["dir"]
    return {
        "models_dir": base / "models",
        "model": base / "models" / d["models"]["base"][0]["path"],
        "data": base / d["data"]["training"]["path"],
        "experiment": experiment,
        "task": experiment / d["evaluation"]["tasks"][0]["script"],
    }


def make_model(dest: Path) -> Path:
    """Tiny-Llama-3.2 with random weights, its architecture read from the catalog entry."""
    d = design()
    entry = yaml.safe_load(CATALOG.read_text(encoding="utf-8"))[d["models"]["base"][0]["name"]]
    arch = {k: v for k, v in entry["model"].items() if k != "_component_"}
    if not (dest / "config.json").exists():
        make_tiny_llama3_2(dest, arch)
    return dest


def prepare(base: Path) -> dict[str, Path]:
    """Model, data and task file under base (the experiment directory gets only its task file)."""
    where = paths(base)
    make_model(where["model"])
    where["data"].parent.mkdir(parents=True, exist_ok=True)
    where["data"].write_text(json.dumps(WORDS, indent=1), encoding="utf-8")
    where["task"].parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(TASK_FILE, where["task"])
    return where


def settings(base: Path, venv: str | None = None) -> dict[str, str]:
    """The cluster settings (Copier --data values) for an experiment prepared under base."""
    out = {"models_dir": str(base / "models"), "scratch_dir": str(base), "model_catalog": str(CATALOG), **CPU_SETTINGS}
    if venv:
        out["venv"] = venv
    return out


def current_venv() -> str | None:
    """The virtualenv running this script (what the jobs should activate), if it is one."""
    prefix = Path(sys.prefix)
    return str(prefix) if sys.prefix != sys.base_prefix and (prefix / "bin" / "activate").exists() else None


def scaffold(base: Path, venv: str | None) -> Path:
    experiment = paths(base)["experiment"]
    data = [f"--data={k}={v}" for k, v in settings(base, venv).items()]
    # The user's Copier settings (a cluster account, a conda env) must not leak into it.
    empty = base / "copier-settings.yml"
    empty.write_text("{}\n", encoding="utf-8")
    # --vcs-ref=HEAD: this checkout as it is (Copier includes uncommitted changes), not its latest tag
    cmd = [sys.executable, "-m", "copier", "copy", "--trust", "--defaults", "--vcs-ref=HEAD",
           "--data-file", str(SUMMARY), *data, str(REPO), str(experiment)]
    subprocess.run(cmd, check=True, env={**os.environ, "COPIER_SETTINGS_PATH": str(empty)})
    return experiment


def reachable_cluster() -> str | None:
    """None when a SLURM cluster answers `sinfo`; else why not (one line)."""
    if shutil.which("sinfo") is None:
        return "no sinfo on PATH"
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer in 20 s"
    if proc.returncode == 0:
        return None
    return f"sinfo: {(proc.stderr.strip().splitlines() or ['exit ' + str(proc.returncode)])[-1]}"


# The jobs read nothing from the network (the model and data are local).
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline", "TIKTOKEN_CACHE_DIR": ""}


def cruijff(experiment: Path, *args: str, env: dict[str, str]) -> int:
    return subprocess.run([sys.executable, "-m", "cruijff_gen", *args, "-C", str(experiment)], env=env).returncode


def run_on_own_cluster(base: Path, experiment: Path, env: dict[str, str], budget: float) -> int:
    """Start a single-node cluster under base, submit, wait for every job, show status and results."""
    files = Path(tempfile.mkdtemp(prefix="slurm-", dir=base))
    try:
        with slurm_cluster.SlurmCluster(files) as cluster:
            print(f"started a single-node SLURM cluster for this run (its files: {files})")
            env = {**cluster.env, **OFFLINE, "PYTHONPATH": env["PYTHONPATH"]}  # SLURM_CONF: this cluster
            code = cruijff(experiment, "submit", env=env)
            if code != 0:
                return code
            deadline, left = time.monotonic() + budget, None
            while time.monotonic() < deadline:
                queued = cluster.run("squeue", "-h", "-o", "%i", check=False).stdout.split()
                if not queued:
                    break
                if len(queued) != left:
                    left = len(queued)
                    print(f"  {left} job(s) queued or running ...", flush=True)
                time.sleep(2)
            else:
                print(f"the jobs did not finish in {budget:.0f} s; stopping the cluster", file=sys.stderr)
            cruijff(experiment, "status", env=env)
            return cruijff(experiment, "results", "--no-plots", env=env)
    finally:
        shutil.rmtree(files, ignore_errors=True)  # the daemons have stopped (or never started)

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", nargs="?", type=Path, default=DEFAULT_DIR, help=f"where to build it (default: {DEFAULT_DIR.relative_to(REPO)})")
    parser.add_argument("--no-submit", action="store_true", help="scaffold only, do not submit")
    parser.add_argument("--budget", type=float, default=1800.0, metavar="SECONDS", help="on its own cluster: how long to wait for the jobs")
    args = parser.parse_args(argv)
    base = args.dir.resolve()
    experiment = paths(base)["experiment"]
    if experiment.exists():
        if not (experiment / ".copier-answers.yml").is_file() and any(p.name != "tasks" for p in experiment.iterdir()):
            print(f"{experiment} exists and is not a tiny experiment made by this script: give another DIR", file=sys.stderr)
            return 1
        shutil.rmtree(experiment)
        print(f"removed the tiny experiment made before in {experiment}")
    venv = current_venv()
    if venv is None:
        print("note: not running in a virtualenv, so the jobs use whatever `tune`, `inspect` and `python` their PATH has", file=sys.stderr)
    prepare(base)
    scaffold(base, venv)
    print(f"\nscaffolded {experiment}")
    if args.no_submit:
        print(f"not submitted; on a SLURM cluster that sees {base}:\n  {experiment}/submit.sh")
        return 0
    env = {**os.environ, **OFFLINE, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    why = reachable_cluster()
    if why is not None:
        missing = slurm_cluster.missing_binaries()
        if missing:
            print(f"not submitted: no SLURM cluster answers ({why}) and none can be started here (missing {', '.join(missing)}: "
                  f"as root, bash .ci/install-slurm.sh); the experiment is scaffolded in {experiment}", file=sys.stderr)
            return 1
        return run_on_own_cluster(base, experiment, env, args.budget)
    code = cruijff(experiment, "submit", env=env)
    print(f"\nwatch: cd {experiment} && cruijff-gen status\ntraining output: {experiment}/<run>/artifacts/ (epoch_0/, slurm-<job>.out)\n"
          f"eval logs: {experiment}/<run>/eval/logs/ (inspect view --log-dir <that dir>); then: cruijff-gen results")
    return code


if __name__ == "__main__":
    sys.exit(main())
