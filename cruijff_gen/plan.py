"""Plan stage: a parsed Design + cluster Settings + catalog -> an ExperimentPlan.

The plan holds every generated *value* (what each file must say), resolved once:
run `parameters` > `controls` > product defaults (data/defaults.yaml), model facts from the
catalog, SLURM resources from catalog < evaluation.compute < run.compute. The render stage only
lays these values out as files; the verify stage compares files against these same values.
"""

from __future__ import annotations

import math
import posixpath
import shlex
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from . import facts, yamlio
from .errors import DesignError, Problem
from .parse import Parsed
from .schema import Run, Settings, Task, given_fields

# Where each source of a value comes from, as written in setup_finetune.yaml.
RUN, CONTROLS, DEFAULT, CATALOG, DERIVED, CLUSTER = (
    "run parameters", "controls", "product default", "model catalog", "derived", "cluster settings",
)


@dataclass(frozen=True)
class Resources:
    gpus: int
    mem: str
    cpus: int
    time: str
    partition: str = ""
    constraint: str = ""


@dataclass(frozen=True)
class SlurmJob:
    """Everything a generated SLURM script says: directives, environment, working dir, argv."""

    directives: tuple[tuple[str, str], ...]  # ("job-name", "x"), ... in file order
    environment: tuple[str, ...]  # shell lines activating the cluster's software (settings)
    exports: tuple[tuple[str, str], ...]
    workdir: str
    argv: tuple[str, ...]
    setup: tuple[str, ...] = ()  # shell lines run before the command (preflight), in order
    provenance: tuple[str, ...] = ()  # shell lines after the preflight: the job's provenance record (see provenance())


@dataclass(frozen=True)
class RunPlan:
    name: str
    type: str  # fine-tuned | control | eval-only
    model: str  # models.base[].name
    model_entry: facts.ModelEntry
    model_path: str
    run_dir: str  # absolute, on the cluster
    params: dict[str, Any]  # resolved hyperparameters (fine-tuned runs)
    sources: dict[str, str]
    validation: bool
    resources: Resources | None  # training resources (fine-tuned runs)
    finetune: dict[str, Any] | None  # finetune.yaml content
    finetune_job: SlurmJob | None
    checkpoint_path: str | None  # eval-only runs
    mig: bool
    prompting: dict[str, Any]  # system_prompt / prompt / dataset_type, for every run type
    dataset_label: str | None = None
    recipe: str | None = None  # fine-tuned runs: cruijff_gen's LoRA recipe, as `tune run` takes it
    recipe_args: tuple[str, ...] = ()  # fine-tuned runs: `tune run`'s words before --config (process count, recipe)

    @property
    def artifacts_dir(self) -> str:
        return posixpath.join(self.run_dir, "artifacts") + "/"


@dataclass(frozen=True)
class EvalCell:
    run: str
    task: str
    epoch: int | None
    stem: str  # file stem inside <run>/eval/: "<task>_epoch<N>" or "<task>"
    model_path: str  # what inspect evaluates
    model_id: str  # inspect's --model: "<provider>/<run>[_epoch<N>]" (the name its logs record)
    log_dir: str  # inspect's --log-dir (absolute, on the cluster)
    settings: dict[str, Any]  # the cell's inspect settings file
    job: SlurmJob
    resources: Resources

    @property
    def settings_relpath(self) -> str:
        return f"{self.run}/eval/{self.stem}.yaml"

    @property
    def slurm_relpath(self) -> str:
        return f"{self.run}/eval/{self.stem}.slurm"


@dataclass(frozen=True)
class ExperimentPlan:
    parsed: Parsed
    experiment_dir: str
    runs: tuple[RunPlan, ...]
    cells: tuple[EvalCell, ...]
    warnings: tuple[str, ...] = field(default=())

    @property
    def design(self):
        return self.parsed.design

    @property
    def settings(self) -> Settings:
        return self.parsed.settings

    def run(self, name: str) -> RunPlan:
        return self._runs_by_name[name]

    def cells_of(self, run: str) -> list[EvalCell]:
        return list(self._cells_by_run.get(run, ()))

    # Indexes built once (the plan is immutable): lookups by run stay O(1) at 1,000s of runs.
    @cached_property
    def _runs_by_name(self) -> dict[str, RunPlan]:
        return {r.name: r for r in self.runs}

    @cached_property
    def _cells_by_run(self) -> dict[str, list[EvalCell]]:
        index: dict[str, list[EvalCell]] = {}
        for cell in self.cells:
            index.setdefault(cell.run, []).append(cell)
        return index


# --------------------------------------------------------------------------- helpers
def _resolve_path(path: str, base: str) -> str:
    return path if path.startswith("/") else posixpath.join(base, path)


def _given(model: Any) -> dict[str, Any]:
    """Hyperparameters a design actually wrote (not pydantic defaults), minus unknown extras."""
    return given_fields(model, facts.hyperparameters())


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


# --------------------------------------------------------------------------- finetune_overrides
def _override_paths(overrides: dict[str, Any]) -> dict[str, Any]:
    """The cluster setting finetune_overrides as dotted paths (`{optimizer: {lr: 1}}` and
    `{optimizer.lr: 1}` alike); a key given both whole and in part is refused."""
    flat: dict[str, Any] = {}
    for path, value in facts.flat_items(overrides):
        if path in flat:
            raise DesignError(Problem(f"settings.finetune_overrides.{path}", "given twice"))
        flat[path] = value
    for path in flat:
        inner = next((other for other in flat if other.startswith(path + ".")), None)
        if inner is not None:
            raise DesignError(Problem(f"settings.finetune_overrides.{path}", f"given both whole and in part ({inner}): give one"))
    return flat


def _override_hyperparameters(run_index: int, overrides: dict[str, Any], params: dict[str, Any], sources: dict[str, str]) -> None:
    """Overrides of hyperparameters the design leaves to defaults take their place (source:
    cluster settings, shown in setup_finetune.yaml); of ones the design sets: refused."""
    table = facts.hyperparameters()
    at = {spec["at"]: key for key, spec in table.items() if "at" in spec}
    for path, value in overrides.items():
        key = at.get(path) or (path if path in table and "at" in table[path] else None)  # `optimizer.lr` or `lr`
        if key is None:
            continue
        if sources.get(key) in (RUN, CONTROLS):
            where = f"runs[{run_index}].parameters.{key}" if sources[key] == RUN else f"controls.{key}"
            raise DesignError(Problem(f"settings.finetune_overrides.{path}",
                                      f"the design sets {key} ({where}): change it there, not in a cluster setting"))
        params[key], sources[key] = value, CLUSTER


def _override_config(cfg: dict[str, Any], overrides: dict[str, Any]) -> None:
    """Keys no design field reaches (`profiler`, `optimizer.betas`, ...) are added to finetune.yaml;
    a key cruijff_gen writes from the design (paths, components) cannot be overridden."""
    table = facts.hyperparameters()
    at = {spec["at"] for spec in table.values() if "at" in spec}
    for path, value in overrides.items():
        if path in at or (path in table and "at" in table[path]):
            continue  # a hyperparameter: already in the run's parameters
        node: Any = cfg
        for part in path.split("."):
            if not isinstance(node, dict):
                node = None
                break
            node = node.get(part, _NEW)
            if node is _NEW:
                break
        if node is not _NEW:
            raise DesignError(Problem(f"settings.finetune_overrides.{path}",
                                      "cruijff_gen writes this key of finetune.yaml from the design; a cluster setting cannot change it"))
        _set_dotted(cfg, path, value)


_NEW = object()


def _environment(settings: Settings) -> tuple[str, ...]:
    """Shell lines that activate the cluster's software environment (cluster settings only)."""
    # quoted: the text reaches bash byte-exact (`env; touch x` is an environment name, not a command)
    lines = []
    if settings.modules:
        lines.append("module load " + " ".join(shlex.quote(m) for m in settings.modules))
    if settings.conda_env:
        lines.append('eval "$(conda shell.bash hook)"')
        lines.append(f"conda activate {shlex.quote(settings.conda_env)}")
    if settings.venv:
        lines.append(f"source {shlex.quote(posixpath.join(settings.venv, 'bin', 'activate'))}")
    return tuple(lines)


# --------------------------------------------------------------------------- resources
def _resources(entry: facts.ModelEntry, settings: Settings, *layers: Any, mig: bool, evaluation: bool) -> Resources:
    merged: dict[str, Any] = {"partition": settings.slurm_partition, "constraint": settings.slurm_constraint}
    merged.update(entry.resources)
    if evaluation:
        merged.update(entry.eval_resources)
    for layer in layers:
        if layer is not None:
            merged.update({k: v for k, v in layer.model_dump(exclude_none=True).items()})
    if mig and entry.mig:
        merged.update(entry.mig)
        merged["partition"] = ""  # MIG slices live in the cluster's default partition
        merged["constraint"] = ""
    return Resources(
        gpus=int(merged["gpus"]), mem=str(merged["mem"]), cpus=int(merged["cpus"]), time=str(merged["time"]),
        partition=str(merged.get("partition") or ""), constraint=str(merged.get("constraint") or ""),
    )


def slurm_output(directory: str, pattern: str) -> str:
    """`#SBATCH --output` path: SLURM expands `%` patterns in it (`%j` = job id), so a `%` in the
    directory is written `%%` (SLURM's literal percent)."""
    return posixpath.join(directory.replace("%", "%%"), pattern)


def _directives(job_name: str, res: Resources, output: str, settings: Settings) -> tuple[tuple[str, str], ...]:
    lines = [
        ("job-name", job_name),
        ("nodes", "1"),
        ("ntasks", "1"),
        ("cpus-per-task", str(res.cpus)),
        ("mem", res.mem),
        ("gres", f"gpu:{res.gpus}"),
        ("time", res.time),
        ("output", output),
    ]
    if settings.slurm_account:
        lines.append(("account", settings.slurm_account))
    if res.partition:
        lines.append(("partition", res.partition))
    if res.constraint:
        lines.append(("constraint", res.constraint))
    if settings.mail_user:
        lines.append(("mail-type", settings.mail_type or facts.defaults()["slurm"]["mail_type"]))
        lines.append(("mail-user", settings.mail_user))
    return tuple(lines)


# --------------------------------------------------------------------------- in-job checks
IMPORT_CHECK = (
    "python -c 'import cruijff_gen.job' 2>/dev/null || { echo \"preflight failed: cruijff_gen is not importable by "
    "$(command -v python || echo 'python: not found'); pip install 'cruijff_gen[tools]' in the job's environment\" >&2; exit 1; }"
)


def preflight(*args: str) -> tuple[str, ...]:
    """The first lines of a job: cruijff_gen importable (else one line saying what to install), then
    `python -m cruijff_gen.job <args>` (the tools and inputs; see cruijff_gen/job/preflight.py)."""
    return (IMPORT_CHECK, "python -m cruijff_gen.job " + " ".join(shlex.quote(a) for a in args))


PROVENANCE_MODULE = ("python", "-m", "cruijff_gen.job.provenance")


def provenance(out_dir: str, name: str, repo: str, files: tuple[str, ...]) -> tuple[str, ...]:
    """The job's provenance lines (cruijff_gen/job/provenance.py): a start record in
    `<out_dir>/<name>-<job id>.json` (commit, sha256 of `files`, host, GPUs, ...), then an EXIT trap
    that adds the end time and exit status whatever way the job ends, and a TERM trap so that
    scancel and the time limit end it through that trap too (exit status 143)."""
    where = ("--dir", out_dir.rstrip("/") or "/", "--name", name)
    start = shlex.join([*PROVENANCE_MODULE, "start", *where, "--repo", repo, *(w for f in files for w in ("--file", f))])
    end = shlex.join([*PROVENANCE_MODULE, "end", *where]) + ' --exit-status "$?"'
    return (start, f"trap {shlex.quote(end)} EXIT", "trap 'exit 143' TERM")


# --------------------------------------------------------------------------- fine-tuning
def _hyperparameters(run: Run, parsed: Parsed, entry: facts.ModelEntry) -> tuple[dict[str, Any], dict[str, str]]:
    table = facts.hyperparameters()
    from_run, from_controls = _given(run.parameters), _given(parsed.design.controls)
    params: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key, spec in table.items():
        if key in from_run:
            params[key], sources[key] = from_run[key], RUN
        elif key in from_controls:
            params[key], sources[key] = from_controls[key], CONTROLS
        elif key in entry.lora:
            params[key], sources[key] = entry.lora[key], CATALOG
        elif key == "lora_alpha":
            params[key], sources[key] = 2 * params["lora_rank"], DERIVED
        elif key == "run_val_every_n_steps":
            params[key], sources[key] = facts.defaults()["validation"]["every_n_steps"], DEFAULT
        elif key == "save_adapter_weights_only":
            limit = facts.defaults()["checkpoints"]["adapter_only_from_gb"]
            params[key], sources[key] = (entry.size_gb or 0) >= limit, (CATALOG if entry.size_gb else DEFAULT)
        elif "default" in spec:
            params[key], sources[key] = spec["default"], DEFAULT
    return params, sources


PROMPTING_KEYS = ("system_prompt", "prompt", "dataset_type")


def _prompting(run: Run, parsed: Parsed) -> dict[str, Any]:
    """The run's prompt text and data shape: its parameters over the controls (no catalog or product
    default exists for these). Resolved here once per run; the training data (finetune.yaml's
    dataset) and every eval cell of the run (_cell_prompting) read this, so what the model is
    trained on and what it is asked in evaluation come from one place."""
    merged = {**_given(parsed.design.controls), **_given(run.parameters)}
    return {k: merged[k] for k in PROMPTING_KEYS if k in merged}


def _cell_prompting(run: RunPlan, task: Task) -> dict[str, Any]:
    """An eval cell's prompts: the task's own system_prompt / prompt where it sets them (an eval
    of a differently prompted task, on purpose), else the run's (_prompting)."""
    return {
        "dataset_type": run.prompting["dataset_type"],
        "system_prompt": task.system_prompt if task.system_prompt is not None else run.prompting["system_prompt"],
        "prompt": task.prompt if task.prompt is not None else run.prompting.get("prompt"),
    }


def _data_source(data: Any, split: str, base: str) -> dict[str, Any]:
    path = _resolve_path(data.path, base)
    if data.format == "json":
        source: dict[str, Any] = {"source": "json", "data_files": path}
        if data.splits:  # a JSON object keyed by split name
            source["field"] = split
        source["split"] = "train"
    else:  # a directory of parquet files, one split per file name
        source = {"source": "parquet", "data_dir": path, "split": split}
    return source


def _dataset(parsed: Parsed, run: RunPlan, params: dict[str, Any], split: str, model_path: str) -> dict[str, Any]:
    """cruijff_gen's dataset (cruijff_gen/job/dataset.py): each record rendered through the text the
    eval cells send (the model's own chat template read from model_dir, or plain text), loss on the
    answer only."""
    data = parsed.design.data.training
    ds: dict[str, Any] = {"_component_": facts.defaults()["finetune"]["dataset"]}
    ds.update(_data_source(data, split, parsed.settings.scratch_dir))
    ds["model_dir"] = model_path
    ds["dataset_type"] = run.prompting["dataset_type"]
    ds["system_prompt"] = run.prompting["system_prompt"]
    if "prompt" in run.prompting:
        ds["prompt"] = run.prompting["prompt"]
    if data.column_map:
        ds["column_map"] = dict(data.column_map)
    ds["train_on_input"] = params["train_on_input"]
    ds["packed"] = params["packed"]
    return ds


def _finetune_config(run: RunPlan, parsed: Parsed, params: dict[str, Any], model_path: str) -> dict[str, Any]:
    table = facts.hyperparameters()
    d = facts.defaults()["finetune"]
    entry = run.model_entry
    cfg: dict[str, Any] = {"output_dir": run.artifacts_dir}
    cfg["model"] = dict(entry.model)
    tokenizer = {"_component_": entry.tokenizer["_component_"]}
    tokenizer.update({k: posixpath.join(model_path, v) for k, v in entry.tokenizer.get("files", {}).items()})
    tokenizer.update({k: v for k, v in entry.tokenizer.items() if k not in ("_component_", "files")})
    cfg["tokenizer"] = tokenizer
    cfg["checkpointer"] = {
        "_component_": d["checkpointer"],
        "checkpoint_dir": model_path,
        "checkpoint_files": entry.checkpointer["checkpoint_files"],
        "recipe_checkpoint": None,
        "output_dir": run.artifacts_dir,
        "model_type": entry.checkpointer["model_type"],
    }
    cfg["resume_from_checkpoint"] = False
    cfg["dataset"] = _dataset(parsed, run, params, "train", model_path)
    if params["validation_during_training"]:
        cfg["dataset_val"] = _dataset(parsed, run, params, "validation", model_path)
    cfg["optimizer"] = {"_component_": params["optimizer"]}
    cfg["lr_scheduler"] = {"_component_": params["lr_scheduler"]}
    cfg["loss"] = {"_component_": d["loss"]}
    for key, spec in table.items():
        at = spec.get("at")
        if at is None or key not in params:
            continue
        if key in ("run_val_every_n_steps", "batch_size_val") and not params["validation_during_training"]:
            continue
        _set_dotted(cfg, at, params[key])
    project = parsed.design.output.wandb_project
    log_dir = posixpath.join(run.artifacts_dir, "logs")
    if project:
        cfg["metric_logger"] = {"_component_": d["metric_logger"]["wandb"], "project": project, "mode": "offline", "log_dir": log_dir}
    else:
        cfg["metric_logger"] = {"_component_": d["metric_logger"]["disk"], "log_dir": log_dir}
    _override_config(cfg, _override_paths(parsed.settings.finetune_overrides))
    return cfg


def _plan_run(index: int, run: Run, parsed: Parsed, experiment_dir: str, warnings: list[tuple[str, str]]) -> RunPlan:
    settings = parsed.settings
    base = next(m for m in parsed.design.models.base if m.name == run.model)
    entry = parsed.catalog.get(run.model)
    assert entry is not None  # checked by the parse stage
    model_path = _resolve_path(base.path, settings.models_dir)
    run_dir = posixpath.join(experiment_dir, run.name)
    fine_tuned = run.type == "fine-tuned"
    if fine_tuned:
        params, sources = _hyperparameters(run, parsed, entry)
        overrides = _override_paths(parsed.settings.finetune_overrides)
        _override_hyperparameters(index, overrides, params, sources)
        resources = _resources(entry, settings, run.compute, mig=run.mig, evaluation=False)
    else:
        params, sources, resources = {}, {}, None
    plan = RunPlan(
        name=run.name, type=run.type, model=run.model, model_entry=entry, model_path=model_path,
        run_dir=run_dir, params=params, sources=sources,
        validation=bool(params.get("validation_during_training")), resources=resources,
        finetune=None, finetune_job=None,
        checkpoint_path=run.parameters.checkpoint_path, mig=run.mig,
        prompting=_prompting(run, parsed),
        dataset_label=parsed.design.data.training.dataset_label,
    )
    if not fine_tuned:
        return plan
    cfg = _finetune_config(plan, parsed, params, model_path)
    d = facts.defaults()["finetune"]["recipes"]
    config_path = posixpath.join(run_dir, "finetune.yaml")
    recipe = d["distributed"] if resources.gpus > 1 else d["single"]
    nproc = (f"--nproc_per_node={resources.gpus}",) if resources.gpus > 1 else ()
    recipe_args = (*nproc, recipe)
    argv = ("tune", "run", *recipe_args, "--config", config_path)
    job = SlurmJob(
        directives=_directives(run.name, resources, slurm_output(plan.artifacts_dir, "slurm-%j.out"), settings),
        environment=_environment(settings),
        exports=(("HF_HUB_OFFLINE", "1"), ("HF_DATASETS_OFFLINE", "1"), ("WANDB_MODE", "offline")),
        workdir=run_dir,
        argv=argv,
        setup=preflight("check-train", "--config", config_path),
        provenance=provenance(plan.artifacts_dir, "provenance", experiment_dir, (posixpath.join(run_dir, "finetune.slurm"), config_path)),
    )
    warnings += [(cause, run.name) for cause in _run_cautions(params, parsed)]
    return replace(plan, finetune=cfg, finetune_job=job, recipe=recipe, recipe_args=recipe_args)


# Usual ranges of values a design may mistype by orders of magnitude (a warning, not an error).
SANE = {"lr": (1e-7, 1e-2), "lora_dropout": (0.0, 0.5), "weight_decay": (0.0, 1.0)}


def _run_cautions(params: dict[str, Any], parsed: Parsed) -> list[str]:
    """What may make a fine-tuned run useless though it is valid, each with how to fix it."""
    out = []
    for key, (low, high) in SANE.items():
        value = params.get(key)
        if isinstance(value, (int, float)) and not low <= value <= high:
            out.append(f"{key} {value:g} is far outside the usual {low:g}..{high:g}: a typo? (e.g. 1e5 for 1e-5)")
    splits = parsed.design.data.training.splits or {}
    if "train" not in splits:
        return out
    steps = math.ceil(splits["train"] / params["batch_size"]) // params["gradient_accumulation_steps"]
    if params.get("max_steps_per_epoch"):
        steps = min(steps, params["max_steps_per_epoch"])
    if steps == 0:
        out.append(
            f"{splits['train']} training examples make fewer batches than gradient_accumulation_steps "
            f"({params['gradient_accumulation_steps']}): no optimizer step would run (torchtune still exits 0); "
            "lower gradient_accumulation_steps or batch_size"
        )
        return out
    total = steps * params["epochs"]
    if total < params.get("num_warmup_steps", 0):
        out.append(
            f"{total} optimizer steps in all but num_warmup_steps is {params['num_warmup_steps']}: "
            "the learning rate never leaves warm-up; lower num_warmup_steps"
        )
    return out


def _grouped(cautions: list[tuple[str, str]]) -> list[str]:
    """One line per cause, naming the runs it concerns (not one line per run)."""
    runs: dict[str, list[str]] = {}
    for cause, run in cautions:
        runs.setdefault(cause, []).append(run)
    lines = []
    for cause, names in runs.items():
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        lines.append(f"runs ({len(names)}: {shown}): {cause}")
    return lines


# --------------------------------------------------------------------------- evaluation
def _matrix(parsed: Parsed) -> list[tuple[str, list[str], list[int] | None, str | None]]:
    design = parsed.design
    if design.evaluation.matrix is not None:
        return [(m.run, list(m.tasks), m.epochs, m.vis_label) for m in design.evaluation.matrix]
    tasks = [t.name for t in design.evaluation.tasks]
    return [(r.name, tasks, None, None) for r in design.runs] if tasks else []


def _cell_settings(run: RunPlan, task: Task, epoch: int | None, vis_label: str | None, model_path: str, parsed: Parsed) -> dict[str, Any]:
    design = parsed.design
    ev = design.evaluation
    dflt = facts.defaults()["evaluation"]
    prompting = _cell_prompting(run, task)
    do_sample = ev.do_sample if ev.do_sample is not None else dflt["do_sample"]
    generation: dict[str, Any] = {"do_sample": do_sample}
    if do_sample:
        generation["temperature"] = ev.temperature
    for key in ("max_tokens", "seed", "max_connections"):
        value = getattr(ev, key)
        value = dflt[key] if value is None else value
        if value is not None:
            generation[key] = value
    # no dataset, or `dataset: same` (the original designs' word for it): the training data
    source = design.data.training.path if task.dataset in (None, SAME_DATA) else task.dataset
    dataset = _resolve_path(source, parsed.settings.scratch_dir)
    return {
        "experiment": design.experiment.name,
        "run": run.name,
        "run_type": run.type,
        "task": task.name,
        "task_description": task.description,
        "epoch": epoch,
        "model": run.model,
        "model_path": model_path,
        "data_path": dataset,
        **prompting,
        "scorers": [{"name": s.name, "params": dict(s.params)} for s in ev.scorers],
        **({"column_map": dict(design.data.training.column_map)} if design.data.training.column_map else {}),
        "generation": generation,
        "vis_label": vis_label or run.name,
    }


SAME_DATA = "same"
METADATA_KEY = "cruijff"  # log.eval.metadata["cruijff"]: the cell's identity


def _cell_metadata(cell_settings: dict[str, Any], stem: str) -> dict[str, Any]:
    """What every eval log carries (`inspect eval --metadata`), so that one pass over the logs of an
    experiment tells the cells apart and joins them with the design."""
    return {
        "experiment": cell_settings["experiment"],
        "run": cell_settings["run"],
        "run_type": cell_settings["run_type"],
        "fine_tuned": cell_settings["run_type"] == "fine-tuned",
        "task": cell_settings["task"],
        "epoch": cell_settings["epoch"],
        "base_model": cell_settings["model"],
        "vis_label": cell_settings["vis_label"],
        "cell": stem,
    }


# inspect model providers: its own Hugging Face one, and cruijff_gen's (cruijff_gen/job/inspect_model.py:
# the same, plus adapter-only checkpoints: base model + LoRA merged in memory).
PROVIDERS = {"merged": "hf", "adapter": "cruijff-hf"}


def _eval_argv(task: Task, model_id: str, model_path: str, settings_path: str, log_dir: str, generation: dict[str, Any], data_path: str, model_args: dict[str, Any], experiment_dir: str, *, model_settings: str, gpus: int, metadata: dict[str, Any]) -> tuple[str, ...]:
    script = _resolve_path(task.script, experiment_dir)
    argv = ["inspect", "eval", f"{script}@{task.name}", "--model", model_id, "-M", f"model_path={model_path}"]
    # the chat template (date pinned) and tokenization training used, written by the job's preflight
    argv += ["--model-config", model_settings]
    # inspect's hf provider samples unless told otherwise: always say which
    argv += ["-M", f"do_sample={_cli_value(generation['do_sample'])}"]
    if gpus > 1 and "device" not in model_args:  # else the hf provider loads everything onto cuda:0
        argv += ["-M", "device=auto"]
    for key, value in model_args.items():
        argv += ["-M", f"{key}={_cli_value(value)}"]
    argv += ["-T", f"data_path={data_path}", "-T", f"config_path={settings_path}", "--log-dir", log_dir]
    # One key holding a mapping: inspect YAML-parses a --metadata value and splits a plain text value
    # at its commas (a vis_label "base, no FT" would become a list); a mapping arrives whole.
    argv += ["--metadata", f"{METADATA_KEY}={yamlio.dump_inline(metadata)}"]
    if "temperature" in generation:
        argv += ["--temperature", _cli_value(generation["temperature"])]
    for key in ("max_tokens", "seed", "max_connections"):
        if key in generation:
            argv += [f"--{key.replace('_', '-')}", _cli_value(generation[key])]
    return tuple(argv)


def _cli_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _plan_cells(parsed: Parsed, runs: dict[str, RunPlan], experiment_dir: str) -> list[EvalCell]:
    design = parsed.design
    tasks = {t.name: t for t in design.evaluation.tasks}
    cells: list[EvalCell] = []
    seen: set[tuple[str, str]] = set()
    design_runs = {r.name: r for r in reversed(design.runs)}  # the first of a name, as a scan finds it
    for run_name, task_names, epochs, vis_label in _matrix(parsed):
        run = runs[run_name]
        design_run = design_runs[run_name]
        entry = run.model_entry
        if run.type == "fine-tuned":
            n_epochs = run.params["epochs"]
            targets = [(e, posixpath.join(run.artifacts_dir, f"epoch_{e}"), f"_epoch{e}") for e in (epochs if epochs is not None else [n_epochs - 1])]
            layers = (design.evaluation.compute,)
        else:
            path = run.checkpoint_path if run.type == "eval-only" else run.model_path
            targets = [(None, path, "")]
            layers = (design.evaluation.compute, design_run.compute)
        res = _resources(entry, parsed.settings, *layers, mig=run.mig, evaluation=True)
        for task_name in task_names:
            task = tasks[task_name]
            for epoch, model_path, suffix in targets:
                stem = f"{task_name}{suffix}"
                if (run_name, stem) in seen:
                    continue  # the same cell listed twice in the matrix
                seen.add((run_name, stem))
                eval_dir = posixpath.join(run.run_dir, "eval")
                settings_path = posixpath.join(eval_dir, f"{stem}.yaml")
                log_dir = posixpath.join(eval_dir, "logs")
                model_settings = posixpath.join(log_dir, f"{stem}.model.yaml")
                cell_settings = _cell_settings(run, task, epoch, vis_label, model_path, parsed)
                label = run_name if epoch is None else f"{run_name}_epoch{epoch}"
                provider = PROVIDERS["adapter" if epoch is not None and run.params.get("save_adapter_weights_only") else "merged"]
                model_id = f"{provider}/{label}"
                argv = _eval_argv(task, model_id, model_path, settings_path, log_dir, cell_settings["generation"], cell_settings["data_path"], parsed.settings.eval_model_args, experiment_dir,
                                  model_settings=model_settings, gpus=res.gpus, metadata=_cell_metadata(cell_settings, stem))
                job = SlurmJob(
                    directives=_directives(f"eval-{run_name}-{stem}", res, slurm_output(posixpath.join(eval_dir, "logs"), f"{stem}-%j.out"), parsed.settings),
                    environment=_environment(parsed.settings),
                    exports=(("HF_HUB_OFFLINE", "1"), ("HF_DATASETS_OFFLINE", "1")),
                    workdir=eval_dir,
                    argv=argv,
                    setup=preflight("check-eval", "--model-path", model_path, "--dataset-type", cell_settings["dataset_type"], "--write", model_settings),
                    provenance=provenance(log_dir, f"{stem}-provenance", experiment_dir,
                                          (posixpath.join(eval_dir, f"{stem}.slurm"), settings_path, argv[2].rsplit("@", 1)[0], model_settings)),
                )
                cells.append(EvalCell(run_name, task_name, epoch, stem, model_path, model_id=model_id, log_dir=log_dir,
                                      settings=cell_settings, job=job, resources=res))
    return cells


# --------------------------------------------------------------------------- entry point
def plan(parsed: Parsed) -> ExperimentPlan:
    design = parsed.design
    experiment_dir = _resolve_path(design.experiment.dir, parsed.settings.scratch_dir).rstrip("/") or "/"
    cautions: list[tuple[str, str]] = []
    runs = [_plan_run(i, r, parsed, experiment_dir, cautions) for i, r in enumerate(design.runs)]
    cells = _plan_cells(parsed, {r.name: r for r in runs}, experiment_dir)
    return ExperimentPlan(parsed, experiment_dir, tuple(runs), tuple(cells), tuple(parsed.warnings) + tuple(_grouped(cautions)))
