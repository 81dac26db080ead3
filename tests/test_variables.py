"""Runs expanded from `variables`: cartesian product, stable unique names with the original
workflow's abbreviations, a control per model when asked, clear errors."""

from __future__ import annotations

import copy

import pytest

import designs
from cruijff_gen.errors import DesignError
from cruijff_gen.parse import parse
from cruijff_gen.plan import plan


def sweep(**variables) -> dict:
    d = designs.base()
    del d["runs"]
    del d["evaluation"]["matrix"]
    d["variables"] = variables
    return d


def names(design: dict) -> list[str]:
    return [r.name for r in parse(design).design.runs]


def test_rank_by_lr_sweep_with_controls():
    d = sweep(lora_rank=[8, 16], lr=["1e-5", "5e-5"])
    d["controls"]["add_control_runs"] = True
    parsed = parse(d)
    runs = {r.name: r for r in parsed.design.runs}
    assert list(runs) == ["rank8_lr1e-5", "rank8_lr5e-5", "rank16_lr1e-5", "rank16_lr5e-5", "Llama-3.2-1B_base"]  # named like the runs
    assert runs["rank16_lr5e-5"].parameters.lora_rank == 16 and runs["rank16_lr5e-5"].parameters.lr == 5e-5
    assert runs["Llama-3.2-1B_base"].type == "control"
    the_plan = plan(parsed)  # no matrix: every run on every task, fine-tuned at the last epoch
    assert [c.stem for c in the_plan.cells] == ["capitalization_epoch1"] * 4 + ["capitalization"]


def test_only_varying_parameters_name_runs_and_models_use_short_names():
    d = sweep(model=["Llama-3.2-1B-Instruct", "Qwen2.5-3B-Instruct"], lora_rank=[8], batch_size=[4, 8])
    d["models"]["base"].append({"name": "Qwen2.5-3B-Instruct", "path": "/models/qwen"})
    assert names(d) == ["Llama-3.2-1B_bs4", "Llama-3.2-1B_bs8", "Qwen2.5-3B_bs4", "Qwen2.5-3B_bs8"]


def test_names_are_stable():
    d = sweep(lora_rank=[4, 8, 16, 32, 64], lr=["1e-5", "5e-5"])
    assert names(d) == names(copy.deepcopy(d))
    assert len(set(names(d))) == 10


@pytest.mark.parametrize(
    "variables,expected",
    [
        ({"lora_rank": [8, "x"]}, "variables.lora_rank[1]: expected a whole number, got 'x'"),
        ({"lora_rank": [8], "lr": [1e-5, 1.0e-5]}, "two expanded runs would both be named 'lr1e-05'"),
        ({"lora_rank": [8], "colour": ["red"]}, "variables.colour: unknown parameter 'colour'"),
        ({"lora_rank": [8], "model": ["GPT"]}, "variables.model[0]: model 'GPT' is not declared"),
        ({"lora_rank": []}, "variables.lora_rank: expected a non-empty list"),
    ],
)
def test_bad_variables(variables, expected):
    with pytest.raises(DesignError) as err:
        parse(sweep(**variables))
    assert any(expected in line for line in err.value.lines()), err.value.lines()


def test_explicit_runs_win_and_switch_is_reported():
    d = designs.base()
    d["variables"] = {"lora_rank": [8, 16]}
    d["controls"]["add_control_runs"] = True
    parsed = parse(d)
    assert [r.name for r in parsed.design.runs] == ["r8", "r16", "base"]
    assert any("add_control_runs" in w for w in parsed.warnings)


def _example():
    import yaml

    from conftest import EXAMPLE

    return yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))


def test_runs_and_variables_must_describe_the_same_sweep():
    """A design with both: the runs are checked against the expansion (a value in variables no run
    uses, or a run outside the sweep, is refused naming it); the bundled example agrees with itself."""
    from cruijff_gen.errors import DesignError
    from cruijff_gen.parse import parse

    parse(_example())  # consistent
    design = _example()
    design["variables"]["lr"].append("1e-4")
    with pytest.raises(DesignError) as caught:
        parse(design)
    assert caught.value.lines()[0] == "variables: the combination of run 'rank8_lr1e-4' has no run in `runs`: add it, or drop the value from variables"
    design = _example()
    design["runs"][0]["parameters"]["lora_rank"] = 32
    with pytest.raises(DesignError) as caught:
        parse(design)
    assert "runs[0]: lora_rank=32, lr=1e-05 is not a combination of `variables`" in caught.value.lines()[0]


def test_a_swept_value_need_not_be_in_controls():
    from cruijff_gen.parse import parse

    design = _example()
    del design["runs"], design["evaluation"]["matrix"], design["controls"]["batch_size"]
    design["variables"]["batch_size"] = [4, 8]
    parsed = parse(design)
    assert sorted({r.parameters.batch_size for r in parsed.design.runs}) == [4, 8] and len(parsed.design.runs) == 8
