"""Training text = eval text, token for token, up to the response.

For one model of each chat format the bundled catalog has (Llama 3.2 with its date system turn,
Qwen2.5 with its default system turn, Mistral v0.1 with [INST] tags and no system role; their
templates and tokenizer behaviour are reproduced in tests/tiny_models.py), both dataset types, and
plain and hostile prompts:

* training side: the generated finetune.yaml's dataset, built with torchtune's own
  `config.instantiate(cfg.dataset, tokenizer)`, gives each record's tokens and labels;
* eval side: the generated eval cell runs for real. Its preflight lines (from its .slurm script)
  write the model settings, then its `inspect eval` command line runs through inspect's CLI with the
  hf provider on a tiny model of that format; tests/inspect_cli.py records the input ids inspect
  hands to `generate` (the only thing added to inspect; it also shortens inspect's idle wait for
  more requests to batch, which changes no request).

Every record's eval input must equal its training tokens up to the answer, only answer tokens may
carry labels, and the answer must end with the format's end-of-turn token.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from test_real_tools import (
    TESTS,
    install_task,
    preflight_lines,
    run_preflight_in_process,
    write_json,
)

import designs
from conftest import copier_copy, write_summary
from tiny_models import make_family_model

pytestmark = pytest.mark.tools

MODELS = {  # a bundled catalog model of each format -> its format in tests/tiny_models.py
    "Llama-3.2-1B-Instruct": "llama3_2",
    "Qwen2.5-3B-Instruct": "qwen2_5",
    "Mistral-7B-Instruct-v0.1": "mistral_v0_1",
}
END_OF_TURN = {"llama3_2": "<|eot_id|>", "qwen2_5": "<|im_end|>", "mistral_v0_1": "</s>"}
RECORDS = [{"input": w, "output": w.capitalize()} for w in ("apple", "dog", "Age: 40. Job: clerk", "  spaced  ")]
PROMPTS = {  # (system prompt, prompt) by dataset type
    "chat_completion": [
        ("Be terse.", "Capitalize the given word: {input}\n"),  # spaces next to {input}
        (designs.HOSTILE_PROMPT.replace("{input}", "<in>"), designs.HOSTILE_PROMPT),
        ("You answer in one word.", None),  # the user turn is the input itself
    ],
    "text_completion": [
        ("", "Person: {input}\nIncome above $50k?"),
        (designs.HOSTILE_PROMPT.replace("{input}", "<in>"), designs.HOSTILE_PROMPT),
    ],
}


@pytest.fixture(scope="module")
def family_models(tmp_path_factory) -> dict[str, Path]:
    pytest.importorskip("torchtune")
    pytest.importorskip("inspect_ai")
    root = tmp_path_factory.mktemp("families")
    return {model: make_family_model(root / model, family) for model, family in MODELS.items()}


def fidelity_design(tmp: Path, models: dict[str, Path], dataset_type: str) -> dict:
    d = designs.base(str(tmp / f"exp-{dataset_type}"))
    d["experiment"]["name"] = f"fidelity-{dataset_type}"
    d["controls"].update({"dataset_type": dataset_type, "epochs": 1, "max_seq_len": 1024})
    d["controls"].pop("prompt", None)
    data = write_json(tmp / "data" / "records.json", {"train": RECORDS, "validation": RECORDS[:1], "test": RECORDS})
    d["data"]["training"]["path"] = str(data)
    d["models"]["base"] = [{"name": m, "path": str(p)} for m, p in models.items()]
    d["runs"], tasks = [], []
    for i, (system_prompt, prompt) in enumerate(PROMPTS[dataset_type]):
        for model in models:
            if MODELS[model] == "mistral_v0_1":
                system_prompt = ""  # no system role in its template (the design refuses one)
            params = {"lora_rank": 4, "system_prompt": system_prompt}
            if prompt is not None:
                params["prompt"] = prompt
            d["runs"].append({"name": f"p{i}_{MODELS[model]}", "type": "fine-tuned", "model": model, "parameters": params})
    tasks.append({"name": "capitalization", "script": install_task(tmp, "cap_task.py"), "dataset": "same"})
    d["evaluation"] = {"tasks": tasks, "matrix": [{"run": r["name"], "tasks": ["capitalization"], "epochs": [0]} for r in d["runs"]],
                       "max_tokens": 2}
    return d


def training_examples(run_dir: Path) -> list[tuple[list[int], list[int]]]:
    from omegaconf import OmegaConf
    from torchtune import config

    cfg = OmegaConf.load(run_dir / "finetune.yaml")
    dataset = config.instantiate(cfg.dataset, config.instantiate(cfg.tokenizer))
    return [(list(dataset[i]["tokens"]), list(dataset[i]["labels"])) for i in range(len(dataset))]


@pytest.fixture(scope="module")
def evaluated(template_repo, tmp_path_factory, family_models) -> dict:
    """Both dataset types' experiments, each scaffolded by the real `copier copy`; every cell's
    preflight lines run; then every cell's `inspect eval` command line, of both experiments, in one
    inspect process (a start-up with inspect and transformers costs 10-20 s).
    -> {dataset_type: (design, dest, runs, results, captured inputs)}"""
    import datasets
    from test_real_tools import slurm_argv

    root = tmp_path_factory.mktemp("fidelity")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    argvs, experiments = [], {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", str(root / "hf-datasets-cache"))
        for dataset_type in PROMPTS:
            tmp = root / dataset_type
            tmp.mkdir()
            design = fidelity_design(tmp, family_models, dataset_type)
            design["evaluation"]["tasks"][0]["script"] = install_task(root, "cap_task.py")  # one task file for the one process
            dest = tmp / f"exp-{dataset_type}"
            result = copier_copy(template_repo, write_summary(tmp / "summary.yaml", design), dest, {})
            assert result.returncode == 0, result.stderr
            first = len(argvs)
            # one cell (text completion, Qwen2.5) has its preflight lines run as bash runs them (a
            # Python start-up with torch, inspect and transformers: 5-20 s); the others the same
            # command in this process (the real jobs of tests/tiny_run.py, chat completion on a
            # Llama 3.2, run theirs in bash too)
            in_bash = design["runs"][1]["name"] if dataset_type == "text_completion" else None
            for run in design["runs"]:
                run_dir = dest / run["name"]
                (run_dir / "artifacts" / "epoch_0").symlink_to(family_models[run["model"]], target_is_directory=True)
                script = run_dir / "eval" / "capitalization_epoch0.slurm"
                if run["name"] == in_bash:
                    check = subprocess.run(["bash", "-euo", "pipefail", "-c", preflight_lines(script)], cwd=run_dir / "eval",
                                           env=env, capture_output=True, text=True)
                    assert check.returncode == 0 and check.stdout.startswith("preflight ok"), check.stderr
                else:
                    run_preflight_in_process(script)
                argvs.append(slurm_argv(script, "inspect"))
            experiments[dataset_type] = (design, dest, design["runs"], slice(first, len(argvs)))

    argv_file = write_json(root / "argvs.json", argvs)
    proc = subprocess.run([sys.executable, str(TESTS / "inspect_cli.py"), str(argv_file), str(root / "results.json"),
                           str(root / "inputs.json")], cwd=root, env={**env, "INSPECT_DISPLAY": "none"},
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((root / "results.json").read_text())
    captured = json.loads((root / "inputs.json").read_text())
    return {t: (design, dest, runs, results[cells], captured[cells]) for t, (design, dest, runs, cells) in experiments.items()}


@pytest.mark.parametrize("dataset_type", ["chat_completion", "text_completion"])
def test_training_tokens_equal_eval_tokens(evaluated, tmp_path, monkeypatch, family_models, dataset_type):
    import datasets
    from transformers import AutoTokenizer

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-datasets-cache"))
    design, dest, runs, results, captured = evaluated[dataset_type]
    assert len(results) == len(captured) == len(runs)
    problems = []
    for run, result, inputs in zip(runs, results, captured):
        assert result["code"] == 0, result["error"]
        family = MODELS[run["model"]]
        tokenizer = AutoTokenizer.from_pretrained(family_models[run["model"]])
        examples = training_examples(dest / run["name"])
        assert len(examples) == len(RECORDS) and len(inputs) == len(RECORDS), (run["name"], len(inputs))
        for record, (tokens, labels) in zip(RECORDS, examples):
            prompt_length = next(i for i, label in enumerate(labels) if label != -100)
            prompt, answer = tokens[:prompt_length], tokens[prompt_length:]
            if prompt not in inputs:
                problems.append(f"{run['name']} ({dataset_type}), record {record['input']!r}: trained on\n"
                                f"  {tokenizer.decode(prompt)!r}\nbut no eval input equals it; eval sent e.g.\n"
                                f"  {tokenizer.decode(inputs[0])!r}")
            assert labels[prompt_length:] == answer, "every answer token carries its label"
            text = tokenizer.decode(tokens)  # decoded whole: a lone answer could lose a leading space
            if dataset_type == "chat_completion":  # the template's answer: Llama 3 trims every message
                expected = (record["output"].strip() if family == "llama3_2" else record["output"]) + END_OF_TURN[family]
            else:
                expected = record["output"] + tokenizer.eos_token
            assert text.endswith(expected) and not tokenizer.decode(prompt).endswith(expected), (run["name"], text)
        if family == "llama3_2" and dataset_type == "chat_completion":
            first = tokenizer.decode(inputs[0])
            assert "Today Date: 26 Jul 2024" in first and first.count("<|begin_of_text|>") == 1, first
    assert not problems, "\n".join(problems)

    # the eval logs carry the cell's identity
    from inspect_ai.log import list_eval_logs, read_eval_log

    run = runs[0]
    logs = list_eval_logs(str(dest / run["name"] / "eval" / "logs"), recursive=False)
    meta = read_eval_log(logs[0].name, header_only=True).eval.metadata
    assert meta["cruijff"] == {"experiment": design["experiment"]["name"], "run": run["name"], "run_type": "fine-tuned", "fine_tuned": True,
                    "task": "capitalization", "epoch": 0, "base_model": run["model"], "vis_label": run["name"],
                    "cell": "capitalization_epoch0"}
    settings = yaml.safe_load((dest / run["name"] / "eval" / "capitalization_epoch0.yaml").read_text())
    assert settings["data_path"] == design["data"]["training"]["path"], "dataset: same is the training data"


@given(st.text(max_size=40), st.one_of(st.none(), st.integers(min_value=0, max_value=99)))
@settings(max_examples=300, deadline=None)
def test_metadata_reaches_the_eval_log_unchanged(label, epoch):
    """The cell's identity goes to inspect as one `--metadata cruijff=<mapping>` word; inspect's own
    CLI parser (which YAML-parses a value and splits plain text at commas) must give it back whole."""
    pytest.importorskip("inspect_ai")
    from inspect_ai._util.config import parse_cli_args

    from cruijff_gen.plan import METADATA_KEY
    from cruijff_gen.yamlio import dump_inline

    metadata = {"run": "r", "epoch": epoch, "vis_label": label, "fine_tuned": True}
    assert parse_cli_args([f"{METADATA_KEY}={dump_inline(metadata)}"])[METADATA_KEY] == metadata
