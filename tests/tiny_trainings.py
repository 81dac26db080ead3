"""The tiny trainings of the session: ONE set of real `tune run` trainings of a tiny Llama-3.2-shaped
model (examples/tiny/catalog.yaml's architecture, random weights) on a small instruct data set,
shared by tests/test_job_recipes.py (what our recipes do: validation, losses, checkpoints) and
tests/test_adapter_eval.py (adapter-only checkpoints evaluated through inspect).

Four trainings at once, each in its own directory with `tune run ... --config finetune.yaml`:

* `stock`: torchtune's own lora_finetune_single_device, no validation, adapter-only checkpoints;
* `val`: our single-device recipe with dataset_val, adapter-only checkpoints;
* `noval`: our single-device recipe without dataset_val, merged checkpoints;
* `dist`: our distributed recipe on 2 processes (gloo), with dataset_val, merged checkpoints.

All share seed and training settings, with LoRA dropout on, so that any use of the global random
generator by validation, or any change to training, shows in the training losses (`val` and `noval`
train the same weights: tests/test_job_recipes.py checks it step by step).

The fixtures are registered once in tests/conftest.py (a fixture imported into two test modules
would be two fixtures, each training once); under xdist conftest's SAME_WORKER keeps both modules on
one worker.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from cruijff_gen.job.recipes import tune_run_target
from tiny_models import make_tiny_llama3_2

WORDS = ["apple", "berry", "cherry", "date", "elder", "fig", "grape", "hazel", "iris", "jade", "kiwi", "lemon",
         "mango", "nut", "olive", "pear", "quince"]
N_TRAIN, N_VAL = 6, 3
BATCH_SIZE, GRAD_ACCUM, VAL_EVERY, EPOCHS, WORLD = 2, 1, 2, 2, 2
TUNE = str(Path(sys.executable).parent / "tune")

LINE = re.compile(r"validation: epoch=(\d+) step=(\d+) loss=(\d+\.\d{6}) batches=(\d+)( \(epoch end\))?")


@dataclass
class Run:
    dir: Path
    output: str
    returncode: int

    def ok(self) -> Run:
        assert self.returncode == 0, self.output[-4000:]
        return self

    def validations(self) -> list[tuple[int, int, float, int, bool]]:
        """(epoch, step, loss, batches, epoch end) of every validation line; each must be a whole line."""
        found = [line for line in self.output.split("\n") if "validation:" in line]
        for line in found:
            assert LINE.fullmatch(line), f"not a line of its own in the exact form: {line!r}"
        return [(int(e), int(s), float(loss), int(b), bool(end)) for e, s, loss, b, end in
                (LINE.fullmatch(line).groups() for line in found)]

    def disk_log(self, key: str) -> list[tuple[int, str]]:
        """(step, value) of every `key` the DiskLogger wrote, in order."""
        (log,) = (self.dir / "out" / "logs").glob("log_*.txt")
        pattern = rf"^Step (\d+) \| (?:.* )?{key}:(\S+)"
        return [(int(step), value) for step, value in re.findall(pattern, log.read_text(), re.MULTILINE)]


# --------------------------------------------------------------------------- the runs
def _arch() -> tuple[dict, dict]:
    entry = yaml.safe_load((REPO / "examples" / "tiny" / "catalog.yaml").read_text())["Tiny-Llama-3.2"]
    model = {k: v for k, v in entry["model"].items() if k != "_component_"}
    return model, entry["lora"]


def _config(run_dir: Path, model_dir: Path, data: Path, *, val: bool, adapter_only: bool) -> dict:
    arch, lora = _arch()
    dataset = {"_component_": "torchtune.datasets.instruct_dataset", "source": "json", "data_files": str(data),
               "field": "train", "split": "train", "train_on_input": False, "packed": False}
    out = str(run_dir / "out")
    cfg = {
        "output_dir": out,
        "model": {"_component_": "torchtune.models.llama3_2._component_builders.lora_llama3_2", **arch,
                  "lora_rank": 4, "lora_alpha": 8, "lora_dropout": 0.1, **lora, "apply_lora_to_output": False},
        "tokenizer": {"_component_": "torchtune.models.llama3.llama3_tokenizer",
                      "path": str(model_dir / "original" / "tokenizer.model"), "max_seq_len": 64},
        "checkpointer": {"_component_": "torchtune.training.FullModelHFCheckpointer", "checkpoint_dir": str(model_dir),
                         "checkpoint_files": ["model.safetensors"], "recipe_checkpoint": None, "output_dir": out,
                         "model_type": "LLAMA3_2"},
        "resume_from_checkpoint": False,
        "dataset": dataset,
        "optimizer": {"_component_": "torch.optim.AdamW", "lr": 3e-3},
        "lr_scheduler": {"_component_": "torchtune.training.lr_schedulers.get_cosine_schedule_with_warmup",
                         "num_warmup_steps": 1},
        "loss": {"_component_": "torchtune.modules.loss.CEWithChunkedOutputLoss"},
        "batch_size": BATCH_SIZE, "shuffle": True, "epochs": EPOCHS, "max_steps_per_epoch": None,
        "gradient_accumulation_steps": GRAD_ACCUM, "seed": 7, "log_every_n_steps": 1,
        "run_val_every_n_steps": VAL_EVERY,
        "device": "cpu", "dtype": "fp32", "enable_activation_checkpointing": False,
        "enable_activation_offloading": False, "compile": False, "log_peak_memory_stats": False,
        "save_adapter_weights_only": adapter_only,
        "metric_logger": {"_component_": "torchtune.training.metric_logging.DiskLogger", "log_dir": f"{out}/logs"},
    }
    if val:
        cfg["dataset_val"] = {**dataset, "field": "validation"}
    return cfg


@pytest.fixture(scope="session")
def recipe_model(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """{"root", "model": the tiny model's directory, "data": the data file (train, validation)}"""
    root = tmp_path_factory.mktemp("recipes")
    model_dir = make_tiny_llama3_2(root / "model", _arch()[0])
    records = [{"input": w, "output": w.upper()} for w in WORDS]
    data = root / "data.json"
    data.write_text(json.dumps({"train": records[:N_TRAIN], "validation": records[N_TRAIN:N_TRAIN + N_VAL]}))
    return {"root": root, "model": model_dir, "data": data}


@pytest.fixture(scope="session")
def recipe_runs(recipe_model: dict) -> dict[str, Run]:
    """The four trainings, run at once: {name: Run}."""
    tiny = recipe_model
    single, dist = tune_run_target("lora_finetune_single_device"), tune_run_target("lora_finetune_distributed")
    plan = {
        "stock": (["lora_finetune_single_device"], {"val": False, "adapter_only": True}),
        "val": ([single], {"val": True, "adapter_only": True}),
        "noval": ([single], {"val": False, "adapter_only": False}),
        "dist": ([f"--nproc_per_node={WORLD}", dist], {"val": True, "adapter_only": False}),
    }
    procs = {}
    for name, (recipe, options) in plan.items():
        run_dir = tiny["root"] / name
        run_dir.mkdir()
        config = run_dir / "finetune.yaml"
        config.write_text(yaml.safe_dump(_config(run_dir, tiny["model"], tiny["data"], **options)))
        env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(run_dir / "hf"),
                   HF_DATASETS_CACHE=str(run_dir / "hf" / "datasets"), OMP_NUM_THREADS="1", WANDB_MODE="disabled")
        # the run directory as working directory: our recipes are found as the installed module
        procs[name] = subprocess.Popen([TUNE, "run", *recipe, "--config", str(config)], cwd=run_dir, env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    return {name: Run(tiny["root"] / name, *_finish(proc)) for name, proc in procs.items()}


def _finish(proc: subprocess.Popen) -> tuple[str, int]:
    """The output (decoded without newline translation: the progress bar's carriage returns stay, as
    in a log file) and exit status of a run; a run still going after 5 minutes is killed (its process group)."""
    try:
        output = proc.communicate(timeout=300)[0]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output = proc.communicate()[0] + b"\n[killed after 5 minutes]"
    return output.decode(errors="replace"), proc.returncode
