"""Runs expanded from `variables` (part of the parse stage).

A design that gives `variables` (parameter -> list of values) and no `runs` gets the cartesian
product, in the order the variables are written (models first when `model` varies). Each run is
named by the parameters that vary, with the original workflow's abbreviations: `rank8_lr1e-5`,
`Llama-3.2-1B_rank8`. `controls.add_control_runs: true` adds one `<short model name>_base` control per model (`Llama-3.2-1B_base`).
Names are stable (same design => same names) and unique; a collision is an error naming both.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable

from pydantic import TypeAdapter, ValidationError

from . import facts
from .errors import Problem

ABBREVIATIONS = {"lora_rank": "rank", "lr": "lr", "batch_size": "bs", "model": ""}


def _label(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _converter(name: str, type_of: Callable[[str], Any]):
    return TypeAdapter(type_of(name)).validate_python


def expand(raw: dict[str, Any], catalog: facts.Catalog, type_of: Callable[[str], Any]) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Runs (raw dicts, as a design would write them) for a design without `runs`; `type_of(name)`
    is a parameter's type (the parser's, passed in so this module does not import it)."""
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
            convert = _converter(name, type_of)
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
            entry = catalog.get(str(model))
            name = f"{entry.short_name if entry else model}_base"  # named like the runs: the short model name
            if name in named:
                problems.append(Problem("controls.add_control_runs", f"control run {name!r} of model {model!r} collides with another run of that name"))
                continue
            named[name] = len(runs)
            runs.append({"name": name, "type": "control", "model": model, "parameters": {}})
    return runs, problems


def check_runs(raw: dict[str, Any], catalog: facts.Catalog, type_of: Callable[[str], Any]) -> list[Problem]:
    """A design giving both `variables` and `runs`: the fine-tuned runs must be the sweep the
    variables describe, each combination once (so the README's swept variables and the run table
    agree, and an edit to either shows in the check)."""
    expected, problems = expand({**raw, "controls": {}}, catalog, type_of)
    if problems:
        return problems
    names = [n for n in (raw.get("variables") or {}) if n != "model"]
    sweeps_model = "model" in (raw.get("variables") or {})
    controls = raw.get("controls") if isinstance(raw.get("controls"), dict) else {}

    def key(model: Any, params: dict[str, Any]) -> tuple:
        values = []
        for name in names:
            value = params.get(name, controls.get(name))
            try:
                values.append(_converter(name, type_of)(value))
            except ValidationError:
                values.append(value)
        return (model if sweeps_model else None, *values)

    wanted = {key(r["model"], r["parameters"]): r["name"] for r in expected if r["type"] == "fine-tuned"}
    seen: set[tuple] = set()
    for i, run in enumerate(raw.get("runs") or []):
        if not isinstance(run, dict) or run.get("type") != "fine-tuned":
            continue
        params = run.get("parameters") if isinstance(run.get("parameters"), dict) else {}
        combo = key(run.get("model"), params)
        shown = ", ".join(f"{n}={v}" for n, v in zip((["model"] if sweeps_model else []) + names, combo[0 if sweeps_model else 1:]))
        if combo not in wanted:
            problems.append(Problem(f"runs[{i}]", f"{shown} is not a combination of `variables` (runs and variables must describe the same sweep)"))
        elif combo in seen:
            problems.append(Problem(f"runs[{i}]", f"{shown} is run twice"))
        seen.add(combo)
    for combo, name in wanted.items():
        if combo not in seen:
            problems.append(Problem("variables", f"the combination of run {name!r} has no run in `runs`: add it, or drop the value from variables"))
    return problems
