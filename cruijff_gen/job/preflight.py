"""The first second of every generated job: are the tools importable and the inputs there?

    python -m cruijff_gen.job check-train --config finetune.yaml
    python -m cruijff_gen.job check-eval --model-path DIR --dataset-type chat_completion --write FILE

Each prints one line and exits 0, or prints one line saying what to install or fix and exits 1,
before any model is loaded (a GPU job that would die after its queue wait dies here instead).
check-eval also writes FILE: the inspect hf provider's model arguments (chat template with its date
pinned, tokenization) that make the eval prompt the one training used (cruijff_gen.job.chat).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from . import chat

TRAIN_MODULES = ("torch", "torchtune", "transformers", "datasets")
EVAL_MODULES = ("torch", "inspect_ai", "transformers")
INSTALL = "pip install 'cruijff_gen[tools]' (torch, torchtune, inspect-ai, transformers) in the job's environment"


class PreflightError(Exception):
    pass


def _versions(modules: tuple[str, ...]) -> str:
    missing, found = [], []
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            missing.append(f"{name} ({exc})")
            continue
        found.append(f"{name} {getattr(module, '__version__', '?')}")
    if missing:
        raise PreflightError(f"not importable by {sys.executable}: {', '.join(missing)}; {INSTALL}")
    return ", ".join(found)


def _exists(path: str, what: str) -> None:
    if not os.path.exists(path):
        raise PreflightError(f"{what} {path} does not exist")


def _gpus(device: str) -> str:
    import torch

    if not str(device).startswith("cuda"):
        return f"device {device}"
    count = torch.cuda.device_count()
    if count == 0:
        raise PreflightError("device: cuda, but torch sees no GPU in this job (check the job's --gres / CUDA_VISIBLE_DEVICES)")
    return f"{count} GPU(s)"


def _data_files(dataset: dict[str, Any]) -> None:
    files = dataset.get("data_files")
    for path in [files] if isinstance(files, str) else list(files or []):
        _exists(path, "data file")
    if dataset.get("data_dir"):
        _exists(dataset["data_dir"], "data directory")


def check_train(config: str) -> str:
    versions = _versions(TRAIN_MODULES)
    importlib.import_module("cruijff_gen.job.recipes")
    from omegaconf import OmegaConf

    _exists(config, "config")
    cfg = OmegaConf.to_container(OmegaConf.load(config), resolve=True)
    ckpt = cfg["checkpointer"]
    _exists(ckpt["checkpoint_dir"], "model directory (checkpointer.checkpoint_dir)")
    files = ckpt.get("checkpoint_files")
    for name in files if isinstance(files, list) else []:
        _exists(os.path.join(ckpt["checkpoint_dir"], name), "checkpoint file")
    for key in ("dataset", "dataset_val"):
        dataset = cfg.get(key)
        if not dataset:
            continue
        _data_files(dataset)
        if dataset.get("model_dir"):  # the text both sides share needs the model's HF tokenizer
            chat.template(chat.load_tokenizer(dataset["model_dir"]), dataset.get("dataset_type", "chat_completion"))
    return f"preflight ok: {versions}; {_gpus(cfg.get('device', 'cuda'))}"


def check_eval(model_path: str, dataset_type: str, write: str) -> str:
    versions = _versions(EVAL_MODULES)
    _exists(model_path, "model")
    adapter = Path(model_path) / "adapter_config.json"
    if adapter.exists() and not any(Path(model_path).glob("model*.safetensors")):
        # adapter only: the cell's provider (cruijff-hf) loads the base model and merges the adapter
        base = json.loads(adapter.read_text(encoding="utf-8")).get("base_model_name_or_path")
        if not base:
            raise PreflightError(f"{adapter}: no base_model_name_or_path, so the adapter cannot be loaded onto its base model")
        _exists(base, "base model of the adapter")
    settings = chat.model_settings(chat.load_tokenizer(model_path), dataset_type)
    Path(write).parent.mkdir(parents=True, exist_ok=True)
    import yaml  # a dependency of torchtune, transformers and inspect-ai alike

    Path(write).write_text(yaml.safe_dump(settings, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return f"preflight ok: {versions}; model settings for inspect in {write}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cruijff_gen.job", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("check-train", help="check a training job's tools and inputs")
    train.add_argument("--config", required=True, help="the run's finetune.yaml")
    ev = sub.add_parser("check-eval", help="check an eval job's tools and inputs; write inspect's model settings")
    ev.add_argument("--model-path", required=True, help="the model or checkpoint the cell evaluates")
    ev.add_argument("--dataset-type", choices=chat.DATASET_TYPES, required=True, help="the run's dataset_type")
    ev.add_argument("--write", required=True, help="where to write the model settings (YAML, for inspect --model-config)")
    args = parser.parse_args(argv)
    try:
        if args.command == "check-train":
            line = check_train(args.config)
        else:
            line = check_eval(args.model_path, args.dataset_type, args.write)
    except (PreflightError, chat.ChatError) as exc:
        print(f"preflight failed: {exc}", file=sys.stderr)
        return 1
    print(line)
    return 0
