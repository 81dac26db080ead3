"""Bad designs: one readable message naming the field, a non-zero exit, no traceback, nothing written.

Every case runs in-process through the step `copier copy` runs (its answers file, then the template's
task through the CLI entry point: conftest.render_task); a few run the real `copier copy` command
line a user runs, and give the same lines."""

from __future__ import annotations

from pathlib import Path

import pytest

import designs
from conftest import copier, error_lines, render_task, write_summary
from designs import DELETE

B = designs.base

CASES = [
    # (id, design, text the message must contain)
    ("missing-required", designs.variant(B(), "experiment.question", DELETE), "experiment.question: required field is missing"),
    ("missing-section", designs.variant(B(), "controls", DELETE), "controls: required field is missing"),
    ("wrong-type-lr", designs.variant(B(), "runs.1.parameters.lr", "fast"), "runs[1].parameters.lr: expected a number, got 'fast'"),
    ("wrong-type-rank", designs.variant(B(), "runs.0.parameters.lora_rank", "four"), "runs[0].parameters.lora_rank: expected a whole number, got 'four'"),
    ("wrong-type-bool", designs.variant(B(), "controls.validation_during_training", "maybe"), "controls.validation_during_training: expected true or false"),
    ("infinite-lr", designs.variant(B(), "runs.0.parameters.lr", "1e400"), "runs[0].parameters.lr: expected a finite number"),
    ("unknown-tool", designs.variant(B(), "tools.preparation", "axolotl"), "tools.preparation: unknown tool 'axolotl'; supported: torchtune"),
    ("unknown-eval-tool", designs.variant(B(), "tools.evaluation", "lm-eval"), "supported: inspect-ai"),
    ("unknown-model", designs.variant(B(), "models.base.0.name", "GPT-5"), "models.base[0].name: unknown model 'GPT-5'; the catalog has: Llama-3.1-8B"),
    ("undeclared-model", designs.variant(B(), "runs.0.model", "Qwen2.5-3B-Instruct"), "runs[0].model: model 'Qwen2.5-3B-Instruct' is not declared in models.base"),
    ("duplicate-run", designs.variant(B(), "runs.1.name", "r8"), "runs[1].name: duplicate run name 'r8'"),
    ("case-collision", designs.variant(B(), "runs.1.name", "R8"), "runs[1].name: run name 'R8' differs from runs[0].name 'r8' only by case"),
    ("name-slash", designs.variant(B(), "runs.0.name", "a/b"), "runs[0].name: 'a/b' is not safe as a directory name"),
    ("name-dotdot", designs.variant(B(), "runs.0.name", ".."), "runs[0].name: '..' is not safe"),
    ("name-dash", designs.variant(B(), "runs.0.name", "-rf"), "runs[0].name: '-rf' is not safe"),
    ("name-space", designs.variant(B(), "runs.0.name", "my run"), "runs[0].name: 'my run' is not safe"),
    ("name-empty", designs.variant(B(), "runs.0.name", ""), "runs[0].name: '' is not safe"),
    ("matrix-unknown-run", designs.variant(B(), "evaluation.matrix.0.run", "r99"), "evaluation.matrix[0].run: unknown run 'r99'"),
    ("matrix-unknown-task", designs.variant(B(), "evaluation.matrix.1.tasks", ["spelling"]), "evaluation.matrix[1].tasks[0]: unknown task 'spelling'"),
    ("epoch-too-big", designs.variant(B(), "evaluation.matrix.0.epochs", [0, 2]), "evaluation.matrix[0].epochs[1]: epoch 2 does not exist"),
    ("epochs-on-control", designs.variant(B(), "evaluation.matrix.2.epochs", [0]), "evaluation.matrix[2].epochs: control run 'base' is not trained"),
    ("no-lora-rank", designs.variant(B(), "runs.1.parameters", {"lr": "1e-5"}), "runs[1].parameters.lora_rank: required for fine-tuned runs"),
    ("eval-only-no-ckpt", designs.variant(B(), "runs.2.type", "eval-only"), "runs[2].parameters.checkpoint_path: required for eval-only runs"),
    ("prompt-no-input", designs.variant(B(), "controls.prompt", "Capitalize this"), "controls.prompt: must contain the placeholder {input}"),
    ("task-prompt-no-input", designs.variant(B(), "evaluation.tasks.0.prompt", "nothing here"), "evaluation.tasks[0].prompt: must contain the placeholder {input}"),
    ("bad-date", designs.variant(B(), "experiment.date", "2025-13-45"), "experiment.date: expected a date YYYY-MM-DD, got '2025-13-45'"),
    ("bad-date-text", designs.variant(B(), "experiment.date", "last tuesday"), "experiment.date: expected a date YYYY-MM-DD"),
    ("bad-run-type", designs.variant(B(), "runs.0.type", "finetuned"), "runs[0].type: expected 'fine-tuned', 'control' or 'eval-only'"),
    ("relative-exp-dir", designs.variant(B(), "experiment.dir", "exp/here"), "experiment.dir: relative path 'exp/here' needs the cluster setting scratch_dir"),
    ("bad-dataset-type", designs.variant(B(), "controls.dataset_type", "chat"), "controls.dataset_type: expected one of chat_completion, text_completion, got 'chat'"),
    ("no-runs", designs.variant(B(), "runs", []), "runs: must not be empty"),
    ("section-not-mapping", designs.variant(B(), "controls", [1, 2]), "controls: expected a mapping, got [1, 2]"),
    ("bad-compute-mem", designs.variant(B(), "runs.0.compute", {"mem": "lots"}), "runs[0].compute.mem: expected a SLURM memory size"),
    ("lora-module-typo", designs.variant(B(), "controls.lora_attn_modules", ["q_proj", "gate_proj"]), "controls.lora_attn_modules: expected a non-empty list of q_proj, k_proj, v_proj, output_proj"),
    ("lora-on-tied-output", designs.variant(B(), "runs.0.parameters.apply_lora_to_output", True), "runs[0].parameters.apply_lora_to_output: Llama-3.2-1B-Instruct ties its output layer"),
    ("space-in-experiment-dir", designs.variant(B(), "experiment.dir", "/scratch/my exp"), "experiment.dir: must not contain spaces"),
    ("comma-in-path", designs.variant(B(), "data.training.path", "/data/a,b.json"), "data.training.path: must not contain ','"),
    ("both-alias-and-name", designs.variant(B(), "runs.0.parameters.learning_rate", "1e-4"), "runs[0].parameters.learning_rate: give either learning_rate or lr, not both"),
    ("sample-without-temp", designs.variant(B(), "evaluation.do_sample", True), "evaluation.temperature: do_sample: true needs a temperature > 0"),
]


@pytest.mark.parametrize("design,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_design_is_refused_and_nothing_written(tmp_path: Path, capsys, design, expected):
    dest = tmp_path / "exp"
    code, stderr = render_task(design, dest, capsys)
    assert code != 0
    assert expected in stderr, stderr
    assert "Traceback" not in stderr
    assert len(error_lines(stderr)) == 1, stderr  # one readable message
    assert "nothing was written" in stderr
    assert list(dest.iterdir()) == []  # not even the answers file: Copier then removes the directory it made


# Through the real `copier copy`: a section the data file lacks (Copier fills it with the
# question's default), a wrong type, a bad reference, an empty list.
END_TO_END = ["missing-section", "wrong-type-lr", "unknown-model", "no-runs"]


@pytest.mark.copier
@pytest.mark.parametrize("case", END_TO_END)
def test_real_copier_copy_refuses_with_the_same_message(template_repo: Path, tmp_path: Path, capsys, case: str):
    _, design, expected = next(c for c in CASES if c[0] == case)
    summary = write_summary(tmp_path / "summary.yaml", design)
    dest = tmp_path / "exp"
    result = copier("copy", "--trust", "--defaults", "--data-file", str(summary), str(template_repo), str(dest))
    assert result.returncode != 0
    assert expected in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not dest.exists()
    _, in_process = render_task(design, tmp_path / "in-process", capsys)
    assert error_lines(result.stderr) == error_lines(in_process)


@pytest.mark.copier
def test_existing_empty_destination_stays_empty(template_repo: Path, tmp_path: Path):
    summary = write_summary(tmp_path / "summary.yaml", designs.variant(B(), "runs.0.parameters.lr", "fast"))
    dest = tmp_path / "exp"
    dest.mkdir()
    result = copier("copy", "--trust", "--defaults", "--data-file", str(summary), str(template_repo), str(dest))
    assert result.returncode != 0
    assert list(dest.iterdir()) == []


# `copier update --trust --defaults` gives Copier no design: the task reads the experiment's
# experiment_summary.yaml itself (commands/update.summary_entries), so what Copier's loader would
# have crashed on is one line here (the end-to-end case: test_update.py, a summary that is not YAML).
SUMMARY_CASES = [
    ("copier-key", "_commit: abc\nruns: []\n", "_commit: names starting with '_' are Copier's own variables, not design fields; remove it"),
    ("not-a-mapping", "- a\n- b\n", "experiment_summary.yaml: expected a mapping of sections, got list"),
    ("not-yaml", "runs: [\n", "experiment_summary.yaml: line 2, column 1: not valid YAML"),
    ("empty", "", "experiment_summary.yaml: the file is empty"),
    ("duplicate-key", "runs: []\nruns: []\n", "experiment_summary.yaml: line 2"),
]


@pytest.mark.parametrize("text, message", [c[1:] for c in SUMMARY_CASES], ids=[c[0] for c in SUMMARY_CASES])
def test_an_updates_summary_is_read_with_the_packages_loader(tmp_path, text, message):
    from cruijff_gen.commands import update
    from cruijff_gen.errors import DesignError

    (tmp_path / "experiment_summary.yaml").write_text(text)
    with pytest.raises(DesignError) as caught:
        update.summary_entries(tmp_path, ())
    assert message in str(caught.value)


def test_an_update_takes_from_the_summary_only_what_copier_was_not_given(tmp_path):
    from cruijff_gen.commands import update

    assert update.summary_entries(tmp_path, ()) == ({}, None)  # no summary: the last design (finish names the missing file)
    text = b"runs: [{name: a}]\nexperiment: {name: x}\nslurm_account: lab\n"
    (tmp_path / "experiment_summary.yaml").write_bytes(text)
    assert update.summary_entries(tmp_path, ("runs",)) == ({"experiment": {"name": "x"}, "slurm_account": "lab"}, text)
