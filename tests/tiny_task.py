"""A minimal inspect-ai task file of the kind an experiment's `evaluation.tasks[].script` names.

Tests copy this file to the task paths of a design. Each task takes the two task arguments every
generated eval command passes (`-T data_path=... -T config_path=...`), reads the cell's settings
file (prompt, system prompt, scorers) and turns the records of a JSON data file
(`{"test": [{"input": ..., "output": ...}]}` or a plain list) into chat samples. The settings it
read are kept in each sample's metadata so a test can compare them with the design.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from inspect_ai import Task, task
from inspect_ai import scorer as inspect_scorers
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ChatMessageSystem, ChatMessageUser
from inspect_ai.solver import generate


def _records(data_path: str) -> list[dict]:
    data = json.loads(Path(data_path).read_text(encoding="utf-8"))
    if isinstance(data, dict):
        data = next(data[split] for split in ("test", "validation", "train") if split in data)
    return data


def _build(data_path: str, config_path: str) -> Task:
    text = Path(config_path).read_text(encoding="utf-8")
    settings = yaml.safe_load(text)
    prompt = settings["prompt"] if settings.get("prompt") is not None else "{input}"
    before, after = prompt.split("{input}", 1)
    samples = []
    for record in _records(data_path):
        messages = []
        if settings.get("system_prompt"):
            messages.append(ChatMessageSystem(content=settings["system_prompt"]))
        messages.append(ChatMessageUser(content=before + record["input"] + after))
        samples.append(Sample(input=messages, target=record["output"],
                              metadata={"settings": settings, "config_path": config_path}))
    scorers = [getattr(inspect_scorers, s["name"])(**(s.get("params") or {})) for s in settings["scorers"]]
    return Task(dataset=MemoryDataset(samples), solver=generate(), scorer=scorers or None)


@task
def capitalization(data_path: str, config_path: str) -> Task:
    return _build(data_path, config_path)


@task
def reverse(data_path: str, config_path: str) -> Task:
    return _build(data_path, config_path)
