"""`cruijff-gen plan`: dry run. Shows the run table, the eval cells and the files a scaffold would
write (new / changed / unchanged against a destination), writing nothing."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

from ..experiment_dir import ANSWERS_FILE, DEST_KEY, SUMMARY_FILE, read_answers, read_design_file
from ..parse import parse
from ..plan import plan
from ..render import render, yaml_inline
from ..schema import SETTINGS_KEYS
from .front import user_settings
from .render import check_only


def _settings_file(path: Path) -> dict[str, Any]:
    """A --settings file: flat `key: value`, or Copier's settings file itself (`defaults:` wrapper)."""
    data = read_design_file(path)
    if set(data) <= {"defaults", "trust"} and isinstance(data.get("defaults"), dict):
        data = data["defaults"]
    return {k: v for k, v in data.items() if k in SETTINGS_KEYS}


def _answers(design: Path, settings: Path | None, dest: Path | None) -> dict[str, Any]:
    """What `copier copy` (a new DEST) or `copier update` (an existing one) would render: Copier's
    user settings file (COPIER_SETTINGS_PATH or its default place; `defaults:`), then the
    destination's recorded answers, then a --settings file, then the design file's own keys."""
    if design.is_dir():
        return {**user_settings(), **read_answers(design)}
    out: dict[str, Any] = user_settings()
    if dest is not None and (dest / ANSWERS_FILE).is_file():
        out.update({k: v for k, v in read_answers(dest).items() if k in SETTINGS_KEYS or k == DEST_KEY})
    elif dest is not None:
        out[DEST_KEY] = str(dest.absolute())
    if settings is not None:
        out.update(_settings_file(settings))
    return {**out, **read_design_file(design)}


def run(design: Path, settings: Path | None = None, dest: Path | None = None, only: tuple[str, ...] = ()) -> int:
    if dest is None and design.is_dir():
        dest = design
    answers = _answers(design, settings, dest)
    parsed = parse(answers)
    the_plan = plan(parsed)
    check_only(the_plan, only)
    shown = {r.name for r in the_plan.runs if not only or any(fnmatch.fnmatchcase(r.name, p) for p in only)}
    out = [f"Experiment {the_plan.design.experiment.name} -> {the_plan.experiment_dir}"
           + (" (runs expanded from variables)" if parsed.expanded else ""), ""]
    header = ("run", "type", "model", "lora_rank", "lr", "batch_size", "epochs", "gpus", "mem", "time")
    rows = [header]
    for r in (r for r in the_plan.runs if r.name in shown):
        p, res = r.params, r.resources
        rows.append((r.name, r.type, r.model,
                     *(yaml_inline(p[k]) if k in p else "-" for k in ("lora_rank", "lr", "batch_size", "epochs")),
                     *((str(res.gpus), res.mem, res.time) if res else ("-", "-", "-"))))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    out += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    cells = [c for c in the_plan.cells if c.run in shown]
    out += ["", f"{len(cells)} eval cell(s)" + (f" of {len(the_plan.cells)}" if only else "") + ":"]
    out += [f"  {c.slurm_relpath}  evaluates {c.model_path}" for c in cells]
    files = render(the_plan, answers, only)
    if dest is not None and (dest / SUMMARY_FILE).exists():
        del files[SUMMARY_FILE]  # the user's own file, never rewritten (only a first scaffold writes it)
    counts = {"new": 0, "changed": 0, "unchanged": 0}
    lines = []
    for rel, text in files.items():
        state = "new"
        if dest is not None and (dest / rel).exists():
            state = "unchanged" if (dest / rel).read_text(encoding="utf-8") == text else "changed"
        counts[state] += 1
        if state != "unchanged":
            lines.append(f"  {state:<9} {rel}")
    out += ["", f"Files: {counts['new']} new, {counts['changed']} changed, {counts['unchanged']} unchanged (plus logs/)"] + lines
    for path in parsed.unused:
        out.append(f"warning: unused field {path}")
    out += [f"warning: {w}" for w in the_plan.warnings]
    print("\n".join(out))
    return 0
