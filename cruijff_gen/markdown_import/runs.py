"""The All Runs section: its run table, one run per row (name, type, base model, parameters, GPUs).
A cell that is not a value of its column is an error naming the line."""

from __future__ import annotations

from typing import Any

from .. import facts
from .findings import Findings
from .markdown import Section, Table, items, norm, read_table
from .phrases import PHRASES, RUN_COLUMNS, hyper_key
from .values import is_na, number, path_in, plain, yes_no

_NOT_PARAMETERS = ("name", "model", "type", "gpus")


def run_column(header: str) -> str | None:
    """The run key an All Runs column gives (`**Learning Rate**` -> lr), None if none."""
    n = norm(plain(header))
    return RUN_COLUMNS.get(n) or hyper_key(n)


def read_runs(found: Findings, section: Section, where: str, kind: str) -> None:
    found.runs_section_line = section.line
    body = list(items(section.body))
    run_table = next((t for t in body if t.kind == "table"), None)
    for item in body:
        if item is not run_table:
            found.not_mapped(where, item)
    if run_table is None:
        raise found.error(where, section.line, "no run table (| Run Name | Model | ... | Type |) in this section")
    table = read_table(run_table, where, found.source)
    columns = _columns(found, table)
    for line, cells in table.rows:
        _run(found, table, columns, line, cells)


def _columns(found: Findings, table: Table) -> dict[str, int]:
    """Run key -> column index; the required columns are checked, the others reported."""
    where = table.where
    columns: dict[str, int] = {}
    for i, header in enumerate(table.header):
        key = run_column(header)
        if key is None:
            found.note(where, table.header_line, f"column {plain(header)!r} is not part of the design (ignored)")
        elif key in columns:
            raise found.error(where, table.header_line, f"columns {table.header[columns[key]]!r} and {header!r} both give {key}")
        else:
            columns[key] = i
    for key, label in (("name", "Run Name"), ("model", "Model")):
        if key not in columns:
            raise found.error(where, table.header_line, f"the run table has no {label} column (columns: {', '.join(table.header)})")
    if not table.rows:
        raise found.error(where, table.header_line, "the run table has no rows")
    if "type" not in columns:
        found.note(where, table.header_line, "no Type column; runs with a LoRA rank are fine-tuned, the others controls (assumed)")
    return columns


def _run(found: Findings, table: Table, columns: dict[str, int], line: int, cells: list[str]) -> None:
    where = table.where
    cell = {key: cells[i] for key, i in columns.items()}
    name = plain(cell["name"])
    if is_na(name):
        raise found.error(where, line, "the Run Name cell is empty")
    if "type" in cell:
        run_type = PHRASES["run_types"].get(norm(plain(cell["type"])))
        if run_type is None:
            raise found.error(where, line, f"Type {plain(cell['type'])!r} is not one of Fine-tuned, Control, Eval-only")
    else:
        run_type = "fine-tuned" if "lora_rank" in cell and not is_na(cell["lora_rank"]) else "control"
    model = _model_name(found, cell["model"], line, where)
    parameters: dict[str, Any] = {}
    for key in (k for k in columns if k not in _NOT_PARAMETERS):
        raw = plain(cell[key])
        if is_na(raw):
            continue
        header = plain(table.header[columns[key]])
        if run_type == "control" or (run_type == "eval-only" and key != "checkpoint_path"):
            if key != "batch_size":  # a control's batch size is harmless and often repeated
                found.note(where, line, f"{run_type} run {name!r}: {header} {raw!r} ignored ({run_type} runs are not trained)")
            continue
        parameters[key] = _parameter(found, key, raw, header, where, line)
    if run_type == "fine-tuned" and "batch_size" in parameters:
        found.table_batch[name] = (parameters["batch_size"], line)
    if "gpus" in cell and not is_na(cell["gpus"]):
        gpus = number(plain(cell["gpus"]))
        if not isinstance(gpus, int) or gpus < 1:
            message = f"{plain(table.header[columns['gpus']])}: expected a whole number of GPUs, got {plain(cell['gpus'])!r}"
            raise found.error(where, line, message)
        found.run_gpus[name] = (gpus, line)
    found.runs.append({"name": name, "type": run_type, "model": model, "parameters": parameters})


_EXPECTED = {"int": "a whole number", "float": "a number", "number": "a number", "bool": "yes or no"}


def _parameter(found: Findings, key: str, raw: str, header: str, where: str, line: int) -> Any:
    """A run table cell as the value of its hyperparameter (a number, yes/no, a path, text)."""
    if key == "checkpoint_path":
        return path_in(raw) or raw
    kind = facts.hyperparameters().get(key, {}).get("type", "str")
    if kind not in _EXPECTED:
        return raw
    value = yes_no(raw) if kind == "bool" else number(raw)
    if value is None or (kind == "int" and not isinstance(value, int)):
        raise found.error(where, line, f"{header}: expected {_EXPECTED[kind]}, got {raw!r}")
    return value


def _model_name(found: Findings, raw: str, line: int, where: str) -> str:
    """The Model cell, in the catalog's spelling when the catalog knows it (case aside)."""
    name = plain(raw)
    if is_na(name):
        raise found.error(where, line, "the Model cell is empty (every run needs a base model)")
    names = found.catalog.names()
    if name in names:
        return name
    folded = [n for n in names if n.lower() == name.lower()]
    if len(folded) == 1:
        return folded[0]
    found.note(where, line, f"model {name!r} is not in the bundled model catalog (add it with the model_catalog setting)")
    return name
