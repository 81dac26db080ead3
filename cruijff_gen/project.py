"""The experiment directory on disk: where the design is read from and files are written to."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from . import yamlio
from .errors import DesignError, Problem

ANSWERS_FILE = ".copier-answers.yml"
SUMMARY_FILE = "experiment_summary.yaml"
# The files every experiment has at its top level (path -> the renderer's kind), in layout order;
# a run's directory may not take one of these names.
TOP_LEVEL_FILES = {
    SUMMARY_FILE: "summary",
    "README.md": "readme",
    "submit.sh": "submit",
    ".gitignore": "gitignore",
    ".pre-commit-config.yaml": "pre-commit",
}


def read_design_file(path: Path) -> dict[str, Any]:
    """A YAML design file (answers or summary) as a mapping, or one readable DesignError."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise DesignError(Problem("", f"{path}: no such file")) from None
    except OSError as exc:
        raise DesignError(Problem("", f"{path}: cannot read ({exc.strerror})")) from None
    try:
        data = yamlio.load(text)
    except yamlio.LimitExceeded as exc:
        raise DesignError(Problem("", f"{path.name}: {exc}")) from None
    except Exception as exc:  # noqa: BLE001 - any YAML problem becomes one line with its position
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = getattr(exc, "problem", None) or getattr(exc, "context", None) or str(exc).splitlines()[0]
        raise DesignError(Problem("", f"{path.name}: {where}not valid YAML ({what})")) from None
    if data is None:
        raise DesignError(Problem("", f"{path.name}: the file is empty"))
    if not isinstance(data, dict):
        raise DesignError(Problem("", f"{path.name}: expected a mapping of sections, got {type(data).__name__}"))
    return data


def read_answers(root: Path) -> dict[str, Any]:
    return read_design_file(root / ANSWERS_FILE)


def write_tree(root: Path, files: dict[str, str], executable: set[str]) -> list[str]:
    """Write the files that differ from what is on disk, each atomically (temp file + rename), so
    that a kill leaves every file either old or new. Returns the paths written."""
    written = []
    for rel, text in files.items():
        path = root / rel
        data = text.encode("utf-8")
        mode = 0o755 if rel in executable else 0o644
        try:
            if path.read_bytes() == data and (path.stat().st_mode & 0o777) == mode:
                continue
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        written.append(rel)
    return written
