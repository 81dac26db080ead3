"""Hostile inputs end in one clear line, fast: no traceback, the field (or line) named, nothing written.

Two doors see a design: the front door (`cruijff-gen new`, which reads the summary with our loader
before Copier runs) and the Copier task (`cruijff-gen render --operation copy`, which reads the
answers file Copier wrote from a plain `copier copy --data-file`). Both are run here in-process
through cli.main, the function the console script and the task call; two cases go end to end
through the real programs. Copier writes its answers file with PyYAML's safe_dump, which keeps
shared values as anchors and aliases: the answers here are written the same way, so an alias bomb
reaches the task as it does from Copier.

Timing: each case is bounded by a generous guard only; the measured times go to the report.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import designs
from conftest import REPO, copier
from cruijff_gen import cli, yamlio

B = designs.base


def _bomb_text(levels: int = 9) -> str:
    """The classic billion laughs inside a design section (3 KB; 9^10 values expanded)."""
    lines = ['output:', '  a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return yaml.safe_dump(B(), sort_keys=False) + "\n".join(lines) + "\n"


def _with(path: str, value) -> dict:
    return designs.variant(B(), path, value)


def _renamed(name: str) -> dict:
    d = B()
    d["runs"][0]["name"] = name
    d["evaluation"]["matrix"][0]["run"] = name
    return d


def _catalog(tmp: Path, body: str) -> str:
    path = tmp / "catalog.yaml"
    path.write_text(f"Llama-3.2-1B-Instruct:\n  {body}\n", encoding="utf-8")
    return f"model_catalog={path}"


# (id, summary: dict or YAML text, --data pairs (a callable of tmp_path for files), text the one error line names)
FRONT = [
    ("alias-bomb", _bomb_text(), [], f"line {_bomb_text().splitlines().index('  a9: &a9 [' + ', '.join(['*a8'] * 9) + ']') + 1}: output.a9: YAML aliases expand"),
    ("recursive-alias", yaml.safe_dump(B(), sort_keys=False) + "output: &o {x: *o}\n", [], "output.x: a recursive alias"),
    ("file-too-big", yaml.safe_dump(B(), sort_keys=False) + f"output: {{note: {'x' * 21_000_000}}}\n", [], "at most 20,000,000 are accepted"),
    ("prompt-too-long", _with("controls.prompt", "x" * 200_000 + "{input}"), [], "controls.prompt: a text of 200,007 characters"),
    ("copier-python", {**B(), "_copier_python": "/bin/false"}, [], "_copier_python: names starting with '_' are Copier's own"),
    ("copier-conf", {**B(), "_copier_conf": {"src_path": "/tmp"}}, [], "_copier_conf: names starting with '_'"),
    ("copier-operation", {**B(), "_copier_operation": "update"}, [], "_copier_operation: names starting with '_'"),
    ("data-copier-key", B(), ["_copier_python=/bin/false"], "--data _copier_python: names starting with '_'"),
    ("run-README.md", _renamed("README.md"), [], "runs[0].name: 'README.md' is a name the experiment's top level already uses"),
    ("run-submit.sh", _renamed("submit.sh"), [], "runs[0].name: 'submit.sh' is a name"),
    ("run-summary", _renamed("experiment_summary.yaml"), [], "runs[0].name: 'experiment_summary.yaml' is a name"),
    ("run-results", _renamed("Results"), [], "runs[0].name: 'Results' is a name"),
    ("catalog-gpus-two", B(), [lambda tmp: _catalog(tmp, "resources: {gpus: two}")], "Llama-3.2-1B-Instruct.resources.gpus: expected a whole number, got 'two'"),
    ("catalog-model-5", B(), [lambda tmp: _catalog(tmp, "model: 5")], "Llama-3.2-1B-Instruct.model: expected a mapping, got 5"),
    ("overrides-whole-and-part", B(), ["finetune_overrides={profiler: 1, profiler.enabled: true}"],
     "settings.finetune_overrides.profiler: given both whole and in part"),
    ("overrides-bad-yaml", B(), ["finetune_overrides={device: [cpu"], "--data finetune_overrides: not valid YAML"),
    ("eval-do-sample", B(), ["eval_model_args={do_sample: true}"], "settings.eval_model_args: do_sample: every eval command already passes -M do_sample"),
    ("eval-model-path", B(), ["eval_model_args={model_path: /elsewhere}"], "edit the design field runs[].model"),
]


def _summary(tmp: Path, design) -> Path:
    path = tmp / "summary.yaml"
    path.write_text(design if isinstance(design, str) else yaml.safe_dump(design, sort_keys=False), encoding="utf-8")
    return path


def _one_error(stderr: str, expected: str) -> None:
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("cruijff-gen: error:")]
    assert len(errors) == 1, stderr  # one line, not a verifier's worth
    assert expected in errors[0], errors[0]
    assert len(errors[0]) < 400, errors[0]  # readable: the value itself is never echoed whole


@pytest.mark.parametrize("design,data,expected", [c[1:] for c in FRONT], ids=[c[0] for c in FRONT])
def test_front_door_refuses_in_one_line(tmp_path: Path, capsys, design, data, expected):
    summary = _summary(tmp_path, design)
    pairs = [p(tmp_path) if callable(p) else p for p in data]
    dest = tmp_path / "exp"
    start = time.monotonic()
    code = cli.main(["new", str(summary), str(dest), *(a for p in pairs for a in ("--data", p))])
    elapsed = time.monotonic() - start
    assert code != 0
    _one_error(capsys.readouterr().err, expected)
    assert not dest.exists() and not list(tmp_path.glob(".exp*"))  # nothing written
    assert elapsed < 20, elapsed  # a guard; seconds, not minutes


def _answers(design, settings: dict | None = None) -> str:
    """The answers file as `copier copy --data-file` writes it: the data as loaded by PyYAML
    (shared values stay shared), dumped by PyYAML (anchors and aliases kept), Copier's keys first."""
    data = yaml.safe_load(design) if isinstance(design, str) else copy.deepcopy(design)
    return yaml.safe_dump({"_commit": "abc1234", "_src_path": str(REPO), **data, **(settings or {})}, sort_keys=False)


# What reaches the Copier task when the user runs plain `copier copy --data-file` (Copier parses
# the data file itself): (id, design, settings, text the error line names).
TASK = [
    ("alias-bomb", _bomb_text(), {}, "output.a9: YAML aliases expand"),
    ("prompt-too-long", _with("controls.prompt", "x" * 200_000 + "{input}"), {}, "controls.prompt: a text of 200,007 characters"),
    ("run-README.md", _renamed("README.md"), {}, "runs[0].name: 'README.md' is a name"),
    ("eval-do-sample", B(), {"eval_model_args": {"do_sample": True}}, "-M do_sample from the design"),
]


@pytest.mark.parametrize("design,settings,expected", [c[1:] for c in TASK], ids=[c[0] for c in TASK])
def test_copier_task_refuses_in_one_line(tmp_path: Path, capsys, design, settings, expected):
    dest = tmp_path / "exp"
    dest.mkdir()
    (dest / ".copier-answers.yml").write_text(_answers(design, settings), encoding="utf-8")
    start = time.monotonic()
    code = cli.main(["render", "--operation", "copy", "--commit", str(dest)])
    elapsed = time.monotonic() - start
    assert code != 0
    _one_error(capsys.readouterr().err, expected)
    assert list(dest.iterdir()) == []  # the one file Copier rendered is removed too
    assert elapsed < 20, elapsed


def test_merge_keys_load_as_copier_loads_them(tmp_path: Path, capsys):
    """`<<: *defaults` is YAML 1.1 merge, which PyYAML's safe_load (Copier's reader of the data
    file) applies: our loader gives the same mapping, and the front door accepts the design."""
    text = yaml.safe_dump(B(), sort_keys=False).replace(
        "controls:\n", "shared: &shared\n  epochs: 2\n  batch_size: 8\ncontrols:\n  <<: *shared\n", 1
    )
    assert yamlio.load(text) == yaml.safe_load(text)
    assert yamlio.load(text)["controls"]["batch_size"] == 4  # a key given beside the merge wins
    from cruijff_gen.commands import front

    front.check(_summary(tmp_path, text), {})  # no error


def test_readme_data_pairs_are_accepted():
    """The README's own `--data 'finetune_overrides={device: cpu, dtype: fp32}'` (Copier reads a
    yaml question's --data value as YAML; so does the front door)."""
    from cruijff_gen.commands import front

    pairs = front._data_pairs(["finetune_overrides={device: cpu, dtype: fp32}", "slurm_account=abc"])
    assert pairs == {"finetune_overrides": {"device": "cpu", "dtype": "fp32"}, "slurm_account": "abc"}


def test_large_design_is_not_slowed_by_the_limits():
    """The limit check walks each node once: a 2,000-run answers file loads in well under a second."""
    d = B()
    d["runs"] = [{"name": f"r{i}", "type": "fine-tuned", "model": "Llama-3.2-1B-Instruct", "parameters": {"lora_rank": 8, "lr": 1e-5}} for i in range(2000)]
    text = yaml.safe_dump(d, sort_keys=False)
    start = time.monotonic()
    assert len(yamlio.load(text)["runs"]) == 2000
    assert time.monotonic() - start < 5


# ---------------------------------------------------------------- end to end (real programs)


@pytest.mark.copier
def test_plain_copier_copy_of_an_alias_bomb(template_repo: Path, tmp_path: Path):
    """Copier loads the bomb (shared, small) and writes it with anchors; our task refuses it."""
    summary = _summary(tmp_path, _bomb_text())
    dest = tmp_path / "exp"
    start = time.monotonic()
    result = copier("copy", "--trust", "--defaults", "--data-file", str(summary), str(template_repo), str(dest))
    assert time.monotonic() - start < 120
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("cruijff-gen: error:")]
    assert len(errors) == 1 and "output.a9: YAML aliases expand" in errors[0], result.stderr
    assert not dest.exists()


@pytest.mark.copier
def test_cruijff_gen_new_refuses_a_copier_variable(tmp_path: Path):
    """Through the real console command: Copier itself would crash on `_copier_python` in the data
    file (TypeError in its render context, before any template code runs)."""
    summary = _summary(tmp_path, {**B(), "_copier_python": "/bin/false"})
    result = subprocess.run([sys.executable, "-m", "cruijff_gen", "new", str(summary), str(tmp_path / "exp")],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode != 0
    _one_error(result.stderr, "_copier_python: names starting with '_' are Copier's own")
    assert not (tmp_path / "exp").exists()
