"""Hostile design text: quotes, shell syntax, Jinja, YAML look-alikes, control and non-ASCII
characters, long text. Each string must arrive byte-exact wherever the design sends it:

  (a) <run>/finetune.yaml (tokenizer.prompt_template, dataset.new_system_prompt) and the run's
      setup_finetune.yaml,
  (b) the eval settings YAML of the run's eval cells (prompt, system_prompt, task_description,
      vis_label, model_path, data_path),
  (c) the argv the generated SLURM scripts really start: every finetune.slurm and eval .slurm is
      run with bash (not sbatch) against stub `tune` / `inspect` / `python` executables that
      record their argv; trap stubs (`rm`, `id`, ...) and canary files (`touch CANARY`)
      catch any text the shell would have evaluated,
  (d) experiment_summary.yaml and .copier-answers.yml (the design as Copier and the repo keep it).

Prompts never travel on a command line (eval settings carry them); design text reaches argv
through paths (task script, task dataset, eval-only checkpoint), so every string that is a valid
path value is also used as one. Strings the design validation refuses as a path value (newline,
carriage return, NUL, ',' or a '..' component) are checked to be refused instead, with one
readable line naming the field and nothing written.

Speed: all accepted strings share ONE `copier copy` (per string: one fine-tuned run with its own
prompt / system prompt, one eval-only run, two tasks, two eval cells). Paths holding a character
str.splitlines() splits at share a second copy of their own; refused strings are checked in-process
(the step `copier copy` runs), three of them also through the real command. Known product bugs
are strict xfails (KNOWN_BUGS): they fail loudly once fixed.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

import designs
from conftest import copier, error_lines, render_task

# --------------------------------------------------------------------------- the catalogue
_LONG_UNIT = "It's \"$(touch CANARY)\" `touch CANARY2` ${HOME} {x} {{ y }} {% if %} %s ünï 漢字 مرحبا 👍 \\n\t; | && > < * ? ~ ! "
_LONG_LINES_UNIT = "line: 'q' \"dq\" $(id) `id` {0} {{ z }} #c\n- item &a *a\r\n\ttab ü 中 👩‍👧\n"

HOSTILE_STRINGS: dict[str, str] = {
    "quotes": "He said \"it's\" and 'ok' and \"\" and '' and \"'\"'\"'",
    "quote-breakout": "'\"'\"'; touch CANARY; echo '\"; touch CANARY; echo \"",
    "cmd-subst": "$(touch CANARY) and $(rm -rf ~) and $( id )",
    "backticks": "`touch CANARY2` `id` `whoami`",
    "param-expansion": "${HOME} $HOME ${PATH:-x} ${!x} ${x?unset} $$ $? $0 $1 $@ $* $((6*7))",
    "literal-backslash-n": "line1\\nline2\\tnot a tab \\\\ \\x41 \\u00e9 \\$HOME end\\",
    "real-newlines": "line one\nline two\n\nline four\n",
    "crlf-cr": "windows\r\nline\rcr only\r",
    "tabs": "\tcol1\tcol2\t\tcol4\t",
    "printf": "%s %d %(x)s %% %n %1$s %-5.2f %%(y)s",
    "braces": "{} {x} {0} {input_} { input } {Input} {{}} }{ {",
    "jinja-expr": "{{ x }} {{ 7*7 }} {{ _copier_conf }} {{ _copier_answers }} {{ ''.__class__ }}",
    "jinja-stmt": "{% if true %}yes{% endif %} {% raw %}r{% endraw %} {%- for i in range(3) -%}{{ i }}{%- endfor %}",
    "jinja-comment": "{# c #} before{#-x-#}after {#",
    "jinja-broken": "{{ oops {% if %} }} {% endfor %}",
    "copier-conf": "{{ _copier_conf.dst_path }} {{ _copier_python }} [[ x ]] <% y %>",
    "yaml-mapping": "key: value: more: 'x'",
    "yaml-list": "- item\n- other\n  - nested: 1",
    "yaml-comment": "# not a comment #and not this",
    "yaml-anchors": "&a anchor *a alias <<: *a",
    "yaml-tag": "!!python/object/apply:os.system ['touch CANARY3']",
    "yaml-doc": "---\nkey: [1, 2]\n...\n%YAML 1.1\n",
    "null": "null",
    "tilde": "~",
    "yes": "yes",
    "float": "1e-5",
    "hex": "0x10",
    "date": "2025-10-22",
    "padded": "  leading and trailing spaces  ",
    "only-spaces": "   ",
    "shell-specials": "a; b | c && d || e > out.txt < in.txt 2>&1 & (sub) [x] ! !! ^a^b",
    "glob-tilde": "*.py ?? [a-z]* ~root ~/x ~+ **/*",
    "redirect-heredoc": "> /tmp/x < /etc/passwd >> y <<EOF |& tee z",
    "heredoc-delimiter": "CHECK_LOG\nEOF\n<<'CHECK_LOG'\nCHECK_LOG",
    "dash-options": "--config=/etc/passwd -rf --help -T x=y -M z",
    "commas": "a,b,,c, d",
    "dotdot": "../../etc/passwd",
    "accents": "Ünïcödé àéîõü ß Ångström naïve façade",
    "cjk": "漢字かなカナ 한국어 中文提示",
    "rtl": "مرحبا بالعالم שלום \u202eevil\u202c \u200fmark",
    "emoji": "👩‍👩‍👧‍👦 🏳️‍🌈 👍🏽 🇳🇱",
    "combining": "e\u0301 a\u0308 Z\u0335\u0321a\u0336l\u0338g\u0334o",
    "zero-width": "zw\u200bsp zw\u200dj zw\u200cnj \ufeffbom wj\u2060x",
    "control-chars": "bell\x07 esc\x1b[31mred\x1b[0m del\x7f bs\x08",
    "nul": "nul\x00byte",
    "unicode-line-seps": "line\u2028sep para\u2029sep",
    "vt-ff": "vert\x0btab form\x0cfeed \x1cfs",
    "nel": "next\x85line",
    "percent-slurm": "%j %x %u %A %a %%",
    "long": (_LONG_UNIT * (5000 // len(_LONG_UNIT) + 1))[:5000],
    "long-lines": (_LONG_LINES_UNIT * (5000 // len(_LONG_LINES_UNIT) + 1))[:5000],
}
IDS = list(HOSTILE_STRINGS)

# Characters str.splitlines() treats as line ends although bash (and parse.py's single-line check)
# do not: \v \f \x1c \x1d \x1e NEL LINE SEPARATOR PARAGRAPH SEPARATOR.
SPLITLINES_ONLY = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"

# Known product bugs, as strict xfails (id -> reason). Fixed so far: NEL in design text became a
# space (the answers file; now written double-quoted when it holds NEL / U+2028 / U+2029), and
# scripts were split with str.splitlines() by the verifier (now at newlines only).
KNOWN_BUGS: dict[str, str] = {}


def _path_refusal(path: str) -> str | None:
    """Why parse.py refuses `path` as a path value (expectation written from its documented rules)."""
    if any(c in path for c in "\n\r\0"):
        return "must be a single line"
    if ".." in PurePosixPath(path).parts:
        return "must not contain '..'"
    if "," in path:
        return "must not contain ','"
    return None


def path_kind(s: str) -> str:
    """'ok': a valid path value; 'refused': validation refuses it; 'linesep': valid, but holds a
    character str.splitlines() splits at (cruijff_gen/verify.py at e15d01d read scripts with
    splitlines() and failed every copy with such a path): checked with a copy of its own, so a
    regression there cannot hide the other strings."""
    if _path_refusal("/p/" + s):
        return "refused"
    if any(c in s for c in SPLITLINES_ONLY):
        return "linesep"
    return "ok"


def is_line(s: str) -> bool:
    """Valid for single-line text fields (vis_label)."""
    return bool(s.strip()) and not any(c in s for c in "\n\r\0")


PATH_OK = [k for k in IDS if path_kind(HOSTILE_STRINGS[k]) == "ok"]
PATH_REFUSED = [k for k in IDS if path_kind(HOSTILE_STRINGS[k]) == "refused"]
PATH_LINESEP = [k for k in IDS if path_kind(HOSTILE_STRINGS[k]) == "linesep"]


def _param(key: str) -> Any:
    marks = [pytest.mark.xfail(reason=KNOWN_BUGS[key], strict=True, raises=AssertionError)] if key in KNOWN_BUGS else []
    return pytest.param(key, id=key, marks=marks)


# --------------------------------------------------------------------------- YAML data file
class _ExactDumper(yaml.SafeDumper):
    """UTF-8 as a user writes it; NEL escaped (PyYAML would write it raw, and YAML reads a raw NEL
    as a line break), so the data file itself always holds the exact strings."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = '"' if "\x85" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_ExactDumper.add_representer(str, _represent_str)


def write_design(path: Path, design: dict) -> Path:
    text = yaml.dump(design, Dumper=_ExactDumper, sort_keys=False, allow_unicode=True)
    assert yaml.safe_load(text) == design  # the data file says exactly what the test means
    path.write_text(text, encoding="utf-8")
    return path


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- the batch design
def names(i: int) -> dict[str, str]:
    return {"ft": f"h{i:02d}", "eo": f"e{i:02d}", "ta": f"t{i:02d}a", "tb": f"t{i:02d}b"}


def run_prompt(s: str) -> str:
    return s + "{input}" + s


def task_prompt(s: str) -> str:
    return "{input}" + s


def paths(i: int, key: str) -> dict[str, str]:
    """The path values of string `key` (the text itself when it is a valid path, else plain)."""
    s = HOSTILE_STRINGS[key]
    if path_kind(s) == "ok":
        return {"script": "/tasks/" + s, "dataset": "/data/" + s, "checkpoint": "/ckpt/" + s}
    return {"script": f"/tasks/plain{i}.py", "dataset": f"/data/plain{i}.json", "checkpoint": f"/ckpt/plain{i}"}


def batch_design(exp_dir: str) -> dict[str, Any]:
    d = designs.base(exp_dir)
    d["experiment"]["name"] = "hostile_batch"
    d["controls"]["epochs"] = 1
    d["controls"]["lora_rank"] = 8
    d["runs"], d["evaluation"]["tasks"], d["evaluation"]["matrix"] = [], [], []
    for i, key in enumerate(IDS):
        s, n, p = HOSTILE_STRINGS[key], names(i), paths(i, key)
        d["runs"].append({"name": n["ft"], "type": "fine-tuned", "model": "Llama-3.2-1B-Instruct",
                          "parameters": {"prompt": run_prompt(s), "system_prompt": s}})
        d["runs"].append({"name": n["eo"], "type": "eval-only", "model": "Llama-3.2-1B-Instruct",
                          "parameters": {"checkpoint_path": p["checkpoint"]}})
        # task a inherits the run's prompts; task b carries its own
        d["evaluation"]["tasks"].append({"name": n["ta"], "script": p["script"], "dataset": p["dataset"], "description": s})
        d["evaluation"]["tasks"].append({"name": n["tb"], "script": p["script"], "dataset": p["dataset"], "description": s,
                                         "prompt": task_prompt(s), "system_prompt": s})
        entry: dict[str, Any] = {"run": n["ft"], "tasks": [n["ta"]], "epochs": [0]}
        if is_line(s):
            entry["vis_label"] = s
        d["evaluation"]["matrix"].append(entry)
        d["evaluation"]["matrix"].append({"run": n["eo"], "tasks": [n["tb"]]})
    return d


# --------------------------------------------------------------------------- stubs and bash
# A stub is bash and its builtins only (no program started: a Python recorder per command made the
# batch's 150 scripts cost 30 s of CPU): it appends one record to $STUB_RECORD, NUL-separated
# fields (no argument can hold a NUL): program, working directory, whether stdin was read, stdin
# (`python -`, the log check's here-document), argument count, the arguments. Exit 0.
STUB = r"""#!/bin/bash
program=${0##*/} read_stdin=0 stdin=
if [ "$program" = python ] && [ "${1-}" = - ]; then
    read_stdin=1
    IFS= read -r -d '' stdin || true
fi
printf '%s\0' "$program" "$(pwd -P)" "$read_stdin" "$stdin" "$#" "$@" >> "$STUB_RECORD"
"""
PROGRAMS = ("tune", "inspect", "python")
# External programs the hostile texts name or a broken quoting would start (echo and printf are
# bash builtins, no stub can catch them; touch stays real: it would leave the CANARY files).
TRAPS = ("rm", "id", "whoami", "curl", "wget", "ls", "cat", "tee", "sh", "env", "uname", "sleep", "reboot", "xargs")
CANARIES = ("CANARY", "CANARY2", "CANARY3")


def make_stubs(where: Path) -> Path:
    """A directory of executables that record their argv (read_records), exit 0."""
    where.mkdir(parents=True)
    for name in PROGRAMS + TRAPS:
        stub = where / name
        stub.write_text(STUB, encoding="utf-8")
        stub.chmod(0o755)
    return where


def read_records(record: Path) -> list[dict[str, Any]]:
    """The stubs' records in $STUB_RECORD: {program, argv, cwd[, stdin]} each, in the order run."""
    fields = [f.decode("utf-8", "surrogateescape") for f in record.read_bytes().split(b"\0")] if record.exists() else [""]
    assert fields[-1] == "", "a record was cut short"
    records, i = [], 0
    while i < len(fields) - 1:
        program, cwd, read_stdin, stdin, argc = fields[i:i + 5]
        argv = fields[i + 5:i + 5 + int(argc)]
        assert len(argv) == int(argc), "a record was cut short"
        records.append({"program": program, "argv": argv, "cwd": cwd, **({"stdin": stdin} if read_stdin == "1" else {})})
        i += 5 + int(argc)
    return records


@dataclass
class Executed:
    script: Path
    returncode: int
    stderr: str
    records: list[dict[str, Any]]


def run_script(script: Path, dest: Path, stubs: Path, home: Path, records: Path) -> Executed:
    record = records / (script.relative_to(dest).as_posix().replace("/", "__") + ".records")
    env = {
        "PATH": f"{stubs}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(home),
        "LC_ALL": "C.UTF-8",
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NAME": script.stem,
        "SLURM_SUBMIT_DIR": str(script.parent),
        "STUB_RECORD": str(record),
    }
    result = subprocess.run(["bash", str(script)], env=env, cwd=home, capture_output=True, text=True, timeout=60)
    return Executed(script, result.returncode, result.stderr, read_records(record))


def without_provenance(records: list[dict]) -> list[dict]:
    """The records of a job's commands, its provenance start and end records (checked to be there,
    in that place) taken out."""
    provenance = [i for i, r in enumerate(records) if r["argv"][:2] == ["-m", "cruijff_gen.job.provenance"]]
    assert [records[i]["argv"][2] for i in provenance] == ["start", "end"] and provenance[-1] == len(records) - 1, records
    return [r for i, r in enumerate(records) if i not in provenance]


def script_argv(script: Path, program: str) -> list[str]:
    """The command line of `program` as the script writes it (split at \\n only, like bash)."""
    lines = script.read_text(encoding="utf-8").split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(program + " "))
    block = []
    for line in lines[start:]:
        if line.endswith(" \\"):
            block.append(line[:-2])
            continue
        block.append(line)
        break
    return shlex.split(" ".join(block))


def option_values(argv: list[str], option: str) -> list[str]:
    return [argv[i + 1] for i, w in enumerate(argv[:-1]) if w == option]


@dataclass
class Batch:
    root: Path
    dest: Path
    home: Path
    design: dict[str, Any]
    copy: subprocess.CompletedProcess
    executed: dict[str, Executed]  # by script path relative to dest
    _loaded: dict[str, Any] = field(default_factory=dict)

    def load(self, rel: str) -> Any:
        """yaml.safe_load of a generated file, parsed once per module (the big files are shared);
        the answers file as cruijff_gen reads it (its design record decoded: experiment_dir.py)."""
        if rel not in self._loaded:
            if rel == ".copier-answers.yml":
                from cruijff_gen.experiment_dir import design_from_text

                self._loaded[rel] = design_from_text((self.dest / rel).read_bytes(), rel)
            else:
                self._loaded[rel] = load(self.dest / rel)
        return self._loaded[rel]


@pytest.fixture(scope="module")
def batch(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Batch:
    root = tmp_path_factory.mktemp("hostile")
    dest = root / "exp"
    design = batch_design(str(dest))  # the real directory: the scripts `cd` into it
    summary = write_design(root / "summary.yaml", design)
    result = copier("copy", "--trust", "--defaults", "--data-file", str(summary), str(template_repo), str(dest))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert subprocess.run(["git", "status", "--porcelain"], cwd=dest, capture_output=True, text=True, check=True).stdout == ""
    stubs, home, records = make_stubs(root / "stubs"), root / "home", root / "records"
    home.mkdir()
    records.mkdir()
    scripts = sorted(dest.glob("*/finetune.slurm")) + sorted(dest.glob("*/eval/*.slurm"))
    assert len(scripts) == 3 * len(IDS)
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = list(pool.map(lambda s: run_script(s, dest, stubs, home, records), scripts))
    return Batch(root, dest, home, design, result, {e.script.relative_to(dest).as_posix(): e for e in done})


# --------------------------------------------------------------------------- the catalogue itself
def test_catalogue_covers_every_kind_of_hostile_text():
    values = list(HOSTILE_STRINGS.values())
    assert len(values) >= 30 and len(set(values)) == len(values)
    assert not any("{input}" in s for s in values)  # the prompts add it exactly once
    joined = "".join(values)
    for needle in ('"', "'", "$(", "${HOME}", "`", "\\n", "\n", "\r", "\t", "%s", "%(x)s", "%%", "{}", "{x}", "{0}",
                   "{{ x }}", "{% if", "{# c #}", "{{ _copier_conf }}", ": ", "- ", "#", "&a", "*a", "!!python/object",
                   ";", "|", "&&", ">", "<", "*", "?", "~", "!", "é", "漢", "م", "👍", "\u0301", "\u200d", "touch CANARY"):
        assert needle in joined, needle
    for exact in ("null", "yes", "1e-5", "0x10"):
        assert exact in values, exact
    assert any(s != s.strip() for s in values)
    assert any(len(s) >= 5000 for s in values)
    assert PATH_OK and PATH_REFUSED and PATH_LINESEP


# --------------------------------------------------------------------------- (a) (b) (d) files
@pytest.mark.copier
@pytest.mark.parametrize("key", [_param(k) for k in IDS])
def test_text_arrives_byte_exact_in_every_file(batch: Batch, key: str):
    i, s = IDS.index(key), HOSTILE_STRINGS[key]
    n, p, dest = names(i), paths(i, key), batch.dest

    # (a) training config: prompt pieces around {input}, system prompt; and the run's setup file
    cfg = load(dest / n["ft"] / "finetune.yaml")
    assert cfg["dataset"]["prompt"] == run_prompt(s) and cfg["dataset"]["system_prompt"] == s
    setup = load(dest / n["ft"] / "setup_finetune.yaml")
    assert setup["parameters"]["prompt"] == run_prompt(s)
    assert setup["parameters"]["system_prompt"] == s

    # (b) eval settings: run-level prompts (task a), task-level prompts (task b)
    a = load(dest / n["ft"] / "eval" / f"{n['ta']}_epoch0.yaml")
    assert a["prompt"] == run_prompt(s)
    assert a["system_prompt"] == s
    assert a["task_description"] == s
    assert a["vis_label"] == (s if is_line(s) else n["ft"])
    assert a["data_path"] == p["dataset"]
    b = load(dest / n["eo"] / "eval" / f"{n['tb']}.yaml")
    assert b["prompt"] == task_prompt(s)
    assert b["system_prompt"] == s
    assert b["task_description"] == s
    assert b["model_path"] == p["checkpoint"]
    assert b["data_path"] == p["dataset"]

    # (d) the design as the repo and Copier keep it
    for name in ("experiment_summary.yaml", ".copier-answers.yml"):
        kept = batch.load(name)
        runs = {r["name"]: r for r in kept["runs"]}
        tasks = {t["name"]: t for t in kept["evaluation"]["tasks"]}
        assert runs[n["ft"]]["parameters"] == {"prompt": run_prompt(s), "system_prompt": s}, name
        assert runs[n["eo"]]["parameters"] == {"checkpoint_path": p["checkpoint"]}, name
        assert tasks[n["ta"]] == {"name": n["ta"], "script": p["script"], "dataset": p["dataset"], "description": s}, name
        assert tasks[n["tb"]]["prompt"] == task_prompt(s) and tasks[n["tb"]]["system_prompt"] == s, name


# --------------------------------------------------------------------------- (c) argv
@pytest.mark.copier
@pytest.mark.parametrize("key", IDS)
def test_scripts_start_exactly_the_written_argv(batch: Batch, key: str):
    i, s = IDS.index(key), HOSTILE_STRINGS[key]
    n, p, exp = names(i), paths(i, key), str(batch.dest)

    ft = batch.executed[f"{n['ft']}/finetune.slurm"]
    assert ft.returncode == 0, ft.stderr
    records = without_provenance(ft.records)
    assert [r["program"] for r in records] == ["python", "python", "tune"]
    importable, preflight, tune = records
    assert importable["argv"] == ["-c", "import cruijff_gen.job"]
    assert preflight["argv"] == ["-m", "cruijff_gen.job", "check-train", "--config", f"{exp}/{n['ft']}/finetune.yaml"]
    assert ["tune", *tune["argv"]] == script_argv(ft.script, "tune")
    assert tune["argv"] == ["run", "cruijff_gen/job/recipes/lora_finetune_single_device.py", "--config", f"{exp}/{n['ft']}/finetune.yaml"]
    assert tune["cwd"] == f"{exp}/{n['ft']}"

    cells = [
        (f"{n['ft']}/eval/{n['ta']}_epoch0.slurm", n["ta"], f"hf/{n['ft']}_epoch0", f"{exp}/{n['ft']}/artifacts/epoch_0", n["ft"]),
        (f"{n['eo']}/eval/{n['tb']}.slurm", n["tb"], f"hf/{n['eo']}", p["checkpoint"], n["eo"]),
    ]
    for rel, task, model, model_path, run in cells:
        ev = batch.executed[rel]
        assert ev.returncode == 0, (rel, ev.stderr)
        records = without_provenance(ev.records)
        assert [r["program"] for r in records] == ["python", "python", "inspect", "python"], rel
        _, preflight, inspect, check = records
        stem = rel.rsplit("/", 1)[1].removesuffix(".slurm")
        model_settings = f"{exp}/{run}/eval/logs/{stem}.model.yaml"
        assert preflight["argv"] == ["-m", "cruijff_gen.job", "check-eval", "--model-path", model_path,
                                     "--dataset-type", "chat_completion", "--write", model_settings], rel
        argv = inspect["argv"]
        assert ["inspect", *argv] == script_argv(ev.script, "inspect"), rel
        # the values that carry design text, byte-exact
        assert argv[:2] == ["eval", f"{p['script']}@{task}"], rel
        assert option_values(argv, "--model") == [model]
        assert option_values(argv, "-M") == [f"model_path={model_path}", "do_sample=false"]
        assert option_values(argv, "--model-config") == [model_settings]
        assert option_values(argv, "-T") == [f"data_path={p['dataset']}", f"config_path={exp}/{run}/eval/{stem}.yaml"]
        assert option_values(argv, "--log-dir") == [f"{exp}/{run}/eval/logs"]
        # the cell's identity (run, labels) travels as one YAML mapping, which inspect parses back whole
        metadata = option_values(argv, "--metadata")
        assert len(metadata) == 1 and metadata[0].startswith("cruijff=")
        identity = yaml.safe_load(metadata[0].removeprefix("cruijff="))
        assert (identity["run"], identity["cell"]) == (run, stem), rel
        if path_kind(s) != "ok":  # prompts, system prompts, descriptions: never on the command line
            assert not any(s in w for w in argv if w not in metadata), rel
        assert inspect["cwd"] == f"{exp}/{run}/eval"
        # the log check after inspect: its argv and its here-document, untouched
        assert check["argv"][0] == "-" and check["argv"][1].isdigit()
        assert check["argv"][2:] == [f"{exp}/{run}/eval/logs", task, model]
        assert check["stdin"].startswith("import os, sys\n") and "CHECK_LOG" not in check["stdin"]


@pytest.mark.copier
def test_no_text_was_evaluated_by_a_shell(batch: Batch):
    """No trap stub ran, no canary file appeared, nothing landed in $HOME."""
    started = {r["program"] for e in batch.executed.values() for r in e.records}
    assert started == {"tune", "inspect", "python"}
    assert not any(e.stderr for e in batch.executed.values()), [e.stderr for e in batch.executed.values() if e.stderr][:3]
    for name in CANARIES:
        assert not list(batch.root.rglob(name)), name  # experiment, run and eval dirs, stubs, $HOME
        assert not (Path.cwd() / name).exists(), name
    assert list(batch.home.iterdir()) == []


# --------------------------------------------------------------------------- refused as a path
REFUSAL_FIELDS = [
    # (dotted path in the design, name in the message, path prefix)
    ("evaluation.tasks.0.script", "evaluation.tasks[0].script", "/tasks/"),
    ("evaluation.tasks.0.dataset", "evaluation.tasks[0].dataset", "/data/"),
    ("data.training.path", "data.training.path", "/data/"),
    ("models.base.0.path", "models.base[0].path", "/models/"),
    ("runs.2.parameters", "runs[2].parameters.checkpoint_path", "/ckpt/"),
]


def refused_design(key: str) -> tuple[dict[str, Any], str]:
    """A base design with string `key` as one path value (REFUSAL_FIELDS in turn), and the message
    part its refusal must hold."""
    where, label, prefix = REFUSAL_FIELDS[PATH_REFUSED.index(key) % len(REFUSAL_FIELDS)]
    value = prefix + HOSTILE_STRINGS[key]
    design = designs.base()
    if where == "runs.2.parameters":  # an eval-only run's checkpoint
        design = designs.variant(design, "runs.2.type", "eval-only")
        design = designs.variant(design, where, {"checkpoint_path": value})
    else:
        design = designs.variant(design, where, value)
    return design, f"{label}: {_path_refusal(value)}"


@pytest.mark.parametrize("key", PATH_REFUSED)
def test_refused_as_a_path_with_one_readable_line(tmp_path: Path, capsys, key: str):
    """In-process, the step `copier copy` runs (conftest.render_task); a few through the real command below."""
    design, expected = refused_design(key)
    dest = tmp_path / "exp"
    code, stderr = render_task(design, dest, capsys)
    assert code != 0
    assert "Traceback" not in stderr
    errors = error_lines(stderr)
    assert len(errors) == 1, stderr
    assert expected in errors[0], errors[0]
    assert list(dest.iterdir()) == []  # not even the answers file


# Through the real `copier copy` (Copier writes these strings into its answers file first): a NUL,
# CR and CRLF line ends, a '..' component.
REFUSED_END_TO_END = ["nul", "crlf-cr", "dotdot"]


@pytest.mark.copier
@pytest.mark.parametrize("key", REFUSED_END_TO_END)
def test_real_copier_copy_refuses_a_path_with_the_same_line(template_repo: Path, tmp_path: Path, capsys, key: str):
    design, expected = refused_design(key)
    summary = write_design(tmp_path / "summary.yaml", design)
    dest = tmp_path / "exp"
    result = copier("copy", "--trust", "--defaults", "--data-file", str(summary), str(template_repo), str(dest))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = error_lines(result.stderr)
    assert len(errors) == 1 and expected in errors[0], result.stderr
    assert not dest.exists()
    _, in_process = render_task(design, tmp_path / "in-process", capsys)
    assert error_lines(in_process) == errors


# --------------------------------------------------------------------------- line-separator paths
@dataclass
class LineSepCopy:
    dest: Path
    copy: subprocess.CompletedProcess
    executed: dict[str, Executed]  # by key


def linesep_task(key: str) -> str:
    return f"ls{PATH_LINESEP.index(key)}"


@pytest.fixture(scope="module")
def linesep_copy(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> LineSepCopy:
    """One `copier copy` of a base design with a task per PATH_LINESEP string (its script and
    dataset paths), evaluated on the control run; each task's eval script run with bash."""
    root = tmp_path_factory.mktemp("linesep")
    dest = root / "exp"
    design = designs.base(str(dest))
    for key in PATH_LINESEP:
        s = HOSTILE_STRINGS[key]
        design["evaluation"]["tasks"].append({"name": linesep_task(key), "script": "/tasks/" + s, "dataset": "/data/" + s})
    design["evaluation"]["matrix"][2]["tasks"] += [linesep_task(k) for k in PATH_LINESEP]
    summary = write_design(root / "summary.yaml", design)
    result = copier("copy", "--trust", "--defaults", "--data-file", str(summary), str(template_repo), str(dest))
    executed = {}
    if result.returncode == 0:
        stubs, home, records = make_stubs(root / "stubs"), root / "home", root / "records"
        home.mkdir()
        records.mkdir()
        for key in PATH_LINESEP:
            executed[key] = run_script(dest / f"base/eval/{linesep_task(key)}.slurm", dest, stubs, home, records)
    return LineSepCopy(dest, result, executed)


@pytest.mark.copier
@pytest.mark.parametrize("key", [_param(k) for k in PATH_LINESEP])
def test_path_with_a_line_separator_character_arrives_byte_exact(linesep_copy: LineSepCopy, key: str):
    """\\v, \\f, U+2028, ... are ordinary characters to bash and to parse.py's single-line check:
    as task script and dataset paths they must reach the eval settings and inspect's argv as they are.
    (The three strings share one copy, apart from the batch: a regression here cannot hide the others.)"""
    s, task, dest = HOSTILE_STRINGS[key], linesep_task(key), linesep_copy.dest
    assert linesep_copy.copy.returncode == 0, linesep_copy.copy.stderr[-2000:]
    assert load(dest / f"base/eval/{task}.yaml")["data_path"] == "/data/" + s
    ran = linesep_copy.executed[key]
    assert ran.returncode == 0, ran.stderr
    records = without_provenance(ran.records)
    assert [r["program"] for r in records] == ["python", "python", "inspect", "python"]
    argv = records[2]["argv"]
    assert ["inspect", *argv] == script_argv(ran.script, "inspect")
    assert argv[1] == f"/tasks/{s}@{task}"
    assert option_values(argv, "-T")[0] == f"data_path=/data/{s}"
