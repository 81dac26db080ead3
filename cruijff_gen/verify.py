"""Verify stage: compare the files on disk with the values the plan derives from the design.

Expectations come from the plan (never from the files being checked). Only design-derived values
are checked; keys, #SBATCH lines and comments a user adds are theirs. Each mismatch is one line:
`<file>: <key>: expected <x>, found <y>`.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import re
import shlex
from pathlib import Path
from typing import Any, Callable, Collection

from . import yamlio
from .plan import EvalCell, ExperimentPlan, RunPlan, SlurmJob
from .render import Entry, layout, select, setup_finetune_data

MISSING = object()
CONFLICT_MARKERS = ("<<<<<<< ", ">>>>>>> ")


def _show(value: Any) -> str:
    if value is MISSING:
        return "nothing"
    if isinstance(value, str) and _looks_typed(value):
        return repr(value)  # text that reads like a number or boolean: show it is text
    return yamlio.dump_inline(value)


def _looks_typed(text: str) -> bool:
    if text.strip().lower() in ("true", "false", "yes", "no", "on", "off", "null", "~", ""):
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def _same(expected: Any, found: Any) -> bool:
    """Equal values of the same kind: 0.0005 is not '5e-4', true is not 1; 1 and 1.0 are."""
    if isinstance(expected, bool) or isinstance(found, bool):
        return type(expected) is type(found) and expected == found
    if isinstance(expected, (int, float)) and isinstance(found, (int, float)):
        return expected == found
    if isinstance(expected, dict) and isinstance(found, dict):
        return expected.keys() == found.keys() and all(_same(v, found[k]) for k, v in expected.items())
    if isinstance(expected, list) and isinstance(found, list):
        return len(expected) == len(found) and all(_same(a, b) for a, b in zip(expected, found))
    return type(expected) is type(found) and expected == found


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            out.update(_flatten(value, path))
        else:
            out[path] = value
    return out


def _lookup(tree: Any, dotted: str) -> Any:
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return node


def _compare_tree(path: str, expected: dict[str, Any], found: Any) -> list[str]:
    return [
        f"{path}: {key}: expected {_show(value)}, found {_show(got)}"
        for key, value in _flatten(expected).items()
        if not _same(value, got := _lookup(found, key))
    ]


def _conflicts(path: str, text: str) -> list[str]:
    return [
        f"{path}: line {n}: expected no merge conflict markers, found {line[:7]!r}"
        for n, line in enumerate(text.splitlines(), 1)
        if line.startswith(CONFLICT_MARKERS) or line == "======="
    ][:1]


# --------------------------------------------------------------------------- SLURM scripts
_SBATCH = re.compile(r"^#SBATCH\s+--([A-Za-z-]+)(?:[= ]\s*(.*?))?\s*$")


def parse_slurm(text: str) -> dict[str, Any]:
    """What a SLURM script says, in the terms of plan.SlurmJob (directives, exports, lines, argv)."""
    directives: dict[str, str] = {}
    exports: dict[str, str] = {}
    lines: list[str] = []
    for line in _lines(text):
        if m := _SBATCH.match(line):
            directives[m.group(1)] = (m.group(2) or "").strip()
        stripped = line.strip()
        lines.append(stripped)
        if stripped.startswith("export ") and "=" in stripped:
            name, _, value = stripped[len("export "):].partition("=")
            try:
                exports[name] = " ".join(_split(value))
            except ValueError:
                exports[name] = value
    return {"directives": directives, "exports": exports, "lines": lines, "text": text}


def _lines(text: str) -> list[str]:
    """A script's lines as bash reads them: split at newlines only (str.splitlines() would also
    split at \\v, \\f, NEL, U+2028, ... which a quoted path may hold)."""
    return text.split("\n")


def _split(text: str) -> list[str]:
    """shlex.split, without its cost for the common text that has nothing to unquote."""
    if not any(c in text for c in "'\"\\"):
        return _WORDS.findall(text)  # shlex's own separators only (not every Unicode space)
    return shlex.split(text)


_WORDS = re.compile(r"[^ \t\r\n]+")


def find_command(text: str, program: str) -> list[str] | None:
    """The argv of the first command line starting with `program`, joining `\\` continuations."""
    source = _lines(text)
    for i, line in enumerate(source):
        if line.startswith(program + " ") or line == program:
            block = line
            j = i
            while block.endswith("\\") and j + 1 < len(source):
                j += 1
                block = block[:-1] + " " + source[j]
            try:
                return _split(block)
            except ValueError:
                return [block]
    return None


def argv_items(argv: list[str] | tuple[str, ...]) -> list[tuple[str, str]]:
    """argv as (key, value) pairs: positionals by place, `--opt v` / `--opt=v` by option name,
    `-T name=value` / `-M name=value` by option and name (inspect's task and model args)."""
    items: list[tuple[str, str]] = []
    i = 0
    position = 0
    while i < len(argv):
        word = argv[i]
        if word.startswith("-"):
            if "=" in word and word.startswith("--"):
                key, _, value = word.partition("=")
                items.append((key, value))
                i += 1
                continue
            value = argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("-") else ""
            if word in ("-T", "-M", "--metadata") and "=" in value:
                name, _, value = value.partition("=")
                items.append((f"{word} {name}", value))
            else:
                items.append((word, value))
            i += 2 if i + 1 < len(argv) and not argv[i + 1].startswith("-") else 1
        else:
            items.append((f"argument {position}", word))
            position += 1
            i += 1
    return items


def _check_slurm(path: str, text: str, job: SlurmJob) -> list[str]:
    found = parse_slurm(text)
    out = []
    for key, value in job.directives:
        got = found["directives"].get(key, MISSING)
        if got != value:
            out.append(f"{path}: #SBATCH --{key}: expected {value}, found {_show(got)}")
    for key, value in job.exports:
        got = found["exports"].get(key, MISSING)
        if got != value:
            out.append(f"{path}: export {key}: expected {value}, found {_show(got)}")
    for line in job.environment:
        if line not in found["lines"]:
            out.append(f"{path}: environment: expected the line {line!r}, found nothing")
    for line in job.setup:
        if line not in found["lines"]:
            out.append(f"{path}: preflight: expected the line {line!r}, found nothing")
    cd_line = f"cd {shlex.quote(job.workdir)}"
    if cd_line not in found["lines"]:
        out.append(f"{path}: working directory: expected {cd_line!r}, found nothing")
    argv = find_command(text, job.argv[0])
    if argv is None:
        out.append(f"{path}: command: expected {shlex.join(job.argv)}, found nothing")
        return out
    expected_items = argv_items(job.argv)
    found_items = dict(argv_items(argv))
    for key, value in expected_items:
        got = found_items.get(key, MISSING)
        if got != value:
            out.append(f"{path}: command {key}: expected {value}, found {_show(got)}")
    return out


# --------------------------------------------------------------------------- files
def _load_yaml(path: str, text: str) -> tuple[Any, list[str]]:
    try:
        return yamlio.load(text), []
    except Exception as exc:  # noqa: BLE001 - reported as a mismatch
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return None, [f"{path}: yaml: expected valid YAML, found an error ({first})"]


def _check_entry(entry: Entry, text: str) -> list[str]:
    path, kind, subject = entry.path, entry.kind, entry.subject
    problems = _conflicts(path, text)
    if kind in ("finetune_yaml", "setup_finetune", "eval_settings"):
        data, errors = _load_yaml(path, text)
        if errors:
            return problems + errors
        if kind == "finetune_yaml":
            assert isinstance(subject, RunPlan) and subject.finetune is not None
            problems += _compare_tree(path, subject.finetune, data)
        elif kind == "setup_finetune":
            problems += _compare_tree(path, setup_finetune_data(subject), data)
        else:
            assert isinstance(subject, EvalCell)
            problems += _compare_tree(path, subject.settings, data)
    elif kind == "finetune_slurm":
        problems += _check_slurm(path, text, subject.finetune_job)
    elif kind == "eval_slurm":
        problems += _check_slurm(path, text, subject.job)
    return problems


def mismatch_key(line: str) -> str:
    """`<file>: <key>` of a mismatch line (the part that names the place, not the values)."""
    return line.split(": expected ", 1)[0]


def verify(
    root: Path,
    plan: ExperimentPlan,
    read: Callable[[str], str] | None = None,
    only: tuple[str, ...] = (),
    files: Collection[str] | None = None,
) -> list[str]:
    """All mismatches between the tree at `root` and the plan (empty list: the tree is right).
    `read(relpath)` reads a file from elsewhere (e.g. a commit) instead of the work tree.
    `files`: check the values of these files only (the ones a commit or an update changed); every
    other generated file is only checked to exist."""
    wanted = None if files is None else set(files)
    checks = []
    problems: list[str] = []
    for entry in select(layout(plan), only):
        if wanted is None or entry.path in wanted:
            checks.append(entry)
        elif read is None and not (root / entry.path).is_file():
            problems.append(f"{entry.path}: file: expected it to exist, found nothing")
    problems = _check_all(root, checks, read) + problems
    if read is None and not only:
        problems += _stale_runs(root, plan)
    return problems


def _check_file(root: Path, entry: Entry, read: Callable[[str], str] | None) -> list[str]:
    try:
        text = read(entry.path) if read else (root / entry.path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return [f"{entry.path}: file: expected it to exist, found nothing"]
    except (OSError, UnicodeDecodeError) as exc:
        return [f"{entry.path}: file: expected readable UTF-8 text, found an error ({exc})"]
    return _check_entry(entry, text)


# Parsing thousands of YAML files is most of a big verify (PyYAML builds Python objects in Python):
# above this many files it is split over the CPUs, in forked workers that inherit the plan.
PARALLEL_FROM = 1500
_job: tuple[Path, list[Entry]] | None = None


def _check_chunk(bounds: tuple[int, int]) -> list[str]:
    assert _job is not None
    root, entries = _job
    return [line for entry in entries[bounds[0]:bounds[1]] for line in _check_file(root, entry, None)]


def _workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _check_all(root: Path, entries: list[Entry], read: Callable[[str], str] | None) -> list[str]:
    global _job
    workers = min(_workers(), 8)
    if read is not None or workers < 2 or len(entries) < PARALLEL_FROM or "fork" not in mp.get_all_start_methods():
        return [line for entry in entries for line in _check_file(root, entry, read)]
    step = -(-len(entries) // (workers * 4))
    chunks = [(i, min(i + step, len(entries))) for i in range(0, len(entries), step)]
    _job = (root, entries)
    try:
        with mp.get_context("fork").Pool(workers) as pool:
            results = pool.map(_check_chunk, chunks)  # in order: the lines keep the layout's order
    finally:
        _job = None
    return [line for lines in results for line in lines]


def _stale_runs(root: Path, plan: ExperimentPlan) -> list[str]:
    """Run directories the design no longer has (left behind by hand or by a failed update)."""
    names = {r.name for r in plan.runs}
    out = []
    for child in sorted(root.iterdir()) if root.is_dir() else []:
        if child.is_dir() and child.name not in names and ((child / "finetune.yaml").exists() or (child / "eval").is_dir()):
            out.append(f"{child.name}/: run directory: expected none (not in the design), found one")
    return out
