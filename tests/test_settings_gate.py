"""Cluster settings, run compute and catalog resources reach shell and #SBATCH lines: each value is
refused with one line naming it, or quoted so that bash receives it byte-exact. finetune_overrides
cannot silently contradict the design. Checked in-process (parse -> plan -> render), with one case
end to end through the real `copier copy`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import designs
from conftest import copier, write_summary
from cruijff_gen import yamlio
from cruijff_gen.errors import DesignError
from cruijff_gen.parse import parse
from cruijff_gen.plan import CLUSTER, plan
from cruijff_gen.render import render


def design_with(**settings):
    return {**designs.base(), **settings}


def refusal(answers) -> list[str]:
    with pytest.raises(DesignError) as caught:
        plan(parse(answers))
    return caught.value.lines()


REFUSED = [
    ("partition-injects-options", dict(slurm_partition="gpu --gres=gpu:8 --time=9-00:00:00"), "settings.slurm_partition: expected one word"),
    ("account-injects-qos", dict(slurm_account="a --qos=high"), "settings.slurm_account: expected one word"),
    ("constraint-quote", dict(slurm_constraint="gpu80'"), "settings.slurm_constraint: expected one word"),
    ("mail-user-space", dict(mail_user="me @x.org"), "settings.mail_user: expected one word"),
    ("mail-type-hash", dict(mail_type="END #x"), "settings.mail_type: expected one word"),
    ("override-design-epochs", dict(finetune_overrides={"epochs": 1}), "settings.finetune_overrides.epochs: the design sets epochs (controls.epochs): change it there"),
    ("override-design-lr", dict(finetune_overrides={"optimizer": {"lr": 0.5}}), "settings.finetune_overrides.optimizer.lr: the design sets lr (runs[0].parameters.lr)"),
    ("override-dotted-lr", dict(finetune_overrides={"optimizer.lr": 0.5}), "settings.finetune_overrides.optimizer.lr: the design sets lr"),
    ("override-whole-and-part", dict(finetune_overrides={"a": 1, "a.b": 2}), "settings.finetune_overrides.a: given both whole and in part (a.b)"),
    ("override-output-dir", dict(finetune_overrides={"output_dir": "/elsewhere"}), "settings.finetune_overrides.output_dir: cruijff_gen writes this key"),
    ("override-data-path", dict(finetune_overrides={"dataset": {"data_files": "/other.json"}}), "settings.finetune_overrides.dataset.data_files: cruijff_gen writes this key"),
]


@pytest.mark.parametrize("settings,expected", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_refused_with_one_line_naming_the_setting(settings, expected):
    lines = refusal(design_with(**settings))
    assert len(lines) == 1 and lines[0].startswith(expected), lines


def test_run_compute_partition_is_one_word():
    d = designs.variant(designs.base(), "runs.0.compute", {"partition": "gpu --qos=high"})
    assert refusal(d)[0].startswith("runs[0].compute.partition: expected one word")


@pytest.mark.parametrize("resources,field", [
    ({"gpus": "two"}, "resources.gpus: expected a whole number, got 'two'"),
    ({"time": "01:00:00 --qos=high"}, "resources.time: expected a SLURM time"),
    ({"partition": "a b"}, "resources.partition: expected one word"),
], ids=["gpus-text", "time-with-option", "partition-space"])
def test_catalog_resources_are_checked_like_compute(tmp_path, resources, field):
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(yamlio.dump({"Llama-3.2-1B-Instruct": {"resources": resources}}), encoding="utf-8")
    lines = refusal(design_with(model_catalog=str(catalog)))
    assert lines == [line for line in lines if f"Llama-3.2-1B-Instruct.{field}" in line] and lines, lines


def test_shell_settings_arrive_byte_exact_and_run_nothing(tmp_path):
    """conda_env, modules and venv are quoted: bash hands the text to conda / module / source as
    one argument each, and no payload runs."""
    canary = tmp_path / "CANARY"
    settings = dict(conda_env=f"env; touch {canary}", modules=f"cuda $(touch {canary})", venv=str(tmp_path / "my venv"))
    job = plan(parse(design_with(**settings))).runs[0].finetune_job
    (tmp_path / "my venv" / "bin").mkdir(parents=True)
    (tmp_path / "my venv" / "bin" / "activate").write_text('printf "%s\\n" "sourced" >> calls\n')
    prelude = 'conda() { printf "conda:%s\\n" "$@" >> calls; }\nmodule() { printf "module:%s\\n" "$@" >> calls; }\n'
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", prelude + "\n".join(job.environment)], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    # modules is a list of names separated by spaces: each word one quoted argument
    assert calls == ["module:load", "module:cuda", "module:$(touch", f"module:{canary})", "conda:shell.bash", "conda:hook",
                     "conda:activate", f"conda:env; touch {canary}", "sourced"], calls
    assert not canary.exists()


def test_overrides_of_defaults_apply_and_say_so():
    """An override of a value the design leaves to a default replaces it everywhere the value shows
    (finetune.yaml, setup_finetune.yaml with its source, the README); a key no design field reaches
    is added to finetune.yaml."""
    answers = design_with(finetune_overrides={"device": "cpu", "dtype": "fp32", "weight_decay": 0.0, "profiler": {"enabled": True}})
    the_plan = plan(parse(answers))
    run = the_plan.runs[0]
    assert (run.params["device"], run.sources["device"]) == ("cpu", CLUSTER)
    assert (run.params["weight_decay"], run.sources["weight_decay"]) == (0.0, CLUSTER)
    files = render(the_plan, answers)
    cfg = yamlio.load(files[f"{run.name}/finetune.yaml"])
    assert (cfg["device"], cfg["dtype"], cfg["optimizer"]["weight_decay"], cfg["profiler"]) == ("cpu", "fp32", 0.0, {"enabled": True})
    assert "  weight_decay: 0.0  # cluster settings" in files[f"{run.name}/setup_finetune.yaml"]


@pytest.mark.copier
def test_refusal_end_to_end_writes_nothing(template_repo, tmp_path):
    summary = write_summary(tmp_path / "summary.yaml", designs.base(str(tmp_path / "exp")))
    dest = tmp_path / "exp"
    result = copier("copy", "--trust", "--defaults", "--data-file", str(summary),
                    "--data=slurm_partition=gpu --gres=gpu:8", str(template_repo), str(dest))
    assert result.returncode != 0
    assert "settings.slurm_partition: expected one word" in result.stderr and "Traceback" not in result.stderr
    assert not any(Path(dest).rglob("*.slurm"))
