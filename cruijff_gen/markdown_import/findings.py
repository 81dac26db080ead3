"""What the sections of a design document say, each with the line it was said on, and the report of
what could not be carried over. The section readers fill it in; assemble.py turns it into a design."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any

from .. import facts
from ..errors import MarkdownError
from .markdown import Item, error_at
from .values import plain

DERIVED = "derived from the rest of the design (ignored)"  # why a line such as "Total runs: 9" is left out


@dataclass
class Findings:
    source: str  # the document's file name, for errors
    title: tuple[str, int] | None  # the H1 heading (text, line)
    catalog: facts.Catalog = field(default_factory=facts.catalog)
    experiment: dict[str, tuple[Any, int]] = field(default_factory=dict)
    tools: dict[str, str] = field(default_factory=dict)
    variables: dict[str, list[Any]] = field(default_factory=dict)
    controls: dict[str, tuple[Any, int]] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    table_batch: dict[str, tuple[int, int]] = field(default_factory=dict)  # run -> (batch size, line)
    run_gpus: dict[str, tuple[int, int]] = field(default_factory=dict)
    models_dir: tuple[str, int] | None = None
    model_paths: dict[str, tuple[str, int]] = field(default_factory=dict)
    model_sizes: dict[str, float] = field(default_factory=dict)
    dataset: dict[str, tuple[Any, int]] = field(default_factory=dict)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    evaluation: dict[str, Any] = field(default_factory=dict)
    matrix: list[dict[str, Any]] | None = None
    eval_epochs: tuple[str, int] | None = None
    output: dict[str, Any] = field(default_factory=dict)
    runs_section_line: int = 0
    config_line: int = 0
    notes: list[tuple[int, str]] = field(default_factory=list)  # (line or 0, text)

    # ---- reporting
    def note(self, where: str, line: int | None, message: str) -> None:
        self.notes.append((line or 0, f"{where}, line {line}: {message}" if line else f"{where}: {message}"))

    def note_range(self, where: str, first: int, last: int, message: str) -> None:
        span = f"line {first}" if first == last else f"lines {first}-{last}"
        self.notes.append((first, f"{where}, {span}: {message}"))

    def not_mapped(self, where: str, item: Item, why: str = "not part of the design (ignored)") -> None:
        if item.kind == "heading":
            return  # a heading carries no value; its lines are reported one by one
        if item.kind in ("table", "code"):
            self.note_range(where, item.line, item.last, f"{'table' if item.kind == 'table' else 'code block'} {why}")
        elif item.kind == "kv":
            self.note(where, item.line, f"{item.key!r} is {why}" if not item.value else f"{item.key!r} ({plain(item.value)!r}) is {why}")
        else:
            self.note(where, item.line, f"{item.text[:80]!r} is {why}")

    def report(self) -> list[str]:
        """The notes in document order; those without a line (things the document lacks) last."""
        return [text for _, text in sorted(self.notes, key=lambda n: n[0] or 10**9)]

    def error(self, where: str, line: int | None, message: str) -> MarkdownError:
        return error_at(where, line, message, self.source)

    # ---- lookups the sections share
    def set_experiment(self, key: str, value: str, line: int | None, where: str) -> None:
        if not value:
            return
        if key in self.experiment and self.experiment[key][0] != value:
            self.note(where, line, f"{key} {value!r} differs from the one on line {self.experiment[key][1]} (ignored)")
            return
        self.experiment.setdefault(key, (value, line))  # type: ignore[arg-type]

    def run_model(self, name: str) -> str | None:
        """The run table's spelling of a model named elsewhere in the document."""
        for run in self.runs:
            if self._same_model(run["model"], name):
                return run["model"]
        return None

    def models_path(self, path: str, line: int) -> str | None:
        """A path given for the models: one run model's own directory (that model is returned),
        else the directory holding them all."""
        model = self.run_model(posixpath.basename(path.rstrip("/")))
        if model:
            self.model_paths.setdefault(model, (path, line))
        else:
            self.models_dir = self.models_dir or (path, line)
        return model

    def _same_model(self, a: str, b: str) -> bool:
        if a.lower() == b.lower():
            return True
        ea, eb = self.catalog.get(a), self.catalog.get(b)
        return ea is not None and ea is eb
