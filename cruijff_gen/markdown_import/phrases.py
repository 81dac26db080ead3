"""The words the importer understands, from data/markdown_phrases.yaml (one place to add a
spelling), and the lookups built on them: a section's kind, a hyperparameter's name."""

from __future__ import annotations

import re
from typing import Any

from .. import facts, yamlio
from .markdown import norm


def checked(data: Any, where: str = "markdown_phrases.yaml") -> Any:
    """`data` itself, once every key and phrase in it is text (an unquoted `yes` in the file would
    arrive as True and silently never match)."""
    if isinstance(data, dict):
        for key, value in data.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: key {key!r} is not text (quote it)")
            checked(value, f"{where}.{key}")
    elif isinstance(data, list):
        for value in data:
            checked(value, where)
    elif not isinstance(data, str):
        raise TypeError(f"{where}: {data!r} is not text (quote it)")
    return data


PHRASES: dict[str, Any] = checked(yamlio.load((facts.DATA_DIR / "markdown_phrases.yaml").read_text(encoding="utf-8")))
OVERVIEW: dict[str, list[str]] = PHRASES["overview"]
RESOURCES: dict[str, list[str]] = PHRASES["resources"]
CONFIGURATION: dict[str, Any] = PHRASES["configuration"]
QUICK_REFERENCE: dict[str, list[str]] = PHRASES["quick_reference"]
RUN_COLUMNS: dict[str, str] = PHRASES["run_columns"]
SCRIPT_COLUMNS: list[str] = PHRASES["script_columns"]


def hyper_key(name: str) -> str | None:
    """The hyperparameter a name spells (`LoRA Alpha` -> lora_alpha), if it is one."""
    key = norm(name).replace(" ", "_")
    return key if key in facts.hyperparameters() else None


def section_kind(title: str) -> str | None:
    """Which reader an H2 section goes to (`2. All Runs` -> runs), None for one outside the design."""
    return PHRASES["section_kinds"].get(norm(re.sub(r"^\s*\d+[.)]?\s*", "", title)))
