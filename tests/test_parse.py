"""The parse stage (cruijff_gen/parse.py) in-process: raw answers -> a typed design, or one
DesignError whose problems each carry the path of the offending value.

Values as they arrive from YAML (`lr: 5e-4` is text under YAML 1.1), Copier's answers (a section the
data file lacks arrives as its question's default, `{}`), aliases, the errors' paths and messages,
unused fields, warnings, runs expanded from `variables`. The same messages through the real
`copier copy`: tests/test_bad_input.py."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import designs
from conftest import copier_answers
from cruijff_gen import facts
from cruijff_gen.errors import DesignError
from cruijff_gen.parse import DESIGN_SECTIONS, parse
from cruijff_gen.schema import SETTINGS_KEYS
from designs import DELETE

FAST = settings(max_examples=60, deadline=None)


def problems(answers: dict) -> list[tuple[str, str]]:
    with pytest.raises(DesignError) as caught:
        parse(answers)
    return [(p.path, p.message) for p in caught.value.problems]


def only_problem(answers: dict) -> tuple[str, str]:
    found = problems(answers)
    assert len(found) == 1, found
    return found[0]


def test_base_design_parses_with_copier_defaults():
    parsed = parse(copier_answers(designs.base()))
    assert [r.name for r in parsed.design.runs] == ["r8", "r16", "base"]
    assert parsed.unused == [] and parsed.warnings == [] and not parsed.expanded
    assert parsed.design.tools.preparation == "torchtune"
    assert parsed.settings.max_in_queue == 0 and parsed.settings.modules == []


def test_settings_keys_are_the_copier_questions():
    """The cluster settings parse reads are exactly copier.yml's questions besides the design's."""
    questions = set(copier_answers({})) - {"_src_path"}
    assert questions == set(DESIGN_SECTIONS) | set(SETTINGS_KEYS)


# --------------------------------------------------------------------------- values as YAML gives them
@given(st.floats(min_value=1e-9, max_value=1.0, allow_nan=False, allow_infinity=False))
@FAST
def test_lr_written_as_text_is_the_number(lr):
    for written in (repr(lr), f"{lr:e}", lr):
        parsed = parse(designs.variant(designs.base(), "runs.0.parameters.lr", written))
        assert parsed.design.runs[0].parameters.lr == pytest.approx(float(written), rel=0, abs=0)


@given(st.integers(min_value=1, max_value=10**6))
@FAST
def test_whole_numbers_as_int_text_or_integral_float(rank):
    for written in (rank, str(rank), f" {rank} ", float(rank)):
        parsed = parse(designs.variant(designs.base(), "runs.0.parameters.lora_rank", written))
        assert parsed.design.runs[0].parameters.lora_rank == rank and isinstance(parsed.design.runs[0].parameters.lora_rank, int)


@given(st.one_of(st.booleans(), st.floats(allow_nan=True).filter(lambda f: not (math.isfinite(f) and f.is_integer())),
                 st.text().filter(lambda t: not t.strip().lstrip("+-").isdigit()), st.none()))
@FAST
def test_a_rank_that_is_not_a_whole_number_is_refused_by_path(junk):
    path, message = only_problem(designs.variant(designs.base(), "runs.0.parameters.lora_rank", junk))
    assert path == "runs[0].parameters.lora_rank"
    expected = "expected a value, got null (leave the field out to take its default)" if junk is None else "expected a whole number, got "
    assert message.startswith(expected)


@pytest.mark.parametrize("written", [True, "fast", "1e400", float("nan"), [1], {"a": 1}])
def test_lr_that_is_not_a_finite_number(written):
    path, message = only_problem(designs.variant(designs.base(), "runs.1.parameters.lr", written))
    assert path == "runs[1].parameters.lr"
    assert message.startswith(("expected a number, got", "expected a finite number, got"))


def test_range_checks_come_from_the_hyperparameter_table():
    assert only_problem(designs.variant(designs.base(), "controls.batch_size", 0)) == ("controls.batch_size", "must be at least 1, got 0")
    assert only_problem(designs.variant(designs.base(), "runs.0.parameters.lr", 0)) == ("runs[0].parameters.lr", "must be greater than 0, got 0.0")
    assert only_problem(designs.variant(designs.base(), "controls.dtype", "fp16")) == ("controls.dtype", "expected one of bf16, fp32, got 'fp16'")


def test_scalars_where_lists_go():
    d = designs.variant(designs.base(), "evaluation.matrix.0.epochs", 1)
    d = designs.variant(d, "evaluation.matrix.0.tasks", "capitalization")
    entry = parse(d).design.evaluation.matrix[0]
    assert entry.epochs == [1] and entry.tasks == ["capitalization"]


def test_component_short_names_become_components():
    d = designs.variant(designs.base(), "controls.optimizer", "adamw")
    d = designs.variant(d, "controls.lr_scheduler", "cosine")
    controls = parse(d).design.controls
    assert controls.optimizer == "torch.optim.AdamW"
    assert controls.lr_scheduler == "torchtune.training.lr_schedulers.get_cosine_schedule_with_warmup"


# --------------------------------------------------------------------------- aliases
@pytest.mark.parametrize("where,alias,name,value", [
    ("runs.0.parameters", "learning_rate", "lr", "2e-5"),
    ("runs.0.parameters", "lora_r", "lora_rank", 4),
    ("controls", "learning_rate", "lr", "3e-5"),
    ("experiment", "directory", "dir", "/scratch/elsewhere"),
    ("data.training", "label", "dataset_label", "words"),
])
def test_aliases_are_the_same_field(where, alias, name, value):
    d = designs.base()
    node = d
    for part in where.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    node.pop(name, None)
    node[alias] = value
    parsed = parse(d)
    target = parsed.design
    for part in where.split("."):
        target = target[int(part)] if isinstance(target, list) else getattr(target, part)
    expected = float(value) if name == "lr" else value
    assert getattr(target, name) == expected
    assert parsed.unused == []


def test_alias_and_name_both_given():
    d = designs.variant(designs.base(), "experiment.directory", "/scratch/x")
    assert only_problem(d) == ("experiment.directory", "give either directory or dir, not both")


# --------------------------------------------------------------------------- Copier's answers
@pytest.mark.parametrize("section,expected", [
    ("experiment", ("experiment", "required field is missing")),
    ("controls", ("controls", "required field is missing")),
    ("data", ("data", "required field is missing")),
    ("models", ("models.base", "must not be empty")),  # copier.yml's default: {base: []}
    ("runs", ("runs", "must not be empty")),  # default: []
])
def test_a_missing_required_section_as_copier_fills_it(section, expected):
    assert only_problem(copier_answers(designs.variant(designs.base(), section, DELETE))) == expected


@pytest.mark.parametrize("section", ["tools", "output", "evaluation", "variables"])
def test_an_optional_section_left_out_or_null_is_its_default(section):
    left_out = designs.base()
    left_out.pop(section, None)
    if section == "evaluation":
        left_out["evaluation"] = {}
    for answers in (copier_answers(left_out), {**left_out, section: None}):
        parsed = parse(answers)
        assert parsed.unused == [] and parsed.warnings == []
    assert parse({**designs.base(), "evaluation": None}).design.evaluation.tasks == []


def test_not_a_mapping():
    with pytest.raises(DesignError) as caught:
        parse(["a list"])  # type: ignore[arg-type]
    assert caught.value.problems[0].path == "" and "got ['a list']" in caught.value.problems[0].message


# --------------------------------------------------------------------------- errors
def test_several_problems_are_reported_together_once_per_path():
    d = designs.variant(designs.base(), "runs.0.parameters.lr", "fast")
    d = designs.variant(d, "runs.1.parameters.lora_rank", "x")
    d = designs.variant(d, "experiment.date", "soon")
    paths = [p for p, _ in problems(d)]
    assert sorted(paths) == ["experiment.date", "runs[0].parameters.lr", "runs[1].parameters.lora_rank"]
    assert len(paths) == len(set(paths))


@pytest.mark.parametrize("path,value,where,message", [
    ("runs.0.parameters.lora_rnk", 8, "runs[0].parameters.lora_rnk", "unknown hyperparameter 'lora_rnk' (did you mean lora_rank?)"),
    ("controls.epoch", 3, "controls.epoch", "unknown hyperparameter 'epoch' (did you mean epochs?)"),
    ("runs.0.parameters.checkpoint_path", "/ckpt/x", "runs[0].parameters.checkpoint_path", "only eval-only runs take a checkpoint_path"),
    ("runs.0.mig", "yes", "runs[0].mig", "expected true or false, got 'yes'"),
    ("runs.0.compute", {"time": "soon"}, "runs[0].compute.time", "expected a SLURM time such as 04:00:00"),
    ("runs.0.compute", {"gpus": 0}, "runs[0].compute.gpus", "must be at least 1, got 0"),
    ("runs.0.compute", {"partition": "gpu --qos=high"}, "runs[0].compute.partition", "expected one word"),
    ("runs.0.model", "Llama-3.2-3B-Instruct", "runs[0].model", "model 'Llama-3.2-3B-Instruct' is not declared in models.base (declared: Llama-3.2-1B-Instruct)"),
    ("models.base.0.path", "models/llama", "models.base[0].path", "relative path 'models/llama' needs the cluster setting models_dir"),
    ("data.training.path", "/data/../etc/x.json", "data.training.path", "must not contain '..'"),
    ("data.training.format", "csv", "data.training.format", "expected 'json' or 'parquet', got 'csv'"),
    ("evaluation.tasks.0.name", "cap-task", "evaluation.tasks[0].name", "'cap-task' is not a valid task name"),
    ("experiment.name", "two\nlines", "experiment.name", "must be a single line"),
    ("runs.2.mig", True, "runs[2].mig", None),  # a control on a model with MIG resources: fine
])
def test_error_paths(path, value, where, message):
    d = designs.variant(designs.base(), path, value)
    if message is None:
        parse(d)
        return
    found = dict(problems(d))
    assert where in found, found
    assert message in found[where], found[where]


@pytest.mark.parametrize("key", ["0 ", "lr rate", "optimizer.lr", "a[0]", "x:y"])
def test_an_unknown_key_a_dotted_path_cannot_show_is_named_at_its_section(key):
    """(found by test_fuzz: `'0 ': 0` in a run's parameters was reported at "runs[0].parameters.0 ",
    a path with a blank in it) The message names the key; the path stops at the section."""
    d = designs.base()
    d["runs"][0]["parameters"][key] = 0
    found = dict(problems(d))
    assert found["runs[0].parameters"].startswith(f"unknown hyperparameter {key!r}"), found


def test_cross_reference_errors():
    d = designs.base()
    d["models"]["base"].append(dict(d["models"]["base"][0]))
    assert only_problem(d) == ("models.base[1].name", "duplicate model 'Llama-3.2-1B-Instruct' (also models.base[0])")
    d = designs.base()
    d["evaluation"]["tasks"].append(dict(d["evaluation"]["tasks"][0]))
    assert only_problem(d) == ("evaluation.tasks[1].name", "duplicate task name 'capitalization' (also evaluation.tasks[0])")
    d = designs.variant(designs.base(), "runs.2.type", "eval-only")
    d["runs"][2]["parameters"] = {"checkpoint_path": "ckpt/rel"}
    assert only_problem(d) == ("runs[2].parameters.checkpoint_path", "expected an absolute path, got 'ckpt/rel'")
    d = designs.variant(designs.rich(), "runs.4.mig", True)  # Qwen2.5-3B has no MIG resources
    assert only_problem(d) == ("runs[4].mig", "model 'Qwen2.5-3B-Instruct' does not fit a MIG slice (only models with `mig` resources in the catalog do)")


def test_a_run_epoch_count_bounds_its_matrix_epochs():
    d = designs.variant(designs.base(), "runs.0.parameters.epochs", 5)
    d = designs.variant(d, "evaluation.matrix.0.epochs", [0, 4])
    assert parse(d).design.evaluation.matrix[0].epochs == [0, 4]
    d = designs.variant(d, "evaluation.matrix.0.epochs", [5])
    assert only_problem(d)[0] == "evaluation.matrix[0].epochs[0]"


def test_system_prompt_on_a_model_without_a_system_turn_names_where_it_was_given():
    d = designs.base()
    d["models"]["base"] = [{"name": "Mistral-7B-Instruct-v0.1", "path": "/models/m"}]  # catalog: system_role false
    for run in d["runs"]:
        run["model"] = "Mistral-7B-Instruct-v0.1"
    assert {p for p, _ in problems(d)} == {"controls.system_prompt"}  # given in controls, refused for both runs: once
    d["runs"][0]["parameters"]["system_prompt"] = "mine"
    assert {p for p, _ in problems(d)} == {"controls.system_prompt", "runs[0].parameters.system_prompt"}
    d["controls"]["system_prompt"] = ""
    d["runs"][0]["parameters"]["system_prompt"] = ""
    assert parse(d).design.controls.system_prompt == ""


def test_settings_errors_are_under_settings():
    answers = {**designs.base(), "slurm_account": "a b", "max_in_queue": -1}
    found = dict(problems(answers))
    assert set(found) == {"settings.slurm_account", "settings.max_in_queue"}
    assert found["settings.max_in_queue"] == "expected 0 (no cap) or more, got -1"
    assert only_problem({**designs.base(), "model_catalog": "/no/such/catalog.yaml"})[0] == "settings.model_catalog"


def test_relative_paths_need_their_cluster_setting():
    d = designs.variant(designs.base(), "experiment.dir", "exps/one")
    assert only_problem(d)[0] == "experiment.dir"
    assert parse({**d, "scratch_dir": "/scratch/me"}).design.experiment.dir == "exps/one"  # resolved by the plan


# --------------------------------------------------------------------------- unused fields, warnings
def test_unused_fields_are_listed_by_path():
    d = designs.variant(designs.base(), "experiment.colour", "blue")
    d = designs.variant(d, "runs.0.compute", {"time": "01:00:00", "nodes": 2})
    parsed = parse(d, extra_top_level=("extra_section", "_private", "conda_env"))
    assert parsed.unused == ["experiment.colour", "runs[0].compute.nodes", "extra_section"]


def test_warnings_for_fields_that_change_nothing():
    d = {**designs.base(), "output": {"base_directory": "/out"}}
    d = designs.variant(d, "controls.add_control_runs", True)
    warnings = parse(d).warnings
    assert len(warnings) == 2
    assert warnings[0].startswith("controls.add_control_runs: not used") and warnings[1].startswith("output.base_directory: not used")


# --------------------------------------------------------------------------- variables
@given(ranks=st.lists(st.integers(1, 64), min_size=1, max_size=4, unique=True),
       lrs=st.lists(st.sampled_from(["1e-5", "2e-5", "5e-5", "1e-4"]), min_size=1, max_size=3, unique=True))
@FAST
def test_variables_without_runs_expand_to_the_product(ranks, lrs):
    d = designs.base()
    del d["runs"]
    d["evaluation"]["matrix"] = None
    d["variables"] = {"lora_rank": ranks, "lr": lrs}
    parsed = parse(d)
    assert parsed.expanded
    runs = parsed.design.runs
    assert len(runs) == len(ranks) * len(lrs)
    assert len({r.name for r in runs}) == len(runs)
    assert sorted((r.parameters.lora_rank, r.parameters.lr) for r in runs) == sorted((k, float(v)) for k in ranks for v in lrs)
    assert all(r.type == "fine-tuned" and r.model == "Llama-3.2-1B-Instruct" for r in runs)
    assert parse(d).design.runs == runs  # stable


def test_a_swept_value_need_not_be_repeated_in_controls():
    d = designs.base()
    del d["runs"]
    d["evaluation"]["matrix"] = None
    d["variables"] = {"lora_rank": [8, 16], "batch_size": [2, 4]}
    del d["controls"]["batch_size"]  # required in controls, but swept
    parsed = parse(d)
    assert sorted(r.parameters.batch_size for r in parsed.design.runs) == [2, 2, 4, 4]


# Found by test_fuzz under CI: `num_warmup_steps: null` in controls crashed the plan stage (a
# TypeError), and `lr: null` went through as a value. A null hyperparameter is refused by name, but
# where null is the table's own default (max_steps_per_epoch: no cap).
NULL_DEFAULT = {n for n, spec in facts.hyperparameters().items() if "default" in spec and spec["default"] is None}


@pytest.mark.parametrize("name", sorted(set(facts.hyperparameters()) - NULL_DEFAULT))
@pytest.mark.parametrize("where", ["controls", "run"])
def test_a_null_hyperparameter_is_refused_by_name(name, where):
    design = copier_answers(designs.base())
    place = design["controls"] if where == "controls" else design["runs"][0]["parameters"]
    place[name] = None
    path = f"controls.{name}" if where == "controls" else f"runs[0].parameters.{name}"
    assert (path, "expected a value, got null (leave the field out to take its default)") in problems(design)


@pytest.mark.parametrize("name", sorted(NULL_DEFAULT))
def test_null_is_accepted_where_it_is_the_default(name):
    design = copier_answers(designs.base())
    design["controls"][name] = None
    parse(design)
