"""The validation loop and checkpoint fix-up both our LoRA recipes add to torchtune's stock ones.

`ValidationMixin` goes before a stock recipe class in the bases of our recipe class. It does not
touch the stock training loop (`train()` of recipes/lora_finetune_*.py); it attaches to two calls
that loop makes, as torchtune 0.6.1 writes it:

* `self._lr_scheduler.step()`: once per optimizer step, right after `self._optimizer.step()` and
  right before `self.global_step += 1`. The scheduler is required (`setup` reads
  `cfg.lr_scheduler`; a config without one stops with "Missing key lr_scheduler"), so the hook
  always fires. `setup` wraps the scheduler in `_AfterStep`.
* `self.save_checkpoint(epoch=curr_epoch)`: once at the end of every epoch, after
  `self.epochs_run += 1`. The override validates, then saves.

The validation loss is the loss the stock loop computes (labels shifted left by one, the recipe's
`loss` component), averaged over every validation token: sum of loss * tokens over all batches (and
all ranks) divided by the number of tokens. Rank 0 logs one line per validation,
`validation: epoch=<E> step=<global step> loss=<.6f> batches=<n>` (E from 0, n summed over ranks,
` (epoch end)` appended at an epoch's end), and `val_loss` to the metric logger at that step.

After an adapter-only save, `_make_adapter_loadable` makes the epoch directory loadable by
transformers + peft as base model + adapter.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
import torchtune
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset
from torchtune import utils

# torchtune's one recipe logger (a StreamHandler on stderr, so SLURM's output file gets it). Made
# here, before load_stock_recipe runs the stock module, whose own get_logger("DEBUG") then sets the
# level the stock recipe runs with.
log = utils.get_logger("INFO")

LOG_LINE = "validation: epoch={epoch} step={step} loss={loss:.6f} batches={batches}"
EPOCH_END = " (epoch end)"


def load_stock_recipe(name: str) -> ModuleType:
    """The stock recipe module `name` from torchtune's `recipes/` directory.

    `import recipes.<name>` is refused on purpose (recipes/__init__.py raises ModuleNotFoundError),
    so load the file by path from where `tune run` finds it (torchtune/_cli/run.py: ROOT / "recipes").
    """
    path = Path(torchtune.__file__).resolve().parent.parent / "recipes" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_torchtune_stock_recipes.{name}", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise ImportError(f"torchtune's stock recipe {name} is not at {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class _AfterStep:
    """The lr scheduler, calling `after()` after each of its `step()` calls.

    A wrapper rather than an attribute set on the scheduler: torch's schedulers put their whole
    `__dict__` into `state_dict()`.
    """

    def __init__(self, scheduler: Any, after: Callable[[], None]) -> None:
        self._scheduler = scheduler
        self._after = after

    def step(self, *args: Any, **kwargs: Any) -> None:
        self._scheduler.step(*args, **kwargs)
        self._after()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._scheduler, name)


class _ShardPadded(Dataset):
    """A dataset padded to a multiple of the world size with copies that carry no labels.

    Every rank then runs the same number of validation batches (FSDP's forward is collective: a
    rank with one batch fewer would leave the others waiting), and the copies add no tokens, so the
    all-reduced mean is over each validation example exactly once.
    """

    def __init__(self, dataset: Dataset, world_size: int, ignore_index: int) -> None:
        self._dataset = dataset
        self._size = len(dataset)
        self._padded = math.ceil(self._size / world_size) * world_size
        self._ignore_index = ignore_index

    def __len__(self) -> int:
        return self._padded

    def __getitem__(self, index: int) -> dict:
        if index < self._size:
            return self._dataset[index]
        sample = dict(self._dataset[index % self._size])
        labels = sample["labels"]
        sample["labels"] = (
            torch.full_like(labels, self._ignore_index) if isinstance(labels, torch.Tensor)
            else [self._ignore_index] * len(labels)
        )
        return sample


class ValidationMixin:
    """Validation every `run_val_every_n_steps` optimizer steps and at each epoch's end, when the
    config has `dataset_val`; adapter-only checkpoints that transformers can load."""

    def setup(self, cfg: DictConfig) -> None:
        super().setup(cfg)
        self._base_model_dir = os.path.abspath(cfg.checkpointer.checkpoint_dir)
        self._checkpoint_output_dir = Path(cfg.checkpointer.output_dir)
        self._val_loader = None
        self._last_validation: tuple[int, float, int] | None = None  # (step, loss, batches)
        if cfg.get("dataset_val") is None:
            return
        every = cfg.get("run_val_every_n_steps")
        if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
            raise ValueError(f"run_val_every_n_steps must be a positive integer or null, not {every!r}")
        self._val_every = every
        self._val_loader = self._setup_val_data(cfg)
        self._lr_scheduler = _AfterStep(self._lr_scheduler, self._after_optimizer_step)

    def _setup_val_data(self, cfg: DictConfig) -> DataLoader:
        """The validation loader, built by the stock `_setup_data` like the training one (dataset
        or list of datasets, packing, `collate_fn`), then rebuilt in order and without dropping
        the last partial batch (the stock loader shuffles per rank and drops it)."""
        batch_size = cfg.get("batch_size_val") or cfg.batch_size
        stock = self._setup_data(
            cfg_dataset=cfg.dataset_val,
            shuffle=False,
            batch_size=batch_size,
            collate_fn=cfg.get("collate_fn", "torchtune.data.padded_collate_sft"),
        )
        if len(stock.dataset) == 0:
            raise ValueError("dataset_val has no examples")
        world_size, rank = utils.get_world_size_and_rank()
        dataset = _ShardPadded(stock.dataset, world_size, self._loss_fn.ignore_index)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=range(rank, len(dataset), world_size),
            collate_fn=stock.collate_fn,
            drop_last=False,
            # Every DataLoader iteration draws a base seed from its generator, by default torch's
            # global one, which training uses too (LoRA dropout): validation must not move it.
            generator=torch.Generator(),
        )

    def _after_optimizer_step(self) -> None:
        # Stock train(): lr_scheduler.step() runs just before `self.global_step += 1`, and
        # epochs_run equals the current epoch until the epoch ends.
        step = self.global_step + 1
        if self._val_every and step % self._val_every == 0:
            self._validate(epoch=self.epochs_run, step=step, epoch_end=False)

    def save_checkpoint(self, epoch: int) -> None:
        if self._val_loader is not None:
            self._validate(epoch=epoch, step=self.global_step, epoch_end=True)
        super().save_checkpoint(epoch)
        if self._save_adapter_weights_only and utils.get_world_size_and_rank()[1] == 0:
            self._make_adapter_loadable(epoch)

    def _validate(self, epoch: int, step: int, epoch_end: bool) -> None:
        if self._last_validation and self._last_validation[0] == step:
            # the periodic validation of this very step (no optimizer step since): same weights
            _, loss, batches = self._last_validation
            fresh = False
        else:
            loss, batches = self._validation_loss()
            self._last_validation = (step, loss, batches)
            fresh = True
        if utils.get_world_size_and_rank()[1] != 0:
            return
        line = LOG_LINE.format(epoch=epoch, step=step, loss=loss, batches=batches) + (EPOCH_END if epoch_end else "")
        # The stock progress bar (tqdm, on stderr like this logger) redraws its line with "\r" and
        # leaves it unended: end it, so the log line starts a line of its own in the job's log.
        sys.stderr.write("\n")
        sys.stderr.flush()
        log.info(line)
        if fresh:
            self._metric_logger.log_dict({"val_loss": loss}, step=step)

    def _validation_loss(self) -> tuple[float, int]:
        """Mean loss per validation token over all ranks, and the number of batches run."""
        totals = torch.zeros(3, dtype=torch.float64, device=self._device)  # loss * tokens, tokens, batches
        was_training = self._model.training
        self._model.eval()
        try:
            with torch.no_grad():
                for batch in self._val_loader:
                    loss_sum, tokens = self._batch_loss_sum(batch)
                    totals[0] += loss_sum
                    totals[1] += tokens
                    totals[2] += 1
        finally:
            self._model.train(was_training)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(totals)
        loss_sum, tokens, batches = totals.tolist()
        return (loss_sum / tokens if tokens else math.nan), int(batches)

    def _batch_loss_sum(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed loss and token count of one batch, computed as the stock loop computes its loss
        (`_loss_step` / the body of `train()`): labels shifted left by one, ignore_index appended."""
        utils.batch_to_device(batch, self._device)
        ignore_index = self._loss_fn.ignore_index
        labels = batch.pop("labels")
        labels = torch.cat([labels[..., 1:], torch.full_like(labels[..., :1], ignore_index)], dim=-1)
        logits = self._model(**batch)
        if not isinstance(logits, list):  # a list: chunked output for CEWithChunkedOutputLoss
            labels = labels.reshape(-1)
            logits = logits.reshape(-1, logits.size(-1))
        # the tokens the loss averages over, so loss * tokens is exactly their summed loss
        tokens = (labels != ignore_index).sum()
        loss = self._loss_fn(logits, labels)
        return torch.where(tokens > 0, loss.double() * tokens, 0.0), tokens

    def _make_adapter_loadable(self, epoch: int) -> None:
        """Make `epoch_N` of an adapter-only save load with transformers (+ peft) as base + adapter.

        The FullModelHFCheckpointer writes `base_model_name_or_path` only from a Hub repo id
        (`original_repo_id.json`, written by `tune download`), so for a local model it is missing.
        Point it at the local base model, the weights this adapter was trained on: no network at
        eval time. And remove the base model's `config.json` the checkpointer copied in with the
        tokenizer files: transformers >= 5 loads the model from the directory itself when it holds
        a config.json (integrations/peft.py, maybe_load_adapters) and then finds no weights.
        """
        epoch_dir = self._checkpoint_output_dir / f"epoch_{epoch}"
        adapter_config = epoch_dir / "adapter_config.json"
        if not adapter_config.is_file():  # model types torchtune writes no PEFT config for (Phi, vision)
            return
        data = json.loads(adapter_config.read_text(encoding="utf-8"))
        data["base_model_name_or_path"] = self._base_model_dir
        adapter_config.write_text(json.dumps(data), encoding="utf-8")
        (epoch_dir / "config.json").unlink(missing_ok=True)
