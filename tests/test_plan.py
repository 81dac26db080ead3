"""The plan stage (cruijff_gen/plan.py) in-process: every generated value resolved once.

Precedence of a run's hyperparameters: run parameters > controls > model catalog > product default
(data/defaults.yaml), each value's source recorded; cluster finetune_overrides; SLURM resources from
the catalog < evaluation.compute < run compute; the eval matrix (no epochs: the last one; controls
and eval-only runs: their model); the launch commands; the cautions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import designs
from cruijff_gen import facts
from cruijff_gen.errors import DesignError
from cruijff_gen.parse import parse
from cruijff_gen.plan import CATALOG, CLUSTER, CONTROLS, DEFAULT, DERIVED, RUN, plan

FAST = settings(max_examples=60, deadline=None)
DEFAULTS = facts.defaults()
HYPER = facts.hyperparameters()


def planned(design: dict, **cluster):
    return plan(parse({**design, **cluster}))


# --------------------------------------------------------------------------- precedence
def test_each_source_of_a_run_value():
    d = designs.base()
    d["controls"]["weight_decay"] = 0.1
    d["runs"][0]["parameters"]["weight_decay"] = 0.2
    r8, r16 = planned(d).run("r8"), planned(d).run("r16")
    assert (r8.params["weight_decay"], r8.sources["weight_decay"]) == (0.2, RUN)
    assert (r16.params["weight_decay"], r16.sources["weight_decay"]) == (0.1, CONTROLS)
    assert (r8.params["lr"], r8.sources["lr"]) == (1e-5, RUN)
    assert (r8.params["epochs"], r8.sources["epochs"]) == (2, CONTROLS)
    catalog = facts.catalog().get("Llama-3.2-1B-Instruct").lora
    assert (r8.params["lora_attn_modules"], r8.sources["lora_attn_modules"]) == (catalog["lora_attn_modules"], CATALOG)
    assert (r8.params["seed"], r8.sources["seed"]) == (HYPER["seed"]["default"], DEFAULT)
    assert (r8.params["lora_alpha"], r8.sources["lora_alpha"]) == (16, DERIVED)  # 2 x rank
    assert (r8.params["run_val_every_n_steps"], r8.sources["run_val_every_n_steps"]) == (DEFAULTS["validation"]["every_n_steps"], DEFAULT)
    assert "clip_grad_norm" not in r8.params  # no default: omitted


VALUE = {"lr": st.floats(1e-6, 1e-2), "weight_decay": st.floats(0, 1), "lora_rank": st.integers(1, 256),
         "epochs": st.integers(1, 5), "batch_size": st.integers(1, 64), "seed": st.integers(0, 10**6)}


@given(data=st.data(), key=st.sampled_from(sorted(VALUE)))
@FAST
def test_precedence_run_over_controls_over_catalog_over_default(data, key):
    at_run, at_controls = data.draw(st.booleans()), data.draw(st.booleans())
    run_value, controls_value = data.draw(VALUE[key]), data.draw(VALUE[key])
    d = designs.base()
    d["evaluation"]["matrix"] = None
    d["controls"].pop(key, None)
    d["runs"][0]["parameters"].pop(key, None)
    if key in ("epochs", "batch_size") and not at_controls:
        at_controls = True  # required in controls
    if key == "lora_rank" and not (at_run or at_controls):
        at_run = True  # required somewhere
    if at_run:
        d["runs"][0]["parameters"][key] = run_value
    if at_controls:
        d["controls"][key] = controls_value
    r8 = planned(d).run("r8")
    if at_run:
        expected, source = run_value, RUN
    elif at_controls:
        expected, source = controls_value, CONTROLS
    else:
        expected, source = HYPER[key]["default"], DEFAULT
    assert (r8.params[key], r8.sources[key]) == (expected, source)
    # and the value reaches finetune.yaml where the table says
    node = r8.finetune
    for part in HYPER[key]["at"].split("."):
        node = node[part]
    assert node == expected


def test_catalog_lora_defaults_yield_to_the_design():
    d = designs.variant(designs.base(), "controls.apply_lora_to_mlp", False)
    r8 = planned(d).run("r8")
    assert (r8.params["apply_lora_to_mlp"], r8.sources["apply_lora_to_mlp"]) == (False, CONTROLS)
    assert r8.finetune["model"]["apply_lora_to_mlp"] is False


def test_adapters_only_from_the_catalog_size():
    the_plan = planned(designs.rich())
    big, small = the_plan.run("big_r4"), the_plan.run("llama_r8")
    assert (big.params["save_adapter_weights_only"], big.sources["save_adapter_weights_only"]) == (True, CATALOG)  # 140 GB
    assert small.params["save_adapter_weights_only"] is False
    # their cells: adapters are loaded through cruijff_gen's provider, merged checkpoints through hf
    assert [c.job.argv[4] for c in the_plan.cells_of("big_r4")] == ["cruijff-hf/big_r4_epoch1"]
    assert {c.job.argv[4].split("/")[0] for c in the_plan.cells_of("llama_r8")} == {"hf"}


# --------------------------------------------------------------------------- cluster overrides
@pytest.mark.parametrize("overrides", [{"device": "cpu", "dtype": "fp32"}, {"optimizer": {"betas": [0.9, 0.95]}}, {"optimizer.betas": [0.9, 0.95]}])
def test_finetune_overrides(overrides):
    r8 = planned(designs.base(), finetune_overrides=overrides).run("r8")
    if "device" in overrides:
        assert (r8.params["device"], r8.sources["device"]) == ("cpu", CLUSTER)
        assert r8.finetune["device"] == "cpu" and r8.finetune["dtype"] == "fp32"
    else:
        assert r8.finetune["optimizer"]["betas"] == [0.9, 0.95]
        assert r8.finetune["optimizer"]["lr"] == 1e-5  # the rest of the section stays


@pytest.mark.parametrize("overrides,path,message", [
    ({"lr": 0.1}, "settings.finetune_overrides.lr", "the design sets lr (runs[0].parameters.lr): change it there"),
    ({"epochs": 9}, "settings.finetune_overrides.epochs", "the design sets epochs (controls.epochs)"),
    ({"checkpointer": {"output_dir": "/x"}}, "settings.finetune_overrides.checkpointer.output_dir", "cruijff_gen writes this key"),
    ({"optimizer": {"betas": 1}, "optimizer.betas": 2}, "settings.finetune_overrides.optimizer.betas", "given twice"),
    ({"profiler": 1, "profiler.enabled": True}, "settings.finetune_overrides.profiler", "given both whole and in part"),
])
def test_finetune_overrides_refused(overrides, path, message):
    with pytest.raises(DesignError) as caught:
        planned(designs.base(), finetune_overrides=overrides)
    (problem,) = caught.value.problems
    assert problem.path == path and message in problem.message


# --------------------------------------------------------------------------- resources
def directives(job) -> dict[str, str]:
    return dict(job.directives)


def test_resources_catalog_then_evaluation_compute_then_run_compute():
    the_plan = planned(designs.rich(), slurm_partition="gpu", slurm_account="acct")
    catalog = facts.catalog()
    qwen = catalog.get("Qwen2.5-3B-Instruct").resources
    r = the_plan.run("qwen_r16").resources
    assert (r.gpus, r.mem, r.cpus, r.time, r.partition) == (qwen["gpus"], qwen["mem"], qwen["cpus"], qwen["time"], "gpu")
    big = the_plan.run("big_r4").resources
    assert big.time == "2-00:00:00" and big.gpus == catalog.get("Llama-3.3-70B-Instruct").resources["gpus"]  # run compute over catalog
    one = the_plan.run("big_r4_1gpu")
    assert (one.resources.gpus, one.resources.mem) == (1, "120G")
    assert one.recipe == DEFAULTS["finetune"]["recipes"]["single"] and "--nproc_per_node" not in " ".join(one.finetune_job.argv)
    assert the_plan.run("big_r4").recipe == DEFAULTS["finetune"]["recipes"]["distributed"]
    assert f"--nproc_per_node={big.gpus}" in the_plan.run("big_r4").finetune_job.argv
    # eval cells: evaluation.compute over the catalog's eval resources; an eval-only run's compute over both
    cell = the_plan.cells_of("qwen_base")[0]
    assert cell.resources.time == "00:45:00"
    assert the_plan.cells_of("prior_ckpt")[0].resources.time == "00:30:00"
    job = directives(the_plan.run("qwen_r16").finetune_job)
    assert job["account"] == "acct" and job["partition"] == "gpu" and job["gres"] == f"gpu:{qwen['gpus']}"
    assert "mail-user" not in job


def test_mig_runs_use_the_slice_in_the_default_partition():
    the_plan = planned(designs.rich(), slurm_partition="gpu", slurm_constraint="a100")
    r = the_plan.run("llama_r8").resources
    mig = facts.catalog().get("Llama-3.2-1B-Instruct").mig
    assert r.mem == mig["mem"] and (r.partition, r.constraint) == ("", "")
    assert "partition" not in directives(the_plan.run("llama_r8").finetune_job)


def test_mail_only_with_a_mail_user():
    job = directives(planned(designs.base(), mail_user="me@example.org").run("r8").finetune_job)
    assert (job["mail-user"], job["mail-type"]) == ("me@example.org", DEFAULTS["slurm"]["mail_type"])


# --------------------------------------------------------------------------- evaluation
def test_matrix_epochs_default_to_the_last_one():
    d = designs.variant(designs.base(), "evaluation.matrix.1.epochs", None)
    d = designs.variant(d, "runs.1.parameters.epochs", 4)
    the_plan = planned(d)
    assert [(c.run, c.epoch, c.stem) for c in the_plan.cells_of("r16")] == [("r16", 3, "capitalization_epoch3")]
    assert [c.epoch for c in the_plan.cells_of("r8")] == [0, 1]
    cell = the_plan.cells_of("r16")[0]
    assert cell.model_path == "/scratch/u/exp_base/r16/artifacts/epoch_3"
    assert cell.settings_relpath == "r16/eval/capitalization_epoch3.yaml"


def test_controls_and_eval_only_runs_evaluate_their_model():
    the_plan = planned(designs.rich())
    (base_cell,) = [c for c in the_plan.cells_of("qwen_base") if c.task == "capitalization"]
    assert (base_cell.epoch, base_cell.stem, base_cell.model_path) == (None, "capitalization", "/models/Qwen2.5-3B-Instruct")
    assert base_cell.settings["vis_label"] == "Qwen base"
    (prior,) = the_plan.cells_of("prior_ckpt")
    assert prior.model_path == "/ckpt/old run/epoch_2"


def test_without_a_matrix_every_run_meets_every_task_once():
    d = designs.base()
    d["evaluation"]["matrix"] = None
    the_plan = planned(d)
    assert [(c.run, c.stem) for c in the_plan.cells] == [("r8", "capitalization_epoch1"), ("r16", "capitalization_epoch1"), ("base", "capitalization")]
    d["evaluation"]["matrix"] = [{"run": "r8", "tasks": ["capitalization", "capitalization"], "epochs": [1, 1]}]
    assert [c.stem for c in planned(d).cells] == ["capitalization_epoch1"]  # listed twice: one cell


def test_cell_settings_follow_task_then_run_prompting():
    the_plan = planned(designs.rich())
    cells = {(c.run, c.task): c for c in the_plan.cells}
    cap = cells[("llama_r8", "capitalization")].settings
    rev = cells[("llama_r8", "reverse")].settings
    assert cap["prompt"].startswith("Task prompt:") and cap["system_prompt"] == "yes"  # the task's own
    assert rev["prompt"] == designs.HOSTILE_PROMPT  # the run's (controls)
    assert cap["generation"] == {"do_sample": True, "temperature": 0.7, "max_tokens": 32, "seed": 7, "max_connections": 4}
    assert rev["data_path"] == "/data/words.json"  # no dataset: the training data
    base = planned(designs.base()).cells[0].settings
    assert base["generation"] == {"do_sample": False}  # defaults.yaml: null = not sent


@pytest.mark.parametrize("where", ["controls", "run"])
def test_training_text_and_eval_text_come_from_one_resolution(where):
    """What a fine-tuned run trains on (finetune.yaml's dataset) and what its eval cells ask
    (eval settings) carry the same system_prompt / prompt / dataset_type, wherever the design sets
    them, unless a task sets its own."""
    d = designs.base()
    prompts = {"system_prompt": "Answer in one word.", "prompt": "Capitalize: {input}"}
    (d["controls"] if where == "controls" else d["runs"][0]["parameters"]).update(prompts)
    the_plan = planned(d)
    for run in the_plan.runs:
        if run.type != "fine-tuned":
            continue
        trained = {k: run.finetune["dataset"].get(k) for k in ("system_prompt", "prompt", "dataset_type")}
        for cell in the_plan.cells_of(run.name):
            assert {k: cell.settings[k] for k in trained} == trained
    r8 = the_plan.run("r8")
    assert (r8.finetune["dataset"]["system_prompt"], r8.finetune["dataset"]["prompt"]) == tuple(prompts.values())


def test_eval_argv_carries_model_args_and_generation():
    the_plan = planned(designs.rich(), eval_model_args={"device": "cpu"})
    argv = the_plan.cells_of("llama_r8")[0].job.argv
    assert argv[:3] == ("inspect", "eval", "/tasks/cap_task.py@capitalization")
    assert "device=cpu" in argv and "do_sample=true" in argv
    assert argv[argv.index("--temperature") + 1] == "0.7" and argv[argv.index("--seed") + 1] == "7"
    big = planned(designs.rich()).cells_of("big_r4")[0].job.argv
    assert "device=auto" in big  # several GPUs, no device given: spread the model


# --------------------------------------------------------------------------- paths, names, cautions
def test_relative_paths_resolve_against_cluster_settings():
    d = designs.variant(designs.base(), "experiment.dir", "exps/one")
    d = designs.variant(d, "models.base.0.path", "llama-1b")
    the_plan = planned(d, scratch_dir="/scratch/me", models_dir="/models/shared")
    assert the_plan.experiment_dir == "/scratch/me/exps/one"
    r8 = the_plan.run("r8")
    assert r8.run_dir == "/scratch/me/exps/one/r8" and r8.model_path == "/models/shared/llama-1b"
    assert r8.finetune["checkpointer"]["checkpoint_dir"] == "/models/shared/llama-1b"
    assert r8.finetune["checkpointer"]["output_dir"] == "/scratch/me/exps/one/r8/artifacts/"


def test_a_percent_in_the_directory_is_literal_for_slurm():
    r8 = planned(designs.base("/scratch/u/100%_exp")).run("r8")
    assert directives(r8.finetune_job)["output"] == "/scratch/u/100%%_exp/r8/artifacts/slurm-%j.out"


@pytest.mark.parametrize("change,caution", [
    (("runs.0.parameters.lr", 5.0), "lr 5 is far outside the usual 1e-07..0.01"),
    (("controls.num_warmup_steps", 1000), "optimizer steps in all but num_warmup_steps is 1000"),
    (("controls.gradient_accumulation_steps", 1000), "no optimizer step would run"),
])
def test_cautions_are_grouped_by_cause(change, caution):
    warnings = planned(designs.variant(designs.base(), *change)).warnings
    (line,) = [w for w in warnings if caution in w]
    assert line.startswith("runs (")


def test_plan_is_deterministic():
    assert planned(designs.rich()) == planned(designs.rich())
