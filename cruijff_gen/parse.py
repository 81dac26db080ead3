"""Parse stage: raw answers (experiment_summary sections + cluster settings) -> a typed Design.

`parse()` is the stage's one entry point. It renames aliases, fills experiment.dir's default,
expands runs from `variables`, then validates: declaratively, by the schema (schema.py: pydantic
models of the value types of field_types.py; the hyperparameter table of data/defaults.yaml for
`controls` and `runs[].parameters`), then by the rules across fields (cross_checks.py: runs ->
models, matrix -> runs/tasks, epochs, names), so that nothing after this stage can fail on bad
input. Every error names the path of the offending value (`runs[3].parameters.lr: expected a
number, got 'fast'`). Fields nothing reads are refused or reported as unused (unused_fields.py).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from . import facts, variables
from .cross_checks import cross_field_problems
from .errors import CruijffError, DesignError, Problem
from .experiment_dir import DESIGN_SECTIONS, DEST_KEY, empty_section
from .field_types import hyper_type, shown
from .schema import SETTINGS_KEYS, Design, Settings, validation_problems
from .unused_fields import extra_keys, unknown_hyperparameters, unused_fields

# experiment.dir left out where no experiment directory is known (cruijff-gen plan SUMMARY)
NO_DIR = Problem("experiment.dir", "not given, and no destination to default to: give it, or --dest DIR (its default is the experiment's directory)")


# --------------------------------------------------------------------------- result
@dataclass(frozen=True)
class Parsed:
    design: Design
    settings: Settings
    catalog: facts.Catalog
    unused: list[str] = field(default_factory=list)  # paths of given fields nothing consumes
    warnings: list[str] = field(default_factory=list)
    expanded: bool = False  # runs came from `variables`


def parse(answers: dict[str, Any], extra_top_level: tuple[str, ...] = ()) -> Parsed:
    """Validate raw answers (summary sections + settings) into a Parsed design, or raise DesignError."""
    if not isinstance(answers, dict):
        raise DesignError(Problem("", f"expected a mapping of sections ({', '.join(DESIGN_SECTIONS)}), got {shown(answers)}"))
    problems: list[Problem] = []
    # Copier fills a section the data file lacks with its default: that is a missing section. An
    # empty list stays, so `runs: []` reads "must not be empty" rather than "missing".
    raw_design = copy.deepcopy({k: answers[k] for k in DESIGN_SECTIONS if not empty_section(answers.get(k)) or answers.get(k) == []})
    problems = _apply_aliases(raw_design)
    if problems:
        raise DesignError(problems)
    experiment = raw_design.get("experiment")
    if isinstance(experiment, dict) and experiment.get("dir") is None and answers.get(DEST_KEY):
        experiment["dir"] = answers[DEST_KEY]  # omitted: the experiment's own directory (experiment_dir.read_answers)
    raw_settings = {k: answers[k] for k in SETTINGS_KEYS if k in answers}
    try:
        settings = Settings.model_validate(raw_settings)
    except ValidationError as exc:
        raise DesignError([Problem(f"settings.{p.path}", p.message) for p in validation_problems(exc)]) from None
    try:
        catalog = facts.catalog(settings.model_catalog)
    except CruijffError as exc:
        raise DesignError(Problem("settings.model_catalog", str(exc))) from exc
    expanded = raw_design.get("runs") in (None, []) and bool(raw_design.get("variables"))
    swept = raw_design.get("variables") if isinstance(raw_design.get("variables"), dict) else {}
    controls = raw_design.get("controls")
    if isinstance(controls, dict):  # a swept value is every run's own: controls need not repeat it
        for name, values in swept.items():
            if name not in controls and isinstance(values, list) and values and name in facts.hyperparameters():
                controls[name] = values[0]
    if expanded:
        runs, problems = variables.expand(raw_design, catalog, hyper_type)
        if problems:
            raise DesignError(problems)
        raw_design["runs"] = runs
    try:
        design = Design.model_validate(raw_design)
    except ValidationError as exc:
        raise DesignError([NO_DIR if p.path == "experiment.dir" and p.message == "required field is missing" else p for p in validation_problems(exc)]) from None
    if swept and not expanded:  # the values are valid: now the runs must be the sweep they describe
        problems = variables.check_runs(raw_design, catalog, hyper_type)
        if problems:
            raise DesignError(problems)
    problems = unknown_hyperparameters(design) + cross_field_problems(design, settings, catalog)
    if problems:
        raise DesignError(list({p.path: p for p in reversed(problems)}.values())[::-1] if len(problems) > 1 else problems)
    warnings: list[str] = []
    if design.controls.add_control_runs and not expanded:
        warnings.append("controls.add_control_runs: not used: it adds controls only to runs expanded from variables (this design lists its runs)")
    unused = unused_fields(design) + extra_keys(extra_top_level)
    if design.output.base_directory is not None:
        warnings.append(
            "output.base_directory: not used: checkpoints always go to <experiment dir>/<run>/artifacts/ "
            "(SLURM output, torchtune output_dir and eval cells all point there)"
        )
    return Parsed(design, settings, catalog, unused, warnings, expanded)


def _apply_aliases(raw: dict[str, Any]) -> list[Problem]:
    """Rename alias keys (data/defaults.yaml `aliases`) in place; both forms given is an error."""
    table = facts.defaults().get("aliases", {})
    problems: list[Problem] = []

    def rename(mapping: Any, aliases: dict[str, str], where: str) -> None:
        if not isinstance(mapping, dict):
            return
        for alias, name in aliases.items():
            if alias in mapping:
                if name in mapping:
                    problems.append(Problem(f"{where}.{alias}", f"give either {alias} or {name}, not both"))
                else:
                    mapping[name] = mapping.pop(alias)

    params = table.get("parameters", {})
    rename(raw.get("controls"), params, "controls")
    rename(raw.get("variables"), params, "variables")
    runs = raw.get("runs")
    for i, run in enumerate(runs if isinstance(runs, list) else []):
        if isinstance(run, dict):
            rename(run.get("parameters"), params, f"runs[{i}].parameters")
    rename(raw.get("experiment"), table.get("experiment", {}), "experiment")
    rename((raw.get("data") or {}).get("training") if isinstance(raw.get("data"), dict) else None, table.get("data.training", {}), "data.training")
    return problems
