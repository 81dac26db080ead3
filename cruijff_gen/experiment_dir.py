"""The experiment directory on disk: its file names, reading the answers and the design, writing files."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from . import facts  # (yamlio is imported where used: Copier's throw-away renders load this module and need no YAML)
from .errors import DesignError, Problem, UsageError

ANSWERS_FILE = ".copier-answers.yml"
SUMMARY_FILE = "experiment_summary.yaml"
# The files every experiment has at its top level, in layout order (their kinds: filekinds.KINDS,
# which checks it agrees); a run's directory may not take one of these names.
TOP_LEVEL_FILES = (SUMMARY_FILE, "README.md", "submit.sh", ".gitignore", ".pre-commit-config.yaml")


# The sections of experiment_summary.yaml (parse.DESIGN_SECTIONS), in the summary's order.
DESIGN_SECTIONS = (
    "experiment", "tools", "variables", "controls", "models",
    "data", "output", "runs", "evaluation",
)

# The update, as the README and every message give it: Copier is given no design; the render task
# reads the experiment's own experiment_summary.yaml (commands/update.py, summary_entries).
UPDATE_COMMAND = "copier update --trust --defaults"


def read_design_file(path: Path) -> dict[str, Any]:
    """A YAML design file (answers or summary) as a mapping, or one readable error: a UsageError
    when the file is missing or unreadable (the argument or the directory is wrong), a DesignError
    when what it holds is not a design's YAML. An answers file's design record (DESIGN_RECORD) is
    decoded into its sections."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror})") from None
    return design_from_text(text, path.name)


def design_from_text(text: str | bytes, name: str) -> dict[str, Any]:
    """read_design_file of a file's contents (`name`: the file, for the messages)."""
    from . import yamlio

    try:
        data = yamlio.load(text, long_texts=(DESIGN_RECORD,))
    except yamlio.LimitExceeded as exc:
        raise DesignError(Problem("", f"{name}: {exc}")) from None
    except Exception as exc:  # noqa: BLE001 - any YAML problem becomes one line with its position
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = getattr(exc, "problem", None) or getattr(exc, "context", None) or str(exc).splitlines()[0]
        raise DesignError(Problem("", f"{name}: {where}not valid YAML ({what})")) from None
    if data is None:
        raise DesignError(Problem("", f"{name}: the file is empty"))
    if not isinstance(data, dict):
        raise DesignError(Problem("", f"{name}: expected a mapping of sections, got {type(data).__name__}"))
    return decode_answers(data, name)


# --------------------------------------------------------------------------- the answers file
# The answers file keeps _commit, _src_path and the cluster settings as YAML entries, and the
# design sections as one private entry: a literal block holding them as JSON (ASCII, keys sorted,
# one value per line). Copier reads the file twice per update with pure-Python YAML, which scans
# such a block as one scalar (~5x faster than the nested mapping), and a private key is none of
# Copier's last answers: the design comes from the data file (a section it leaves out: from the
# last commit's record, see record_answers). Copier renders the file with every section a YAML
# entry (template/{{ _copier_conf.answers_file }}.jinja: JSON would expand an alias bomb there);
# the render task rewrites it so. A date in experiment.date (YAML has dates, JSON has not) is the
# ISO text in the record and the date itself in RECORD_DATE. A design JSON cannot hold exactly (a
# date elsewhere, keys that are not text, NaN) stays as Copier wrote it. Both layouts read to the
# same mapping.
DESIGN_RECORD = "_cruijff_design"
RECORD_DATE = "_cruijff_experiment_date"


def decode_answers(data: dict[str, Any], name: str = ANSWERS_FILE) -> dict[str, Any]:
    """The mapping of an answers file as loaded (any layout) -> its answers: the design record
    decoded into its sections, in the earlier layout's key order; raises DesignError."""
    if DESIGN_RECORD not in data and RECORD_DATE not in data:
        return data

    def bad(what: str) -> DesignError:
        return DesignError(Problem("", f"{name}: {DESIGN_RECORD}: {what} (it is written by the template: "
                                       f"restore it with `git checkout -- {ANSWERS_FILE}`)"))

    rest = dict(data)
    record, when = rest.pop(DESIGN_RECORD, None), rest.pop(RECORD_DATE, None)
    if not isinstance(record, str):
        raise bad("expected the design as JSON text")
    try:
        design = json.loads(record)
    except ValueError as exc:
        raise bad(f"not valid JSON ({exc})") from None
    if not isinstance(design, dict):
        raise bad(f"expected a mapping of design sections, got {type(design).__name__}")
    unknown = [k for k in design if k not in DESIGN_SECTIONS]
    if unknown:
        raise bad(f"not a design section: {unknown[0]!r}")
    both = [k for k in design if k in rest]
    if both:
        raise bad(f"section {both[0]!r} is also a top-level entry")
    _check_texts(design, name)
    if when is not None:
        experiment = design.get("experiment")
        if not (isinstance(experiment, dict) and hasattr(when, "isoformat") and experiment.get("date") == when.isoformat()):
            raise bad(f"{RECORD_DATE} is not the record's experiment.date")
        experiment["date"] = when
    return dict(sorted({**rest, **design}.items()))  # the key order of the earlier layout (to_nice_yaml sorts)


def _check_texts(value: Any, name: str, where: str = "") -> None:
    """yamlio's limit on one text value, for the values of the record (one long YAML text itself)."""
    from . import yamlio

    stack = [(value, where)]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str):
            if len(value) > yamlio.MAX_TEXT:
                raise DesignError(Problem("", f"{name}: {where}: a text of {len(value):,} characters; at most {yamlio.MAX_TEXT:,} are accepted"))
        elif isinstance(value, dict):
            stack += [(k, where) for k in value] + [(v, f"{where}.{k}" if where else k) for k, v in value.items()]
        elif isinstance(value, list):
            stack += [(v, f"{where}[{i}]") for i, v in enumerate(value)]


ANSWERS_HEADER = (
    "# The design and cluster settings this experiment was rendered from. Managed by Copier and\n"
    "# cruijff_gen: edit experiment_summary.yaml instead, then run the update (see README.md).\n"
)


def answers_text(answers: dict[str, Any]) -> str:
    """The answers file for these answers (Copier's: _commit, _src_path, the questions' answers):
    the record, or, for a design JSON cannot hold exactly, what the template writes, byte for byte
    (tests/test_copy.py compares them)."""
    import yaml

    def nice(data: dict[str, Any], **kw: Any) -> str:  # Copier's to_nice_yaml filter
        return yaml.dump(data, indent=4, allow_unicode=True, default_flow_style=False, **kw)

    answers = {k: v for k, v in answers.items() if k != DEST_KEY}
    design = {k: v for k, v in answers.items() if k in DESIGN_SECTIONS}
    rest = {k: v for k, v in answers.items() if k not in DESIGN_SECTIONS}
    experiment = design.get("experiment")
    if isinstance(experiment, dict) and hasattr(experiment.get("date"), "isoformat"):
        rest[RECORD_DATE] = experiment["date"]
        design["experiment"] = {**experiment, "date": experiment["date"].isoformat()}
    record = bool(design) and json.loads(json.dumps(design, skipkeys=True, default=lambda _: "")) == design
    kept = rest if record else answers
    text = nice(kept)
    if "\u0085" in text or "\u2028" in text or "\u2029" in text:
        text = nice(kept, default_style='"')
    if record:
        body = json.dumps(design, indent=1, sort_keys=True, ensure_ascii=True)
        text += f"{DESIGN_RECORD}: |\n" + "".join(f"  {line}\n" for line in body.splitlines())
    return ANSWERS_HEADER + text


DEST_KEY = "_dest"  # (answers key) where the experiment is: experiment.dir's default
DEST_ENV = "CRUIJFF_GEN_DEST"  # set by `cruijff-gen new`, which renders into a staging sibling of DEST


def misplaced(the_plan: Any, where: str) -> str | None:
    """What is wrong when the experiment at `where` is not the experiment.dir its jobs `cd` into."""
    if os.path.realpath(the_plan.experiment_dir) == os.path.realpath(where):
        return None
    return (f"experiment.dir: the jobs cd into {the_plan.experiment_dir} and write there, but this experiment is in {where}; "
            f"move it there before submitting, or omit experiment.dir (the default is the experiment's own directory)")


def record_answers(root: Path, given: tuple[str, ...], head_text: str | None, summary: dict[str, Any] | None = None) -> None:
    """The render task of a copy or an update, in the experiment: rewrite the answers file Copier
    rendered (every section a YAML entry) with the design as one record (see answers_text). Its
    design is read with this package's limits first (an alias bomb Copier loaded, shared and
    small, is refused here, before anything expands it). In an update, `summary` holds the
    answers the experiment's design file gives that Copier was not given (`given`: the keys Copier
    was given; `copier update --trust --defaults` gives none): they replace Copier's. Copier
    answers a question the data file does not give with its last answer, and the record is none of
    its last answers: so a design section neither gives is taken from the last commit's answers
    file (`head_text`), as Copier took it before the record."""
    summary = summary or {}
    current = {**read_design_file(root / ANSWERS_FILE), **summary}
    missing = [k for k in DESIGN_SECTIONS if k not in given and k not in summary]
    if missing and head_text:
        recorded = design_from_text(head_text, ANSWERS_FILE)
        current = {**current, **{k: recorded[k] for k in missing if k in recorded}}
    write_tree(root, {ANSWERS_FILE: answers_text(current)}, set())


def no_copier_keys(data: dict[str, Any], where: str) -> None:
    """Copier's own variables (`_copier_python`, `_copier_conf`, `_copier_operation`, ...) given as data
    end in a traceback inside Copier, before the template runs, and in an update's design file they
    would replace the answers file's own (`_commit`): refused, by name (a design error in the
    design file, a usage error in a --data argument)."""
    for key in data:
        if str(key).startswith("_"):
            problem = Problem(f"{where}{key}", "names starting with '_' are Copier's own variables, not design fields; remove it")
            raise UsageError(str(problem)) if where.startswith("--data") else DesignError(problem)


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
    from . import yamlio

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
