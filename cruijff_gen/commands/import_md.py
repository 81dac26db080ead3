"""`cruijff-gen import experiment_summary.md`: turn an older markdown design into the equivalent
experiment_summary.yaml, saying what could not be mapped (section and line)."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import DesignError, UsageError
from ..markdown_import import import_markdown
from ..parse import parse


def run(source: Path, output: Path | None = None, force: bool = False) -> int:
    output = output or source.with_name("experiment_summary.yaml")
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{source}: cannot read ({exc.strerror})") from None
    result = import_markdown(text, source=source.name)
    if output.exists() and not force:
        raise UsageError(f"{output} exists; pass --force to overwrite it (or -o another file)")
    output.write_text(result.to_yaml(), encoding="utf-8")
    for item in result.unmapped:
        print(f"cruijff-gen: not mapped: {item}", file=sys.stderr)
    try:
        parse(result.design)
    except DesignError as exc:
        print(f"cruijff-gen: wrote {output}, but it is not a complete design yet:", file=sys.stderr)
        for line in exc.lines():
            print(f"cruijff-gen:   {line}", file=sys.stderr)
        return 1
    print(f"cruijff-gen: wrote {output} ({len(result.design.get('runs', []))} runs; {len(result.unmapped)} item(s) not mapped)", file=sys.stderr)
    return 0
