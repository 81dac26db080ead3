"""Importing an older markdown design (experiment_summary.md) into the YAML schema.

The fixtures under tests/legacy/ are written in the style of the original workflow's summaries
(seeds 000-002): a Tools section, an All Runs table, Resources / Configuration / Quick Reference.
A valid fixture must import into a design the parse stage accepts unchanged; a malformed one must
fail with a MarkdownError naming the line."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from cruijff_gen import markdown_import, parse, yamlio
from cruijff_gen.errors import MarkdownError
from cruijff_gen.markdown_import.runs import run_column

FIXTURES = Path(__file__).parent / "legacy"
VALID = ["capitalization_sweep", "reordered_columns", "minimal_no_tools"]
LOCATED = re.compile(r"^[^,]+, lines? (\d+)(?:-(\d+))?: \S")
SECTION_ONLY = re.compile(r"^[A-Z][A-Za-z >]+: \S")  # things the markdown does not have at all


def text_of(name: str) -> str:
    return (FIXTURES / f"{name}.md").read_text(encoding="utf-8")


def imported(name: str) -> markdown_import.ImportResult:
    return markdown_import.import_markdown(text_of(name), source=f"{name}.md")


def line_of(text: str, needle: str) -> int:
    """1-based number of the first line of `text` containing `needle` (a heading: that exact line)."""
    for no, line in enumerate(text.splitlines(), start=1):
        if line.startswith(needle) if needle.startswith("#") else needle in line:
            return no
    raise AssertionError(f"{needle!r} not in the fixture")


def params(parsed: parse.Parsed, run: str) -> dict:
    model = next(r for r in parsed.design.runs if r.name == run).parameters
    return {k: v for k, v in model.model_dump().items() if v is not None}


# --------------------------------------------------------------------------- every valid fixture
@pytest.mark.parametrize("name", VALID)
def test_valid_fixture_is_accepted_unchanged_by_the_parse_stage(name):
    result = imported(name)
    parsed = parse.parse(result.design)
    assert parsed.unused == []  # nothing the import wrote is a field nobody consumes


@pytest.mark.parametrize("name", VALID)
def test_imported_yaml_round_trips_to_the_same_design(name):
    result = imported(name)
    text = result.to_yaml()
    assert yamlio.load(text) == result.design
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert f"{name}.md" in header[0]
    for item in result.unmapped:  # every unmapped item is listed in the header, as a comment
        assert f"#   - {item}" in header
    # and the written file parses as well as the dict did
    parse.parse(yamlio.load(text))


@pytest.mark.parametrize("name", VALID)
def test_every_unmapped_item_names_its_section_and_a_real_line(name):
    text = text_of(name)
    n_lines = len(text.splitlines())
    for item in imported(name).unmapped:
        located = LOCATED.match(item)
        assert located or SECTION_ONLY.match(item), item
        if located:
            first, last = int(located.group(1)), int(located.group(2) or located.group(1))
            assert 1 <= first <= last <= n_lines, item


# --------------------------------------------------------------------------- the seeds' sweep
def test_standard_sweep_runs_and_parameters_are_the_tables():
    text = text_of("capitalization_sweep")
    result = imported("capitalization_sweep")
    parsed = parse.parse(result.design)
    runs = parsed.design.runs
    assert [r.type for r in runs] == ["fine-tuned"] * 8 + ["control"]
    expected = {}
    for rank in (8, 16, 32, 64):
        for lr in ("1e-5", "5e-5"):
            expected[f"Llama-3.2-1B-Instruct_rank{rank}_lr{lr}"] = {"lora_rank": rank, "lr": float(lr)}
    expected["Llama-3.2-1B-Instruct_base"] = {}
    assert [r.name for r in runs] == list(expected)
    for name, want in expected.items():
        assert params(parsed, name) == want, name
        assert isinstance(params(parsed, name).get("lr", 0.0), float)
    assert {r.model for r in runs} == {"Llama-3.2-1B-Instruct"}
    # the table's lr text survives as written in the design dict (the parse stage converts it)
    assert result.design["runs"][0]["parameters"] == {"lora_rank": 8, "lr": "1e-5"}
    # batch size 4 on every fine-tuned run: held constant, so it is a control
    assert parsed.design.controls.batch_size == 4
    assert all("batch_size" not in r["parameters"] for r in result.design["runs"])
    # the control row's '-' cells mean "not applicable"
    assert result.design["runs"][-1]["parameters"] == {}
    # Est. Time is reported, naming the header line
    header = line_of(text, "| Run Name |")
    assert f"All Runs, line {header}: column 'Est. Time' is not part of the design (ignored)" in result.unmapped


def test_standard_sweep_sections_map_to_the_schema():
    result = imported("capitalization_sweep")
    d = result.design
    assert d["experiment"] == {
        "name": "cap_4L_lora_lr_sweep",
        "question": "Does LoRA rank or learning rate matter more for capitalizing 4-letter words?",
        "date": dt.date(2025, 10, 22),  # from the experiment directory's name
        "hypothesis": "Rank matters little above 8; lr 5e-5 beats 1e-5 after one epoch.",
        "dir": "/scratch/gpfs/MSALGANIK/niznik/cap_4L_lora_lr_sweep_2025-10-22",
    }
    assert d["tools"] == {"preparation": "torchtune", "evaluation": "inspect-ai"}
    assert d["controls"] == {
        "epochs": 2, "batch_size": 4, "system_prompt": "", "dataset_type": "chat_completion",
        "validation_during_training": True,
    }
    assert d["models"] == {"base": [{
        "name": "Llama-3.2-1B-Instruct",
        "path": "/scratch/gpfs/MSALGANIK/pretrained-llms/Llama-3.2-1B-Instruct",
        "size_gb": 2.5,
    }]}
    assert d["data"]["training"] == {
        "path": "/scratch/gpfs/MSALGANIK/niznik/data/words_4L_80P_300.json", "format": "json", "size_kb": 21,
        "splits": {"train": 240, "validation": 30, "test": 30},
    }
    assert d["variables"] == {"lora_rank": [8, 16, 32, 64], "lr": ["1e-5", "5e-5"]}
    evaluation = d["evaluation"]
    assert [t["name"] for t in evaluation["tasks"]] == ["capitalization"]
    assert evaluation["tasks"][0]["script"].endswith("/tasks/capitalization/cap_task.py")
    assert evaluation["scorers"] == [{"name": "match"}] and evaluation["temperature"] == 0.0
    matrix = {e["run"]: e for e in evaluation["matrix"]}
    assert matrix["Llama-3.2-1B-Instruct_rank8_lr1e-5"]["epochs"] == [0, 1]
    assert matrix["Llama-3.2-1B-Instruct_rank64_lr5e-5"]["epochs"] == [1]
    assert matrix["Llama-3.2-1B-Instruct_base"]["epochs"] is None
    # the assumption is reported, at the Configuration section
    config = line_of(text_of("capitalization_sweep"), "## Configuration")
    assert f"Configuration, line {config}: no dataset type given; assumed dataset_type: chat_completion (instruct models)" in result.unmapped


def test_standard_sweep_reports_what_it_leaves_out_in_document_order():
    text = text_of("capitalization_sweep")
    unmapped = imported("capitalization_sweep").unmapped
    expected = [
        f"Configuration > Training, line {line_of(text, '**Recipe:**')}: 'Recipe'",
        f"Configuration > Output, line {line_of(text, '**Checkpoint directory:**')}: 'Checkpoint directory'",
        f"Compute Estimates, lines {line_of(text, '## Compute Estimates')}-",
        f"Quick Reference, lines {line_of(text, '**Common Commands:**')}-",
        f"Evaluation Plan > Evaluation Matrix, line {line_of(text, '| Run Name | capitalization |')}: column 'Notes'",
    ]
    for prefix in expected:
        assert any(item.startswith(prefix) for item in unmapped), (prefix, unmapped)
    numbers = [int(LOCATED.match(item).group(1)) for item in unmapped if LOCATED.match(item)]
    assert numbers == sorted(numbers)
    # Tools prose and the tools' *Purpose:* lines are description, not lost design
    assert not any(item.startswith("Tools") for item in unmapped)


# --------------------------------------------------------------------------- tolerant tables
def test_reordered_and_extra_columns():
    text = text_of("reordered_columns")
    result = imported("reordered_columns")
    parsed = parse.parse(result.design)
    assert [(r.name, r.type, r.model) for r in parsed.design.runs] == [
        ("1B_rank4", "fine-tuned", "Llama-3.2-1B-Instruct"),
        ("1B_rank16", "fine-tuned", "Llama-3.2-1B-Instruct"),
        ("3B_rank4", "fine-tuned", "Qwen2.5-3B-Instruct"),
        ("3B_rank16", "fine-tuned", "Qwen2.5-3B-Instruct"),  # 'qwen2.5-3b-instruct' in the table
        ("1B_base", "control", "Llama-3.2-1B-Instruct"),
        ("3B_base", "control", "Qwen2.5-3B-Instruct"),
        ("last_year", "eval-only", "Llama-3.2-1B-Instruct"),
    ]
    assert params(parsed, "1B_rank4") == {"lora_rank": 4, "lr": 5e-5}
    assert params(parsed, "3B_rank16") == {"lora_rank": 16, "lr": 1e-4, "batch_size": 4}
    assert params(parsed, "3B_base") == {}  # '–', '—', 'N/A' and '' are "not applicable" too
    assert params(parsed, "last_year") == {"checkpoint_path": "/scratch/gpfs/me/old/ck-out-rank8/epoch_1"}
    # batch sizes differ: the most common one is the control, the others stay per run
    assert parsed.design.controls.batch_size == 8
    runs_heading = line_of(text, "## All Runs")
    assert any(item.startswith(f"All Runs, line {runs_heading}: batch sizes differ") for item in result.unmapped)
    header = line_of(text, "| Type | LR |")
    for column in ("Est. Time", "Notes"):
        assert f"All Runs, line {header}: column '{column}' is not part of the design (ignored)" in result.unmapped
    # 2 GPUs is not the catalog's default for these models: written as the runs' compute
    assert all(r.compute and r.compute.gpus == 2 for r in parsed.design.runs if r.type == "fine-tuned")
    assert all(r.compute is None for r in parsed.design.runs if r.type != "fine-tuned")


def test_reordered_fixture_other_sections():
    text = text_of("reordered_columns")
    result = imported("reordered_columns")
    d = result.design
    assert d["tools"] == {"preparation": "torchtune", "evaluation": "inspect-ai"}  # 'TorchTune', 'inspect'
    assert d["experiment"]["name"] == "Model size × rank (Llama vs Qwen)"
    assert d["experiment"]["question"].startswith("Does a 3B model need a larger LoRA rank")
    assert d["experiment"]["date"] == dt.date(2025, 11, 3)  # the Created line
    assert d["experiment"]["dir"] == "/scratch/gpfs/me/experiments/size_rank"  # the Directory line
    # a models directory plus model names: joined
    assert d["models"]["base"] == [
        {"name": "Llama-3.2-1B-Instruct", "path": "/scratch/gpfs/me/models/Llama-3.2-1B-Instruct"},
        {"name": "Qwen2.5-3B-Instruct", "path": "/scratch/gpfs/me/models/Qwen2.5-3B-Instruct"},
    ]
    unused = line_of(text, "Llama-3.1-8B-Instruct")
    assert f"Resources > Models, line {unused}: model 'Llama-3.1-8B-Instruct' is listed but no run uses it (ignored)" in result.unmapped
    assert d["data"]["training"] == {
        "path": "/scratch/gpfs/me/data/words_parquet/", "format": "parquet", "size_kb": 1536,
        "splits": {"train": 1000, "validation": 100},
    }
    assert d["controls"]["system_prompt"] == "You are a careful assistant."
    assert d["controls"]["prompt"] == "Capitalize the following word: {input}\n"
    assert d["controls"]["seed"] == 42 and d["controls"]["validation_during_training"] is False
    assert d["output"] == {"wandb_project": "size_rank"}
    # "final epoch": fine-tuned runs are evaluated at their last epoch, the others once
    matrix = {e["run"]: e for e in d["evaluation"]["matrix"]}
    assert "epochs" not in matrix["1B_rank4"] and matrix["1B_base"]["epochs"] is None
    assert d["evaluation"]["max_tokens"] == 16


@pytest.mark.parametrize("header,expected_key", [
    ("Run Name", "name"), ("Run", "name"), ("RUN NAME", "name"), ("**Run Name**", "name"),
    ("LoRA Rank", "lora_rank"), ("Rank", "lora_rank"), ("lora_rank", "lora_rank"),
    ("Learning Rate", "lr"), ("LR", "lr"), ("lr", "lr"),
    ("Batch Size", "batch_size"), ("BS", "batch_size"), ("batch size", "batch_size"),
    ("Type", "type"), ("Model", "model"), ("LoRA Alpha", "lora_alpha"), ("Est. Time", None),
    ("Weight Decay", "weight_decay"), ("max_seq_len", "max_seq_len"),  # any hyperparameter of defaults.yaml
])
def test_header_names_are_matched_tolerantly(header, expected_key):
    assert run_column(header) == expected_key


def _tiny(table: str, tools: str = "") -> str:
    return (
        "# Experiment: tiny_2025-01-02\n\n"
        f"{tools}"
        "## All Runs\n"
        f"{table}\n"
        "## Configuration\n- **Epochs:** 1\n- **Batch size:** 2\n"
        '- **System prompt:** "Be \\"brief\\".\\n"\n- **Validation during training:** True\n\n'
        "## Quick Reference\n- Experiment: `/x/tiny_2025-01-02`\n- Models: `/m`\n- Dataset: `/d/words.json`\n"
    )


def test_tiny_design_with_synonym_headers_and_quoted_prompt():
    table = (
        "| lr | RANK | bs | Model | RUN | type | Owner |\n"
        "|---|---|---|---|---|---|---|\n"
        "| 3e-4 | 4 | 2 | Llama-3.2-1B-Instruct | a | finetuned | me |\n"
        "| - | - | - | Llama-3.2-1B-Instruct | b | Control | me |\n"
    )
    result = markdown_import.import_markdown(_tiny(table))
    parsed = parse.parse(result.design)
    assert [(r.name, r.type) for r in parsed.design.runs] == [("a", "fine-tuned"), ("b", "control")]
    assert params(parsed, "a") == {"lora_rank": 4, "lr": 3e-4}
    assert parsed.design.controls.system_prompt == 'Be "brief".\n'
    assert parsed.design.controls.validation_during_training is True
    assert result.design["models"]["base"][0]["path"] == "/m/Llama-3.2-1B-Instruct"  # directory + name
    assert "All Runs, line 4: column 'Owner' is not part of the design (ignored)" in result.unmapped
    assert "Tools: no Tools section; assumed torchtune + inspect-ai" in result.unmapped


# --------------------------------------------------------------------------- defaults and errors
def test_missing_tools_and_optional_sections():
    text = text_of("minimal_no_tools")
    result = imported("minimal_no_tools")
    d = result.design
    assert d["tools"] == {"preparation": "torchtune", "evaluation": "inspect-ai"}
    assert "Tools: no Tools section; assumed torchtune + inspect-ai" in result.unmapped
    # no question: the title stands in, and that is reported
    assert d["experiment"]["question"] == d["experiment"]["name"] == "rank_sanity_check_2025-09-30"
    assert "Title, line 1: no Question (an Overview line or a section); used the title as experiment.question" in result.unmapped
    assert d["experiment"]["date"] == dt.date(2025, 9, 30)  # from the title
    config = line_of(text, "## Configuration")
    assert any(item.startswith(f"Configuration, line {config}: no dataset type given; assumed dataset_type: chat_completion") for item in result.unmapped)
    assert any(item.startswith(f"Configuration, line {config}: no System prompt line") for item in result.unmapped)
    assert d["controls"]["system_prompt"] == "" and d["controls"]["dataset_type"] == "chat_completion"
    # the Quick Reference gives the model's own directory and the dataset
    assert d["models"]["base"] == [{"name": "Llama-3.2-1B-Instruct", "path": "/scratch/gpfs/me/models/Llama-3.2-1B-Instruct"}]
    assert d["data"]["training"] == {"path": "/scratch/gpfs/me/data/words_5L.json", "format": "json"}
    assert "evaluation" not in d
    parsed = parse.parse(d)
    assert params(parsed, "r32") == {"lora_rank": 32, "lr": 1e-4}


def test_unknown_tool_is_an_error_naming_the_line_and_the_supported_tools():
    text = text_of("unknown_tool")
    with pytest.raises(MarkdownError) as exc:
        imported("unknown_tool")
    line = line_of(text, "**Model Preparation:** axolotl")
    assert exc.value.lines() == [f"Tools, line {line}: unknown model preparation tool 'axolotl'; supported: torchtune"]
    assert exc.value.source == "unknown_tool.md"


@pytest.mark.parametrize("name,needle,message", [
    ("malformed_cell_count", "| rank8_lr5e-5 |", "row has 6 cells, the header (line {header}) has 7"),
    ("malformed_no_separator", "| Run Name |", "the table header is not followed by a separator row"),
    ("malformed_no_run_name", "| Model | LoRA Rank |", "the run table has no Run Name column"),
])
def test_malformed_table_is_an_error_naming_the_line(name, needle, message):
    text = text_of(name)
    with pytest.raises(MarkdownError) as exc:
        imported(name)
    (line,) = exc.value.lines()
    header = line_of(text, "| Run Name |") if "Run Name |" in text else line_of(text, "| Model |")
    assert line.startswith(f"All Runs, line {line_of(text, needle)}: "), line
    assert message.format(header=header) in line


@pytest.mark.parametrize("row,message", [
    ("| a | Llama-3.2-1B-Instruct | eight | 1e-5 | Fine-tuned |", "LoRA Rank: expected a whole number, got 'eight'"),
    ("| a | Llama-3.2-1B-Instruct | 8 | fast | Fine-tuned |", "Learning Rate: expected a number, got 'fast'"),
    ("| a | Llama-3.2-1B-Instruct | 8 | 1e-5 | Pretrained |", "Type 'Pretrained' is not one of Fine-tuned, Control, Eval-only"),
    ("| - | Llama-3.2-1B-Instruct | 8 | 1e-5 | Fine-tuned |", "the Run Name cell is empty"),
])
def test_a_cell_that_is_not_a_value_of_its_column_names_the_line(row, message):
    table = "| Run Name | Model | LoRA Rank | Learning Rate | Type |\n|---|---|---|---|---|\n" + row + "\n"
    with pytest.raises(MarkdownError) as exc:
        markdown_import.import_markdown(_tiny(table))
    assert exc.value.lines() == [f"All Runs, line 6: {message}"]


def test_no_run_table_is_an_error():
    with pytest.raises(MarkdownError) as exc:
        markdown_import.import_markdown("# Experiment: empty\n\n## Overview\n- **Question:** ?\n")
    assert "All Runs" in exc.value.lines()[0]


def test_tables_inside_code_blocks_and_unknown_sections_are_not_read():
    table = (
        "| Run Name | Model | LoRA Rank | Type |\n|---|---|---|---|\n"
        "| a | Llama-3.2-1B-Instruct | 8 | Fine-tuned |\n\n"
        "```markdown\n| broken | table\n```\n"
    )
    status = "## Status\n| Run Name | Status |\n| a | pending |\n"  # malformed, but not part of the design
    result = markdown_import.import_markdown(_tiny(table) + "\n" + status)
    assert [r["name"] for r in result.design["runs"]] == ["a"]
    assert any(item.startswith("All Runs, lines 8-10: code block") for item in result.unmapped)
    assert any(item.startswith("Status, lines ") for item in result.unmapped)


def test_cli_import_then_real_copier_copy(tmp_path, template_repo):
    """The imported YAML goes through the real copy flow unchanged."""
    import subprocess
    import sys

    from conftest import copier

    md = tmp_path / "experiment_summary.md"
    md.write_text((Path(__file__).parent / "legacy" / "capitalization_sweep.md").read_text())
    result = subprocess.run([sys.executable, "-m", "cruijff_gen", "import", str(md)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "not mapped: All Runs, line" in result.stderr
    out = tmp_path / "experiment_summary.yaml"
    copy = copier("copy", "--trust", "--defaults", "--data-file", str(out), str(template_repo), str(tmp_path / "exp"))
    assert copy.returncode == 0, copy.stderr
    again = subprocess.run([sys.executable, "-m", "cruijff_gen", "import", str(md)], capture_output=True, text=True)
    assert again.returncode != 0 and "exists; pass --force" in again.stderr


def test_phrase_file_holds_only_text_and_a_bare_yes_would_be_refused():
    """data/markdown_phrases.yaml is read by the same YAML 1.1 loader as designs, which turns an
    unquoted `yes`/`no`/`on` into a boolean that would silently never match a word."""
    from cruijff_gen.markdown_import import phrases

    assert "yes" in phrases.PHRASES["true_words"] and "no" in phrases.PHRASES["false_words"]
    bad = yamlio.load("true_words: [yes, 'y']\n")
    with pytest.raises(TypeError, match=r"markdown_phrases.yaml.true_words: True is not text \(quote it\)"):
        phrases.checked(bad)
