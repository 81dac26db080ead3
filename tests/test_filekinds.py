"""The table of file kinds (cruijff_gen/filekinds.py) in-process: THE list of generated files'
kinds, which render, verify, logs and update all read. Every kind has a renderer and a checker,
render and verify never import each other, and the bundled example's files are each of a kind of
the table, written with the exec bit the table gives."""

from __future__ import annotations

import ast
import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import EXAMPLE, REPO, copier_answers
from cruijff_gen import filekinds, render, verify
from cruijff_gen.commands import render as render_command
from cruijff_gen.parse import parse
from cruijff_gen.plan import plan

PACKAGE = REPO / "cruijff_gen"


@pytest.fixture(scope="module")
def example():
    answers = copier_answers(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")))
    return answers, plan(parse(answers))


def test_every_kind_has_a_renderer_and_a_checker():
    names = [k.name for k in filekinds.KINDS]
    assert len(set(names)) == len(names)
    assert list(render.RENDERERS) == names
    assert list(verify.CHECKERS) == names
    assert set(filekinds.KIND) == set(names)


def test_a_column_missing_a_kind_is_refused():
    with pytest.raises(RuntimeError, match=r"render\.RENDERERS: .*none for keep"):
        filekinds.require_column("render.RENDERERS", {k: None for k in filekinds.KIND if k != "keep"})
    with pytest.raises(RuntimeError, match="unknown kinds notebook"):
        filekinds.require_column("verify.CHECKERS", {**filekinds.KIND, "notebook": None})


@pytest.mark.parametrize("module", ["render", "verify"])
def test_a_kind_without_renderer_or_checker_stops_the_import(module):
    """A kind added to the table alone: render and verify refuse to load (one readable line)."""
    code = (
        "import dataclasses, sys\n"
        "from cruijff_gen import filekinds as f\n"
        "extra = dataclasses.replace(f.KEEP, name='notebook', path='{run}/notes.ipynb')\n"
        "f.KINDS = (*f.KINDS, extra); f.KIND['notebook'] = extra\n"
        f"import cruijff_gen.{module}\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode != 0
    assert f"RuntimeError: {module}.{'RENDERERS' if module == 'render' else 'CHECKERS'}: expected one entry per kind " \
           "of filekinds.KINDS, found none for notebook" in result.stderr


def _imported_modules(path: Path) -> set[str]:
    """The cruijff_gen modules a module's source imports (relative imports resolved), anywhere in it."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                names.add(base or "")
                names.update(f"{base}.{a.name}".strip(".") for a in node.names)
            elif base.startswith("cruijff_gen"):
                names.add(base.removeprefix("cruijff_gen").strip("."))
                names.update(f"{base.removeprefix('cruijff_gen')}.{a.name}".strip(".") for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name.removeprefix("cruijff_gen").strip(".") for a in node.names if a.name.startswith("cruijff_gen"))
    return names


def test_render_and_verify_never_import_each_other():
    assert "verify" not in _imported_modules(PACKAGE / "render.py")
    assert "render" not in _imported_modules(PACKAGE / "verify.py")
    assert not {"render", "verify"} & _imported_modules(PACKAGE / "filekinds.py")
    for module, other in (("render", "verify"), ("verify", "render"), ("filekinds", "render"), ("filekinds", "verify")):
        code = f"import sys, cruijff_gen.{module}; print(sorted(m for m in sys.modules if m.startswith('cruijff_gen')))"
        loaded = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
        assert f"'cruijff_gen.{module}'" in loaded
        assert f"'cruijff_gen.{other}'" not in loaded, (module, loaded)


def _rule(kind: filekinds.Kind) -> re.Pattern[str]:
    """A kind's path rule as a pattern: `{run}` and `{stem}` one path component, `{dir}` one or more."""
    parts = re.split(r"(\{\w+\})", kind.path)
    pattern = "".join({"{run}": "[^/]+", "{stem}": "[^/]+", "{dir}": "[^/]+(?:/[^/]+)*"}.get(p, re.escape(p)) for p in parts)
    return re.compile(pattern)


def test_every_file_of_the_example_has_a_kind_and_its_exec_bit(example, tmp_path):
    answers, the_plan = example
    entries = filekinds.layout(the_plan)
    assert len({e.path for e in entries}) == len(entries)
    assert {e.kind for e in entries} == set(filekinds.KIND)  # the example has a file of every kind
    for e in entries:
        kind = filekinds.KIND[e.kind]
        assert _rule(kind).fullmatch(e.path), (e.path, kind.path)
        assert (e.subject is the_plan) == (kind.subject == "plan")
    cells = {c.settings_relpath for c in the_plan.cells} | {c.slurm_relpath for c in the_plan.cells}
    assert cells == {e.path for e in entries if e.kind in ("eval_settings", "eval_slurm")}  # the plan's paths agree
    order = list(dict.fromkeys(e.kind for e in entries))
    assert order == [k.name for k in filekinds.KINDS]  # the table is in layout order

    # What the render command writes (the real pipeline: render, write, verify)
    (tmp_path / ".copier-answers.yml").write_text(yaml.safe_dump(answers, allow_unicode=True), encoding="utf-8")
    assert render_command.run(tmp_path, "render") == 0
    for e in entries:
        mode = (tmp_path / e.path).stat().st_mode
        assert bool(mode & 0o100) == filekinds.KIND[e.kind].executable, (e.path, oct(mode))
    assert filekinds.executable_paths(the_plan) == {e.path for e in entries if e.path.endswith((".slurm", ".sh"))}


def test_expected_values_are_what_the_files_hold(example):
    """The table's `expected` is what render writes and verify compares: the YAML kinds' files
    load to a tree holding every expected key (setup_finetune.yaml: exactly the expected data)."""
    answers, the_plan = example
    for e in filekinds.layout(the_plan):
        kind = filekinds.KIND[e.kind]
        value = filekinds.expected(e)
        if kind.expected is None:
            assert value is None
            continue
        text = render.render_entry(e, answers)
        if kind.format == "yaml":
            data = yaml.safe_load(text)
            if e.kind == "setup_finetune":
                assert data == value
            else:
                assert verify._compare_tree(e.path, value, data) == []
        else:  # a script: its job's directives and command
            assert value.directives and all(f"#SBATCH --{k}={v}\n" in text for k, v in value.directives)
    run = next(r for r in the_plan.runs if r.type == "fine-tuned")
    assert run.finetune_job.argv == ("tune", "run", *run.recipe_args, "--config", f"{run.run_dir}/finetune.yaml")
    cell = the_plan.cells[0]
    argv = cell.job.argv
    assert argv[argv.index("--model") + 1] == cell.model_id and argv[argv.index("--log-dir") + 1] == cell.log_dir


def test_setup_finetune_records_what_tune_run_gets(example):
    """setup_finetune.yaml's recipe is the words `tune run` takes before --config: on several GPUs,
    the process count too."""
    answers = copy.deepcopy(example[0])
    for run in answers["runs"]:
        run.setdefault("compute", {})["gpus"] = 2
    for run in plan(parse(answers)).runs:
        if run.type == "fine-tuned":
            argv = run.finetune_job.argv
            assert filekinds.setup_finetune_data(run)["recipe"] == " ".join(argv[2:-2])
            assert argv[2] == "--nproc_per_node=2" and argv[3] == run.recipe
