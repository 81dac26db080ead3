"""The kinds of generated file: THE table that render, verify, logs and update all read.

Every file cruijff_gen generates (logs aside: logs.py writes those) is of one kind in KINDS, and
everything the code knows about a kind that is data lives in its row: where the file goes, whether
it is a script (the exec bit), its format, the plan object it is made from, and `expected`, the
values the file must hold, taken from that plan object. The two columns that are code live beside
the stages that run them, keyed by the kind's name: render.RENDERERS (how a file is written) and
verify.CHECKERS (how it is read back and compared); each module checks at import that its column
covers exactly the kinds of this table, so a kind added here without a renderer or a checker stops
the package from loading instead of going unchecked.

layout(plan) lists every generated file of an experiment as an Entry (path, kind, subject), in a
stable order: the single list render writes, verify walks and update merges.

This module is the bottom of the file side: it imports plan, experiment_dir, facts and yamlio only,
never render or verify, which never import each other.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .experiment_dir import SUMMARY_FILE, TOP_LEVEL_FILES
from .plan import ExperimentPlan, RunPlan, SlurmJob

GITKEEP = ".gitkeep"

# --------------------------------------------------------------------------- fixed texts
# Files whose whole text is data: render writes it, verify checks the file against it.
GITIGNORE = """\
# Training and evaluation outputs stay out of git (checkpoints are large); the directories stay.
*/artifacts/*
!*/artifacts/.gitkeep
*/eval/logs/*
!*/eval/logs/.gitkeep
__pycache__/
"""

PRE_COMMIT_CONFIG = """\
# Every commit and push re-checks that what git records still says what the design says (the
# commit stage: the staged files; the push stage: every commit being pushed).
# Install once per clone: pre-commit install --hook-type pre-commit --hook-type pre-push
repos:
  - repo: local
    hooks:
      - id: cruijff-verify
        name: cruijff-gen verify
        entry: cruijff-gen verify --files
        language: system
        pass_filenames: false
        always_run: true
        stages: [pre-commit, pre-push]
"""


# --------------------------------------------------------------------------- expected values
def setup_finetune_data(run: RunPlan) -> dict[str, Any]:
    """The resolved inputs of a fine-tuned run (what setup_finetune.yaml says, as data)."""
    res = run.resources
    if res is None:
        raise ValueError(f"run {run.name}: setup_finetune.yaml is made for fine-tuned runs only")
    return {
        "run": run.name,
        "type": run.type,
        "model": run.model,
        "model_path": run.model_path,
        "dataset_label": run.dataset_label,
        "output_dir": run.artifacts_dir,
        "recipe": " ".join(run.recipe_args),
        "parameters": dict(run.params),
        "slurm": {"gpus": res.gpus, "mem": res.mem, "cpus": res.cpus, "time": res.time,
                  "partition": res.partition or None, "constraint": res.constraint or None, "mig": run.mig},
    }


def _finetune(run: RunPlan) -> dict[str, Any]:
    if run.finetune is None:
        raise ValueError(f"run {run.name}: finetune.yaml is made for fine-tuned runs only")
    return run.finetune


def _finetune_job(run: RunPlan) -> SlurmJob:
    if run.finetune_job is None:
        raise ValueError(f"run {run.name}: finetune.slurm is made for fine-tuned runs only")
    return run.finetune_job


# --------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Kind:
    """One kind of generated file, as data.

    name: the key of the kind in render.RENDERERS and verify.CHECKERS (and Entry.kind).
    path: where a file of the kind goes, relative to the experiment root: the file name itself at
        the top level, else a rule with `{run}` (the run's name), `{stem}` (the eval cell's file
        stem) or `{dir}` (a directory kept in git although empty); layout() fills it in.
    subject: what the file is made from: "plan" (the ExperimentPlan), "run" (a RunPlan), "cell" (an
        EvalCell), "answers" (the answers mapping as Copier recorded it) or "none" (a fixed text).
    executable: written with the exec bit (a script run by sbatch or bash).
    format: how the file is read: "yaml" (parsed and compared key by key), "shell" (read the way
        sbatch and bash read it) or "text".
    expected: subject -> the values the file must hold: a mapping for YAML files (every key in it
        must hold its value; other keys are free), the SlurmJob for SLURM scripts (its directives and
        launch command); None where the file is checked by its text alone.
    what: one line for people (the docs and the messages of the coverage checks).
    """

    name: str
    path: str
    subject: str
    executable: bool
    format: str
    expected: Callable[[Any], Any] | None
    what: str

    def at(self, **fields: str) -> str:
        """The path of one file of this kind: `{run}`, `{stem}` and `{dir}` filled in."""
        return self.path.format(**fields)


SUMMARY = Kind("summary", SUMMARY_FILE, "answers", False, "yaml", None,
               "the experiment design, the one file to edit (checked against the answers file)")
README = Kind("readme", "README.md", "plan", False, "text", None, "what the experiment is and how to run it")
SUBMIT = Kind("submit", "submit.sh", "plan", True, "shell", None, "submits every run's jobs in order")
GITIGNORE_FILE = Kind("gitignore", ".gitignore", "none", False, "text", None,
                      "keeps training and evaluation outputs out of git")
PRE_COMMIT = Kind("pre-commit", ".pre-commit-config.yaml", "none", False, "yaml", None,
                  "the git hook that runs the verifier on every commit and push")
SETUP_FINETUNE = Kind("setup_finetune", "{run}/setup_finetune.yaml", "run", False, "yaml", setup_finetune_data,
                      "a fine-tuned run's resolved inputs, each parameter with where it came from")
FINETUNE_YAML = Kind("finetune_yaml", "{run}/finetune.yaml", "run", False, "yaml", _finetune,
                     "a fine-tuned run's torchtune config")
FINETUNE_SLURM = Kind("finetune_slurm", "{run}/finetune.slurm", "run", True, "shell", _finetune_job,
                      "a fine-tuned run's training job")
EVAL_SETTINGS = Kind("eval_settings", "{run}/eval/{stem}.yaml", "cell", False, "yaml", lambda cell: cell.settings,
                     "an eval cell's settings, read by the inspect task")
EVAL_SLURM = Kind("eval_slurm", "{run}/eval/{stem}.slurm", "cell", True, "shell", lambda cell: cell.job,
                  "an eval cell's evaluation job")
KEEP = Kind("keep", "{dir}/" + GITKEEP, "none", False, "text", None,
            "keeps a directory in git while it is empty (a run's artifacts/, eval/logs/, or the run itself)")

KINDS: tuple[Kind, ...] = (
    SUMMARY, README, SUBMIT, GITIGNORE_FILE, PRE_COMMIT,
    SETUP_FINETUNE, FINETUNE_YAML, FINETUNE_SLURM, KEEP, EVAL_SETTINGS, EVAL_SLURM,
)
"""THE list of file kinds, in layout order (the order of their first file in layout())."""

KIND: dict[str, Kind] = {k.name: k for k in KINDS}

_TOP_LEVEL = tuple(k for k in KINDS if "{" not in k.path)
if tuple(k.path for k in _TOP_LEVEL) != TOP_LEVEL_FILES:
    raise RuntimeError(f"filekinds.KINDS: the top-level kinds' files {[k.path for k in _TOP_LEVEL]} differ from "
                       f"experiment_dir.TOP_LEVEL_FILES {list(TOP_LEVEL_FILES)}")


def require_column(column: str, keys: Mapping[str, Any]) -> None:
    """Raise RuntimeError unless `keys` (a column of the table kept in another module, e.g.
    render.RENDERERS) has exactly one entry per kind of KINDS."""
    missing = [k.name for k in KINDS if k.name not in keys]
    extra = sorted(set(keys) - KIND.keys())
    if missing or extra:
        raise RuntimeError(f"{column}: expected one entry per kind of filekinds.KINDS, found "
                           + "; ".join(filter(None, [missing and f"none for {', '.join(missing)}",
                                                     extra and f"unknown kinds {', '.join(extra)}"])))


# --------------------------------------------------------------------------- the tree
@dataclass(frozen=True)
class Entry:
    """One generated file: where it goes, what kind it is (a name in KIND), and the plan object it
    is made from (see Kind.subject; None for "answers" and "none")."""

    path: str  # relative to the experiment root
    kind: str
    subject: Any = None


def layout(plan: ExperimentPlan) -> list[Entry]:
    """Every generated file of the experiment (logs aside), in a stable order. The single list
    render() writes and the verifier walks."""
    entries = [Entry(k.path, k.name, plan if k.subject == "plan" else None) for k in _TOP_LEVEL]
    for run in plan.runs:
        cells = plan.cells_of(run.name)
        if run.type == "fine-tuned":
            entries += [
                Entry(SETUP_FINETUNE.at(run=run.name), SETUP_FINETUNE.name, run),
                Entry(FINETUNE_YAML.at(run=run.name), FINETUNE_YAML.name, run),
                Entry(FINETUNE_SLURM.at(run=run.name), FINETUNE_SLURM.name, run),
                Entry(KEEP.at(dir=f"{run.name}/artifacts"), KEEP.name),
            ]
        for cell in cells:
            entries += [Entry(EVAL_SETTINGS.at(run=cell.run, stem=cell.stem), EVAL_SETTINGS.name, cell),
                        Entry(EVAL_SLURM.at(run=cell.run, stem=cell.stem), EVAL_SLURM.name, cell)]
        if cells:
            entries.append(Entry(KEEP.at(dir=f"{run.name}/eval/logs"), KEEP.name))
        elif run.type != "fine-tuned":
            entries.append(Entry(KEEP.at(dir=run.name), KEEP.name))
    return entries


def expected(entry: Entry) -> Any:
    """The values `entry`'s file must hold (its kind's `expected` of its subject), or None."""
    fn = KIND[entry.kind].expected
    return None if fn is None else fn(entry.subject)


def select(entries: list[Entry], only: tuple[str, ...]) -> list[Entry]:
    """The entries of the runs matching any of the shell patterns (`rank8_*`), plus the files of
    the experiment as a whole (README, submit.sh, ...), which describe every run."""
    if not only:
        return entries
    return [e for e in entries if "/" not in e.path or any(fnmatch.fnmatchcase(e.path.split("/", 1)[0], p) for p in only)]


def executable_paths(the_plan: ExperimentPlan) -> set[str]:
    """The generated files written with the exec bit (scripts)."""
    return {e.path for e in layout(the_plan) if KIND[e.kind].executable}


__all__ = [
    "Kind", "KINDS", "KIND", "Entry", "layout", "select", "expected", "executable_paths", "require_column",
    "setup_finetune_data", "GITIGNORE", "PRE_COMMIT_CONFIG", "GITKEEP",
]
