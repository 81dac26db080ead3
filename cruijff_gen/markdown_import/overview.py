"""The sections about the experiment as a whole: Overview (and the text before the first section),
Question / Hypothesis / Purpose prose, Tools, Variables."""

from __future__ import annotations

import re

from .. import facts
from .findings import DERIVED, Findings
from .markdown import Item, Section, items, norm, read_table, unlisted
from .phrases import OVERVIEW, PHRASES
from .runs import run_column
from .values import date_in, number, path_in, plain

_TOOL_LABELS = {"preparation": "model preparation", "evaluation": "evaluation"}


def read_overview(found: Findings, section: Section, where: str, kind: str) -> None:
    for item in items(section.body):
        if item.kind != "kv":
            if section.title:
                found.not_mapped(where, item)
            continue
        k, value = norm(item.key), item.value
        if k in OVERVIEW["question"]:
            found.set_experiment("question", plain(value), item.line, where)
        elif k in OVERVIEW["fields"]:
            found.set_experiment(k, plain(value), item.line, where)
        elif k in OVERVIEW["purpose"]:
            found.set_experiment("purpose", plain(value), item.line, where)
        elif k in OVERVIEW["date"]:
            date = date_in(value)
            if date:
                found.experiment.setdefault("date_line", (date, item.line))
            else:
                found.not_mapped(where, item, "not a date YYYY-MM-DD (ignored)")
        elif k in OVERVIEW["directory"] and path_in(value):
            found.experiment.setdefault("dir", (path_in(value), item.line))
        elif k in OVERVIEW["name"]:
            found.experiment.setdefault("name_line", (plain(value), item.line))
        elif k in OVERVIEW["derived"]:
            found.not_mapped(where, item, DERIVED)
        else:
            found.not_mapped(where, item)


def read_prose(found: Findings, section: Section, where: str, kind: str) -> None:
    """A Question, Hypothesis or Purpose section: its text, joined, is that experiment field."""
    words, first = [], None
    for item in items(section.body):
        if item.kind == "kv" and (norm(item.key) == kind or norm(item.key) in OVERVIEW["question"]):
            text = item.value
        elif item.kind in ("text", "kv"):
            text = unlisted(item.text)
        else:
            found.not_mapped(where, item)
            continue
        words.append(plain(text.replace("**", "")))
        first = first or item.line
    if words:
        found.set_experiment(kind, " ".join(w for w in words if w), first, where)


def read_tools(found: Findings, section: Section, where: str, kind: str) -> None:
    for item in items(section.body):
        if item.kind != "kv":
            if item.kind in ("table", "code"):
                found.not_mapped(where, item)
            continue  # prose ("This experiment uses the following tools:")
        if item.style == "italic" or item.indent > 0 or not item.value:
            continue  # *Purpose:*, *Used by:*, *Current status:* describe the tool above; "...tools:" is prose
        role = PHRASES["tool_keys"].get(norm(item.key))
        if role is None:
            found.not_mapped(where, item)
            continue
        words = plain(item.value).split()
        name = words[0].strip("`*,.;:()").lower() if words else ""
        name = PHRASES["tool_aliases"].get(name, name)
        supported = facts.SUPPORTED_TOOLS[role]
        if name not in supported:
            message = f"unknown {_TOOL_LABELS[role]} tool {name or item.value!r}; supported: {', '.join(supported)}"
            raise found.error(where, item.line, message)
        found.tools[role] = name
    for role, default in facts.DEFAULT_TOOLS.items():
        if role not in found.tools:
            found.tools[role] = default
            found.note(where, section.line, f"no {_TOOL_LABELS[role]} tool named; assumed {default}")


def _factor(found: Findings, where: str, name: str, levels: str, item: Item) -> None:
    """One factor of the Variables section: its levels, numbers unless it is the model."""
    key = "model" if norm(name) in PHRASES["model_factor"] else run_column(name)
    if key in (None, "name", "type", "gpus", "checkpoint_path"):
        found.not_mapped(where, item, f"factor {name!r} is not a design parameter (ignored)")
        return
    values = [plain(v) for v in re.split(r",|\s+and\s+", plain(levels)) if plain(v)]
    if key != "model":
        converted = [number(v) for v in values]
        if any(v is None for v in converted):
            found.not_mapped(where, item, f"factor {name!r} has levels that are not numbers (ignored)")
            return
        values = converted  # type: ignore[assignment]
    found.variables[key] = values  # type: ignore[index]


def read_variables(found: Findings, section: Section, where: str, kind: str) -> None:
    for item in items(section.body):
        if item.kind == "table":
            table = read_table(item, where, found.source)
            for line, cells in table.rows:
                _factor(found, where, plain(cells[0]), cells[1] if len(cells) > 1 else "", Item("text", line, text=" | ".join(cells)))
        elif item.kind == "kv" and item.value:
            _factor(found, where, item.key, item.value, item)
        else:
            found.not_mapped(where, item)
