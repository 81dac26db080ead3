"""The Evaluation Plan section: its settings lines, an evaluation task table, and the Evaluation
Matrix table (| Run Name | <task> | ... |: which runs are evaluated on which tasks, at which epochs)."""

from __future__ import annotations

import re
from typing import Any

from .configuration import setting
from .findings import DERIVED, Findings
from .markdown import Section, Table, items, norm, read_table
from .phrases import CONFIGURATION, PHRASES, RUN_COLUMNS
from .resources import has_script_column, tasks_table
from .values import is_na, plain


def read_evaluation_plan(found: Findings, section: Section, where: str, kind: str) -> None:
    sub = where
    for item in items(section.body):
        if item.kind == "heading":
            sub = f"{where} > {item.text}"
        elif item.kind == "table":
            table = read_table(item, sub, found.source)
            if has_script_column(table):
                tasks_table(found, table)
            elif RUN_COLUMNS.get(norm(plain(table.header[0]))) == "name":
                _matrix_table(found, table)
            else:
                found.not_mapped(sub, item)
        elif item.kind == "kv" and not item.value and item.style == "bold":
            continue  # a label over a list
        elif item.kind == "kv" and norm(item.key) in CONFIGURATION["derived"]:
            found.not_mapped(sub, item, DERIVED)
        elif item.kind == "kv" and item.value:
            setting(found, item, sub, "evaluation")
        else:
            found.not_mapped(sub, item)


def _task_columns(found: Findings, table: Table) -> list[tuple[int, str]]:
    """(column, task name) of the matrix columns that name an evaluation task; the others reported."""
    tasks = {t["name"].lower(): t["name"] for t in found.tasks}
    columns: list[tuple[int, str]] = []
    for i, header in enumerate(table.header[1:], start=1):
        name = tasks.get(plain(header).lower())
        if name is None:
            found.note(table.where, table.header_line, f"column {plain(header)!r} is not an evaluation task (ignored)")
        else:
            columns.append((i, name))
    return columns


def _matrix_table(found: Findings, table: Table) -> None:
    task_columns = _task_columns(found, table)
    runs = {r["name"]: r for r in found.runs}
    matrix: list[dict[str, Any]] = []
    for line, cells in table.rows:
        run = runs.get(plain(cells[0]))
        if run is None:
            found.note(table.where, line, f"run {plain(cells[0])!r} is not in the All Runs table (ignored)")
            continue
        by_epochs: dict[tuple[int, ...] | None, list[str]] = {}
        for i, task in task_columns:
            raw, cell = cells[i].strip(), plain(cells[i])
            checked = bool(re.search("[✓✔✅☑]", raw))
            if (is_na(cell) and not checked) or cell.lower() in PHRASES["not_evaluated"]:
                continue
            epochs = tuple(dict.fromkeys(int(n) for n in re.findall(r"\d+", re.sub(r"\(.*?\)", "", cell)))) or None
            if epochs and run["type"] != "fine-tuned":
                found.note(table.where, line, f"{run['type']} run {run['name']!r} is not trained: epochs {cell!r} ignored")
                epochs = None
            by_epochs.setdefault(epochs, []).append(task)
        for epochs, names in by_epochs.items():
            entry: dict[str, Any] = {"run": run["name"], "tasks": names}
            if epochs is not None or run["type"] != "fine-tuned":
                entry["epochs"] = list(epochs) if epochs else None
            matrix.append(entry)
    found.matrix = (found.matrix or []) + matrix
