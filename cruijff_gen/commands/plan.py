"""`cruijff-gen plan`: dry run. Shows the run table, the eval cells and the files a scaffold would
write (new / changed / unchanged against a destination), writing nothing."""

from __future__ import annotations

from pathlib import Path

from ..parse import parse
from ..plan import plan
from ..project import ANSWERS_FILE, read_design_file
from ..render import render, yaml_inline
from .render import check_only


def _answers(design: Path, settings: Path | None) -> dict:
    path = design / ANSWERS_FILE if design.is_dir() else design
    answers = read_design_file(path)
    if settings is not None:
        answers = {**read_design_file(settings), **answers}
    return answers


def run(design: Path, settings: Path | None = None, dest: Path | None = None, only: tuple[str, ...] = ()) -> int:
    answers = _answers(design, settings)
    parsed = parse(answers)
    the_plan = plan(parsed)
    check_only(the_plan, only)
    if dest is None and design.is_dir():
        dest = design
    out = [f"Experiment {the_plan.design.experiment.name} -> {the_plan.experiment_dir}"
           + (" (runs expanded from variables)" if parsed.expanded else ""), ""]
    header = ("run", "type", "model", "lora_rank", "lr", "batch_size", "epochs", "gpus", "mem", "time")
    rows = [header]
    for r in the_plan.runs:
        p, res = r.params, r.resources
        rows.append((r.name, r.type, r.model,
                     *(yaml_inline(p[k]) if k in p else "-" for k in ("lora_rank", "lr", "batch_size", "epochs")),
                     *((str(res.gpus), res.mem, res.time) if res else ("-", "-", "-"))))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    out += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    out += ["", f"{len(the_plan.cells)} eval cell(s):"]
    out += [f"  {c.slurm_relpath}  evaluates {c.model_path}" for c in the_plan.cells]
    files = render(the_plan, answers, only)
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
