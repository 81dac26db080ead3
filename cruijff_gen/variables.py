"""Runs expanded from `variables` (part of the parse stage).

A design that gives `variables` (parameter -> list of values) and no `runs` gets the cartesian
product, in the order the variables are written (models first when `model` varies). Each run is
named by the parameters that vary, with the original workflow's abbreviations: `rank8_lr1e-5`,
`Llama-3.2-1B_rank8`. `controls.add_control_runs: true` adds one `<model>_base` control per model.
Names are stable (same design => same names) and unique; a collision is an error naming both.
"""

from __future__ import annotations

import itertools
from typing import Any

from pydantic import TypeAdapter, ValidationError

from . import facts
from .errors import Problem

ABBREVIATIONS = {"lora_rank": "rank", "lr": "lr", "batch_size": "bs", "model": ""}


def _label(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _converter(name: str):
    from .parse import hyper_type  # parse imports this module

    return TypeAdapter(hyper_type(name)).validate_python


def expand(raw: dict[str, Any], catalog: facts.Catalog) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Runs (raw dicts, as a design would write them) for a design without `runs`."""
    variables = raw.get("variables") or {}
    problems: list[Problem] = []
    if not isinstance(variables, dict):
        return [], [Problem("variables", "expected a mapping of parameter to a list of values")]
    models = [m.get("name") for m in (raw.get("models") or {}).get("base") or [] if isinstance(m, dict)]
    axes: list[tuple[str, list[Any]]] = []
    table = facts.hyperparameters()
    for name, values in variables.items():
        if not isinstance(values, list) or not values:
            problems.append(Problem(f"variables.{name}", f"expected a non-empty list of values, got {values!r}"))
            continue
        if name != "model" and name not in table:
            problems.append(Problem(f"variables.{name}", f"unknown parameter {name!r} (a hyperparameter of data/defaults.yaml, or `model`)"))
            continue
        if name != "model":
            convert = _converter(name)
            for i, value in enumerate(values):
                try:
                    convert(value)
                except ValidationError as exc:
                    problems.append(Problem(f"variables.{name}[{i}]", exc.errors()[0]["msg"]))
        else:
            for i, value in enumerate(values):
                if value not in models:
                    problems.append(Problem(f"variables.model[{i}]", f"model {value!r} is not declared in models.base (declared: {', '.join(map(str, models)) or 'none'})"))
        axes.append((name, values))
    if problems:
        return [], problems
    if "model" not in variables:
        axes.insert(0, ("model", models[:1] if len(models) == 1 else models))
    else:
        axes.sort(key=lambda axis: axis[0] != "model")  # models first, the rest as written

    varying = [name for name, values in axes if len(values) > 1]
    runs: list[dict[str, Any]] = []
    named: dict[str, int] = {}
    for combo in itertools.product(*(values for _, values in axes)):
        chosen = dict(zip((name for name, _ in axes), combo))
        model = chosen.pop("model")
        parts = []
        for name in varying:
            value = model if name == "model" else chosen[name]
            if name == "model":
                entry = catalog.get(str(model))
                parts.append(entry.short_name if entry else str(model))
            else:
                parts.append(f"{ABBREVIATIONS.get(name, name)}{_label(value)}")
        entry = catalog.get(str(model))
        run_name = "_".join(parts) or (entry.short_name if entry else str(model))
        if run_name in named:
            problems.append(Problem("variables", f"two expanded runs would both be named {run_name!r} (combinations {named[run_name] + 1} and {len(runs) + 1}); make the values differ in text"))
            continue
        named[run_name] = len(runs)
        runs.append({"name": run_name, "type": "fine-tuned", "model": model, "parameters": chosen})
    controls = raw.get("controls") or {}
    if isinstance(controls, dict) and controls.get("add_control_runs") is True:
        for model in dict.fromkeys(m for m in models):
            name = f"{model}_base"
            if name in named:
                problems.append(Problem("controls.add_control_runs", f"control run {name!r} collides with an expanded run"))
                continue
            named[name] = len(runs)
            runs.append({"name": name, "type": "control", "model": model, "parameters": {}})
    return runs, problems
