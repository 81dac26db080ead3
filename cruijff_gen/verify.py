"""Verify stage: compare an experiment's files with the values the plan derives from the design.

Expectations come from the plan (never from the files being checked), and each file is read the way
its consumer reads it:

* SLURM scripts as sbatch reads them (sbatch.py): `#SBATCH` (and `#SLURM`) lines only before
  the first command, split by sbatch's own rules, long and short option forms, and `#PBS` / `#BSUB`
  lines anywhere; LF line endings only. Every directive the design sets must hold the design's
  value (every time it is given); any other directive is refused unless it is free
  (FREE_DIRECTIVES: it changes neither what the job gets nor where, when or how it runs).
* Then as bash runs them (shell.py): the generated shell lines, unchanged and in order, the
  launch command (`tune run`, `inspect eval`) word for word and only once. Comments and blank lines
  are free anywhere; shell lines are free only after the last generated line.
* submit.sh: the generated commands exactly (comments and blank lines are free).
* finetune.yaml, setup_finetune.yaml and the eval settings: every key the design sets; other keys
  are free.
* .pre-commit-config.yaml: the generated hook as generated (other hooks beside it are free);
  .gitignore: the generated patterns, and no pattern that ignores a generated file; every generated
  path a regular file (scripts executable), never a symlink nor under one.

Each mismatch is one line: `<file>: <key>: expected <x>, found <y>`, followed where the design owns
the value by what to edit instead. Where the files come from is a `Tree` (trees.py): the work tree
on disk, or git's index or a commit in commands/verify.py (what the hooks check).

Which files there are and the values each must hold come from the table of file kinds
(filekinds.KINDS); how each kind is read is its checker in CHECKERS. Where a check needs a file's
generated text (the SLURM scripts' shell lines, submit.sh), the caller passes the renderer in
(`rendered`: render.renderer(answers)); this module never imports the renderer.
"""

from __future__ import annotations

import difflib
import multiprocessing as mp
import os
import re
import shlex
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Collection, Iterable

from . import facts, yamlio
from .experiment_dir import UPDATE_COMMAND, unrendered_sections
from .filekinds import GITIGNORE, KIND, PRE_COMMIT_CONFIG, Entry, expected, layout, require_column, select
from .plan import ExperimentPlan, SlurmJob
from .sbatch import Option, options_of, read_directives
from .schema import DESIGN_MODEL_ARGS
from .shell import Line, shell_lines, split_words, strip_comment, unquoted_specials
from .trees import ReadTree, Tree, WorkTree

MISSING = object()
CONFLICT_MARKERS = ("<<<<<<< ", ">>>>>>> ")
ANSWERS_FILE = ".copier-answers.yml"
SUMMARY_FILE = "experiment_summary.yaml"


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


def _lookup(tree: Any, dotted: str) -> Any:
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return node


def _compare_tree(path: str, expected: dict[str, Any], found: Any, hint: Callable[[str], str] = lambda _: "") -> list[str]:
    return [
        f"{path}: {key}: expected {_show(value)}, found {_show(got)}{hint(key)}"
        for key, value in dict(facts.flat_items(expected)).items()
        if not _same(value, got := _lookup(found, key))
    ]


def _conflicts(path: str, text: str) -> list[str]:
    return [
        f"{path}: line {n}: expected no merge conflict markers, found {line[:7]!r}"
        for n, line in enumerate(text.splitlines(), 1)
        if line.startswith(CONFLICT_MARKERS) or line == "======="
    ][:1]


# --------------------------------------------------------------------------- what to edit instead
def _edit(field: str) -> str:
    return f" (to change it, edit the design field {field})"


def _finetune_fields() -> dict[str, str]:
    """finetune.yaml key (dotted) -> the design field that sets it (data/defaults.yaml's table)."""
    return {spec["at"]: key for key, spec in facts.hyperparameters().items() if spec.get("at")}


def _finetune_hint(key: str) -> str:
    field = _finetune_fields().get(key)
    if field:
        return _edit(f"{field} (runs[].parameters, or controls)")
    if key.startswith(("dataset", "dataset_val")):
        return " (derived from the design's data and prompt fields: change those and update)"
    return " (derived from the design and the model catalog: change the design and update)"


def _setup_hint(key: str) -> str:
    if key.startswith("parameters."):
        return _edit(f"{key.split('.', 1)[1]} (runs[].parameters, or controls)")
    if key.startswith("slurm."):
        return _edit(f"compute.{key.split('.', 1)[1]} (runs[].compute)")
    return " (derived from the design: change the design and update)"


def _cell_hint(key: str) -> str:
    if key.startswith("generation."):
        return _edit(f"evaluation.{key.split('.', 1)[1]}")
    if key in ("system_prompt", "prompt"):
        return _edit(f"{key} (evaluation.tasks[], or controls)")
    if key == "epoch":
        return _edit("evaluation.matrix[].epochs")
    return " (derived from the design: change the design and update)"


# --------------------------------------------------------------------------- #SBATCH directives: what the design allows
# Directives the design never sets and that leave the job as designed: free to add.
FREE_DIRECTIVES = {
    "comment": "a note in the job's accounting record",
    "mail-type": "which state changes are mailed (free when the design sets no mail_user)",
    "mail-user": "who gets them (free when the design sets no mail_user)",
    "open-mode": "whether the log file is appended to or truncated",
}

_RESOURCES = "it changes the resources the job gets"
_PLACE = "it changes where, on what or beside whom the job runs"
_WHEN = "it changes when, how often or whether the job runs"
_ENV = "it changes the job's environment, files or identity"
# Directives the design does not set, each refused, with what it would change.
REFUSED_DIRECTIVES = {
    "gpus": _RESOURCES + "; the design asks for GPUs with --gres: edit compute.gpus",
    "gpus-per-node": _RESOURCES + "; the design asks for GPUs with --gres: edit compute.gpus",
    "gpus-per-task": _RESOURCES + "; the design asks for GPUs with --gres: edit compute.gpus",
    "gpus-per-socket": _RESOURCES + "; the design asks for GPUs with --gres: edit compute.gpus",
    "mem-per-cpu": _RESOURCES + "; the design asks for memory with --mem: edit compute.mem",
    "mem-per-gpu": _RESOURCES + "; the design asks for memory with --mem: edit compute.mem",
    "cpus-per-gpu": _RESOURCES + "; the design asks for CPUs with --cpus-per-task: edit compute.cpus",
    **dict.fromkeys(("mincpus", "tmp", "tres-per-task", "ntasks-per-node", "ntasks-per-gpu", "ntasks-per-core",
                     "ntasks-per-socket", "sockets-per-node", "cores-per-socket", "threads-per-core",
                     "extra-node-info", "core-spec", "thread-spec", "hint", "licenses"), _RESOURCES),
    "qos": "it changes the job's quality of service: its priority and its limits (time, GPUs)",
    "exclusive": "the job would take whole nodes (every CPU, GPU and all the memory on them, and be charged for them)",
    **dict.fromkeys(("oversubscribe", "nodelist", "exclude", "reservation", "clusters", "cluster-constraint",
                     "nodefile", "distribution", "switches", "contiguous", "reboot", "spread-job", "use-min-nodes",
                     "network", "power", "cpu-freq", "gpu-freq", "gpu-bind", "mem-bind", "container", "batch",
                     "overcommit"), _PLACE),
    **dict.fromkeys(("array", "dependency", "begin", "hold", "deadline", "time-min", "signal", "requeue",
                     "no-requeue", "immediate", "no-kill", "kill-on-invalid-dep", "priority", "nice", "wait",
                     "delay-boot", "test-only"), _WHEN),
    **dict.fromkeys(("chdir", "export", "export-file", "get-user-env", "input", "error", "uid", "gid", "wrap",
                     "propagate", "x11", "bb", "bbf", "umask", "ignore-pbs"), _ENV),
}

# Where each directive the design sets comes from: "to change it, edit ...".
DIRECTIVE_FIELDS = {
    "job-name": "the run's name (runs[].name)",
    "cpus-per-task": "compute.cpus",
    "mem": "compute.mem",
    "gres": "compute.gpus",
    "time": "compute.time",
    "output": "experiment.dir",
    "account": "the cluster setting slurm_account",
    "partition": "compute.partition (or the cluster setting slurm_partition)",
    "constraint": "compute.constraint (or the cluster setting slurm_constraint)",
    "mail-type": "the cluster setting mail_type",
    "mail-user": "the cluster setting mail_user",
}
FIXED_DIRECTIVES = {"nodes": "one node", "ntasks": "one task (multi-GPU training starts its processes itself)"}
# Every option the tables above name: what the #SBATCH reader is told it knows (sbatch.py: a known
# option without `=` takes the next argument as its value; an unknown one is refused below).
KNOWN_DIRECTIVES = frozenset({**DIRECTIVE_FIELDS, **FIXED_DIRECTIVES, **FREE_DIRECTIVES, **REFUSED_DIRECTIVES})


def _directive_field(name: str, kind: str) -> str | None:
    field = DIRECTIVE_FIELDS.get(name)
    if field is not None and field.startswith("compute."):
        field += " (runs[].compute" + ("; evaluation.compute for eval cells)" if kind == "eval_slurm" else ")")
    return field


def _directive_hint(name: str, kind: str) -> str:
    if name in FIXED_DIRECTIVES:
        return f" (fixed by cruijff_gen: {FIXED_DIRECTIVES[name]})"
    field = _directive_field(name, kind)
    return "" if field is None else _edit(field)


def _check_directives(path: str, text: str, job: SlurmJob, kind: str) -> list[str]:
    found = read_directives(text, KNOWN_DIRECTIVES)
    out = [f"{path}: #SBATCH: expected directives sbatch reads as written, found line {n}: {what}" for n, what in found.problems]
    out += [
        f"{path}: {line.split()[0]}: expected none, found line {n}: {line!r} (sbatch applies #PBS and #BSUB "
        "lines wherever they are, over #SBATCH)"
        for n, line in found.wrappers
    ]
    design = dict(job.directives)
    given: dict[str, list[Option]] = defaultdict(list)
    for opt in found.options:
        given[opt.name].append(opt)
    ignored_names = {o.name for o in options_of(found.ignored, KNOWN_DIRECTIVES)}
    if found.first_command is not None and ignored_names & design.keys() - given.keys():
        n, line = found.first_command
        out.append(
            f"{path}: #SBATCH lines: expected them before the first command, found the command {line.strip()!r} at "
            f"line {n} first (sbatch ignores every #SBATCH line after it: {len(found.ignored)} here)"
        )
    for name, value in job.directives:
        occurrences = given.get(name, [])
        if not occurrences:
            if not (found.first_command is not None and name in ignored_names):
                out.append(f"{path}: #SBATCH --{name}: expected {value}, found nothing{_directive_hint(name, kind)}")
            continue
        if all(o.value == value for o in occurrences):
            continue
        if len(occurrences) == 1:
            o = occurrences[0]
            where = "" if o.written == f"--{name}" else f" (written {o.written}, line {o.line})"
            out.append(f"{path}: #SBATCH --{name}: expected {value}, found {o.value}{where}{_directive_hint(name, kind)}")
        else:
            seen = ", ".join(f"{o.value} ({o.written}, line {o.line})" for o in occurrences)
            out.append(
                f"{path}: #SBATCH --{name}: expected {value} only, found {seen} (sbatch versions differ in which "
                f"one counts: keep only the design's){_directive_hint(name, kind)}"
            )
    for name, occurrences in given.items():
        if name in design or name in FREE_DIRECTIVES:
            continue
        o = occurrences[-1]
        shown = o.written + ("" if o.value is None else f"={o.value}" if o.written.startswith("--") else f" {o.value}")
        if name in DIRECTIVE_FIELDS:
            why = f"the design sets none here; to set one, edit the design field {_directive_field(name, kind)}"
        else:
            why = "the design does not set it; " + REFUSED_DIRECTIVES.get(
                name, "not an sbatch option the verifier knows: write options in full, without abbreviations")
        out.append(f"{path}: #SBATCH --{name.lstrip('-')}: expected none ({why}), found {shown} (line {o.line})")
    return out


# --------------------------------------------------------------------------- command lines
_ALIASES = {"--model-arg": "-M", "--task-arg": "-T"}


def argv_items(argv: list[str] | tuple[str, ...]) -> list[tuple[str, str]]:
    """argv as (key, value) pairs: positionals by place, `--opt v` / `--opt=v` by option name,
    `-T name=value` / `-M name=value` (and their long forms) by option and name (inspect's task and
    model args)."""
    items: list[tuple[str, str]] = []
    i = 0
    position = 0
    while i < len(argv):
        word = argv[i]
        if word.startswith("-"):
            if "=" in word and word.startswith("--"):
                key, _, value = word.partition("=")
                key = _ALIASES.get(key, key)
                if key in ("-T", "-M") and "=" in value:
                    name, _, value = value.partition("=")
                    key = f"{key} {name}"
                items.append((key, value))
                i += 1
                continue
            value = argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("-") else ""
            key = _ALIASES.get(word, word)
            if key in ("-T", "-M", "--metadata") and "=" in value:
                name, _, value = value.partition("=")
                items.append((f"{key} {name}", value))
            else:
                items.append((key, value))
            i += 2 if i + 1 < len(argv) and not argv[i + 1].startswith("-") else 1
        else:
            items.append((f"argument {position}", word))
            position += 1
            i += 1
    return items


COMMAND_FIELDS = {
    "--nproc_per_node": "compute.gpus (runs[].compute)",
    "argument 2": "compute.gpus (the recipe follows the GPU count)",
    "--temperature": "evaluation.temperature",
    "--max-tokens": "evaluation.max_tokens",
    "--seed": "evaluation.seed",
    "--max-connections": "evaluation.max_connections",
    **{f"-M {key}": field for key, field in DESIGN_MODEL_ARGS.items()},
    "-M device": "compute.gpus (evaluation.compute), or the cluster setting eval_model_args",
    "-T data_path": "evaluation.tasks[].dataset",
}


def _extra_hint(program: str, key: str, value: str) -> str:
    if program == "tune" and key.startswith("argument") and "=" in value:
        name = value.split("=", 1)[0].lstrip("+~")
        field = _finetune_fields().get(name)
        where = f"edit the design field {field} instead" if field else "finetune.yaml keys the design does not set are edited in finetune.yaml"
        return f"torchtune would apply it as an override of finetune.yaml's {name}: {where}"
    if key in COMMAND_FIELDS:
        return f"to set it, edit the design field {COMMAND_FIELDS[key]}"
    if key.startswith("-M "):
        return "to give every eval cell a model argument, set the cluster setting eval_model_args"
    if key.startswith("-T "):
        return "task arguments are fixed: the task reads its settings from the cell's settings file"
    return "not a design field: remove it"


def compare_command(path: str, expected: tuple[str, ...], line: Line | None) -> list[str]:
    """The launch command word for word: no extra argument, none missing, no shell around it."""
    program = expected[0]
    if line is None:
        return [f"{path}: command: expected {shlex.join(expected)}, found nothing"]
    try:
        words = split_words(line.text)
    except ValueError:
        return [f"{path}: command: expected {shlex.join(expected)}, found unbalanced quotes at line {line.number}"]
    if words == list(expected):
        specials = unquoted_specials(line.text)
        if not specials:
            return []  # the same words, laid out differently
        return [f"{path}: command: expected the generated words, found unquoted {specials!r} that bash would expand (line {line.number})"]
    if program not in words:
        return [f"{path}: command: expected {shlex.join(expected)}, found {line.text!r} (line {line.number})"]
    out = []
    if words[0] != program:
        before = words[: words.index(program)]
        out.append(f"{path}: command: expected it to start with {program}, found {shlex.join(before)!r} before it (line {line.number})")
        words = words[words.index(program):]
    operators = [w for w in words if w in ("|", "||", "&", "&&", ";") or w.endswith(";") or w.startswith((">", "<", "2>", "1>", "&>"))]
    if operators:
        cut = words.index(operators[0])
        out.append(f"{path}: command: expected nothing after it on the line, found {' '.join(words[cut:])!r} (line {line.number})")
        words = words[:cut]
    want: dict[str, list[str]] = defaultdict(list)
    got: dict[str, list[str]] = defaultdict(list)
    for key, value in argv_items(expected):
        want[key].append(value)
    for key, value in argv_items(words):
        got[key].append(value)
    for key, values in want.items():
        found = got.get(key, [])
        if found == values:
            continue
        hint = _edit(COMMAND_FIELDS[key]) if key in COMMAND_FIELDS else ""
        if not found:
            out.append(f"{path}: command {key}: expected {' '.join(values)}, found nothing{hint}")
        elif len(found) == 1 and len(values) == 1:
            out.append(f"{path}: command {key}: expected {values[0]}, found {found[0]}{hint}")
        else:
            out.append(f"{path}: command {key}: expected {' and '.join(values)}, found {' and '.join(found)} (given {len(found)} times){hint}")
    for key, values in got.items():
        if key not in want:
            for value in values:
                if key.startswith("argument"):
                    shown = value
                elif key.startswith(("-T ", "-M ", "--metadata ")):
                    shown = f"{key}={value}"  # `-T name=value`
                else:
                    shown = f"{key} {value}".strip()
                out.append(f"{path}: command: expected no extra argument, found {shown!r} (line {line.number}; {_extra_hint(program, key, value)})")
    if not out:
        out.append(f"{path}: command: expected {shlex.join(expected)}, found {shlex.join(words)} (line {line.number})")
    return out


# --------------------------------------------------------------------------- scripts as bash runs them
_COMMENT_AFTER = re.compile(r"[ \t]+#")


def _key(line: Line, generated: set[str]) -> str:
    """The generated line `line` stands for (itself, or itself followed by a comment), else a key
    no generated line has."""
    if line.text in generated:
        return line.text
    if not line.heredoc:
        for m in _COMMENT_AFTER.finditer(line.text):
            if line.text[: m.start()] in generated:
                return line.text[: m.start()]
    return "\0" + line.text


_LAUNCH = {
    "tune": re.compile(r"(?<![\w.-])(?:tune|torchrun)(?![\w.-])|torchtune|lora_finetune_"),
    "inspect": re.compile(r"(?<![\w.-])inspect(?![\w.-])|inspect_ai"),
}


def _categories(job: SlurmJob, command: str) -> dict[str, str]:
    cats = {"set -euo pipefail": "shell options", command: "command", strip_comment(f"cd {shlex.quote(job.workdir)}"): "working directory"}
    cats.update({strip_comment(line): "environment" for line in job.environment})
    cats.update({strip_comment(line): "preflight" for line in job.setup})
    cats.update({strip_comment(line): "provenance" for line in getattr(job, "provenance", ())})
    for name, value in job.exports:
        cats[f"export {name}={shlex.quote(value)}"] = f"export {name}"
    return cats


def _export_value(text: str, name: str) -> str | None:
    for prefix in (f"export {name}=", f"{name}="):
        if text.startswith(prefix):
            try:
                return " ".join(split_words(text[len(prefix):]))
            except ValueError:
                return text[len(prefix):]
    return None


def _command_line(codes: list[str], argv: tuple[str, ...]) -> int | None:
    """Where the generated text has the launch command: the line whose words are the job's argv."""
    for i, code in enumerate(codes):
        if code.startswith(argv[0]):
            try:
                if split_words(code) == list(argv):
                    return i
            except ValueError:
                continue
    return None


def _check_body(path: str, text: str, expected_text: str, job: SlurmJob) -> list[str]:
    """The shell lines after the directives: the generated ones unchanged and in order, the command
    exactly once; after the last generated line, lines are the user's (but never a second launch)."""
    gen = shell_lines(expected_text)
    user = shell_lines(text)
    program = job.argv[0]
    codes = [g.text if g.heredoc else strip_comment(g.text) for g in gen]
    at = _command_line(codes, job.argv)
    cats = _categories(job, codes[at] if at is not None else shlex.join(job.argv))
    if at is not None:
        # The generated lines around the command that are not the job's own (environment, preflight,
        # provenance): the eval job's check of inspect's log status (started before, read after).
        before = at
        while before > 0 and codes[before - 1] not in cats:
            before -= 1
        cats.update({c: "eval status check" for c in codes[before:at] + codes[at + 1:]})
    generated = set(codes)
    keys = [_key(u, generated) for u in user]
    out: list[str] = []
    tail: list[Line] = []
    matcher = difflib.SequenceMatcher(None, codes, keys, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        if op == "insert" and i1 == len(codes):
            tail += user[j1:j2]
            continue
        pairs = list(zip(range(i1, i2), range(j1, j2)))
        for i, j in pairs:
            out += _line_problem(path, cats.get(codes[i], "shell"), codes[i], user[j], job)
        for i in range(i1 + len(pairs), i2):
            out += _line_problem(path, cats.get(codes[i], "shell"), codes[i], None, job)
        for j in range(j1 + len(pairs), j2):
            u = user[j]
            out.append(f"{path}: added line: expected nothing more before the last generated line, found {u.text!r} "
                       f"(line {u.number}; lines you add go after the last generated line: {codes[-1][:40]!r})")
    for u in tail:
        if _LAUNCH[program].search(u.text):
            out.append(f"{path}: command: expected one {program} command, found another at line {u.number}: {u.text!r}")
    return out


def _line_problem(path: str, category: str, expected: str, found: Line | None, job: SlurmJob) -> list[str]:
    if category == "command":
        return compare_command(path, job.argv, found)
    if category.startswith("export ") and found is not None:
        name = category.split(" ", 1)[1]
        value = _export_value(found.text, name)
        if value is not None:
            return [f"{path}: {category}: expected {dict(job.exports)[name]}, found {_show(value)}"]
    if found is None:
        return [f"{path}: {category}: expected the line {expected!r}, found nothing"]
    return [f"{path}: {category}: expected the line {expected!r}, found {found.text!r} (line {found.number})"]


def _check_slurm(path: str, text: str, job: SlurmJob, expected_text: str, kind: str) -> list[str]:
    if text == expected_text:
        return []
    out = []
    if "\r\n" in text:
        n = text[: text.index("\r\n")].count("\n") + 1
        out.append(f"{path}: line endings: expected LF, found CRLF at line {n} (sbatch refuses DOS line breaks)")
        text = text.replace("\r\n", "\n")  # the rest as if it had LF: one line for this problem
    if "\0" in text:
        out.append(f"{path}: text: expected no NUL byte, found one (sbatch reads a line only up to it)")
    first = text.split("\n", 1)[0]
    if first != "#!/bin/bash":
        out.append(f"{path}: line 1: expected '#!/bin/bash', found {first!r} (sbatch runs the script with it)")
    out += _check_directives(path, text, job, kind)
    out += _check_body(path, text, expected_text, job)
    return out


def _check_submit(path: str, text: str, expected_text: str) -> list[str]:
    """submit.sh: the generated commands exactly; comments and blank lines are free."""
    if text == expected_text:
        return []
    out = []
    if "\r" in text:
        out.append(f"{path}: line endings: expected LF, found CR (bash would read it as part of each command)")
    if not text.startswith("#!/bin/bash\n"):
        out.append(f"{path}: line 1: expected '#!/bin/bash', found {text.split(chr(10), 1)[0]!r}")
    gen = shell_lines(expected_text)
    user = shell_lines(text)
    codes = [g.text if g.heredoc else strip_comment(g.text) for g in gen]
    generated = set(codes)
    keys = [_key(u, generated) for u in user]
    where = []  # which run's block each generated line is in
    run = None
    for code in codes:
        if m := re.match(r"if wanted (\S+) ", code):
            run = m.group(1)
        where.append(f"run {run}" if run else "commands")
        if code == "fi":
            run = None
    hint = " (to change what is submitted, edit the design: runs, evaluation.matrix)"
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, codes, keys, autojunk=False).get_opcodes():
        if op == "equal":
            continue
        pairs = list(zip(range(i1, i2), range(j1, j2)))
        for i, j in pairs:
            out.append(f"{path}: {where[i]}: expected the line {codes[i]!r}, found {user[j].text!r} (line {user[j].number}){hint}")
        for i in range(i1 + len(pairs), i2):
            out.append(f"{path}: {where[i]}: expected the line {codes[i]!r}, found nothing{hint}")
        for j in range(j1 + len(pairs), j2):
            out.append(f"{path}: added line: expected only the generated commands, found {user[j].text!r} (line {user[j].number}){hint}")
    return out


# --------------------------------------------------------------------------- repository files
_HOOK = yamlio.load(PRE_COMMIT_CONFIG)["repos"][0]["hooks"][0]


def _check_pre_commit(path: str, text: str) -> list[str]:
    data, errors = _load_yaml(path, text)
    if errors:
        return errors
    hooks = [
        hook
        for repo in (data.get("repos") or [] if isinstance(data, dict) else [])
        if isinstance(repo, dict) and repo.get("repo") == "local"
        for hook in (repo.get("hooks") or [] if isinstance(repo.get("hooks"), list) else [])
        if isinstance(hook, dict) and hook.get("id") == _HOOK["id"]
    ]
    if any(_same(_HOOK, hook) for hook in hooks):
        return []
    why = " (the hook runs the verifier on every commit and push; your own hooks may go beside it)"
    if not hooks:
        return [f"{path}: hook {_HOOK['id']}: expected the generated hook (repo: local, entry: {_HOOK['entry']}), found nothing{why}"]
    hook = hooks[0]
    return [
        f"{path}: hook {_HOOK['id']} {key}: expected {_show(_HOOK.get(key, MISSING))}, found {_show(hook.get(key, MISSING))}{why}"
        for key in dict.fromkeys([*_HOOK, *hook])
        if not _same(_HOOK.get(key, MISSING), hook.get(key, MISSING))
    ]


_GITIGNORE_LINES = [line for line in GITIGNORE.splitlines() if line.strip() and not line.startswith("#")]


def _check_gitignore(path: str, text: str) -> list[str]:
    present = {line.strip() for line in text.split("\n")}
    return [
        f"{path}: pattern {line!r}: expected it (training and evaluation outputs stay out of git), found nothing"
        for line in _GITIGNORE_LINES
        if line not in present
    ]


def summary_problems(summary_text: str | None, answers: dict[str, Any], design_sections: Iterable[str], committed: bool) -> list[str]:
    """The design file (experiment_summary.yaml) against the design the tree was rendered from (the
    answers file): a difference is a design change not rendered yet. `committed`: it is already in
    a commit (the push stage), else it is about to be."""
    if summary_text is None:
        return []
    try:
        summary = yamlio.load(summary_text)
    except Exception as exc:  # noqa: BLE001 - one line, whatever the YAML problem
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return [f"{SUMMARY_FILE}: yaml: expected valid YAML, found an error ({first})"]
    if not isinstance(summary, dict):
        return [f"{SUMMARY_FILE}: design: expected a mapping of sections, found {_show(summary)}"]
    changed = unrendered_sections(summary, answers, design_sections)
    if not changed:
        return []
    render = (f"{UPDATE_COMMAND}, then push again" if committed else
              f"git commit --no-verify -m 'design: <what changed>' {SUMMARY_FILE} && {UPDATE_COMMAND}")
    return [
        f"{SUMMARY_FILE}: design: expected the design the tree was rendered from ({ANSWERS_FILE}), found changes to "
        f"{', '.join(changed)} not rendered yet; render them: {render}"
    ]


# --------------------------------------------------------------------------- one file
def _load_yaml(path: str, text: str) -> tuple[Any, list[str]]:
    try:
        return yamlio.load(text), []
    except Exception as exc:  # noqa: BLE001 - reported as a mismatch
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return None, [f"{path}: yaml: expected valid YAML, found an error ({first})"]


Rendered = Callable[[Entry], str]  # an entry -> its file's generated text (render.renderer(answers))
Checker = Callable[[Entry, str, Rendered], "list[str]"]


def _values(hint: Callable[[str], str]) -> Checker:
    """A YAML file: every key of the kind's expected values holds its value (other keys are free)."""
    def check(entry: Entry, text: str, rendered: Rendered) -> list[str]:
        data, errors = _load_yaml(entry.path, text)
        return errors or _compare_tree(entry.path, expected(entry), data, hint)
    return check


def _script(entry: Entry, text: str, rendered: Rendered) -> list[str]:
    """A SLURM script: as sbatch reads its directives, as bash runs its lines (the kind's expected
    value is the SlurmJob; the generated text gives the lines)."""
    return _check_slurm(entry.path, text, expected(entry), rendered(entry), entry.kind)


def _free(entry: Entry, text: str, rendered: Rendered) -> list[str]:
    """Text that is the user's once generated (beyond the merge-conflict check every file gets)."""
    return []


# How each kind of filekinds.KINDS is checked: (entry, the file's text, the renderer) -> mismatches.
CHECKERS: dict[str, Checker] = {
    "summary": _free,  # against the answers file: summary_problems
    "readme": _free,
    "submit": lambda entry, text, rendered: _check_submit(entry.path, text, rendered(entry)),
    "gitignore": lambda entry, text, rendered: _check_gitignore(entry.path, text),
    "pre-commit": lambda entry, text, rendered: _check_pre_commit(entry.path, text),
    "setup_finetune": _values(_setup_hint),
    "finetune_yaml": _values(_finetune_hint),
    "finetune_slurm": _script,
    "keep": _free,
    "eval_settings": _values(_cell_hint),
    "eval_slurm": _script,
}
require_column("verify.CHECKERS", CHECKERS)


def _check_entry(entry: Entry, text: str, rendered: Rendered) -> list[str]:
    return _conflicts(entry.path, text) + CHECKERS[entry.kind](entry, text, rendered)


def _check_file(tree: Tree, entry: Entry, rendered: Rendered) -> list[str]:
    try:
        text = tree.text(entry.path)
    except FileNotFoundError:
        return [f"{entry.path}: file: expected it to exist, found nothing"]
    except (OSError, UnicodeDecodeError) as exc:
        return [f"{entry.path}: file: expected readable UTF-8 text, found an error ({exc})"]
    return _check_entry(entry, text, rendered)


def _check_kind(entry: Entry, kind: str) -> tuple[list[str], bool]:
    """Existence and mode of a generated path: (problems, whether its content can be read)."""
    if kind in ("file", "exec"):
        if kind == "file" and KIND[entry.kind].executable:
            return [f"{entry.path}: file mode: expected executable (100755), found not executable (100644): chmod +x {entry.path}"], True
        return [], True
    if kind == "missing":
        return [f"{entry.path}: file: expected it to exist, found nothing"], False
    what = {"symlink": "a symlink", "submodule": "a submodule", "other": "not a regular file"}.get(kind, kind)
    return [f"{entry.path}: file: expected a regular file inside the experiment, found {what}"], False


# Parsing thousands of YAML files is most of a big verify (PyYAML builds Python objects in Python):
# above this many files it is split over the CPUs, in forked workers that inherit the plan.
PARALLEL_FROM = 1500
_job: tuple[Tree, list[Entry], Rendered] | None = None


def _check_chunk(bounds: tuple[int, int]) -> list[str]:
    assert _job is not None
    tree, entries, rendered = _job
    return [line for entry in entries[bounds[0]:bounds[1]] for line in _check_file(tree, entry, rendered)]


def _workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _check_all(tree: Tree, entries: list[Entry], rendered: Rendered, alongside: Callable[[], Any] = lambda: None) -> list[str]:
    """The contents of `entries`; `alongside()` is called while the workers read them (the
    checks that ask git, which would otherwise wait for the workers, and the workers for them)."""
    global _job
    workers = min(_workers(), 8)
    tree.prefetch([e.path for e in entries])
    if workers < 2 or len(entries) < PARALLEL_FROM or "fork" not in mp.get_all_start_methods():
        lines = [line for entry in entries for line in _check_file(tree, entry, rendered)]
        alongside()
        return lines
    step = -(-len(entries) // (workers * 4))
    chunks = [(i, min(i + step, len(entries))) for i in range(0, len(entries), step)]
    _job = (tree, entries, rendered)  # forked workers inherit it (the renderer is never pickled)
    try:
        with mp.get_context("fork").Pool(workers) as pool:
            pending = pool.map_async(_check_chunk, chunks)  # in order: the lines keep the layout's order
            alongside()
            results = pending.get()
    finally:
        _job = None
    return [line for lines in results for line in lines]


# --------------------------------------------------------------------------- the tree
def mismatch_key(line: str) -> str:
    """`<file>: <key>` of a mismatch line (the part that names the place, not the values)."""
    return line.split(": expected ", 1)[0]


def verify(
    root: Path,
    plan: ExperimentPlan,
    read: Callable[[str], str] | None = None,
    only: tuple[str, ...] = (),
    files: Collection[str] | None = None,
    tree: Tree | None = None,
    *,
    rendered: Rendered,
    alongside: Callable[[], Any] = lambda: None,
) -> list[str]:
    """All mismatches between the experiment and the plan (empty list: it is right).
    `rendered(entry)`: the generated text of a file (render.renderer(answers)), for the files
    checked against it (SLURM scripts, submit.sh).
    `tree`: where the files come from (default: the work tree at `root`); `read(relpath)` reads
    contents from elsewhere (e.g. a commit) without existence or mode checks.
    `files`: check the contents of these files only (the ones a commit or an update changed; git's
    ignore and attribute rules only when a .gitignore or .gitattributes is among them); every
    generated file is still checked to exist as a regular file.
    `alongside()`: the caller's own work, done while the contents are read (its result is the
    caller's)."""
    if tree is None:
        tree = ReadTree(read) if read is not None else WorkTree(root)
    wanted = None if files is None else set(files)
    entries = select(layout(plan), only)
    checks = []
    problems: list[str] = []
    under: dict[tuple[str, str], list[str]] = defaultdict(list)  # (kind, directory) -> generated paths
    for entry in entries:
        if not tree.modes:
            if wanted is None or entry.path in wanted:
                checks.append(entry)
            continue
        kind, detail = tree.kind(entry.path)
        if kind.startswith("under-"):
            under[(kind, detail)].append(entry.path)
            continue
        kind_problems, readable = _check_kind(entry, kind)
        problems += kind_problems
        if readable and (wanted is None or entry.path in wanted):
            checks.append(entry)
    for (kind, directory), paths in under.items():
        what = "a symlink (git records the link, not the files; they must be inside the experiment)" if kind == "under-symlink" else "a file"
        problems.append(f"{directory}: directory: expected a directory holding {len(paths)} generated file(s) "
                        f"({paths[0]}, ...), found {what}")
    tree_wide: list[str] = []

    def rules() -> None:
        paths = [e.path for e in entries]
        if tree.modes and (wanted is None or any(p.rpartition("/")[2] == ".gitignore" for p in wanted)):
            tree_wide.extend(_ignored_problems(tree.ignored(paths)))
        if tree.modes and (wanted is None or any(p.rpartition("/")[2] == ".gitattributes" for p in wanted)):
            tree_wide.extend(_attribute_problems(tree.attributes(paths)))
        if tree.modes and wanted is None and not only:
            tree_wide.extend(_stale_runs(tree, plan))
        alongside()

    return _check_all(tree, checks, rendered, rules) + problems + tree_wide


def verify_entries(tree: Tree, entries: list[Entry], rendered: Rendered) -> list[str]:
    """The existence, mode and contents of these generated files only, as verify() checks each
    (for a tree that differs in these files from one that passed verify())."""
    checks, problems = [], []
    for entry in entries:
        kind_problems, readable = _check_kind(entry, tree.kind(entry.path)[0])
        problems += kind_problems
        if readable:
            checks.append(entry)
    return _check_all(tree, checks, rendered) + problems


def _ignored_problems(ignored: dict[str, tuple[str, str, str]]) -> list[str]:
    by_rule: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for rel, rule in ignored.items():
        by_rule[rule].append(rel)
    return [
        f"{source}: pattern {pattern!r} (line {line}): expected no generated file ignored, found it ignores "
        f"{len(rels)} generated file(s), e.g. {rels[0]} (git would leave them out of every commit and update)"
        for (source, line, pattern), rels in by_rule.items()
    ]


def _attribute_problems(attributes: dict[str, dict[str, str]]) -> list[str]:
    by_value: dict[tuple[str, str], list[str]] = defaultdict(list)
    for rel, values in attributes.items():
        for attribute, value in values.items():
            by_value[(attribute, value)].append(rel)
    return [
        f".gitattributes: {attribute}={value}: expected no attribute that changes a generated file on checkout, found it on "
        f"{len(rels)} generated file(s), e.g. {rels[0]} (a clone would not hold the verified bytes)"
        for (attribute, value), rels in by_value.items()
    ]


RUN_JOB_FILES = ("finetune.yaml", "setup_finetune.yaml", "finetune.slurm")


def _stale_runs(tree: Tree, plan: ExperimentPlan) -> list[str]:
    """Run directories the design no longer has that still hold its job files (left behind by
    hand or by a failed update). What a removed run leaves that cruijff_gen did not generate
    (checkpoints, eval logs, a notebook) is the user's, and no error."""
    names = {r.name for r in plan.runs}
    return [
        f"{name}/: run directory: expected none (not in the design), found one with job files ({', '.join(jobs)})"
        for name, children in sorted(tree.top_dirs().items())
        if name not in names
        and (jobs := sorted(c for c in children if c in RUN_JOB_FILES or (c.startswith("eval/") and c.endswith(".slurm"))))
    ]


__all__ = [
    "verify", "verify_entries", "mismatch_key", "compare_command", "summary_problems",
    "FREE_DIRECTIVES", "REFUSED_DIRECTIVES", "KNOWN_DIRECTIVES",
]
