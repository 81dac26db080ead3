"""The rules across a valid Design's fields (and the cluster settings and the model catalog), one
function per rule: a relative path needs the setting it is relative to; models are declared once
and known to the catalog; runs have unique names, a declared model and the parameters their type
needs; the evaluation matrix names existing runs, tasks and epochs. Each field's own rules are the
schema's (schema.py); after both, nothing downstream can fail on the design.

A rule is `rule(context, i, item) -> problems` for the i-th item of its table; the tables run in the
design's order (the design, its models, runs, tasks, matrix entries, then the evaluation), each
rule in turn on one item, so the problems read in the order of the design.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

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


def _first_index(names: Iterable[str]) -> dict[str, int]:
    first: dict[str, int] = {}
    for i, name in enumerate(names):
        first.setdefault(name, i)
    return first


def _needs_base(path: str, where: str, base: str, base_name: str) -> Iterator[Problem]:
    if not path.startswith("/") and not base:
        yield Problem(where, f"relative path {path!r} needs the cluster setting {base_name} (or give an absolute path)")


# --------------------------------------------------------------------------- the design
def relative_paths_need_scratch_dir(ctx: Context, _: int, design: Design) -> Iterator[Problem]:
    yield from _needs_base(design.experiment.dir, "experiment.dir", ctx.settings.scratch_dir, "scratch_dir")
    yield from _needs_base(design.data.training.path, "data.training.path", ctx.settings.scratch_dir, "scratch_dir")


# --------------------------------------------------------------------------- models.base
def catalog_resources_are_compute(ctx: Context, _: int, model: BaseModelSpec) -> Iterator[Problem]:
    """A catalog model's resources reach #SBATCH lines: the same rules as a run's compute."""
    entry = ctx.catalog.get(model.name)
    for section in ("resources", "eval_resources", "mig"):
        values = getattr(entry, section) if entry is not None else None
        if values:
            try:
                Compute.model_validate(values)
            except ValidationError as exc:
                where = f"model catalog {ctx.settings.model_catalog or 'cruijff_gen/data/catalog.yaml'}: {entry.name}.{section}"
                yield from validation_problems(exc, where)


def model_declared_once(ctx: Context, i: int, model: BaseModelSpec) -> Iterator[Problem]:
    first = ctx.models[model.name]
    if first != i:
        yield Problem(f"models.base[{i}].name", f"duplicate model {model.name!r} (also models.base[{first}])")


def model_in_catalog(ctx: Context, i: int, model: BaseModelSpec) -> Iterator[Problem]:
    if ctx.catalog.get(model.name) is None:
        names = ctx.catalog.names()
        yield Problem(f"models.base[{i}].name", f"unknown model {model.name!r}{did_you_mean(model.name, names)}; the catalog has: {', '.join(names)}")


def relative_model_path_needs_models_dir(ctx: Context, i: int, model: BaseModelSpec) -> Iterator[Problem]:
    yield from _needs_base(model.path, f"models.base[{i}].path", ctx.settings.models_dir, "models_dir")


# --------------------------------------------------------------------------- runs
def run_name_unique(ctx: Context, i: int, run: Run) -> Iterator[Problem]:
    """Unique, and unique in any letter case (a run is a directory)."""
    first, other = ctx.run_names[run.name], ctx.folded_run_names[run.name.casefold()]
    if first != i:
        yield Problem(f"runs[{i}].name", f"duplicate run name {run.name!r} (also runs[{first}])")
    elif other != i:
        yield Problem(f"runs[{i}].name", f"run name {run.name!r} differs from runs[{other}].name {ctx.design.runs[other].name!r} only by case "
                                         "(their directories would collide on some file systems)")


def run_model_declared(ctx: Context, i: int, run: Run) -> Iterator[Problem]:
    if run.model not in ctx.models:
        yield Problem(f"runs[{i}].model", f"model {run.model!r} is not declared in models.base (declared: {', '.join(ctx.models) or 'none'})")


def fine_tuned_run_has_lora_rank(ctx: Context, i: int, run: Run) -> Iterator[Problem]:
    if run.type == "fine-tuned" and run.parameters.lora_rank is None and ctx.design.controls.lora_rank is None:
        yield Problem(f"runs[{i}].parameters.lora_rank", "required for fine-tuned runs (give it here or in controls)")


def checkpoint_path_only_for_eval_only(ctx: Context, i: int, run: Run) -> Iterator[Problem]:
    if run.type == "fine-tuned" and run.parameters.checkpoint_path is not None:
        yield Problem(f"runs[{i}].parameters.checkpoint_path", "only eval-only runs take a checkpoint_path")


def eval_only_run_has_absolute_checkpoint_path(ctx: Context, i: int, run: Run) -> Iterator[Problem]:
    path = run.parameters.checkpoint_path
    if run.type != "eval-only":
        return
    if path is None:
        yield Problem(f"runs[{i}].parameters.checkpoint_path", "required for eval-only runs (the checkpoint to evaluate)")
    elif not path.startswith("/"):
        yield Problem(f"runs[{i}].parameters.checkpoint_path", f"expected an absolute path, got {path!r}")


def _written(ctx: Context, i: int, run: Run, key: str) -> tuple[Any, str]:
    """A run's value of `key` as the design wrote it (its parameters', else controls'; None: neither)
    and the path of the field it is written in."""
    own = given_fields(run.parameters, (key,))
    if key in own:
        return own[key], f"runs[{i}].parameters.{key}"
    return given_fields(ctx.design.controls, (key,)).get(key), f"controls.{key}"


def no_lora_on_tied_output(ctx: Context, i: int, run: Run) -> Iterator[Problem]:
    entry = ctx.catalog.get(run.model)
    if entry is not None and run.type == "fine-tuned" and entry.tied_embeddings:
        value, where = _written(ctx, i, run, "apply_lora_to_output")
        if value:
            yield Problem(where, f"{run.model} ties its output layer to the embeddings; torchtune refuses LoRA on it (run {run.name})")


def system_prompt_needs_system_turn(ctx: Context, i: int, run: Run) -> Iterator[Problem]:
    entry = ctx.catalog.get(run.model)
    if entry is not None and run.type == "fine-tuned" and not entry.system_role:
        value, where = _written(ctx, i, run, "system_prompt")
        if value:
            yield Problem(where, f"{run.model}'s chat template has no system turn (torchtune raises on a system message); use an empty system_prompt (run {run.name})")


def mig_run_fits_mig(ctx: Context, i: int, run: Run) -> Iterator[Problem]:
    entry = ctx.catalog.get(run.model)
    if run.mig and entry is not None and entry.mig is None:
        yield Problem(f"runs[{i}].mig", f"model {run.model!r} does not fit a MIG slice (only models with `mig` resources in the catalog do)")


# --------------------------------------------------------------------------- evaluation
def task_name_unique(ctx: Context, i: int, task: Task) -> Iterator[Problem]:
    first = ctx.tasks[task.name]
    if first != i:
        yield Problem(f"evaluation.tasks[{i}].name", f"duplicate task name {task.name!r} (also evaluation.tasks[{first}])")


def matrix_run_exists(ctx: Context, i: int, entry: MatrixEntry) -> Iterator[Problem]:
    if entry.run not in ctx.runs_by_name:
        yield Problem(f"evaluation.matrix[{i}].run", f"unknown run {entry.run!r} (runs: {', '.join(ctx.runs_by_name)})")


def matrix_tasks_exist(ctx: Context, i: int, entry: MatrixEntry) -> Iterator[Problem]:
    for j, task in enumerate(entry.tasks):
        if task not in ctx.tasks:
            yield Problem(f"evaluation.matrix[{i}].tasks[{j}]", f"unknown task {task!r} (evaluation.tasks: {', '.join(ctx.tasks) or 'none'})")


def matrix_epochs_exist(ctx: Context, i: int, entry: MatrixEntry) -> Iterator[Problem]:
    """The epochs of a matrix entry are its run's: a trained run's, 0-based, fewer than it trains."""
    run = ctx.runs_by_name.get(entry.run)
    if run is None or entry.epochs is None:
        return
    if run.type != "fine-tuned":
        yield Problem(f"evaluation.matrix[{i}].epochs", f"{run.type} run {run.name!r} is not trained; epochs must be null")
        return
    n_epochs = run.parameters.epochs or ctx.design.controls.epochs
    for j, epoch in enumerate(entry.epochs):
        if not 0 <= epoch < n_epochs:
            yield Problem(f"evaluation.matrix[{i}].epochs[{j}]",
                          f"epoch {epoch} does not exist: epochs are 0-based and run {run.name!r} trains {n_epochs} epoch(s) (0..{n_epochs - 1})")


def do_sample_needs_temperature(ctx: Context, _: int, evaluation: Evaluation) -> Iterator[Problem]:
    if evaluation.do_sample and not (evaluation.temperature or 0) > 0:
        yield Problem("evaluation.temperature", "do_sample: true needs a temperature > 0")


# --------------------------------------------------------------------------- the tables
Rule = Callable[[Context, int, Any], Iterable[Problem]]
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
                  {r.name: r for r in design.runs})
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
