"""The generated files, handed to the real programs they are written for.

* torchtune (marker `tools`): every finetune.yaml of designs that fine-tune every bundled catalog
  model (validation on, validation off, text completion) passes `tune validate`, its `tune run`
  command line parses with torchtune's own CLI parser and names a registered recipe, has every key
  the stock recipe reads without a default, and its components are built for real: the model on
  the meta device (checked against the model's known size and the LoRA settings), optimizer, lr
  scheduler, loss, metric logger, the checkpointer and tokenizer from a directory laid out like the
  model's Hugging Face repository, and the dataset from a JSON data file.
* inspect-ai (marker `tools`): every eval cell's command line, parsed from its .slurm script, runs
  through inspect's CLI against a tiny local Hugging Face model and the settings file the cell
  names; the inspect log shows the exact prompts and generation settings of the design.
* SLURM (marker `slurm`): every kind of generated script is schedulable (`sbatch --test-only`)
  with and without site settings, and the generated submit.sh really runs a fine-tuning job (it
  reaches torchtune) and an eval job (it completes), with evals chained after training.

Nothing here touches the network: Hugging Face libraries run offline and every model is built on
the spot (tests/tiny_models.py); the inspect task is tests/tiny_task.py.
"""

from __future__ import annotations

import ast
import contextlib
import inspect as pyinspect
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import designs
from conftest import REPO
from cruijff_gen.job.recipes import recipe_path, tune_run_target
from cruijff_gen.shell import find_command
from tiny_models import FAMILY, HF_REPO_FILES, make_checkpoint_dir, make_tiny_hf_model

TESTS = Path(__file__).resolve().parent
for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
    os.environ[_var] = "1"
os.environ["WANDB_MODE"] = "offline"

# The bundled catalog, read as plain data (which models the tests must cover).
CATALOG: dict = yaml.safe_load((REPO / "cruijff_gen" / "data" / "catalog.yaml").read_text(encoding="utf-8"))

# Base-model parameter counts (LoRA adapters excluded), from the models' published sizes.
BASE_PARAMETERS = {
    "Llama-3.2-1B-Instruct": 1_235_814_400,
    "Llama-3.2-3B-Instruct": 3_212_749_824,
    "Llama-3.1-8B-Instruct": 8_030_261_248,
    "Llama-3.3-70B-Instruct": 70_553_706_496,
    "Mistral-7B-Instruct-v0.1": 7_241_732_096,
    "Qwen2.5-3B-Instruct": 3_085_938_688,
}

WORDS = {
    "train": [{"input": w, "output": w.capitalize()} for w in ("cat", "dog", "cow", "owl", "yak")],
    "validation": [{"input": w, "output": w.capitalize()} for w in ("elk", "emu")],
    "test": [{"input": w, "output": w.capitalize()} for w in ("ant", "bee")],
}


def canonical(model: str) -> str:
    """The catalog entry a design's model name (entry name or alias) stands for."""
    if model in CATALOG:
        return model
    return next(name for name, entry in CATALOG.items() if model in (entry.get("aliases") or []))


def write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def slurm_argv(script: Path, program: str) -> list[str]:
    argv = find_command(script.read_text(encoding="utf-8"), program)
    assert argv, f"{script}: no `{program} ...` command line"
    return argv


PREFLIGHT = "# Preflight: the tools and inputs this job needs, checked before any model is loaded"


def preflight_lines(script: Path) -> str:
    """A generated job's preflight lines (shell), as its script has them."""
    lines = script.read_text(encoding="utf-8").split("\n")
    start = lines.index(PREFLIGHT)
    return "\n".join(lines[start + 1 : lines.index("", start)])


def run_preflight_in_process(script: Path) -> None:
    """The script's `python -m cruijff_gen.job ...` preflight command, run in this process (what
    the job runs before its command; an eval cell's writes the model settings inspect reads)."""
    from cruijff_gen.job import preflight

    words = shlex.split(preflight_lines(script).split("\n")[-1])
    assert words[:3] == ["python", "-m", "cruijff_gen.job"], words
    assert preflight.main(words[3:]) == 0, f"{script}: preflight failed"


def option_values(argv: list[str], option: str) -> list[str]:
    return [argv[i + 1] for i, word in enumerate(argv[:-1]) if word == option]


def named_args(argv: list[str], option: str) -> dict[str, str]:
    return dict(v.split("=", 1) for v in option_values(argv, option))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    pytest.importorskip("transformers", reason="transformers is not installed (pip install .[tools])")
    return make_tiny_hf_model(tmp_path_factory.mktemp("tiny-hf") / "tiny-llama")


# =========================================================================== torchtune
def torchtune_or_skip():
    return pytest.importorskip("torchtune", reason="torchtune is not installed (pip install .[tools])")


def finetune_design(tmp: Path, name: str, *, validation: bool, dataset_type: str = "chat_completion",
                    use_aliases: bool = False) -> dict:
    """One fine-tuned run per bundled catalog model, each model in a stub directory laid out like
    its Hugging Face repository."""
    d = designs.base(str(tmp / name))
    d["experiment"]["name"] = name
    d["controls"].update({"validation_during_training": validation, "dataset_type": dataset_type,
                          "system_prompt": designs.HOSTILE_PROMPT.replace("{input}", "<in>"),
                          "prompt": designs.HOSTILE_PROMPT})
    d["data"]["training"]["path"] = str(write_json(tmp / "data" / "words.json", WORDS))
    d["models"]["base"], d["runs"] = [], []
    for i, entry in enumerate(CATALOG):
        model = (CATALOG[entry].get("aliases") or [entry])[0] if use_aliases else entry
        path = tmp / "models" / model
        files = HF_REPO_FILES.get(entry)
        if files is not None and not path.exists():
            make_checkpoint_dir(path, files["weights"], files["tokenizer"], FAMILY[entry])
        d["models"]["base"].append({"name": model, "path": str(path)})
        params = {"lora_rank": 2 ** (i % 4 + 2), "lr": ["1e-5", "5e-4", 0.0002][i % 3]}
        if CATALOG[entry].get("system_role") is False:  # a chat template without a system turn
            params["system_prompt"] = ""
        if not validation:  # the hyperparameters that reach finetune.yaml, spread over the runs
            params.update([
                {"lora_dropout": 0.05, "gradient_accumulation_steps": 2},
                {"max_steps_per_epoch": 3, "clip_grad_norm": 1.0},
                {"optimizer": "SGD", "weight_decay": 0.0},
                {"lr_scheduler": "cosine", "num_warmup_steps": 0, "seed": 3},
                {"lora_alpha": 7.5, "batch_size_val": 2, "max_seq_len": 256},
                {"packed": False, "train_on_input": True, "shuffle": False, "enable_activation_checkpointing": True},
            ][i % 6])
        d["runs"].append({"name": f"run{i}_{model}", "type": "fine-tuned", "model": model, "parameters": params})
    d["evaluation"] = {"tasks": [{"name": "capitalization", "script": "/tasks/cap_task.py"}]}
    if validation:
        d["output"] = {"wandb_project": "cap"}
    return d


FINETUNE_DESIGNS = {
    "chat-validation-on": dict(validation=True),
    "chat-validation-off": dict(validation=False),
    "text-completion": dict(validation=True, dataset_type="text_completion", use_aliases=True),
}


def tune_cli(*args: str) -> tuple[int, str]:
    """torchtune's `tune` command line, run in this process (as its console script would)."""
    from torchtune._cli.tune import TuneCLIParser

    parser = TuneCLIParser()
    output = io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        try:
            parser.run(parser._parser.parse_args(list(args)))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, output.getvalue()


def recipe_file(name: str) -> Path:
    from torchtune._cli.run import ROOT
    from torchtune._recipe_registry import get_all_recipes

    recipe = next((r for r in get_all_recipes() if r.name == name), None)
    assert recipe is not None, f"`tune run {name}`: not a recipe torchtune knows"
    return ROOT / "recipes" / recipe.file_path


def recipe_reads(path: Path) -> dict[str, set[str]]:
    """Config keys a recipe reads as attributes (`cfg.epochs`, `cfg_model.lora_rank`): keys it
    needs, unlike `cfg.get(key, default)`."""
    reads: dict[str, set[str]] = {"cfg": set(), "cfg_model": set()}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in reads and node.attr != "get"):
            reads[node.value.id].add(node.attr)
    return reads


def recipe_has_validation_loop(path: Path) -> bool:
    """The recipe (with the package's shared validation module) reads dataset_val and run_val_every_n_steps."""
    text = "".join(p.read_text(encoding="utf-8") for p in (path, path.parent / "_validation.py") if p.exists())
    return "dataset_val" in text and "run_val_every_n_steps" in text


def assert_kwargs_accepted(component: str, keys, positional: int = 0, passthrough=()) -> None:
    """Every key must be a named parameter of the component (after `positional` positional
    arguments the recipe passes), or be in `passthrough` and land in its **kwargs."""
    from torchtune.config._utils import _get_component_from_path

    params = pyinspect.signature(_get_component_from_path(component)).parameters
    named = [n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    named = named[positional:]
    for key in keys:
        if key == "_component_":
            continue
        ok = key in named or (var_kw and key in passthrough)
        assert ok, f"{component} has no parameter {key!r} (parameters: {', '.join(named)})"


def load_dataset_kwargs() -> set[str]:
    """What torchtune's datasets pass on to `datasets.load_dataset` and the json builder."""
    import dataclasses

    import datasets
    from datasets.packaged_modules.json.json import JsonConfig

    return set(pyinspect.signature(datasets.load_dataset).parameters) | {f.name for f in dataclasses.fields(JsonConfig)}


def check_finetune_config(run_dir: Path, run: dict, design: dict) -> None:
    """Everything torchtune does with one generated finetune.yaml short of loading weights and training."""
    import torch
    from omegaconf import OmegaConf
    from torchtune import config
    from torchtune._cli.tune import TuneCLIParser
    from torchtune._recipe_registry import get_all_recipes
    from torchtune.modules.peft import get_adapter_params
    from torchtune.training.precision import PRECISION_STR_TO_DTYPE

    path = run_dir / "finetune.yaml"
    code, output = tune_cli("validate", str(path))
    assert code == 0 and "Config is well-formed!" in output, f"tune validate {path}:\n{output}"

    # The command line of finetune.slurm, parsed by torchtune's own `tune run` parser: cruijff_gen's
    # recipe (a module path tune runs), built on the stock recipe of the same name
    argv = slurm_argv(run_dir / "finetune.slurm", "tune")
    args = TuneCLIParser()._parser.parse_args(argv[1:])
    assert args.recipe_args == ["--config", str(path)], argv
    gpus = int(args.nproc_per_node)
    name = Path(args.recipe).stem
    assert args.recipe == tune_run_target(name), args.recipe
    registered = next(r for r in get_all_recipes() if r.name == name)
    assert (gpus > 1) == registered.supports_distributed, f"{name} with --nproc_per_node={gpus}"
    assert recipe_has_validation_loop(Path(recipe_path(name))), f"{name}: no validation loop"

    cfg = OmegaConf.load(path)
    reads = recipe_reads(recipe_file(name))
    assert {"model", "tokenizer", "optimizer", "epochs"} <= reads["cfg"], f"scan of {name} found {reads}"
    missing = sorted(k for k in reads["cfg"] if k not in cfg)
    assert not missing, f"{path}: {name} reads cfg.{', cfg.'.join(missing)} without a default"
    missing = sorted(k for k in reads["cfg_model"] if k not in cfg.model)
    assert not missing, f"{path}: {name} reads model.{', model.'.join(missing)}"
    assert cfg.dtype in PRECISION_STR_TO_DTYPE, cfg.dtype  # what training.get_dtype accepts

    # model, on the meta device: the right size, LoRA where the config says
    with torch.device("meta"):
        model = config.instantiate(cfg.model)
    entry = canonical(run["model"])
    base = sum(p.numel() for n, p in model.named_parameters() if "lora_" not in n)
    if entry in BASE_PARAMETERS:
        assert base == BASE_PARAMETERS[entry], f"{cfg.model._component_}: {base} parameters, {entry} has {BASE_PARAMETERS[entry]}"
    adapters = get_adapter_params(model)
    assert adapters, "no LoRA parameters"
    attn = model.layers[0].attn
    for name in cfg.model.lora_attn_modules:
        layer = getattr(attn, name)
        assert layer.rank == cfg.model.lora_rank and layer.alpha == cfg.model.lora_alpha, name
    assert hasattr(model.layers[0].mlp.w1, "lora_a") == cfg.model.apply_lora_to_mlp
    assert hasattr(model, "set_num_output_chunks")  # the recipe calls it for CEWithChunkedOutputLoss

    # optimizer on a dummy parameter, the scheduler on it, the loss
    weight = torch.nn.Parameter(torch.zeros(4))
    optimizer = config.instantiate(cfg.optimizer, [weight])
    group = optimizer.param_groups[0]
    assert group["lr"] == cfg.optimizer.lr and group["weight_decay"] == cfg.optimizer.weight_decay
    steps = 10 + cfg.lr_scheduler.num_warmup_steps
    scheduler = config.instantiate(cfg.lr_scheduler, optimizer, num_training_steps=steps, last_epoch=-1)
    for _ in range(cfg.lr_scheduler.num_warmup_steps):
        optimizer.step()
        scheduler.step()
    assert scheduler.get_last_lr()[0] == pytest.approx(cfg.optimizer.lr), "lr after warm-up"
    loss = config.instantiate(cfg.loss)
    assert loss.num_output_chunks > 0

    # checkpointer and tokenizer, from the model's directory (weights are stubs, not loaded)
    assert_kwargs_accepted(cfg.checkpointer._component_, list(cfg.checkpointer) + ["should_load_recipe_state"])
    checkpointer = config.instantiate(cfg.checkpointer, should_load_recipe_state=cfg.resume_from_checkpoint)
    files = HF_REPO_FILES.get(entry)
    if files is not None:  # every shard of one format of the repository's weights (private attribute)
        found = sorted(Path(p).name for p in checkpointer._checkpoint_paths)
        suffix = Path(found[0]).suffix
        assert found == sorted(f for f in files["weights"] if f.endswith(suffix)), "checkpoint files vs the model's repository"
    assert_kwargs_accepted(cfg.tokenizer._component_, cfg.tokenizer)
    tokenizer = config.instantiate(cfg.tokenizer)
    assert tokenizer.max_seq_len == cfg.tokenizer.max_seq_len

    # datasets: kwargs, then built from the JSON data file
    passthrough = load_dataset_kwargs()
    for key in ("dataset", "dataset_val"):
        if key in cfg:
            assert_kwargs_accepted(cfg[key]._component_, cfg[key], positional=1, passthrough=passthrough)
            dataset = config.instantiate(cfg[key], tokenizer)
            split = cfg[key].get("field", "train")
            assert len(dataset) == len(WORDS[split]), (key, split)
    assert ("dataset_val" in cfg) == bool(design["controls"].get("validation_during_training"))

    # metric logger
    logger_cfg = cfg.metric_logger
    assert_kwargs_accepted(logger_cfg._component_, logger_cfg, passthrough={"mode"})
    if logger_cfg._component_.endswith("DiskLogger"):
        config.instantiate(logger_cfg).close()


@pytest.mark.tools
@pytest.mark.parametrize("variant", sorted(FINETUNE_DESIGNS))
def test_finetune_configs_accepted_by_torchtune(scaffold, tmp_path, monkeypatch, variant):
    torchtune_or_skip()
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-datasets-cache"))
    design = finetune_design(tmp_path, "exp", **FINETUNE_DESIGNS[variant])
    dest = scaffold(design, "exp")
    covered = set()
    for run in design["runs"]:
        check_finetune_config(dest / run["name"], run, design)
        covered.add(canonical(run["model"]))
    assert covered == set(CATALOG), "every bundled catalog model is fine-tuned"
    recipes = {}
    for run in design["runs"]:
        argv = slurm_argv(dest / run["name"] / "finetune.slurm", "tune")
        recipes[canonical(run["model"])] = [w for w in argv[2:] if w != "--config" and not w.endswith("finetune.yaml")]
    assert recipes.pop("Llama-3.3-70B-Instruct") == ["--nproc_per_node=4", tune_run_target("lora_finetune_distributed")]
    assert all(r == [tune_run_target("lora_finetune_single_device")] for r in recipes.values()), recipes


# What training sees (the text of each example vs the eval input): tests/test_chat_fidelity.py.


@pytest.mark.tools
def test_lora_on_output_is_rejected_or_built(scaffold, tmp_path):
    """`apply_lora_to_output: true` is a design parameter: for each catalog model the scaffold
    either refuses it (naming the run) where torchtune's builder refuses it, or writes a config
    whose model torchtune builds."""
    torchtune_or_skip()
    import torch
    from omegaconf import OmegaConf
    from torchtune import config
    from torchtune.config._utils import _get_component_from_path

    design = finetune_design(tmp_path, "all", validation=False)
    for run in design["runs"]:  # per run, so that each refusal has its own field path
        run["parameters"]["apply_lora_to_output"] = True
    _, result = scaffold(design, "all", expect_ok=False)
    refused = [r for r in design["runs"] if r["name"] in result.stderr] if result.returncode else []
    assert not refused or "apply_lora_to_output" in result.stderr, result.stderr
    for run in refused:  # torchtune agrees
        entry = CATALOG[canonical(run["model"])]
        builder = _get_component_from_path(entry["model"]["_component_"])
        kwargs = {**{k: v for k, v in entry["model"].items() if k != "_component_"}, **entry["lora"]}
        with pytest.raises(ValueError), torch.device("meta"):
            builder(**kwargs, lora_rank=4, lora_alpha=8, apply_lora_to_output=True)
    design["runs"] = [r for r in design["runs"] if r not in refused]
    dest = scaffold(design, "accepted")
    for run in design["runs"]:
        cfg = OmegaConf.load(dest / run["name"] / "finetune.yaml")
        assert cfg.model.apply_lora_to_output is True
        with torch.device("meta"):
            model = config.instantiate(cfg.model)
        assert hasattr(model.output, "lora_a"), run["model"]


# =========================================================================== inspect-ai
def install_task(tmp: Path, name: str) -> str:
    path = tmp / "tasks" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(TESTS / "tiny_task.py", path)
    return str(path)


def inspect_designs(tmp: Path, tiny: Path) -> dict[str, tuple[dict, dict]]:
    """name -> (design, cluster settings). Models, checkpoints and trained epochs are the tiny model."""
    eval_data = str(write_json(tmp / "data" / "eval words.json", {"test": WORDS["test"]}))
    train_data = str(write_json(tmp / "data" / "words.json", WORDS))
    cap, rev = install_task(tmp, "cap_task.py"), install_task(tmp, "rev task.py")

    sampling = designs.rich(str(tmp / "sampling"))
    for model in sampling["models"]["base"]:
        model["path"] = str(tiny)
    sampling["data"]["training"]["path"] = train_data
    prior = next(r for r in sampling["runs"] if r["name"] == "prior_ckpt")
    prior["parameters"]["checkpoint_path"] = str(tiny)
    sampling["evaluation"]["tasks"][0].update(script=cap, dataset=eval_data)
    sampling["evaluation"]["tasks"][1].update(script=rev, dataset=eval_data)
    sampling["evaluation"]["matrix"] = [
        {"run": "llama_r8", "tasks": ["capitalization", "reverse"], "epochs": [0]},
        {"run": "big_r4", "tasks": ["reverse"], "epochs": [1]},
        {"run": "qwen_base", "tasks": ["capitalization"], "epochs": None, "vis_label": "Qwen base"},
        {"run": "prior_ckpt", "tasks": ["reverse"]},
    ]

    greedy = designs.base(str(tmp / "greedy"))
    greedy["models"]["base"][0]["path"] = str(tiny)
    greedy["data"]["training"]["path"] = train_data
    greedy["evaluation"]["tasks"][0].update(script=cap, dataset=eval_data)
    greedy["evaluation"]["matrix"] = [{"run": "r8", "tasks": ["capitalization"], "epochs": [1]},
                                      {"run": "base", "tasks": ["capitalization"], "epochs": None}]
    greedy["evaluation"].update(scorers=["match"], max_tokens=8)
    return {"sampling": (sampling, {"eval_model_args": "{device: cpu}"}), "greedy": (greedy, {})}


def expected_cell(design: dict, run_name: str, task_name: str, epoch) -> dict:
    """What a cell must hand inspect, written from the design (not from cruijff_gen's plan)."""
    exp_dir = design["experiment"]["dir"]
    run = next(r for r in design["runs"] if r["name"] == run_name)
    task = next(t for t in design["evaluation"]["tasks"] if t["name"] == task_name)
    params = {**design["controls"], **run.get("parameters", {})}
    stem = task_name if epoch is None else f"{task_name}_epoch{epoch}"
    if run["type"] == "fine-tuned":
        model_path = f"{exp_dir}/{run_name}/artifacts/epoch_{epoch}"
    elif run["type"] == "eval-only":
        model_path = run["parameters"]["checkpoint_path"]
    else:
        model_path = next(m["path"] for m in design["models"]["base"] if m["name"] == run["model"])
    ev = design["evaluation"]
    scorers = [{"name": s, "params": {}} if isinstance(s, str) else {"params": {}, **s} for s in ev.get("scorers", [])]
    return {
        "stem": stem,
        # adapter-only checkpoints (the design's choice, else from the model's size) go through cruijff-hf
        "model": ("cruijff-hf/" if adapter_only(run, params) else "hf/") + run_name + ("" if epoch is None else f"_epoch{epoch}"),
        "model_path": model_path,
        "config_path": f"{exp_dir}/{run_name}/eval/{stem}.yaml",
        "data_path": task.get("dataset", design["data"]["training"]["path"]),
        "log_dir": f"{exp_dir}/{run_name}/eval/logs",
        "system_prompt": task.get("system_prompt", params["system_prompt"]),
        "prompt": task.get("prompt", params.get("prompt")),
        "do_sample": bool(ev.get("do_sample", False)),
        "temperature": ev.get("temperature") if ev.get("do_sample") else None,
        "max_tokens": ev.get("max_tokens"),
        "seed": ev.get("seed"),
        "max_connections": ev.get("max_connections"),
        "scorers": scorers,
    }


DEFAULTS: dict = yaml.safe_load((REPO / "cruijff_gen" / "data" / "defaults.yaml").read_text(encoding="utf-8"))


def adapter_only(run: dict, params: dict) -> bool:
    if run["type"] != "fine-tuned":
        return False
    by_size = (CATALOG[canonical(run["model"])].get("size_gb") or 0) >= DEFAULTS["checkpoints"]["adapter_only_from_gb"]
    return bool(params.get("save_adapter_weights_only", by_size))


def cells_of(design: dict) -> list[tuple[str, str, int | None]]:
    out = []
    runs = {r["name"]: r for r in design["runs"]}
    for entry in design["evaluation"]["matrix"]:
        run = runs[entry["run"]]
        epochs = entry.get("epochs")
        if run["type"] == "fine-tuned" and epochs is None:  # the last epoch
            epochs = [{**design["controls"], **run["parameters"]}["epochs"] - 1]
        for task in entry["tasks"]:
            for epoch in epochs or [None]:
                out.append((entry["run"], task, epoch))
    return out


@pytest.mark.tools
def test_eval_cells_run_in_inspect(scaffold, tmp_path, tiny_model):
    pytest.importorskip("inspect_ai", reason="inspect-ai is not installed (pip install .[tools])")
    from inspect_ai.log import list_eval_logs, read_eval_log

    argvs, cells = [], []
    for name, (design, settings) in inspect_designs(tmp_path, tiny_model).items():
        dest = scaffold(design, name, **settings)
        assert str(dest) == design["experiment"]["dir"]
        for run in design["runs"]:  # what training would leave behind: one HF model per epoch
            if run["type"] == "fine-tuned":
                for epoch in range(design["controls"]["epochs"]):
                    (dest / run["name"] / "artifacts" / f"epoch_{epoch}").symlink_to(tiny_model, target_is_directory=True)
        generated = sorted(dest.glob("*/eval/*.slurm"))
        expected = [expected_cell(design, *cell) for cell in cells_of(design)]
        assert len(generated) == len(expected)
        for cell, (run, *_) in zip(expected, cells_of(design)):
            script = dest / run / "eval" / f"{cell['stem']}.slurm"
            argv = slurm_argv(script, "inspect")
            assert named_args(argv, "-M").get("device") == ("cpu" if settings else None)
            run_preflight_in_process(script)
            argvs.append(argv)
            cells.append((cell, settings))

    argv_file = write_json(tmp_path / "argvs.json", argvs)
    env = {**os.environ, "INSPECT_DISPLAY": "none"}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, str(TESTS / "inspect_cli.py"), str(argv_file), str(tmp_path / "results.json")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    wall = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert [r["argv"] for r in results] == argvs
    print(f"\ninspect: {len(argvs)} eval cells in {wall:.1f}s; per cell: " + ", ".join(f"{r['seconds']:.1f}s" for r in results))

    for (cell, _settings), result in zip(cells, results):
        assert result["code"] == 0, f"{' '.join(result['argv'])}\n{result['error']}"
        logs = []
        for info in list_eval_logs(cell["log_dir"], recursive=False):
            header = read_eval_log(info.name, header_only=True)
            if header.eval.model == cell["model"] and header.eval.task.split("/")[-1] == result["argv"][2].split("@")[-1]:
                logs.append(info.name)
        assert len(logs) == 1, (cell, logs)
        log = read_eval_log(logs[0])
        assert log.status == "success", (cell["stem"], log.error)
        assert log.eval.model_args["model_path"] == cell["model_path"]
        assert log.eval.model_args["do_sample"] is cell["do_sample"]  # a bool, not the text "false"
        assert log.eval.task_args == {"data_path": cell["data_path"], "config_path": cell["config_path"]}
        for config in (log.plan.config, log.eval.model_generate_config):
            for key in ("temperature", "max_tokens", "seed", "max_connections"):
                assert getattr(config, key) == cell[key], (cell["stem"], key)
        assert [(s.name, s.params) for s in log.results.scores] == [(s["name"], s["params"]) for s in cell["scorers"]]
        assert log.samples and len(log.samples) == len(WORDS["test"])
        for sample, record in zip(log.samples, WORDS["test"]):
            settings_seen = sample.metadata["settings"]
            assert settings_seen["prompt"] == cell["prompt"] and settings_seen["system_prompt"] == cell["system_prompt"]
            system, user = sample.messages[0], sample.messages[1]
            assert (system.role, system.content) == ("system", cell["system_prompt"])
            before, after = cell["prompt"].split("{input}", 1)
            assert (user.role, user.content) == ("user", before + record["input"] + after)
            if cell["max_tokens"]:
                assert sample.output.usage.output_tokens <= cell["max_tokens"]
    hostile = [c for c, _ in cells if c["prompt"] == designs.HOSTILE_PROMPT]
    assert hostile, "the shell-hostile prompt went through at least one cell"


# =========================================================================== SLURM
SITE = {"slurm_account": "acct1", "slurm_partition": "nomig", "slurm_constraint": "gpu80", "mail_user": "me@example.org"}


def every_kind(exp_dir: str, tmp: Path) -> dict:
    """1-GPU, 4-GPU and MIG fine-tuning; eval cells of a fine-tuned, a control and an eval-only run."""
    d = designs.base(exp_dir)
    d["controls"]["epochs"] = 1
    d["models"]["base"].append({"name": "Llama-3.3-70B-Instruct", "path": str(tmp / "models" / "Llama-3.3-70B-Instruct")})
    d["models"]["base"][0]["path"] = str(tmp / "models" / "Llama-3.2-1B-Instruct")  # absent: training fails in torchtune
    d["runs"] = [
        {"name": "ft", "type": "fine-tuned", "model": "Llama-3.2-1B-Instruct", "parameters": {"lora_rank": 8}},
        {"name": "big", "type": "fine-tuned", "model": "Llama-3.3-70B-Instruct", "parameters": {"lora_rank": 4}},
        {"name": "sliced", "type": "fine-tuned", "model": "Llama-3.2-1B-Instruct", "parameters": {"lora_rank": 4}, "mig": True},
        {"name": "base", "type": "control", "model": "Llama-3.2-1B-Instruct", "parameters": {}},
        {"name": "prior", "type": "eval-only", "model": "Llama-3.2-1B-Instruct", "parameters": {"checkpoint_path": str(tmp / "checkpoint")}},
    ]
    d["data"]["training"]["path"] = str(write_json(tmp / "data" / "words.json", WORDS))
    d["evaluation"]["tasks"][0].update(script=install_task(tmp, "cap_task.py"), dataset=d["data"]["training"]["path"])
    d["evaluation"]["matrix"] = [{"run": r["name"], "tasks": ["capitalization"]} for r in d["runs"]]
    return d


@pytest.mark.slurm
@pytest.mark.parametrize("site", [False, True], ids=["no-site-settings", "site-settings"])
def test_every_script_is_schedulable(slurm_cluster, scaffold, tmp_path, site):
    dest = scaffold(every_kind("/scratch/u/every_kind", tmp_path), "exp", **(SITE if site else {}))
    scripts = sorted(dest.rglob("*.slurm"))
    kinds = {p.relative_to(dest).as_posix() for p in scripts}
    assert kinds == {"ft/finetune.slurm", "big/finetune.slurm", "sliced/finetune.slurm", "ft/eval/capitalization_epoch0.slurm",
                     "big/eval/capitalization_epoch0.slurm", "sliced/eval/capitalization_epoch0.slurm",
                     "base/eval/capitalization.slurm", "prior/eval/capitalization.slurm"}
    for script in scripts:
        text = script.read_text()
        if site:
            assert "#SBATCH --account=acct1" in text and "#SBATCH --mail-user=me@example.org" in text
            on_mig = "sliced" in script.relative_to(dest).parts  # a MIG slice: the default partition
            assert ("#SBATCH --partition=nomig" in text) != on_mig and ("#SBATCH --constraint=gpu80" in text) != on_mig, script
        proc = slurm_cluster.sbatch(script, test_only=True, cwd=tmp_path)
        assert proc.returncode == 0 and "to start at" in proc.stderr, f"{script}: {proc.stderr}"
    assert "#SBATCH --gres=gpu:4" in (dest / "big" / "finetune.slurm").read_text()


@pytest.mark.slurm
def test_percent_in_the_experiment_directory_reaches_slurm_literally(slurm_cluster, scaffold, tmp_path):
    """SLURM expands `%` patterns in --output (`%u` = user, `%j` = job id): a `%` in the design's
    directory must stay a `%` (written `%%`), while the job id pattern the product adds expands."""
    exp_dir = tmp_path / "runs_100%u_%j"
    dest = scaffold(designs.base(str(exp_dir)))
    text = (dest / "r8" / "finetune.slurm").read_text()
    directive = next(line for line in text.splitlines() if line.startswith("#SBATCH --output="))
    assert directive == f"#SBATCH --output={str(exp_dir).replace('%', '%%')}/r8/artifacts/slurm-%j.out"
    # The same directive on a trivial job: SLURM writes to the literal directory.
    (exp_dir / "r8" / "artifacts").mkdir(parents=True)
    script = tmp_path / "probe.sh"
    script.write_text(f"#!/bin/bash\n{directive}\necho probe\n")
    job = slurm_cluster.sbatch(script, cwd=tmp_path)
    assert slurm_cluster.wait(job) == ("COMPLETED", 0)
    assert (exp_dir / "r8" / "artifacts" / f"slurm-{job}.out").read_text() == "probe\n"


def make_venv(path: Path) -> Path:
    """A `venv` cluster setting whose activation puts this interpreter's environment (the real
    tune, inspect and python) first on PATH."""
    (path / "bin").mkdir(parents=True)
    (path / "bin" / "activate").write_text(
        "# test environment: the real tools of the interpreter running the tests\n"
        f"export VIRTUAL_ENV={path}\n"
        f'export PATH="{Path(sys.executable).parent}:$PATH"\n'
    )
    return path


def wait_for_reason(cluster, job: int, reason: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        info = cluster.job(job)
        if info.get("Reason") == reason or time.monotonic() > deadline:
            return info
        time.sleep(0.5)


@pytest.mark.slurm
def test_submit_runs_training_and_evals_on_slurm(slurm_cluster, scaffold, tmp_path, tiny_model):
    pytest.importorskip("torchtune", reason="torchtune is not installed (pip install .[tools])")
    pytest.importorskip("inspect_ai", reason="inspect-ai is not installed (pip install .[tools])")
    design = every_kind(str(tmp_path / "exp"), tmp_path)
    design["runs"] = [r for r in design["runs"] if r["name"] in ("ft", "prior")]
    design["runs"][1]["parameters"]["checkpoint_path"] = str(tiny_model)
    design["evaluation"]["matrix"] = [{"run": "ft", "tasks": ["capitalization"]}, {"run": "prior", "tasks": ["capitalization"]}]
    design["evaluation"]["max_tokens"] = 8  # inspect's hf default is 2048 new tokens per sample
    venv = make_venv(tmp_path / "venv")
    dest = scaffold(design, "exp", venv=str(venv), finetune_overrides="{device: cpu, dtype: fp32}", eval_model_args="{device: cpu}")

    # The jobs find tune/inspect/python only through the venv setting.
    env = slurm_cluster.env
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if Path(p) != Path(sys.executable).parent)
    started = time.monotonic()
    proc = subprocess.run(["bash", str(dest / "submit.sh")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    jobs = {m[0] + ":" + m[1]: int(m[2]) for m in re.findall(r"^(\S+): (finetune|eval \S+) job (\d+)$", proc.stdout, re.M)}
    assert set(jobs) == {"ft:finetune", "ft:eval capitalization_epoch0", "prior:eval capitalization"}, proc.stdout
    train, chained, alone = jobs["ft:finetune"], jobs["ft:eval capitalization_epoch0"], jobs["prior:eval capitalization"]
    try:
        assert re.fullmatch(rf"afterok:{train}(\(\w+\))?", slurm_cluster.job(chained)["Dependency"])
        assert slurm_cluster.job(alone).get("Dependency") in (None, "", "(null)")

        # training: the model directory is missing, so the job's preflight stops it at once, with
        # one line saying what is missing, before torchtune loads anything
        state, code = slurm_cluster.wait(train, timeout=120)
        output = (dest / "ft" / "artifacts" / f"slurm-{train}.out").read_text(errors="replace")
        assert (state, code != 0) == ("FAILED", True), output[-3000:]
        assert output.strip() == (f"preflight failed: model directory (checkpointer.checkpoint_dir) "
                                  f"{design['models']['base'][0]['path']} does not exist"), output[-3000:]

        # its eval never runs
        info = wait_for_reason(slurm_cluster, chained, "DependencyNeverSatisfied")
        assert info.get("JobState") == "PENDING" and info.get("Reason") == "DependencyNeverSatisfied", info
        assert info["Dependency"].startswith(f"afterok:{train}")

        # the eval-only cell runs for real and succeeds
        state, code = slurm_cluster.wait(alone, timeout=240)
        eval_seconds = time.monotonic() - started
        output = (dest / "prior" / "eval" / "logs" / f"capitalization-{alone}.out").read_text(errors="replace")
        assert (state, code) == ("COMPLETED", 0), output[-3000:]
        assert "inspect log status: success" in output
        from inspect_ai.log import list_eval_logs, read_eval_log

        logs = list_eval_logs(str(dest / "prior" / "eval" / "logs"), recursive=False)
        assert len(logs) == 1
        log = read_eval_log(logs[0].name)
        assert log.status == "success" and log.eval.model == "hf/prior" and log.eval.model_args["model_path"] == str(tiny_model)
        info = slurm_cluster.job(alone)
        print(f"\nSLURM eval job {alone}: {info.get('StartTime')} -> {info.get('EndTime')} "
              f"({eval_seconds:.0f}s from submit.sh to completion)")
    finally:
        for job in jobs.values():
            slurm_cluster.run("scancel", str(job), check=False)
