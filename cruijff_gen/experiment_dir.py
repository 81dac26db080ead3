"""The experiment directory on disk: its file names, reading the answers and the design, writing files."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from . import facts, yamlio
from .errors import DesignError, Problem, UsageError

ANSWERS_FILE = ".copier-answers.yml"
SUMMARY_FILE = "experiment_summary.yaml"
# The files every experiment has at its top level, in layout order (their kinds: filekinds.KINDS,
# which checks it agrees); a run's directory may not take one of these names.
TOP_LEVEL_FILES = (SUMMARY_FILE, "README.md", "submit.sh", ".gitignore", ".pre-commit-config.yaml")


def read_design_file(path: Path) -> dict[str, Any]:
    """A YAML design file (answers or summary) as a mapping, or one readable error: a UsageError
    when the file is missing or unreadable (the argument or the directory is wrong), a DesignError
    when what it holds is not a design's YAML."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror})") from None
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


DEST_KEY = "_dest"  # (answers key) where the experiment is: experiment.dir's default
DEST_ENV = "CRUIJFF_GEN_DEST"  # set by `cruijff-gen new`, which renders into a staging sibling of DEST


def misplaced(the_plan: Any, where: str) -> str | None:
    """What is wrong when the experiment at `where` is not the experiment.dir its jobs `cd` into."""
    if os.path.realpath(the_plan.experiment_dir) == os.path.realpath(where):
        return None
    return (f"experiment.dir: the jobs cd into {the_plan.experiment_dir} and write there, but this experiment is in {where}; "
            f"move it there before submitting, or omit experiment.dir (the default is the experiment's own directory)")


def read_answers(root: Path) -> dict[str, Any]:
    """The experiment's recorded answers, and where it is (DEST_KEY): the default of experiment.dir."""
    return {**read_design_file(root / ANSWERS_FILE), DEST_KEY: os.environ.get(DEST_ENV) or str(root.resolve())}


def write_tree(root: Path, files: dict[str, str], executable: set[str], progress: Any = None) -> list[str]:
    """Write the files that differ from what is on disk, each atomically (temp file + rename), so
    that a kill leaves every file either old or new. Returns the paths written. `progress(done,
    total)` is told after each file."""
    written = []
    for done, (rel, text) in enumerate(files.items(), 1):
        if progress is not None:
            progress(done, len(files))
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


SUMMARY_ENV = "CRUIJFF_GEN_SUMMARY"  # set by `cruijff-gen new`: the summary file the user gave


def _data_file_candidates() -> list[Path]:
    """Where the user's summary may be: the path `cruijff-gen new` passes in SUMMARY_ENV, else the
    `--data-file` of the Copier process running this task (Copier does not pass it to tasks; on
    Linux its command line is readable under /proc). A relative one is resolved against the
    directory copier was started in: the shell's PWD (Copier itself has moved into the
    destination by now)."""
    out = [Path(os.environ[SUMMARY_ENV])] if os.environ.get(SUMMARY_ENV) else []
    try:
        argv = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().decode("utf-8").split("\0")
    except (OSError, UnicodeDecodeError):
        return out
    cwd = Path(os.environ.get("PWD") or ".")
    for i, word in enumerate(argv):
        if word == "--data-file" and i + 1 < len(argv):
            out.append(cwd / argv[i + 1])
        elif word.startswith("--data-file="):
            out.append(cwd / word.partition("=")[2])
    return out


def user_summary(answers: dict[str, Any], sections: tuple[str, ...]) -> str | None:
    """The user's own summary text (comments, key order, flow style and all), when a candidate
    file says exactly the design Copier rendered (`sections` of `answers`); else None."""
    for path in _data_file_candidates():
        try:
            text = path.read_bytes().decode("utf-8")
            data = yamlio.load(text)
        except Exception:  # noqa: BLE001 - not readable, not YAML: not the design that was rendered
            continue
        if isinstance(data, dict) and any(k in data for k in sections) and not unrendered_sections(data, answers, sections):
            return text
    return None


def empty_section(value: Any) -> bool:
    """A design section that says nothing: absent, null, or Copier's empty default ({} / [])."""
    return value is None or value == {} or value == []


# The design questions' default answers in copier.yml that are not empty (tests/test_first_week.py
# checks they agree): what Copier answers a section the data file leaves out with.
SECTION_DEFAULTS = {"tools": dict(facts.DEFAULT_TOOLS), "models": {"base": []}}


def unrendered_sections(summary: dict[str, Any], answers: dict[str, Any], sections: Any) -> list[str]:
    """The design sections the summary says differently from the answers the tree was rendered
    from. A section the summary leaves out was answered with its question's default (Copier), so
    it differs only if the answer is something else."""
    return [
        k for k in sections
        if summary.get(k) != answers.get(k) and not (summary.get(k) is None and (empty_section(answers.get(k)) or answers.get(k) == SECTION_DEFAULTS.get(k)))
    ]
