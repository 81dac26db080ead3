"""Scaffold logs (logs/scaffold-{experiment,torchtune,inspect}.log): the only generated files with
timestamps. One entry per action, in the original workflow's format:

    [YYYY-MM-DD HH:MM:SS] ACTION: Description
    Details: ...
    Result: ...
"""

from __future__ import annotations

import datetime as dt
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from .filekinds import layout, setup_finetune_data
from .plan import ExperimentPlan

LOG_DIR = "logs"


class Progress:
    """`cruijff-gen: rendering 1200/9000 files`, rewritten in place on a terminal for a big
    scaffold (MIN_FILES and more); nothing at all when stderr is a pipe or a log file."""

    MIN_FILES = 500
    STEP = 100

    def __init__(self, what: str, stream: TextIO | None = None):
        self.what = what
        self.stream = stream or sys.stderr

    def __call__(self, done: int, total: int) -> None:
        if total < self.MIN_FILES or not (done % self.STEP == 0 or done == total) or not self.stream.isatty():
            return
        self.stream.write(f"\rcruijff-gen: {self.what} {done}/{total} files" + ("\n" if done == total else ""))
        self.stream.flush()


@dataclass
class Log:
    entries: list[str] = field(default_factory=list)

    def add(self, action: str, description: str, details: str, result: str) -> None:
        stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        self.entries.append(f"[{stamp}] {action}: {description}\nDetails: {details}\nResult: {result}\n")

    def text(self) -> str:
        return "\n".join(self.entries)


def _short(params: dict) -> str:
    keys = ("lora_rank", "lr", "batch_size", "epochs")
    return ", ".join(f"{k}={params[k]}" for k in keys if k in params)


def scaffold_logs(plan: ExperimentPlan, operation: str, changed: list[str], unused: list[str], warnings: list[str], mismatches: int) -> dict[str, str]:
    """The three logs' new entries for one render, keyed by file name."""
    design = plan.design
    runs = plan.runs
    counts = {t: sum(r.type == t for r in runs) for t in ("fine-tuned", "control", "eval-only")}
    changed_set = set(changed)
    exp, tt, ins = Log(), Log(), Log()

    exp.add("DISCOVER_EXPERIMENT", f"Read the design of {design.experiment.name}",
            f"{plan.experiment_dir} (operation: {operation})",
            f"{len(runs)} runs ({counts['fine-tuned']} fine-tuned, {counts['control']} control, "
            f"{counts['eval-only']} eval-only), {len(plan.cells)} eval cells")
    exp.add("READ_TOOL_SPECS", "Tools section", "tools.preparation / tools.evaluation",
            f"Preparation={design.tools.preparation}, Evaluation={design.tools.evaluation}")
    for path in unused:
        exp.add("UNUSED_FIELD", path, "No stage of cruijff_gen consumes this field (a typo, or a key this version does not know)", "Ignored; not written to any generated file")
    for text in warnings:
        exp.add("WARNING", text.split(": ", 1)[0], text, "Generated anyway; check the design")

    entries = layout(plan)
    changed_runs = {path.split("/", 1)[0] for path in changed_set if "/" in path and not path.endswith(".gitkeep")}
    for run in runs:
        status = "changed" if run.name in changed_runs else "unchanged"
        if run.type == "fine-tuned":
            data = setup_finetune_data(run)
            tt.add("GENERATE_RUN", f"{run.name}",
                   f"model={run.model} ({run.model_path}); {_short(run.params)}; recipe={data['recipe']}; "
                   f"slurm gpus={data['slurm']['gpus']} mem={data['slurm']['mem']} time={data['slurm']['time']}",
                   f"{run.name}/setup_finetune.yaml, finetune.yaml, finetune.slurm ({status})")
        else:
            tt.add("SKIP_TRAINING", run.name, f"{run.type} run: no training files", "Run directory holds eval cells only")
    for cell in plan.cells:
        status = "changed" if {cell.settings_relpath, cell.slurm_relpath} & changed_set else "unchanged"
        ins.add("GENERATE_EVAL", f"{cell.run} / {cell.task}" + (f" / epoch {cell.epoch}" if cell.epoch is not None else ""),
                f"evaluates {cell.model_path}; settings {cell.settings_relpath}",
                f"{cell.slurm_relpath} ({status})")
    exp.add("SCAFFOLD_TORCHTUNE_COMPLETE", "Fine-tuning configs generated",
            f"{counts['fine-tuned']} fine-tuned runs", "See logs/scaffold-torchtune.log")
    exp.add("SCAFFOLD_INSPECT_COMPLETE", "Evaluation configs generated",
            f"{len(plan.cells)} eval cells", "See logs/scaffold-inspect.log")
    exp.add("VERIFY", "Every generated value compared with the design",
            f"{len(entries)} files", "All match" if not mismatches else f"{mismatches} mismatch(es)")
    exp.add("COMPLETE", f"{len(changed)} file(s) written", ", ".join(changed[:10]) + (" ..." if len(changed) > 10 else ""),
            "Next: ./submit.sh (see README.md)")
    return {"scaffold-experiment.log": exp.text(), "scaffold-torchtune.log": tt.text(), "scaffold-inspect.log": ins.text()}


CATALOG_COPY = f"{LOG_DIR}/model_catalog.yaml"
OLD_CATALOG = ".git/cruijff-gen-old-catalog.yaml"  # (removed by the update that wrote it)


def catalog_copy(model_catalog: str) -> dict[str, str]:
    """logs/model_catalog.yaml: the cluster's model catalog file as this render read it (committed:
    what the next update compares the file with, since it lives outside the experiment)."""
    if not model_catalog:
        return {}
    try:
        return {CATALOG_COPY: Path(model_catalog).read_text(encoding="utf-8")}
    except (OSError, UnicodeDecodeError):
        return {}


def edited_catalog(root: Path, old: dict, new: dict) -> Path | None:
    """When the model catalog file (same setting) changed since the last commit's render: a copy of
    it as it was then (under .git/), for rendering the merge base; else None."""
    path = new.get("model_catalog") or ""
    if not path or old.get("model_catalog") != path:
        return None  # no catalog, or a changed setting (a design change of its own)
    from . import gitrepo

    before, now = gitrepo.head_text(root, CATALOG_COPY), catalog_copy(path).get(CATALOG_COPY)
    if before is None or now is None or before == now:
        return None
    copy = root / OLD_CATALOG
    copy.write_text(before, encoding="utf-8")
    return copy


def append_logs(root: Path, logs: dict[str, str]) -> list[str]:
    directory = root / LOG_DIR
    directory.mkdir(exist_ok=True)
    written = []
    for name, text in logs.items():
        if not text:
            continue
        path = directory / name
        previous = path.read_text(encoding="utf-8") if path.exists() else ""
        separator = "\n" if previous and not previous.endswith("\n\n") else ""
        path.write_text(previous + separator + text, encoding="utf-8")
        written.append(f"{LOG_DIR}/{name}")
    return written


def update_logs(plan: ExperimentPlan, changes: list[str], changed_files: list[str]) -> dict[str, str]:
    """Entries for an update: what the design change was and which files it rewrote."""
    exp, tt, ins = Log(), Log(), Log()
    exp.add("UPDATE", f"Design of {plan.design.experiment.name} changed",
            "; ".join(changes) or "no design change (template or settings only)",
            f"{len(changed_files)} file(s) changed")
    for run in plan.runs:
        mine = [f for f in changed_files if f.startswith(run.name + "/")]
        training = [f for f in mine if "/eval/" not in f]
        evals = [f for f in mine if "/eval/" in f]
        if training:
            tt.add("UPDATE_RUN", run.name, ", ".join(training), "Re-rendered from the updated design")
        if evals:
            ins.add("UPDATE_EVAL", run.name, ", ".join(evals), "Re-rendered from the updated design")
    names = {r.name for r in plan.runs}
    gone = sorted({f.split("/", 1)[0] for f in changed_files if "/" in f} - names - {LOG_DIR})
    for run in gone:
        tt.add("REMOVE_RUN", run, "The run is no longer in the design", "Its generated files were removed (git history keeps them)")
    exp.add("VERIFY", "Every generated value compared with the design", f"{len(plan.runs)} runs, {len(plan.cells)} eval cells", "All match")
    return {"scaffold-experiment.log": exp.text(), "scaffold-torchtune.log": tt.text(), "scaffold-inspect.log": ins.text()}
