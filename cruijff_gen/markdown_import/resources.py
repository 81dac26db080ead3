"""The Resources section: base models (a models directory, each model's path and size), the training
dataset (path, format, size, splits, label) and the evaluation task table. Its H3 headings say which
of the three the lines below them are about; a line names its subject too (`**Dataset:** path`)."""

from __future__ import annotations

import posixpath
from typing import Any

from .findings import Findings
from .markdown import Item, Section, Table, items, norm, read_table, unlisted
from .phrases import PHRASES, RESOURCES, SCRIPT_COLUMNS
from .values import is_na, is_placeholder, path_in, plain, size, splits

_DATASET_OR_UNSAID = ("dataset", None)


def read_resources(found: Findings, section: Section, where: str, kind: str) -> None:
    title = norm(section.title)
    context = "models" if "model" in title else "tasks" if "task" in title else "dataset" if "data" in title else None
    reader = _Resources(found, where, context)
    for item in items(section.body):
        reader.item(item)
    reader.flush()


def has_script_column(table: Table) -> bool:
    """Whether a table is an evaluation task table (| Task Name | Script | ... |)."""
    return any(norm(plain(h)) in SCRIPT_COLUMNS for h in table.header)


class _Resources:
    """Reads the Resources items in order; `context` is what the lines are about (models, dataset,
    tasks, None = not said yet, skip = a subsection outside the design)."""

    def __init__(self, found: Findings, where: str, context: str | None):
        self.found, self.where, self.sub, self.context = found, where, where, context
        self.current_model: str | None = None  # the model the lines below describe
        self.skipped: list[int] = []  # lines of a subsection that is not part of the design

    def flush(self) -> None:
        if self.skipped:
            self.found.note_range(self.sub, self.skipped[0], self.skipped[-1], "subsection is not part of the design (ignored)")
            self.skipped.clear()

    def item(self, item: Item) -> None:
        if item.kind == "heading":
            self.heading(item)
        elif self.context == "skip":
            self.skipped.append(item.last)
        elif item.kind == "table":
            table = read_table(item, self.sub, self.found.source)
            if has_script_column(table):
                tasks_table(self.found, table)
            else:
                self.found.not_mapped(self.sub, item)
        elif item.kind == "code":
            self.found.not_mapped(self.sub, item)
        elif item.kind == "text":
            self.list_item(item)
        else:
            self.key_value(item)

    def heading(self, item: Item) -> None:
        self.flush()
        t = norm(item.text)
        self.context = "tasks" if "task" in t else "models" if "model" in t else "dataset" if "data" in t else "skip"
        self.sub = f"{self.where} > {item.text}"
        self.current_model = None
        if self.context == "skip":
            self.skipped.append(item.line)

    def list_item(self, item: Item) -> None:
        """A bare list item: a model directory, or a model name under a models directory."""
        path = path_in(item.text)
        words = plain(unlisted(item.text)).split()
        named = posixpath.basename(path.rstrip("/")) if path else (words[0].strip("`*") if words else "")
        model = self.found.run_model(named)
        if model and path:
            self.found.model_paths.setdefault(model, (path, item.line))
            self.current_model = model
        elif model and self.context == "models":
            self.current_model = model  # its path is the models directory joined with its name
        elif self.found.catalog.get(named) is not None:
            self.found.note(self.sub, item.line, f"model {named!r} is listed but no run uses it (ignored)")
        else:
            self.found.not_mapped(self.sub, item)

    def key_value(self, item: Item) -> None:
        k, path = norm(item.key), path_in(item.value)
        if path and is_placeholder(path):
            self.found.not_mapped(self.sub, item, "a template placeholder, not a path (ignored)")
        elif self.models_line(item, k, path) or self.dataset_line(item, k, path) or self.named_model(item, k, path):
            pass
        elif k not in RESOURCES["checklist"]:  # the original workflow's checklist, not design
            self.found.not_mapped(self.sub, item)

    def models_line(self, item: Item, k: str, path: str | None) -> bool:
        """A models directory, a model's path or size; False if the line is about something else."""
        found, value = self.found, item.value
        if k in RESOURCES["models_dir"] and self.context in ("models", None):
            if path:
                found.models_dir = found.models_dir or (path, item.line)
                self.context = "models"
            else:
                found.not_mapped(self.sub, item, "not a path (ignored)")
        elif k in RESOURCES["models"]:
            self.context = "models"
            if path:
                self.current_model = found.models_path(path, item.line) or self.current_model
            elif plain(value):
                self.current_model = found.run_model(plain(value).split()[0])
                if self.current_model is None:
                    found.not_mapped(self.sub, item, "not a model any run uses (ignored)")
        elif k == "path" and self.context == "models" and self.current_model:
            found.model_paths.setdefault(self.current_model, (path or plain(value), item.line))
        elif k == "size" and self.context == "models" and self.current_model:
            gb = size(value, "GB")
            if gb is None:
                found.not_mapped(self.sub, item, "not a size such as 2.5 GB (ignored)")
            else:
                found.model_sizes[self.current_model] = gb
        else:
            return False
        return True

    def dataset_line(self, item: Item, k: str, path: str | None) -> bool:
        """The training dataset's path, format, size, splits or label; False if not about it."""
        dataset, value, line = self.found.dataset, item.value, item.line
        unsaid = self.context in _DATASET_OR_UNSAID
        if k in RESOURCES["dataset"]:
            self.context = "dataset"
            if path:
                dataset.setdefault("path", (path, line))
            elif plain(value):
                self.found.not_mapped(self.sub, item, "not a path (ignored)")
        elif k == "path" and unsaid and path:
            dataset.setdefault("path", (path, line))
        elif k in RESOURCES["format"] and unsaid:
            dataset.setdefault("format_text", (plain(value), line))
        elif k in RESOURCES["dataset_size"] and unsaid:
            self._found_or_not_mapped(item, "size_kb", size(value, "KB"), "not a size such as 21 KB (ignored)")
        elif k == "splits" and unsaid:
            self._found_or_not_mapped(item, "splits", splits(value) or None, "not splits such as 'train (240), validation (30)' (ignored)")
        elif k in RESOURCES["label"] and unsaid:
            dataset.setdefault("dataset_label", (plain(value), line))
        else:
            return False
        return True

    def _found_or_not_mapped(self, item: Item, key: str, value: Any, why: str) -> None:
        if value is None:
            self.found.not_mapped(self.sub, item, why)
        else:
            self.found.dataset.setdefault(key, (value, item.line))

    def named_model(self, item: Item, k: str, path: str | None) -> bool:
        """`**<model name>:** path, size`: a model the runs use, or one they do not."""
        found, key = self.found, plain(item.key)
        if not (found.run_model(key) or found.catalog.get(key) or (self.context == "models" and path and k not in RESOURCES["not_models"])):
            return False
        model = found.run_model(key)
        self.context = "models"
        self.current_model = model
        if model is None:
            found.note(self.sub, item.line, f"model {key!r} is listed but no run uses it (ignored)")
            return True
        if path:
            found.model_paths.setdefault(model, (path, item.line))
        gb = size(item.value, "GB")
        if gb is not None:
            found.model_sizes[model] = gb
        return True


def tasks_table(found: Findings, table: Table) -> None:
    """The evaluation task table: one task per row (name, script, description, dataset)."""
    columns: dict[str, int] = {}
    for i, header in enumerate(table.header):
        key = PHRASES["task_columns"].get(norm(plain(header)))
        if key is None or key in columns:
            found.note(table.where, table.header_line, f"column {plain(header)!r} is not part of the design (ignored)")
        else:
            columns[key] = i
    if "name" not in columns:
        raise found.error(table.where, table.header_line, "the evaluation task table has no Task Name column")
    for line, cells in table.rows:
        found.tasks.append(_task(found, table.where, line, cells, columns))


def _task(found: Findings, where: str, line: int, cells: list[str], columns: dict[str, int]) -> dict[str, Any]:
    cell = {key: plain(cells[i]) for key, i in columns.items()}
    task: dict[str, Any] = {"name": cell["name"]}
    script = path_in(cells[columns["script"]]) or cell["script"]
    if is_na(script) or is_placeholder(script):
        found.note(where, line, f"task {cell['name']!r} has no script path (the task is kept; add evaluation.tasks[].script)")
    else:
        task["script"] = script
    if "description" in cell and not is_na(cell["description"]):
        task["description"] = cell["description"]
    if "dataset" in cell and not is_na(cell["dataset"]):
        path = path_in(cells[columns["dataset"]]) or (cell["dataset"] if cell["dataset"].startswith("/") else None)
        if path:
            task["dataset"] = path
        else:
            found.note(where, line, f"task {cell['name']!r}: dataset {cell['dataset']!r} is not a path (ignored)")
    return task
