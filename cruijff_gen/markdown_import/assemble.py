"""The design, from what the sections said: experiment, tools, variables, controls, models, data,
runs, evaluation. Every value the document lacks is either assumed (the original workflow's default)
or left out, and either way reported."""

from __future__ import annotations

import posixpath
import re
from collections import Counter
from typing import Any

from .. import facts
from .findings import Findings
from .markdown import norm
from .phrases import PHRASES
from .values import SKIP, date_in, epochs_spec, plain


def design(found: Findings) -> dict[str, Any]:
    out: dict[str, Any] = {"experiment": _experiment(found), "tools": dict(found.tools or facts.DEFAULT_TOOLS)}
    if found.variables:
        out["variables"] = found.variables
    models = _models(found)
    controls = _controls(found)
    out["controls"] = controls
    out["models"] = {"base": models}
    training = _training_data(found)
    out["data"] = {"training": training} if training else {}
    if found.output:
        out["output"] = dict(found.output)
    out["runs"] = found.runs
    evaluation = _evaluation(found, controls)
    if evaluation:
        out["evaluation"] = evaluation
    return out


def _experiment_name(found: Findings, title: str) -> str:
    """The H1 title without "Experiment:", else a Name line, else the experiment directory's name."""
    name = re.sub(r"^(experiment(\s+summary)?|summary)\s*[:\-–—]\s*", "", title, flags=re.IGNORECASE).strip()
    if not name or norm(name) in ("experiment summary", "experiment"):
        name = found.experiment["name_line"][0] if "name_line" in found.experiment else ""
    if not name and "dir" in found.experiment:
        name = posixpath.basename(found.experiment["dir"][0].rstrip("/"))
        found.note("Title", None, f"no experiment name in the title; used the experiment directory's name {name!r}")
    elif not name:
        found.note("Title", None, "no H1 title (# <experiment name>); experiment.name is missing")
    return name


def _experiment(found: Findings) -> dict[str, Any]:
    said = found.experiment
    title, title_line = found.title if found.title else ("", 0)
    name = _experiment_name(found, title)
    out: dict[str, Any] = {"name": name} if name else {}
    if "project" in said:
        out["project"] = said["project"][0]
    if "question" in said:
        out["question"] = said["question"][0]
    elif name:
        out["question"] = name
        found.note("Title", title_line or None, "no Question (an Overview line or a section); used the title as experiment.question")
    else:
        found.note("Overview", None, "no Question; experiment.question is missing")
    date = date_in(title) or (date_in(said["dir"][0]) if "dir" in said else None)
    if date is None and "date_line" in said:
        date = said["date_line"][0]
    if date is not None:
        out["date"] = date
    else:
        found.note("Overview", None, "no date (YYYY-MM-DD in the title, the directory or a Date / Created line); experiment.date is missing")
    for key in ("hypothesis", "purpose"):
        if key in said:
            out[key] = said[key][0]
    if "dir" in said:
        out["dir"] = said["dir"][0]
    else:
        found.note("Quick Reference", None, "no experiment directory (Paths > Experiment, or a Directory line); experiment.dir is missing")
    return out


def _models(found: Findings) -> list[dict[str, Any]]:
    base: list[dict[str, Any]] = []
    for run in found.runs:
        name = run["model"]
        if any(m["name"] == name for m in base):
            continue
        entry: dict[str, Any] = {"name": name}
        if name in found.model_paths:
            entry["path"] = found.model_paths[name][0]
        elif found.models_dir:
            entry["path"] = posixpath.join(found.models_dir[0], name)
        else:
            found.note("Resources", None, f"no path for model {name!r} (a Models line with its path, or a models directory); models.base[].path is missing")
        if name in found.model_sizes:
            entry["size_gb"] = found.model_sizes[name]
        base.append(entry)
    return base


def _controls(found: Findings) -> dict[str, Any]:
    given = {k: v for k, (v, _) in found.controls.items()}
    where = ("Configuration", found.config_line or None)
    out: dict[str, Any] = {}
    if "epochs" in given:
        out["epochs"] = given["epochs"]
    else:
        found.note(*where, "no Epochs line; controls.epochs is missing")
    batch_size = _batch_size(found, given.get("batch_size"))
    if batch_size is not None:
        out["batch_size"] = batch_size
    if "system_prompt" in given:
        out["system_prompt"] = given["system_prompt"]
    else:
        out["system_prompt"] = ""
        found.note(*where, 'no System prompt line; assumed system_prompt: "" (the original workflow\'s default)')
    if "prompt" in given:
        out["prompt"] = given["prompt"]
    if "dataset_type" in given:
        out["dataset_type"] = given["dataset_type"]
    else:
        out["dataset_type"] = "chat_completion"
        found.note(*where, "no dataset type given; assumed dataset_type: chat_completion (instruct models)")
    for key, value in given.items():
        if key not in out and key not in ("gpus", "batch_size"):
            out[key] = value
    _gpus(found, given.get("gpus"))
    return out


def _batch_size(found: Findings, configured: int | None) -> int | None:
    """controls.batch_size: the Configuration value, else the value every fine-tuned run shares;
    a run keeps its own batch size only where it differs."""
    sizes = {name: size for name, (size, _) in found.table_batch.items()}
    if configured is None and sizes:
        counts = Counter(sizes.values())
        configured = counts.most_common(1)[0][0]
        if len(counts) > 1:
            message = f"batch sizes differ between runs; controls.batch_size is {configured} (the most common), the other runs keep their own"
            found.note("All Runs", found.runs_section_line, message)
    if configured is None:
        found.note("Configuration", found.config_line or None, "no batch size (Configuration or the All Runs table); controls.batch_size is missing")
        return None
    for run in found.runs:
        if run["parameters"].get("batch_size") == configured:
            del run["parameters"]["batch_size"]
    return configured


def _gpus(found: Findings, configured: int | None) -> None:
    """GPUs per run: the catalog knows each model's default; only a different number is written,
    as the fine-tuned runs' compute.gpus."""
    for run in found.runs:
        gpus = found.run_gpus.get(run["name"], (configured, None))[0]
        if gpus is None or run["type"] != "fine-tuned":
            continue
        entry = found.catalog.get(run["model"])
        if entry is None or entry.resources.get("gpus") != gpus:
            run["compute"] = {"gpus": gpus}


def _data_format(found: Findings, path: str) -> str | None:
    """json or parquet: from the path's extension (a directory is parquet), else the Format line."""
    suffix = posixpath.splitext(path.rstrip("/"))[1].lower()
    by_extension = "json" if suffix in (".json", ".jsonl") else "parquet" if suffix == ".parquet" or not suffix or path.endswith("/") else None
    stated = None
    if "format_text" in found.dataset:
        text, line = found.dataset["format_text"]
        stated = PHRASES["formats"].get(norm(text).split(" ")[0] if text else "")
        if stated is None:
            found.note("Resources", line, f"dataset format {text!r} is not json or parquet (ignored)")
        elif by_extension and stated != by_extension:
            found.note("Resources", line, f"dataset format {text!r} disagrees with the path's extension; used {by_extension}")
    return by_extension or stated


def _training_data(found: Findings) -> dict[str, Any]:
    if "path" not in found.dataset:
        found.note("Resources", None, "no dataset path (Resources > Dataset > Path, or Quick Reference > Dataset); data.training is missing")
        return {}
    path, line = found.dataset["path"]
    out: dict[str, Any] = {"path": path}
    if "dataset_label" in found.dataset:
        out["dataset_label"] = found.dataset["dataset_label"][0]
    chosen = _data_format(found, path)
    if chosen:
        out["format"] = chosen
    else:
        found.note("Resources", line, f"cannot tell the format of {path!r} (json or parquet); data.training.format is missing")
    for key in ("size_kb", "splits"):
        if key in found.dataset:
            out[key] = found.dataset[key][0]
    return out


def _evaluation(found: Findings, controls: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if found.tasks:
        out["tasks"] = found.tasks
    else:
        found.note("Resources", None, "no Evaluation Tasks table (| Task Name | Script | ... |); the design has no evaluation tasks")
    if found.matrix is not None:
        out["matrix"] = found.matrix
        if found.eval_epochs:
            message = "'Epochs to evaluate' is superseded by the Evaluation Matrix table, which gives the epochs per run (ignored)"
            found.note("Evaluation Plan", found.eval_epochs[1], message)
    elif found.eval_epochs and found.tasks:
        matrix = _matrix_from_epochs(found, controls)
        if matrix is not None:
            out["matrix"] = matrix
    out.update(found.evaluation)
    return out


def _matrix_from_epochs(found: Findings, controls: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Every run on every task, the fine-tuned ones at the 'Epochs to evaluate'; None if those are
    not epochs (reported)."""
    assert found.eval_epochs is not None
    text, line = found.eval_epochs
    epochs = epochs_spec(text, controls.get("epochs"))
    if epochs is SKIP:
        message = f"epochs to evaluate {plain(text)!r} is not a list of 0-based epochs (ignored; every fine-tuned run is evaluated at its last epoch)"
        found.note("Evaluation Plan", line, message)
        return None
    names = [t["name"] for t in found.tasks]
    matrix = [{"run": r["name"], "tasks": list(names), "epochs": epochs if r["type"] == "fine-tuned" else None} for r in found.runs]
    for entry in matrix:
        if entry["epochs"] is None and any(r["name"] == entry["run"] and r["type"] == "fine-tuned" for r in found.runs):
            del entry["epochs"]
    return matrix
