"""torchtune 0.6.1's lora_finetune_distributed with a validation loop (see _validation.py).

Run: tune run --nproc_per_node=N "$(python -m cruijff_gen.job.recipes lora_finetune_distributed)" --config ...

Same config keys and training as the stock recipe; in addition `dataset_val`, `batch_size_val`
(default: `batch_size`, per rank) and `run_val_every_n_steps` are read. The validation loss is
all-reduced over the ranks (sums of loss * tokens and of tokens); rank 0 logs it.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from omegaconf import DictConfig
from torchtune import config, training

from cruijff_gen.job.recipes._validation import ValidationMixin, load_stock_recipe

_stock = load_stock_recipe("lora_finetune_distributed")


# What the stock recipe calls that fails on CPU, whatever the config says (no CUDA memory to report
# or free): rank 0's memory report at the end of _setup_model (get_memory_stats raises "Logging
# memory stats is not supported on CPU devices"; log_peak_memory_stats only governs the per-step
# stats), and the cleanup at the start of train() (torch.cpu has no empty_cache). The stock code
# looks them up on torchtune.training at call time.
_CPU_STAND_INS = {
    "get_memory_stats": lambda *args, **kwargs: {},
    "log_memory_stats": lambda *args, **kwargs: None,
    "cleanup_before_training": gc.collect,
}


@contextmanager
def _cpu_stand_ins(device: torch.device) -> Iterator[None]:
    """On CPU only, replace the calls above by stand-ins for the duration of the block."""
    if device.type != "cpu":
        yield
        return
    originals = {name: getattr(training, name) for name in _CPU_STAND_INS}
    for name, stand_in in _CPU_STAND_INS.items():
        setattr(training, name, stand_in)
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(training, name, original)


class LoRAFinetuneWithValidationDistributed(ValidationMixin, _stock.LoRAFinetuneRecipeDistributed):
    def _setup_model(self, *args: Any, **kwargs: Any) -> torch.nn.Module:
        with _cpu_stand_ins(self._device):
            return super()._setup_model(*args, **kwargs)

    def train(self) -> None:
        with _cpu_stand_ins(self._device):
            super().train()


def _backend() -> str:
    # The stock recipe_main asks for "cuda:nccl,cpu:gloo", which a PyTorch built without NCCL (the
    # CPU wheels) refuses: "Distributed package doesn't have NCCL built in". Gloo alone runs there.
    return "cuda:nccl,cpu:gloo" if torch.distributed.is_nccl_available() else "gloo"


@config.parse
def recipe_main(cfg: DictConfig) -> None:
    """Entry point, as the stock recipe's (under a distributed launcher: tune run --nproc_per_node)."""
    if not training.is_distributed():
        raise RuntimeError(
            "Distributed finetune recipe should be run via a distributed launcher. "
            "If using tune CLI, please specify --nnodes 1 and --nproc_per_node [num_gpus]"
        )
    torch.distributed.init_process_group(_backend())
    if cfg.get("fsdp_cpu_offload", False):
        # as the stock recipe: use all CPU cores for the optimizer step on CPU
        training.set_torch_num_threads()
    config.log_config(recipe_name="LoRAFinetuneWithValidationDistributed", cfg=cfg)
    recipe = LoRAFinetuneWithValidationDistributed(cfg=cfg)
    recipe.setup(cfg=cfg)
    recipe.train()
    recipe.cleanup()


if __name__ == "__main__":
    sys.exit(recipe_main())
