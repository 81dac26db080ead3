"""`cruijff-gen results [RUN ...]`: every eval cell's scores, joined with the design and the losses.

* Scores: the inspect logs in `<run>/eval/logs/` (`inspect_ai.log.read_eval_log`, headers only),
  each matched to its cell by the identity every cell's log carries (`log.eval.metadata["cruijff"]`:
  experiment, run, run_type, fine_tuned, task, epoch, base_model, vis_label, cell); of several logs of
  one cell (a retry), the newest successful one.
* Parameters: the run's resolved hyperparameters from the plan; the columns are the swept ones (the
  design's `variables`, and whatever the runs' own parameters make differ).
* Losses: the training job's output (`<run>/artifacts/slurm-<job>.out`): the last training loss of
  the cell's epoch (torchtune's progress lines `<epoch+1>|<step>|Loss: <x>`) and its validation loss
  (`validation: epoch=<E> step=<S> loss=<x> batches=<n> (epoch end)`).
* Where each result came from: the commit the eval job ran from (its provenance record), and
  whether it is stale (see `cruijff-gen status`).

Every cell has a row, eval-only and control runs included; a cell without a log says so. Output: a
table on stdout (or `--json`), `results.csv`, and PNG plots when matplotlib is installed (score vs
epoch per run; score vs each swept parameter, controls as horizontal lines), in `results/` of the
experiment (git-ignored by its own .gitignore, like the logs the results are made from) or `--out`.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import lifecycle as lc
from ..experiment_dir import read_answers
from ..parse import parse
from ..plan import DERIVED, METADATA_KEY, RUN, ExperimentPlan, plan
from ..yamlio import dump_inline

RESULTS_DIR = "results"
CSV_NAME = "results.csv"

NUMBER = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf)"
TRAIN_LOSS = re.compile(rf"(?<![\d|])(\d+)\|(\d+)\|Loss: ({NUMBER})")
VALIDATION = re.compile(rf"validation: epoch=(\d+) step=(\d+) loss=({NUMBER}) batches=(\d+)( \(epoch end\))?")


# --------------------------------------------------------------------------- losses
@dataclass
class Losses:
    train: dict[tuple[int, int], float] = field(default_factory=dict)  # (epoch, step) -> loss; epoch 0-based
    validation: list[tuple[int, int, float, bool]] = field(default_factory=list)  # (epoch, step, loss, epoch end)

    def train_loss(self, epoch: int | None) -> float | None:
        """The last training loss logged in `epoch` (None: in the whole run)."""
        steps = [(e, s) for e, s in self.train if epoch is None or e == epoch]
        return self.train[max(steps)] if steps else None

    def val_loss(self, epoch: int | None) -> float | None:
        """The validation loss at the end of `epoch` (else its last one; None: the run's last)."""
        found = [v for v in self.validation if epoch is None or v[0] == epoch]
        ends = [v for v in found if v[3]]
        return (ends or found)[-1][2] if found else None


def parse_losses(text: str) -> Losses:
    """Losses from a training job's output. torchtune's progress bar rewrites its line with `\\r`
    and repeats the last step's text, so a step may appear several times: its last value counts."""
    out = Losses()
    for match in TRAIN_LOSS.finditer(text):
        out.train[(int(match.group(1)) - 1, int(match.group(2)))] = float(match.group(3))
    for match in VALIDATION.finditer(text):
        out.validation.append((int(match.group(1)), int(match.group(2)), float(match.group(3)), bool(match.group(5))))
    return out


def _training_output(root: Path, paths: lc.Paths, unit: lc.Unit | None, record: dict[str, Any] | None) -> Path | None:
    if unit is None:
        return None
    if record is not None:
        path = paths.local(lc.output_file(unit, record["job"]))
        if path.is_file():
            return path
    # not submitted by cruijff-gen (sbatch by hand): the newest output of the training job
    pattern = Path(lc.output_file(unit, "*")).name
    found = sorted(paths.local(lc.output_file(unit, "x")).parent.glob(pattern), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


# --------------------------------------------------------------------------- inspect logs
@dataclass
class Found:
    path: str
    status: str
    created: str
    scores: dict[str, float]
    samples: int | None


def read_logs(log_dir: Path) -> dict[tuple[str, str], list[Found]]:
    """The eval logs in a cell directory, by (run, cell) from their cruijff metadata."""
    from inspect_ai.log import list_eval_logs, read_eval_log

    out: dict[tuple[str, str], list[Found]] = {}
    if not log_dir.is_dir():
        return out
    for info in list_eval_logs(str(log_dir), recursive=False):
        try:
            log = read_eval_log(info.name, header_only=True)
        except Exception as exc:  # noqa: BLE001 - a log being written, or broken: say so, go on
            print(f"cruijff-gen: warning: cannot read {info.name}: {exc}", file=sys.stderr)
            continue
        identity = (log.eval.metadata or {}).get(METADATA_KEY)
        if not isinstance(identity, dict) or "run" not in identity or "cell" not in identity:
            continue
        scores: dict[str, float] = {}
        if log.results is not None:
            for score in log.results.scores:
                for name, metric in score.metrics.items():
                    scores[f"{score.name}/{name}"] = metric.value
        out.setdefault((str(identity["run"]), str(identity["cell"])), []).append(Found(
            path=info.name.removeprefix("file://"), status=log.status, created=str(log.eval.created),
            scores=scores, samples=log.results.total_samples if log.results else None))
    return out


def best(found: list[Found]) -> Found | None:
    """The newest successful log, else the newest."""
    if not found:
        return None
    ok = [f for f in found if f.status == "success"]
    return max(ok or found, key=lambda f: f.created)


# --------------------------------------------------------------------------- the table
def swept(the_plan: ExperimentPlan) -> list[str]:
    """The parameters the design varies across fine-tuned runs: its `variables`, and the
    hyperparameters runs set themselves that differ (derived ones, such as lora_alpha, aside)."""
    trained = [r for r in the_plan.runs if r.type == "fine-tuned"]
    names = [k for k in (the_plan.design.variables or {}) if k != "model"]
    for run in trained:
        for key, source in run.sources.items():
            if source == RUN and key not in names:
                names.append(key)
    out = [k for k in names if len({dump_inline(r.params.get(k)) for r in trained}) > 1
           or (k in (the_plan.design.variables or {}))]
    if len({r.model for r in the_plan.runs}) > 1:
        out.insert(0, "model")
    return [k for k in out if not any(r.sources.get(k) == DERIVED for r in trained)]


def collect(root: Path, the_plan: ExperimentPlan, runs: tuple[str, ...] = ()) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """The rows (one per eval cell), the swept parameter columns and the score columns."""
    paths = lc.Paths(root, the_plan)
    units = lc.units(the_plan)
    wanted = {u.key for u in lc.select(units, runs)}
    by_key = {u.key: u for u in units}
    status_rows, _ = lc.assess(root, the_plan, None)  # records, provenance and staleness; no SLURM
    status = {r.unit.key: r for r in status_rows}
    params = swept(the_plan)
    logs: dict[tuple[str, str], list[Found]] = {}
    read_dirs: set[str] = set()
    losses: dict[str, Losses | None] = {}
    rows: list[dict[str, Any]] = []
    score_names: list[str] = []
    for cell in the_plan.cells:
        if cell.slurm_relpath not in wanted:
            continue
        run = the_plan.run(cell.run)
        unit = by_key[cell.slurm_relpath]
        if unit.record_dir not in read_dirs:  # a run's eval logs: one directory for all its cells
            read_dirs.add(unit.record_dir)
            logs.update(read_logs(paths.local(unit.record_dir)))
        found = best(logs.get((cell.run, cell.stem), []))
        train_unit = by_key.get(unit.waits_for) if unit.waits_for else None
        if train_unit is not None and run.name not in losses:
            output = _training_output(root, paths, train_unit, status[train_unit.key].record)
            losses[run.name] = parse_losses(output.read_text(encoding="utf-8", errors="replace")) if output else None
        loss = losses.get(run.name)
        row_status = status[unit.key]
        row: dict[str, Any] = {
            "experiment": the_plan.design.experiment.name, "run": run.name, "run_type": run.type,
            "fine_tuned": run.type == "fine-tuned", "model": run.model, "task": cell.task, "epoch": cell.epoch,
            "cell": cell.stem, "vis_label": cell.settings.get("vis_label", run.name),
        }
        row.update({k: run.params.get(k) for k in params if k != "model"})
        if found is not None:
            for name in found.scores:
                if name not in score_names:
                    score_names.append(name)
        row["scores"] = dict(found.scores) if found else {}
        row["samples"] = found.samples if found else None
        row["train_loss"] = loss.train_loss(cell.epoch) if loss else None
        row["val_loss"] = loss.val_loss(cell.epoch) if loss else None
        row["log_status"] = found.status if found else "no log"
        row["log"] = paths.shown(found.path) if found else None
        row["eval_job"] = row_status.job
        row["commit"] = row_status.commit
        row["stale"] = row_status.stale
        rows.append(row)
    return rows, params, score_names


def flat(row: dict[str, Any], params: list[str], score_names: list[str]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k != "scores"}
    for name in score_names:
        out[name] = row["scores"].get(name)
    order = ["experiment", "run", "run_type", "fine_tuned", "model", "task", "epoch", "cell", "vis_label",
             *[p for p in params if p != "model"], *score_names, "samples", "train_loss", "val_loss",
             "log_status", "log", "eval_job", "commit", "stale"]
    return {k: out.get(k) for k in order}


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, bool):
        return "yes" if value else ""
    return str(value)


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(rows[0]) if rows else ["run", "cell"]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})


# --------------------------------------------------------------------------- plots
def _value(v: Any) -> Any:
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


def make_plots(out: Path, rows: list[dict[str, Any]], params: list[str], score_names: list[str]) -> list[Path]:
    """PNG files: per task and main score, score vs epoch (a line per fine-tuned run) and score vs
    each swept parameter (at each run's last evaluated epoch); control and eval-only runs are
    horizontal lines on both."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written = []
    scored = [r for r in rows if r["scores"]]
    for task in dict.fromkeys(r["task"] for r in scored):
        mine = [r for r in scored if r["task"] == task]
        metric = next((n for n in score_names if not n.endswith("/stderr") and any(n in r["scores"] for r in mine)), None)
        if metric is None:
            continue
        trained = [r for r in mine if r["fine_tuned"]]
        fixed = [r for r in mine if not r["fine_tuned"]]

        def references(ax) -> None:
            for i, r in enumerate(fixed):
                ax.axhline(r["scores"][metric], linestyle="--", color=f"C{(i + 5) % 10}", label=f"{r['vis_label']} ({r['run_type']})")

        fig, ax = plt.subplots(figsize=(7, 4.5))
        for run in dict.fromkeys(r["run"] for r in trained):
            points = sorted((r["epoch"], r["scores"][metric]) for r in trained if r["run"] == run and metric in r["scores"])
            label = next(r["vis_label"] for r in trained if r["run"] == run)
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
        references(ax)
        ax.set(xlabel="epoch (0-based)", ylabel=metric, title=f"{task}: {metric} by epoch")
        epochs = sorted({r["epoch"] for r in trained if r["epoch"] is not None})
        if epochs:
            ax.set_xticks(epochs)
        ax.legend(fontsize="small")
        fig.tight_layout()
        written.append(_save(fig, out / f"{task}_score_vs_epoch.png"))
        plt.close(fig)

        last = {}
        for r in trained:  # each run at its last evaluated epoch
            if metric in r["scores"] and (r["run"] not in last or (r["epoch"] or 0) >= (last[r["run"]]["epoch"] or 0)):
                last[r["run"]] = r
        for param in params:
            fig, ax = plt.subplots(figsize=(7, 4.5))
            others = [p for p in params if p != param]
            groups: dict[str, list[dict[str, Any]]] = {}
            for r in last.values():
                key = ", ".join(f"{p}={dump_inline(r.get(p))}" for p in others) or "fine-tuned runs"
                groups.setdefault(key, []).append(r)
            numeric = all(isinstance(_value(r.get(param)), (int, float)) for r in last.values())
            for key, members in groups.items():
                members.sort(key=lambda r: (_value(r.get(param)) if numeric else str(r.get(param))))
                xs = [(r.get(param) if numeric else str(r.get(param))) for r in members]
                ax.plot(xs, [r["scores"][metric] for r in members], marker="o", label=key)
            values = [r.get(param) for r in last.values()]
            if numeric and values and min(values) > 0 and max(values) / min(values) >= 100:
                ax.set_xscale("log")
            if numeric and len(set(values)) <= 12:
                ax.set_xticks(sorted(set(values)), [dump_inline(v) for v in sorted(set(values))])
            references(ax)
            ax.set(xlabel=param, ylabel=metric, title=f"{task}: {metric} by {param} (last evaluated epoch)")
            ax.legend(fontsize="small")
            fig.tight_layout()
            written.append(_save(fig, out / f"{task}_score_vs_{param}.png"))
            plt.close(fig)
    return written


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


# --------------------------------------------------------------------------- the command
def run(root: Path, runs: tuple[str, ...] = (), out: Path | None = None, plots: bool = True, as_json: bool = False) -> int:
    root = root.resolve()
    the_plan = plan(parse(read_answers(root)))
    rows, params, score_names = collect(root, the_plan, runs)
    table = [flat(r, params, score_names) for r in rows]
    if out is None:
        out = root / RESULTS_DIR
        out.mkdir(exist_ok=True)
        ignore = out / ".gitignore"
        if not ignore.exists():  # results/ stays out of git, like the logs it is made from
            ignore.write_text("# cruijff-gen results: made from git-ignored logs; `git add -f` what you want to keep\n*\n", encoding="utf-8")
    write_csv(out / CSV_NAME, table)
    images = make_plots(out, rows, params, score_names) if plots else []
    if as_json:
        json.dump(table, sys.stdout, indent=1, default=str)
        sys.stdout.write("\n")
    else:
        from .status import print_table

        columns = ["run", "cell", *[p for p in params], *[n for n in score_names], "train_loss", "val_loss", "commit", "stale"]
        cells = [tuple(_shown_value(c, r[c]) for c in columns) for r in table]
        with_logs = sum(r["log_status"] != "no log" for r in table)
        header = f"{the_plan.design.experiment.name}: {len(table)} eval cell(s), {with_logs} with a log"
        notes = [f"wrote {_shown(root, out / CSV_NAME)}" + (f" and {len(images)} plot(s): " + ", ".join(_shown(root, p) for p in images) if images else "")]
        if plots and not images and any(r["scores"] for r in rows) and not _has_matplotlib():
            notes.append("no plots: matplotlib is not installed (pip install 'cruijff_gen[tools]')")
        if any(r["stale"] for r in table):
            notes.append("stale: the result came from files that have changed since (cruijff-gen status; cruijff-gen submit --stale)")
        print_table(header, tuple(columns), cells, notes)
    return 0


def _shown_value(column: str, value: Any) -> str:
    if column == "commit":
        return (value or "-")[:8]
    if column == "stale":
        return "stale" if value else ""
    return _cell(value)


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _shown(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
