"""Messages a person reads: typos get the nearest name, an unknown hyperparameter is refused, and a
warning is one line per cause (naming the runs), not one per run. In-process (parse -> plan)."""

from __future__ import annotations

import pytest

import designs
from cruijff_gen.errors import DesignError
from cruijff_gen.parse import parse
from cruijff_gen.plan import plan


def refusal(design) -> list[str]:
    with pytest.raises(DesignError) as caught:
        plan(parse(design))
    return caught.value.lines()


@pytest.mark.parametrize("path,typo,expected", [
    ("runs.0.parameters.lora_rnak", 8, "runs[0].parameters.lora_rnak: unknown hyperparameter 'lora_rnak' (did you mean lora_rank?)"),
    ("controls.num_warmup_step", 10, "controls.num_warmup_step: unknown hyperparameter 'num_warmup_step' (did you mean num_warmup_steps?)"),
    ("controls.zzz", 1, "controls.zzz: unknown hyperparameter 'zzz'; the hyperparameters"),
], ids=["run-parameter", "controls", "no-close-name"])
def test_unknown_hyperparameter_is_refused_with_the_nearest_name(path, typo, expected):
    lines = refusal(designs.variant(designs.base(), path, typo))
    assert lines[0].startswith(expected), lines


def test_misspelled_model_gets_the_nearest_catalog_name():
    lines = refusal(designs.variant(designs.base(), "models.base.0.name", "Llama-3.2-1B-Instruc"))
    assert lines[0].startswith("models.base[0].name: unknown model 'Llama-3.2-1B-Instruc' (did you mean Llama-3.2-1B-Instruct?)")


def test_one_warning_per_cause_for_many_runs():
    design = designs.base()
    run = design["runs"][0]
    design["runs"] = [{**run, "name": f"r{i}", "parameters": {**run["parameters"], "lr": "1e5"}} for i in range(200)]
    design["evaluation"]["matrix"] = [{"run": "r0", "tasks": [design["evaluation"]["tasks"][0]["name"]]}]
    design["data"]["training"]["splits"] = {"train": 8}
    design["controls"]["num_warmup_steps"] = 1000
    warnings = plan(parse(design)).warnings
    lr = [w for w in warnings if "lr 100000 is far outside" in w]
    warmup = [w for w in warnings if "never leaves warm-up" in w]
    assert len(lr) == 1 and lr[0].startswith("runs (200: r0, r1, r2 and 197 more): "), warnings
    assert len(warmup) == 1 and warmup[0].endswith("lower num_warmup_steps"), warnings


def cli(*args: str, cwd=None):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "cruijff_gen", *args], cwd=cwd, capture_output=True, text=True)


def test_help_lists_the_user_commands_only():
    listing = cli("--help").stdout
    for command in ("new", "update", "verify", "plan", "render", "import"):
        assert f"    {command} " in listing, listing
    for internal in ("start-update", "base-render", "finish-update", "--operation", "--data-keys"):
        assert internal not in listing and internal not in cli("render", "--help").stdout
    assert "(default: .)" in cli("verify", "--help").stdout


@pytest.mark.copier
def test_commands_work_from_inside_the_experiment(scaffold_copy):
    dest = scaffold_copy(designs.base())
    inside = dest / "r8" / "eval"
    proc = cli("verify", cwd=inside)
    assert proc.returncode == 0 and "every generated value matches the design" in proc.stdout + proc.stderr, proc.stderr
    (dest / "r8" / "finetune.yaml").write_text((dest / "r8" / "finetune.yaml").read_text().replace("lora_rank: 8", "lora_rank: 9"))
    proc = cli("verify", cwd=inside)
    assert proc.returncode == 1 and "r8/finetune.yaml: model.lora_rank: expected 8, found 9" in proc.stdout + proc.stderr
