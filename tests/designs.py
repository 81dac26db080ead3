"""Design builders for tests: one valid base design and small, named variations of it."""

from __future__ import annotations

import copy
from typing import Any


def base(exp_dir: str = "/scratch/u/exp_base") -> dict[str, Any]:
    return {
        "experiment": {
            "name": "base_sweep", "project": "cap", "question": "Does rank matter?",
            "date": "2025-10-22", "dir": exp_dir,
        },
        "tools": {"preparation": "torchtune", "evaluation": "inspect-ai"},
        "controls": {
            "epochs": 2, "batch_size": 4, "system_prompt": "You are terse.",
            "prompt": "Capitalize: {input}", "dataset_type": "chat_completion",
        },
        "models": {"base": [{"name": "Llama-3.2-1B-Instruct", "path": "/models/Llama-3.2-1B-Instruct"}]},
        "data": {"training": {"path": "/data/words.json", "format": "json", "splits": {"train": 240, "validation": 30}}},
        "runs": [
            {"name": "r8", "type": "fine-tuned", "model": "Llama-3.2-1B-Instruct", "parameters": {"lora_rank": 8, "lr": "1e-5"}},
            {"name": "r16", "type": "fine-tuned", "model": "Llama-3.2-1B-Instruct", "parameters": {"lora_rank": 16, "lr": "5e-5"}},
            {"name": "base", "type": "control", "model": "Llama-3.2-1B-Instruct", "parameters": {}},
        ],
        "evaluation": {
            "tasks": [{"name": "capitalization", "script": "/tasks/cap_task.py", "dataset": "/data/words.json"}],
            "matrix": [
                {"run": "r8", "tasks": ["capitalization"], "epochs": [0, 1]},
                {"run": "r16", "tasks": ["capitalization"], "epochs": [1]},
                {"run": "base", "tasks": ["capitalization"], "epochs": None},
            ],
        },
    }


HOSTILE_PROMPT = "Say \"it's\" $(rm -rf ~) `id` %s {x} {{ jinja }} {% if %} \\n\n\ttab ünï {input} done\\"


def rich(exp_dir: str = "/scratch/u/exp_rich") -> dict[str, Any]:
    """Several models (incl. Qwen2.5 and Llama-3.3-70B on 4 GPUs), an eval-only run, per-run
    compute, two tasks with per-task prompts, shell-hostile prompt text, validation on."""
    d = base(exp_dir)
    d["experiment"]["name"] = "rich_design"
    d["controls"].update({
        "system_prompt": HOSTILE_PROMPT.replace("{input}", "<in>"),
        "prompt": HOSTILE_PROMPT,
        "validation_during_training": True,
        "lora_dropout": 0.05,
        "num_warmup_steps": 5,
    })
    d["models"]["base"] += [
        {"name": "Qwen2.5-3B-Instruct", "path": "/models/Qwen2.5-3B-Instruct"},
        {"name": "Llama-3.3-70B-Instruct", "path": "/models/Llama-3.3-70B-Instruct", "size_gb": 140},
    ]
    d["runs"] = [
        {"name": "llama_r8", "type": "fine-tuned", "model": "Llama-3.2-1B-Instruct", "parameters": {"lora_rank": 8, "lr": "5e-4", "batch_size": 8}, "mig": True},
        {"name": "qwen_r16", "type": "fine-tuned", "model": "Qwen2.5-3B-Instruct", "parameters": {"lora_rank": 16, "lr": 0.0001, "lora_alpha": 8}},
        {"name": "big_r4", "type": "fine-tuned", "model": "Llama-3.3-70B-Instruct", "parameters": {"lora_rank": 4, "lr": "2e-5"}, "compute": {"time": "2-00:00:00"}},
        {"name": "big_r4_1gpu", "type": "fine-tuned", "model": "Llama-3.3-70B-Instruct", "parameters": {"lora_rank": 4}, "compute": {"gpus": 1, "mem": "120G"}},
        {"name": "qwen_base", "type": "control", "model": "Qwen2.5-3B-Instruct", "parameters": {}},
        {"name": "prior_ckpt", "type": "eval-only", "model": "Llama-3.2-1B-Instruct", "parameters": {"checkpoint_path": "/ckpt/old run/epoch_2"}, "compute": {"time": "00:30:00"}},
    ]
    d["evaluation"] = {
        "tasks": [
            {"name": "capitalization", "script": "/tasks/cap_task.py", "dataset": "/data/words.json",
             "prompt": "Task prompt: {input} 'quoted' \"double\"", "system_prompt": "yes"},
            {"name": "reverse", "script": "/tasks/rev task.py", "description": "Reverse | the word"},
        ],
        "matrix": [
            {"run": "llama_r8", "tasks": ["capitalization", "reverse"], "epochs": [0, 1]},
            {"run": "qwen_r16", "tasks": ["reverse"]},
            {"run": "big_r4", "tasks": ["capitalization"], "epochs": [1]},
            {"run": "qwen_base", "tasks": ["capitalization", "reverse"], "epochs": None, "vis_label": "Qwen base"},
            {"run": "prior_ckpt", "tasks": ["capitalization"]},
        ],
        "scorers": [{"name": "match", "params": {"location": "exact"}}, "includes"],
        "do_sample": True, "temperature": 0.7, "max_tokens": 32, "max_connections": 4, "seed": 7,
        "compute": {"time": "00:45:00"},
    }
    return d


def variant(design: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `design` with the value at a dotted path (`runs.0.parameters.lr`) set, or deleted
    when value is DELETE."""
    out = copy.deepcopy(design)
    *parents, leaf = path.split(".")
    node: Any = out
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key: Any = int(leaf) if isinstance(node, list) else leaf
    if value is DELETE:
        del node[key]
    else:
        node[key] = value
    return out


DELETE = object()
