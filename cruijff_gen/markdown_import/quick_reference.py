"""The Quick Reference section: its Paths (experiment directory, models, dataset). Other labelled
lists there (Common Commands, ...) are reported as one block each."""

from __future__ import annotations

from .findings import Findings
from .markdown import Item, Section, items, norm
from .phrases import QUICK_REFERENCE
from .values import is_placeholder, path_in


def read_quick_reference(found: Findings, section: Section, where: str, kind: str) -> None:
    block: tuple[str, int, int] | None = None  # an ignored labelled list: (label, first line, last line)

    def close() -> None:
        nonlocal block
        if block:
            found.note_range(where, block[1], block[2], f"{block[0]!r} is not part of the design (ignored)")
        block = None

    for item in items(section.body):
        if item.kind == "kv" and not item.value and item.indent == 0:
            close()
            if norm(item.key) not in QUICK_REFERENCE["paths"]:
                block = (item.key, item.line, item.line)
        elif block and (item.indent > 0 or item.kind in ("text", "kv", "code")):
            block = (block[0], block[1], item.last)
        else:
            close()
            _path_line(found, where, item)
    close()


def _path_line(found: Findings, where: str, item: Item) -> None:
    if item.kind != "kv":
        found.not_mapped(where, item)
        return
    k, path = norm(item.key), path_in(item.value)
    if path and is_placeholder(path):
        found.not_mapped(where, item, "a template placeholder, not a path (ignored)")
    elif k in QUICK_REFERENCE["experiment"] and path:
        found.experiment.setdefault("dir", (path, item.line))
    elif k in QUICK_REFERENCE["models"] and path:
        found.models_path(path, item.line)
    elif k in QUICK_REFERENCE["dataset"] and path:
        found.dataset.setdefault("path", (path, item.line))
    else:
        found.not_mapped(where, item)
