"""The rules across a valid Design's fields (and the cluster settings and the model catalog), one
function per rule: a relative path needs the setting it is relative to; models are declared once
and known to the catalog; runs have unique names, a declared model and the parameters their type
needs; the evaluation matrix names existing runs, tasks and epochs. Each field's own rules are the
schema's (schema.py); after both, nothing downstream can fail on the design.

A rule is `rule(context, i, item) -> [problem, ...]` for the i-th item of its table; the tables
run in the design's order (the design, its models, runs, tasks, matrix entries, then the
evaluation), each rule in turn on one item, so the problems read in the order of the design.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

from pydantic import ValidationError

from . import facts
from .errors import Problem
from .schema import BaseModelSpec, Compute, Design, Evaluation, MatrixEntry, Run, Settings, Task, given_fields, validation_problems
from .unused_fields import did_you_mean


@dataclass(frozen=True)
class Context:
    """What the rules look names up in: the design, settings and catalog, and each name's first index."""

    design: Design
    settings: Settings
    catalog: facts.Catalog
    models: dict[str, int]  # models.base[].name
    run_names: dict[str, int]
    folded_run_names: dict[str, int]  # the run names in any letter case
    tasks: dict[str, int]  # evaluation.tasks[].name
    runs_by_name: dict[str, Run]
    controls_given: dict[str, Any]  # the controls the design wrote (not defaults)


def _first_index(names: Iterable[str]) -> dict[str, int]:
    first: dict[str, int] = {}
    for i, name in enumerate(names):
        first.setdefault(name, i)
    return first


def _needs_base(path: str, where: str, base: str, base_name: str) -> list[Problem]:
    if not path.startswith("/") and not base:
        return [Problem(where, f"relative path {path!r} needs the cluster setting {base_name} (or give an absolute path)")]
    return []


# --------------------------------------------------------------------------- the design
def relative_paths_need_scratch_dir(ctx: Context, _: int, design: Design) -> list[Problem]:
    return (_needs_base(design.experiment.dir, "experiment.dir", ctx.settings.scratch_dir, "scratch_dir")
            + _needs_base(design.data.training.path, "data.training.path", ctx.settings.scratch_dir, "scratch_dir"))


# --------------------------------------------------------------------------- models.base
def catalog_resources_are_compute(ctx: Context, _: int, model: BaseModelSpec) -> list[Problem]:
    """A catalog model's resources reach #SBATCH lines: the same rules as a run's compute."""
    entry = ctx.catalog.get(model.name)
    problems: list[Problem] = []
    for section in ("resources", "eval_resources", "mig"):
        values = getattr(entry, section) if entry is not None else None
        if values:
            try:
                Compute.model_validate(values)
            except ValidationError as exc:
                where = f"model catalog {ctx.settings.model_catalog or 'cruijff_gen/data/catalog.yaml'}: {entry.name}.{section}"
                problems += validation_problems(exc, where)
    return problems


def model_declared_once(ctx: Context, i: int, model: BaseModelSpec) -> list[Problem]:
    first = ctx.models[model.name]
    if first != i:
        return [Problem(f"models.base[{i}].name", f"duplicate model {model.name!r} (also models.base[{first}])")]
    return []


def model_in_catalog(ctx: Context, i: int, model: BaseModelSpec) -> list[Problem]:
    if ctx.catalog.get(model.name) is None:
        names = ctx.catalog.names()
        return [Problem(f"models.base[{i}].name", f"unknown model {model.name!r}{did_you_mean(model.name, names)}; the catalog has: {', '.join(names)}")]
    return []


def relative_model_path_needs_models_dir(ctx: Context, i: int, model: BaseModelSpec) -> list[Problem]:
    return _needs_base(model.path, f"models.base[{i}].path", ctx.settings.models_dir, "models_dir")


# --------------------------------------------------------------------------- runs
def run_name_unique(ctx: Context, i: int, run: Run) -> list[Problem]:
    """Unique, and unique in any letter case (a run is a directory)."""
    first, other = ctx.run_names[run.name], ctx.folded_run_names[run.name.casefold()]
    if first != i:
        return [Problem(f"runs[{i}].name", f"duplicate run name {run.name!r} (also runs[{first}])")]
    if other != i:
        return [Problem(f"runs[{i}].name", f"run name {run.name!r} differs from runs[{other}].name {ctx.design.runs[other].name!r} only by case "
                                          "(their directories would collide on some file systems)")]
    return []


def run_model_declared(ctx: Context, i: int, run: Run) -> list[Problem]:
    if run.model not in ctx.models:
        return [Problem(f"runs[{i}].model", f"model {run.model!r} is not declared in models.base (declared: {', '.join(ctx.models) or 'none'})")]
    return []


def fine_tuned_run_has_lora_rank(ctx: Context, i: int, run: Run) -> list[Problem]:
    if run.type == "fine-tuned" and run.parameters.lora_rank is None and ctx.design.controls.lora_rank is None:
        return [Problem(f"runs[{i}].parameters.lora_rank", "required for fine-tuned runs (give it here or in controls)")]
    return []


def checkpoint_path_only_for_eval_only(ctx: Context, i: int, run: Run) -> list[Problem]:
    if run.type == "fine-tuned" and run.parameters.checkpoint_path is not None:
        return [Problem(f"runs[{i}].parameters.checkpoint_path", "only eval-only runs take a checkpoint_path")]
    return []


def eval_only_run_has_absolute_checkpoint_path(ctx: Context, i: int, run: Run) -> list[Problem]:
    path = run.parameters.checkpoint_path
    if run.type != "eval-only":
        return []
    if path is None:
        return [Problem(f"runs[{i}].parameters.checkpoint_path", "required for eval-only runs (the checkpoint to evaluate)")]
    if not path.startswith("/"):
        return [Problem(f"runs[{i}].parameters.checkpoint_path", f"expected an absolute path, got {path!r}")]
    return []


def _written(ctx: Context, i: int, run: Run, key: str) -> tuple[Any, str]:
    """A run's value of `key` as the design wrote it (its parameters', else controls'; None: neither)
    and the path of the field it is written in."""
    own = given_fields(run.parameters, (key,))
    if key in own:
        return own[key], f"runs[{i}].parameters.{key}"
    return ctx.controls_given.get(key), f"controls.{key}"


def no_lora_on_tied_output(ctx: Context, i: int, run: Run) -> list[Problem]:
    entry = ctx.catalog.get(run.model)
    if entry is not None and run.type == "fine-tuned" and entry.tied_embeddings:
        value, where = _written(ctx, i, run, "apply_lora_to_output")
        if value:
            return [Problem(where, f"{run.model} ties its output layer to the embeddings; torchtune refuses LoRA on it (run {run.name})")]
    return []


def system_prompt_needs_system_turn(ctx: Context, i: int, run: Run) -> list[Problem]:
    entry = ctx.catalog.get(run.model)
    if entry is not None and run.type == "fine-tuned" and not entry.system_role:
        value, where = _written(ctx, i, run, "system_prompt")
        if value:
            return [Problem(where, f"{run.model}'s chat template has no system turn (torchtune raises on a system message); use an empty system_prompt (run {run.name})")]
    return []


def mig_run_fits_mig(ctx: Context, i: int, run: Run) -> list[Problem]:
    entry = ctx.catalog.get(run.model) if run.mig else None
    if entry is not None and entry.mig is None:
        return [Problem(f"runs[{i}].mig", f"model {run.model!r} does not fit a MIG slice (only models with `mig` resources in the catalog do)")]
    return []


# --------------------------------------------------------------------------- evaluation
def task_name_unique(ctx: Context, i: int, task: Task) -> list[Problem]:
    first = ctx.tasks[task.name]
    if first != i:
        return [Problem(f"evaluation.tasks[{i}].name", f"duplicate task name {task.name!r} (also evaluation.tasks[{first}])")]
    return []


def matrix_run_exists(ctx: Context, i: int, entry: MatrixEntry) -> list[Problem]:
    if entry.run not in ctx.runs_by_name:
        return [Problem(f"evaluation.matrix[{i}].run", f"unknown run {entry.run!r} (runs: {', '.join(ctx.runs_by_name)})")]
    return []


def matrix_tasks_exist(ctx: Context, i: int, entry: MatrixEntry) -> list[Problem]:
    return [Problem(f"evaluation.matrix[{i}].tasks[{j}]", f"unknown task {task!r} (evaluation.tasks: {', '.join(ctx.tasks) or 'none'})")
            for j, task in enumerate(entry.tasks) if task not in ctx.tasks]


def matrix_epochs_exist(ctx: Context, i: int, entry: MatrixEntry) -> list[Problem]:
    """The epochs of a matrix entry are its run's: a trained run's, 0-based, fewer than it trains."""
    run = ctx.runs_by_name.get(entry.run)
    if run is None or entry.epochs is None:
        return []
    if run.type != "fine-tuned":
        return [Problem(f"evaluation.matrix[{i}].epochs", f"{run.type} run {run.name!r} is not trained; epochs must be null")]
    n_epochs = run.parameters.epochs or ctx.design.controls.epochs
    return [Problem(f"evaluation.matrix[{i}].epochs[{j}]",
                    f"epoch {epoch} does not exist: epochs are 0-based and run {run.name!r} trains {n_epochs} epoch(s) (0..{n_epochs - 1})")
            for j, epoch in enumerate(entry.epochs) if not 0 <= epoch < n_epochs]


def do_sample_needs_temperature(ctx: Context, _: int, evaluation: Evaluation) -> list[Problem]:
    if evaluation.do_sample and not (evaluation.temperature or 0) > 0:
        return [Problem("evaluation.temperature", "do_sample: true needs a temperature > 0")]
    return []


# --------------------------------------------------------------------------- the tables
Rule = Callable[[Context, int, Any], list[Problem]]
DESIGN_RULES: tuple[Rule, ...] = (relative_paths_need_scratch_dir,)
MODEL_RULES: tuple[Rule, ...] = (catalog_resources_are_compute, model_declared_once, model_in_catalog, relative_model_path_needs_models_dir)
RUN_RULES: tuple[Rule, ...] = (
    run_name_unique, run_model_declared, fine_tuned_run_has_lora_rank, checkpoint_path_only_for_eval_only,
    eval_only_run_has_absolute_checkpoint_path, no_lora_on_tied_output, system_prompt_needs_system_turn, mig_run_fits_mig,
)
TASK_RULES: tuple[Rule, ...] = (task_name_unique,)
MATRIX_RULES: tuple[Rule, ...] = (matrix_run_exists, matrix_tasks_exist, matrix_epochs_exist)
EVALUATION_RULES: tuple[Rule, ...] = (do_sample_needs_temperature,)


def cross_field_problems(design: Design, settings: Settings, catalog: facts.Catalog) -> list[Problem]:
    """Every rule's problems with this design, in the design's order."""
    ctx = Context(design, settings, catalog, _first_index(m.name for m in design.models.base), _first_index(r.name for r in design.runs),
                  _first_index(r.name.casefold() for r in design.runs), _first_index(t.name for t in design.evaluation.tasks),
                  {r.name: r for r in design.runs}, given_fields(design.controls))
    tables: list[tuple[tuple[Rule, ...], list[Any]]] = [
        (DESIGN_RULES, [design]), (MODEL_RULES, design.models.base), (RUN_RULES, design.runs),
        (TASK_RULES, design.evaluation.tasks), (MATRIX_RULES, design.evaluation.matrix or []), (EVALUATION_RULES, [design.evaluation]),
    ]
    problems: list[Problem] = []
    for rules, items in tables:
        for i, item in enumerate(items):
            for rule in rules:
                problems += rule(ctx, i, item)
    return problems
