"""An inspect-ai task file for cruijff_gen eval cells; `inspect eval` runs it as it is.

Copy it to the path an `evaluation.tasks[]` entry names (`script:`), and name the function like the
task (`name:`); one file may hold several tasks. Every eval cell runs

    inspect eval <script>@<task> --model hf/<label> -T data_path=<data> -T config_path=<cell>.yaml ...

so the function takes `data_path` and `config_path`. The cell's settings file (YAML) holds the
prompt, system prompt and scorers of the cell; this task builds each sample's messages with
`cruijff_gen.job.chat.messages`, the function training used, so a fine-tuned model is asked exactly
what it was trained on. Generation settings (max tokens, temperature, seed, do_sample) reach the
model from the command line; nothing here needs to read them.

Data: a JSON file holding a list of records or an object of splits (`test` is used, else
`validation`, else `train`), or a directory of parquet files (`test.parquet`, ...); each record has
an input and an output column (`input` / `output`, or the names the design's
`data.training.column_map` gives, which the settings file repeats as `column_map`).
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

from cruijff_gen.job.chat import messages

SPLITS = ("test", "validation", "train")
ROLES = {"system": ChatMessageSystem, "user": ChatMessageUser}


def records(data_path: str) -> list[dict]:
    path = Path(data_path)
    if path.is_dir():  # parquet files, one per split
        import pandas  # inspect-ai's own dependency

        split = next(s for s in SPLITS if (path / f"{s}.parquet").exists())
        return pandas.read_parquet(path / f"{split}.parquet").to_dict("records")
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict):
        data = next(data[split] for split in SPLITS if split in data)
    return data


def cell_task(data_path: str, config_path: str) -> Task:
    settings = yaml.safe_load(Path(config_path).read_text(encoding="utf-8"))
    columns = {"input": "input", "output": "output", **(settings.get("column_map") or {})}
    samples = []
    for record in records(data_path):
        turns = messages(settings.get("system_prompt"), settings.get("prompt"), str(record[columns["input"]]))
        samples.append(Sample(
            input=[ROLES[m["role"]](content=m["content"]) for m in turns],
            target=str(record[columns["output"]]),
        ))
    scorers = [getattr(inspect_scorers, s["name"])(**(s.get("params") or {})) for s in settings["scorers"]]
    return Task(dataset=MemoryDataset(samples), solver=generate(), scorer=scorers or None)


@task
def capitalization(data_path: str, config_path: str) -> Task:
    """Rename (or add a function per task): the name must be the design's task name."""
    return cell_task(data_path, config_path)
