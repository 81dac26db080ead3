"""What changed between two designs, as the lines an update's commit message and log list.

`design_changes(old, new)` compares two answers mappings section by section (the design's
sections, then the cluster settings); lists of named things (runs, matrix rows, models) are compared
by name, so a change reads `runs.r8.parameters.lr: 1e-05 -> 2e-05` and a new run reads
`add run r32`. `commit_message` makes the subject and body of the commit a render or an update
makes.
"""

from __future__ import annotations

from typing import Any

from . import facts, yamlio
from .parse import DESIGN_SECTIONS
from .plan import ExperimentPlan
from .schema import SETTINGS_KEYS


def _keyed(section: str, value: Any) -> Any:
    """Lists of named things become mappings, so a change reads `runs.r8.parameters.lr`."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        key = "run" if section == "matrix" else "name"
        if all(key in v for v in value) and len({str(v[key]) for v in value}) == len(value):
            return {str(v[key]): v for v in value}
    return value


def _show(value: Any) -> str:
    return "(none)" if value is None else yamlio.dump_inline(value)


def design_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    changes = []
    for section in (*DESIGN_SECTIONS, *SETTINGS_KEYS):
        before, after = old.get(section), new.get(section)
        if before == after:
            continue
        if section == "runs":
            old_runs, new_runs = _keyed("runs", before or []), _keyed("runs", after or [])
            if isinstance(old_runs, dict) and isinstance(new_runs, dict):
                changes += [f"add run {n}" for n in new_runs if n not in old_runs]
                changes += [f"remove run {n}" for n in old_runs if n not in new_runs]
                before = {n: r for n, r in old_runs.items() if n in new_runs}
                after = {n: r for n, r in new_runs.items() if n in old_runs}
        a, b = (dict(facts.flat_items(v, section, _keyed)) for v in (before, after))
        for key in dict.fromkeys([*a, *b]):  # first-seen order, as before; O(n) at 1,000s of runs
            if a.get(key) != b.get(key):
                changes.append(f"{key}: {_show(a.get(key))} -> {_show(b.get(key))}")
    return changes


def commit_message(the_plan: ExperimentPlan, verb: str = "Scaffold", changes: list[str] | None = None) -> str:
    """The commit a render makes: `verb` and the plan's size, or, for an update (`changes`, the
    design changes), the first change as subject and every change in the body."""
    name = the_plan.design.experiment.name
    if changes is None:
        runs = the_plan.runs
        kinds = ", ".join(f"{n} {t}" for t in ("fine-tuned", "control", "eval-only") if (n := sum(r.type == t for r in runs)))
        return f"{verb} {name}: {len(runs)} runs ({kinds}), {len(the_plan.cells)} eval cells"
    first = changes[0] if changes else "re-render"
    subject = f"Update {name}: {first}" + (f" (and {len(changes) - 1} more)" if len(changes) > 1 else "")
    return subject + ("\n\n" + "\n".join(f"- {c}" for c in changes) if len(changes) > 1 else "")
