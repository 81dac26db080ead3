"""torchtune LoRA recipes with a validation loop, built on torchtune 0.6.1's stock LoRA recipes.

torchtune 0.6.1's `lora_finetune_single_device` and `lora_finetune_distributed` ignore `dataset_val`
and `run_val_every_n_steps`. The recipes here subclass the stock recipe classes, train exactly as
they do, and add validation (`_validation.py`): the mean loss over `dataset_val` every
`run_val_every_n_steps` optimizer steps and at the end of every epoch, one log line each
(`validation: epoch=0 step=4 loss=1.234567 batches=3`, ` (epoch end)` added at an epoch's end) and
`val_loss` in the metric logger.

Run them with `tune run`:

    tune run "$(python -m cruijff_gen.job.recipes lora_finetune_single_device)" --config finetune.yaml
    tune run --nproc_per_node=2 "$(python -m cruijff_gen.job.recipes lora_finetune_distributed)" --config ...

`tune run` does not take an absolute recipe path: it turns a recipe that is not one of its own into
a module name (torchtune/_cli/run.py, `_convert_to_dotpath`: drop the extension, "/" -> "."), so
`/a/b/recipe.py` becomes `.a.b.recipe` and fails with "Relative module names not supported". What
`tune_run_target` returns, `cruijff_gen/job/recipes/<name>.py`, becomes the module
`cruijff_gen.job.recipes.<name>`, which imports from any working directory where cruijff_gen is
installed (the distributed workers run it with `python -m`). `recipe_path` gives the file itself,
for `python <file> --config ...` or `torchrun ... <file> --config ...`.

Nothing here imports torch: `python -m cruijff_gen.job.recipes` answers at once.
"""

from __future__ import annotations

from pathlib import Path

RECIPES = ("lora_finetune_single_device", "lora_finetune_distributed")


def _check(name: str) -> str:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}: cruijff_gen ships {', '.join(RECIPES)}")
    return name


def recipe_path(name: str) -> str:
    """The absolute path of the recipe file `name` (one of RECIPES)."""
    return str(Path(__file__).resolve().parent / f"{_check(name)}.py")


def tune_run_target(name: str) -> str:
    """The recipe argument of `tune run` that runs recipe `name` from any working directory."""
    return f"{__name__.replace('.', '/')}/{_check(name)}.py"
