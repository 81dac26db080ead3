"""torchtune 0.6.1's lora_finetune_single_device with a validation loop (see _validation.py).

Run: tune run "$(python -m cruijff_gen.job.recipes lora_finetune_single_device)" --config finetune.yaml

Same config keys and training as the stock recipe; in addition `dataset_val`, `batch_size_val`
(default: `batch_size`) and `run_val_every_n_steps` are read.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from omegaconf import DictConfig
from torch import nn
from torchtune import config

from cruijff_gen.job.recipes._validation import ValidationMixin, load_stock_recipe

_stock = load_stock_recipe("lora_finetune_single_device")


@contextmanager
def _live_weights_kept(model: nn.Module, device: torch.device) -> Iterator[None]:
    """Undo what the stock merged save does to the live model on CPU.

    Stock save_checkpoint merges the LoRA weights into `{k: v.cpu() for k, v in
    self._model.state_dict().items()}` in place (get_merged_lora_ckpt: `weight += alpha/rank * B @ A`).
    On CUDA `.cpu()` copies; on CPU it returns the parameter itself, so every epoch's save adds
    the LoRA delta into the live base weights and the next epoch trains with it counted twice.
    Keep the base weights of the LoRA layers and put them back after the save.
    """
    if device.type != "cpu":
        yield
        return
    state = model.state_dict()
    suffix = ".lora_a.weight"
    kept = {
        base: state[base].clone()
        for key in state if key.endswith(suffix) and (base := key[: -len(suffix)] + ".weight") in state
    }
    try:
        yield
    finally:
        with torch.no_grad():
            for key, weight in kept.items():
                state[key].copy_(weight)


class LoRAFinetuneWithValidationSingleDevice(ValidationMixin, _stock.LoRAFinetuneRecipeSingleDevice):
    def save_checkpoint(self, epoch: int) -> None:
        if self._save_adapter_weights_only:  # the stock save merges nothing then
            super().save_checkpoint(epoch)
            return
        with _live_weights_kept(self._model, self._device):
            super().save_checkpoint(epoch)


@config.parse
def recipe_main(cfg: DictConfig) -> None:
    """Entry point, as the stock recipe's: config file, then command-line overrides."""
    config.log_config(recipe_name="LoRAFinetuneWithValidationSingleDevice", cfg=cfg)
    recipe = LoRAFinetuneWithValidationSingleDevice(cfg=cfg)
    recipe.setup(cfg=cfg)
    recipe.train()
    recipe.cleanup()


if __name__ == "__main__":
    sys.exit(recipe_main())
