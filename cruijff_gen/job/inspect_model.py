"""inspect-ai model provider `cruijff-hf`: inspect's own `hf` provider, plus adapter-only checkpoints
loaded WITHOUT peft.

    inspect eval TASK --model cruijff-hf/<label> -M model_path=<run>/artifacts/epoch_N [-M ...]

Everything is inspect's `HuggingFaceAPI` (inspect_ai/model/_providers/hf.py: the same model
arguments, device and dtype handling, chat template, tokenization, batching, generation), except
when `model_path` is an adapter-only epoch directory: it holds `adapter_config.json` and no model
weights (no `model*.safetensors`, no `pytorch_model*.bin`). Then

* the model is the base model named by the adapter's `base_model_name_or_path`, loaded as the
  parent loads any `model_path` (the parent is given model_path=<base>);
* the tokenizer is loaded from the epoch directory, as the parent would have (torchtune copies the
  base model's tokenizer files there), or from the base model when the directory has none; an
  explicit `-M tokenizer=` / `-M tokenizer_path=` wins, as in the parent;
* the LoRA weights are merged into the loaded model, in memory: for each adapter module `<m>` (keys
  `base_model.model.<m>.lora_A.weight` of shape (r, in) and `...lora_B.weight` of shape (out, r)),
  `<m>.weight += scale * B @ A` with scale = lora_alpha / r (lora_alpha / sqrt(r) with
  `use_rslora`), which is what peft computes for a plain LoRA adapter and what torchtune's merged
  checkpoints hold (torchtune.modules.peft.get_merged_lora_ckpt).

Anything the adapter holds beyond plain LoRA (DoRA, LoRA biases, per-module ranks, extra saved
modules, ...) is refused with one line, as is a key naming a module the base model lacks: nothing
is merged unless everything can be. Merged epoch directories (weights present) load exactly as the
`hf` provider loads them; their adapter_config.json is not used.

Why not peft: transformers 5 needs peft >= 0.19, which refuses the torchao < 0.16 that torchtune
0.6.1 needs; and with peft installed, transformers 5 applies the adapter_config.json of a merged
epoch directory a second time.

Registered with inspect by cruijff_gen.job._inspect_registry (entry point group `inspect_ai`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from inspect_ai.model import GenerateConfig
from inspect_ai.model._providers.hf import HuggingFaceAPI

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")  # peft's two formats
MODEL_WEIGHTS = ("model*.safetensors", "pytorch_model*.bin")
TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json")
KEY_PREFIX = "base_model.model."  # peft's prefix of every saved key (PeftModel -> LoraModel -> model)
LORA_KEYS = {".lora_A.weight": "A", ".lora_B.weight": "B"}

# adapter_config.json settings that do not change what a plain LoRA adapter computes (which modules
# got an adapter is in the weight keys themselves). Any other setting with a truthy value is a
# feature this merge does not implement, and refused.
HARMLESS = frozenset({
    "base_model_name_or_path", "revision", "task_type", "inference_mode", "auto_mapping", "peft_version",
    "target_modules", "exclude_modules", "layers_to_transform", "layers_pattern", "lora_dropout",
    "runtime_config", "megatron_core", "qalora_group_size",  # defaults, used only with megatron_config / use_qalora
    "r", "lora_alpha", "use_rslora",  # the scale, below
})
# settings with a non-falsy default: the values that mean plain LoRA
PLAIN = {"peft_type": ("LORA",), "bias": ("none",), "init_lora_weights": (True, False, "gaussian")}


class AdapterError(ValueError):
    """The adapter cannot be merged into its base model (one line)."""


@dataclass
class LoraAdapter:
    directory: Path
    base: str  # base_model_name_or_path
    scale: float
    weights: dict[str, tuple[torch.Tensor, torch.Tensor]]  # module name -> (A, B)


def is_adapter_only(path: str | Path | None) -> bool:
    """A directory with adapter_config.json and no model weights."""
    if not path or not Path(path).is_dir():
        return False
    directory = Path(path)
    return (directory / ADAPTER_CONFIG).is_file() and not any(
        next(directory.glob(pattern), None) for pattern in MODEL_WEIGHTS
    )


def read_adapter(directory: str | Path) -> LoraAdapter:
    """The adapter of an adapter-only epoch directory, checked to be plain LoRA."""
    directory = Path(directory)
    config_file = directory / ADAPTER_CONFIG
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AdapterError(f"{config_file}: not readable as JSON ({exc})") from None
    if not isinstance(config, dict):
        raise AdapterError(f"{config_file}: not a JSON object")
    unsupported = [f"{key}: {json.dumps(value)}" for key, value in config.items()
                   if (value not in PLAIN[key] if key in PLAIN else key not in HARMLESS and value)]
    if unsupported:
        raise AdapterError(
            f"{config_file}: {', '.join(unsupported)}: a PEFT feature cruijff-hf does not merge (it merges plain "
            "LoRA, weight += lora_alpha / r * B @ A); evaluate a merged checkpoint (save_adapter_weights_only: false)"
        )
    base = config.get("base_model_name_or_path")
    if not base:
        raise AdapterError(f"{config_file}: no base_model_name_or_path, so there is no base model to merge the adapter into")
    r, alpha = config.get("r"), config.get("lora_alpha")
    if not _number(r) or r <= 0 or not _number(alpha):
        raise AdapterError(f"{config_file}: r and lora_alpha must be numbers, r > 0 (got r={r!r}, lora_alpha={alpha!r})")
    scale = alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r
    return LoraAdapter(directory, str(base), scale, _lora_weights(directory, int(r)))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _lora_weights(directory: Path, r: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    path = next((directory / name for name in ADAPTER_WEIGHTS if (directory / name).is_file()), None)
    if path is None:
        raise AdapterError(f"{directory}: adapter_config.json but no {' or '.join(ADAPTER_WEIGHTS)}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        tensors = load_file(str(path), device="cpu")
    else:
        tensors = torch.load(path, map_location="cpu", weights_only=True)
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        suffix = next((s for s in LORA_KEYS if key.endswith(s)), None)
        if not key.startswith(KEY_PREFIX) or suffix is None:
            raise AdapterError(
                f"{path}: key {key} is not a plain LoRA weight ({KEY_PREFIX}<module>.lora_A.weight / .lora_B.weight); "
                "cruijff-hf does not merge other PEFT features"
            )
        pairs.setdefault(key[len(KEY_PREFIX):-len(suffix)], {})[LORA_KEYS[suffix]] = tensor
    if not pairs:
        raise AdapterError(f"{path}: no LoRA weights")
    weights = {}
    for module, pair in pairs.items():
        missing = [f"{KEY_PREFIX}{module}.lora_{x}.weight" for x in "AB" if x not in pair]
        if missing:
            raise AdapterError(f"{path}: {missing[0]} is missing (every lora_A needs its lora_B)")
        a, b = pair["A"], pair["B"]
        if a.dim() != 2 or b.dim() != 2 or a.shape[0] != r or b.shape[1] != r:
            raise AdapterError(
                f"{path}: {KEY_PREFIX}{module}: lora_A {tuple(a.shape)} / lora_B {tuple(b.shape)} do not have rank r={r} "
                "of adapter_config.json"
            )
        weights[module] = (a, b)
    return weights


def merge_lora(model: torch.nn.Module, adapter: LoraAdapter) -> None:
    """Add scale * B @ A to the weight of every module the adapter names (all checked first)."""
    shared: dict[int, int] = {}
    for _, param in model.named_parameters(remove_duplicate=False):
        shared[id(param)] = shared.get(id(param), 0) + 1
    targets = []
    for module_name, (a, b) in adapter.weights.items():
        key = f"{KEY_PREFIX}{module_name}.lora_A.weight"
        try:
            module = model.get_submodule(module_name)
        except AttributeError:
            module = None
        weight = getattr(module, "weight", None)
        if not isinstance(weight, torch.Tensor):
            raise AdapterError(
                f"{adapter.directory}: adapter key {key} names module {module_name}, which the base model "
                f"{adapter.base} does not have (or which has no weight)"
            )
        if tuple(weight.shape) != (b.shape[0], a.shape[1]):
            raise AdapterError(
                f"{adapter.directory}: adapter key {key}: B @ A is {b.shape[0]}x{a.shape[1]}, the weight of "
                f"{module_name} in {adapter.base} is {'x'.join(map(str, weight.shape))}"
            )
        if shared[id(weight)] > 1:
            raise AdapterError(
                f"{adapter.directory}: adapter key {key}: the weight of {module_name} is shared with another module "
                "(tied embeddings), so merging into it would change both"
            )
        if weight.device.type == "meta" or not weight.is_floating_point():
            raise AdapterError(
                f"{adapter.directory}: {module_name}.weight is {'offloaded (device_map)' if weight.device.type == 'meta' else weight.dtype}"
                "; the adapter can only be merged into floating point weights held on a device"
            )
        targets.append((weight, a, b))
    with torch.no_grad():
        for weight, a, b in targets:
            delta = b.to(weight.device, torch.float32) @ a.to(weight.device, torch.float32)
            weight.copy_((weight.float() + adapter.scale * delta).to(weight.dtype))


class CruijffHuggingFaceAPI(HuggingFaceAPI):
    """inspect's HuggingFaceAPI; an adapter-only `model_path` is loaded as base model + merged LoRA."""

    def __init__(
        self,
        model_name: str,
        base_url: str | None = None,
        api_key: str | None = None,
        config: GenerateConfig | None = None,
        **model_args: Any,
    ) -> None:
        config = GenerateConfig() if config is None else config  # inspect always passes one
        model_path = model_args.get("model_path")
        if not is_adapter_only(model_path):
            super().__init__(model_name, base_url, api_key, config, **model_args)
            has_adapter = bool(model_path) and (Path(model_path) / ADAPTER_CONFIG).is_file()
            if has_adapter and getattr(self.model, "_hf_peft_config_loaded", False):  # transformers + peft applied it
                raise AdapterError(
                    f"{model_path}: transformers (with peft installed) applied adapter_config.json on top of the merged "
                    "weights of this checkpoint; uninstall peft in the eval environment"
                )
            return
        adapter = read_adapter(model_path)  # every check that needs no model, before the model loads
        args = dict(model_args, model_path=adapter.base)
        explicit = model_args.get("tokenizer") is not None or model_args.get("tokenizer_path") is not None
        if not explicit and any((adapter.directory / name).is_file() for name in TOKENIZER_FILES):
            args["tokenizer_path"] = str(adapter.directory)
        super().__init__(model_name, base_url, api_key, config, **args)
        merge_lora(self.model, adapter)
