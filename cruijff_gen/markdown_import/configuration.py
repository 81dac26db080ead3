"""The Configuration section and the settings lines of the Evaluation Plan: training controls
(epochs, batch size, prompts, hyperparameters), GPUs, the W&B project, evaluation settings."""

from __future__ import annotations

import re
from typing import Any

from .. import facts
from .findings import Findings
from .markdown import Item, Section, items, norm
from .phrases import CONFIGURATION, hyper_key
from .values import SKIP, number, path_in, plain, quoted, yes_no

_PER_RUN = ("lora_rank", "lr", "batch_size")  # given per run in the All Runs table


def heading_context(text: str, otherwise: str | None) -> str | None:
    """What a heading or a bold label puts the lines below it about."""
    t = norm(text)
    return "evaluation" if "eval" in t else "output" if "output" in t else "training" if "train" in t else otherwise


def read_configuration(found: Findings, section: Section, where: str, kind: str) -> None:
    found.config_line = found.config_line or section.line
    context, sub = None, where
    for item in items(section.body):
        if item.kind == "heading":
            context, sub = heading_context(item.text, None), f"{where} > {item.text}"
        elif item.kind != "kv":
            found.not_mapped(sub, item)
        elif not item.value and item.style == "bold":
            context = heading_context(item.key, context)  # a label over a list: **Training:**
        else:
            setting(found, item, sub, context)


def setting(found: Findings, item: Item, where: str, context: str | None) -> None:
    """One `**Key:** value` line of Configuration / Evaluation Plan."""
    k, value = norm(item.key), item.value
    if k in CONFIGURATION["eval_epochs"]:
        found.eval_epochs = found.eval_epochs or (value, item.line)
    elif k in CONFIGURATION["evaluation"] or (context == "evaluation" and k in CONFIGURATION["evaluation_only_here"]):
        _eval_setting(found, item, where, CONFIGURATION["evaluation"].get(k, k.replace(" ", "_")))
    elif k in CONFIGURATION["wandb"]:
        found.output["wandb_project"] = plain(value)
    elif k in CONFIGURATION["checkpoints"]:
        found.not_mapped(where, item, "not part of the design: checkpoints go to <experiment dir>/<run>/artifacts/ (ignored)")
    elif k in CONFIGURATION["recipe"]:
        found.not_mapped(where, item, "not part of the design: the recipe follows from the GPUs per run (ignored)")
    elif k in CONFIGURATION["gpus"]:
        gpus = number(plain(value).split()[0]) if plain(value) else None
        if isinstance(gpus, int) and gpus >= 1:
            found.controls.setdefault("gpus", (gpus, item.line))
        else:
            found.not_mapped(where, item, "not a whole number of GPUs (ignored)")
    elif k in CONFIGURATION["dataset"] and path_in(value):
        found.dataset.setdefault("path", (path_in(value), item.line))
    else:
        _control(found, item, where, k)


def _control(found: Findings, item: Item, where: str, k: str) -> None:
    key = CONFIGURATION["controls"].get(k) or hyper_key(k)
    if key is None:
        found.not_mapped(where, item)
        return
    converted = _control_value(found, key, item, where)
    if converted is SKIP:
        return
    if key in found.controls and found.controls[key][0] != converted:
        found.note(where, item.line, f"{item.key} {plain(item.value)!r} differs from line {found.controls[key][1]} (ignored)")
        return
    found.controls.setdefault(key, (converted, item.line))


def _control_value(found: Findings, key: str, item: Item, where: str) -> Any:
    """A controls value from its line, or SKIP (reported) when it is not one."""
    value = item.value
    if key in ("system_prompt", "prompt"):
        text = quoted(value)
        text = plain(value) if text is None else text
        if key == "prompt" and "{input}" not in text:
            found.not_mapped(where, item, "a prompt without the {input} placeholder (ignored)")
            return SKIP
        return text
    kind, text = facts.hyperparameters()[key].get("type", "str"), plain(value)
    if kind == "bool":
        result = yes_no(text)
        if result is None:
            found.not_mapped(where, item, "not yes or no (ignored)")
            return SKIP
        return result
    if kind in ("int", "float", "number"):
        return _control_number(found, key, kind, text, item, where)
    if key == "dataset_type":
        name = norm(text).replace(" ", "_")
        if name not in ("chat_completion", "text_completion"):
            found.not_mapped(where, item, "not chat_completion or text_completion (ignored)")
            return SKIP
        return name
    return text


def _control_number(found: Findings, key: str, kind: str, text: str, item: Item, where: str) -> Any:
    """The number a line starts with (`2 (one pass each)`); a list of them is the run table's job."""
    value = number(re.split(r"\s+[-–—(]|\s+\(|,|\s*×", text)[0].strip())
    if value is None or (kind == "int" and not isinstance(value, int)) or ("," in text and key in _PER_RUN):
        why = "varies per run: taken from the All Runs table" if key in _PER_RUN else f"not a {'whole ' if kind == 'int' else ''}number"
        if key == "lora_alpha":
            why = "not a number: the product default is 2 × lora_rank"
        found.not_mapped(where, item, f"{why} (ignored)")
        return SKIP
    return value


def _eval_setting(found: Findings, item: Item, where: str, key: str) -> None:
    text = plain(item.value)
    if key == "system_prompt":
        prompt = quoted(item.value)
        prompt = text if prompt is None else prompt
        if "system_prompt" not in found.controls:
            found.controls["system_prompt"] = (prompt, item.line)
        elif found.controls["system_prompt"][0] != prompt:
            why = "an evaluation system prompt that differs from the training one (ignored; give evaluation.tasks[].system_prompt)"
            found.not_mapped(where, item, why)
    elif key == "scorers":
        names = [s.strip("` ") for s in re.sub(r"\(.*?\)", "", text).split(",") if s.strip("` ")]
        if names and all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", n) for n in names):
            found.evaluation["scorers"] = [{"name": n} for n in names]
        else:
            found.not_mapped(where, item, "not a scorer name such as match or includes (ignored)")
    elif key == "do_sample":
        value = yes_no(text)
        if value is None:
            found.not_mapped(where, item, "not yes or no (ignored)")
        else:
            found.evaluation["do_sample"] = value
    else:
        n = number(text.split()[0]) if text else None
        if n is None or (key != "temperature" and not isinstance(n, int)):
            found.not_mapped(where, item, "not a number (ignored)")
        else:
            found.evaluation[key] = float(n) if key == "temperature" else n
