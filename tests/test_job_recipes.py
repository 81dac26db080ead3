"""Our LoRA recipes (cruijff_gen/job/recipes) run for real, on CPU, through `tune run`.

The session's tiny trainings (tests/tiny_trainings.py, shared with tests/test_adapter_eval.py): a
tiny Llama-3.2-shaped model (examples/tiny/catalog.yaml's architecture, random weights) and a small
instruct data set, four trainings at once, each in its own directory with `tune run ... --config
finetune.yaml`:

* `stock`: torchtune's own lora_finetune_single_device, no validation, adapter-only checkpoints;
* `val`: our single-device recipe with dataset_val, adapter-only checkpoints;
* `noval`: our single-device recipe without dataset_val, merged checkpoints;
* `dist`: our distributed recipe on 2 processes (gloo), with dataset_val, merged checkpoints.

All share seed and training settings, with LoRA dropout on, so that any use of the global random
generator by validation, or any change to training, shows in the training losses. Every validation
value is also recomputed independently, with transformers, from the checkpoint of the same step.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_trainings import BATCH_SIZE, EPOCHS, GRAD_ACCUM, N_TRAIN, N_VAL, VAL_EVERY, WORLD, Run

from conftest import REPO
from cruijff_gen.job.recipes import RECIPES, recipe_path, tune_run_target

pytestmark = pytest.mark.tools


@pytest.fixture
def tiny(recipe_model: dict) -> dict:  # the session's (tests/tiny_trainings.py)
    return recipe_model


@pytest.fixture
def runs(recipe_runs: dict) -> dict[str, Run]:
    return recipe_runs


# --------------------------------------------------------------------------- expectations
def _steps_per_epoch(world_size: int) -> int:
    """The stock recipes' count: each rank's batches (its share of the data, last partial batch
    dropped) over gradient_accumulation_steps."""
    return (math.ceil(N_TRAIN / world_size) // BATCH_SIZE) // GRAD_ACCUM


def _expected(world_size: int) -> list[tuple[int, int, int, bool]]:
    """(epoch, step, batches, epoch end) of every validation, in order: every VAL_EVERY optimizer
    steps, and at each epoch's end (after that step's periodic one when they coincide)."""
    per_epoch = _steps_per_epoch(world_size)
    batches = world_size * math.ceil(math.ceil(N_VAL / world_size) / BATCH_SIZE)  # no batch dropped
    expected = []
    for step in range(1, EPOCHS * per_epoch + 1):
        epoch = (step - 1) // per_epoch
        if step % VAL_EVERY == 0:
            expected.append((epoch, step, batches, False))
        if step % per_epoch == 0:
            expected.append((epoch, step, batches, True))
    return expected


def _merged_model(epoch_dir: Path):
    """transformers' model of a merged checkpoint, read through a view of it without the adapter
    files: with peft installed, transformers >= 5 would apply the adapter again on top."""
    import torch
    import transformers

    view = epoch_dir.parent / f"{epoch_dir.name}_merged_only"
    if not view.exists():
        view.mkdir()
        for item in epoch_dir.iterdir():
            if not item.name.startswith("adapter_"):
                (view / item.name).symlink_to(item)
    return transformers.AutoModelForCausalLM.from_pretrained(view, dtype=torch.float32).eval()


def _val_losses(run: Run) -> list[tuple[int, float]]:
    return [(step, round(float(value), 6)) for step, value in run.disk_log("val_loss")]


def _unique_steps(found: list) -> list[tuple[int, float]]:
    """(step, loss) of the validations, a step validated twice (periodic, epoch end) once."""
    return list({step: loss for _, step, loss, _, _ in found}.items())


def _val_loss(model_dir: Path, tiny: dict) -> float:
    """The mean loss per response token of the validation examples under a merged checkpoint,
    computed with transformers (not torchtune's model) on torchtune's tokenization of the data."""
    import torch
    from torchtune.datasets import instruct_dataset
    from torchtune.models.llama3 import llama3_tokenizer

    model = _merged_model(model_dir)
    tokenizer = llama3_tokenizer(str(tiny["model"] / "original" / "tokenizer.model"), max_seq_len=64)
    data = instruct_dataset(tokenizer, source="json", data_files=str(tiny["data"]), field="validation",
                            split="train", train_on_input=False, cache_dir=str(tiny["root"] / "hf_datasets"))
    total, tokens = 0.0, 0
    with torch.no_grad():
        for sample in data:
            logits = model(torch.tensor([sample["tokens"]])).logits[0, :-1]
            labels = torch.tensor(sample["labels"][1:])
            total += torch.nn.functional.cross_entropy(logits, labels, ignore_index=-100, reduction="sum").item()
            tokens += int((labels != -100).sum())
    return total / tokens


# --------------------------------------------------------------------------- tests
def test_recipe_paths_and_cli() -> None:
    for name in RECIPES:
        path = Path(recipe_path(name))
        assert path.is_absolute() and path.is_file() and path.name == f"{name}.py"
        assert tune_run_target(name) == f"cruijff_gen/job/recipes/{name}.py"
        assert (REPO / tune_run_target(name)).resolve() == path
    with pytest.raises(ValueError, match="unknown recipe 'full_finetune'"):
        recipe_path("full_finetune")
    cli = [sys.executable, "-m", "cruijff_gen.job.recipes"]
    done = subprocess.run([*cli, "lora_finetune_distributed"], check=False, capture_output=True, text=True, cwd=REPO.parent)
    assert (done.returncode, done.stdout) == (0, "cruijff_gen/job/recipes/lora_finetune_distributed.py\n")
    done = subprocess.run([*cli, "--file", "lora_finetune_single_device"], check=False, capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (0, recipe_path("lora_finetune_single_device") + "\n")
    done = subprocess.run([*cli, "nope"], check=False, capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == "" and len(done.stderr.splitlines()) == 1, done


def test_validation_every_n_steps_and_at_each_epoch_end(runs: dict[str, Run]) -> None:
    run = runs["val"].ok()
    found = run.validations()
    assert [(e, s, b, end) for e, s, _, b, end in found] == _expected(1), found
    assert all(math.isfinite(loss) and loss > 0 for _, _, loss, _, _ in found), found
    # val_loss in the metric logger, once per validated step, the value of the line
    assert _val_losses(run) == _unique_steps(found)


def test_validation_value_is_the_mean_token_loss(runs: dict[str, Run], tiny: dict) -> None:
    """Each epoch-end value equals the loss of that epoch's checkpoint over the whole validation
    set: model in eval mode (no dropout), every token weighted once. `noval` trains exactly as
    `val` (next test) and saves merged models."""
    ends = [(e, loss) for e, _, loss, _, end in runs["val"].ok().validations() if end]
    assert len(ends) == EPOCHS
    for epoch, loss in ends:
        assert _val_loss(runs["noval"].ok().dir / "out" / f"epoch_{epoch}", tiny) == pytest.approx(loss, abs=2e-5)


def test_training_is_the_stock_recipes(runs: dict[str, Run]) -> None:
    """Same losses at every step as stock torchtune, with validation on and off; no validation
    without dataset_val; the stock progress lines are still there."""
    stock, val, noval = runs["stock"].ok(), runs["val"].ok(), runs["noval"].ok()
    losses = stock.disk_log("loss")
    assert [step for step, _ in losses] == list(range(1, EPOCHS * _steps_per_epoch(1) + 1))
    assert val.disk_log("loss") == losses
    # noval saves merged models: on CPU the stock save would add the LoRA delta into the live
    # weights at each epoch end (and change epoch 2's losses); our recipe keeps them
    assert noval.disk_log("loss") == losses
    assert noval.validations() == [] and noval.disk_log("val_loss") == []
    for run in (val, noval):
        progress = re.findall(r"(\d+)\|(\d+)\|Loss: (\S+?):", run.output)
        assert {int(s): v for _, s, v in progress} == dict(losses)


def test_checkpoints(runs: dict[str, Run], tiny: dict) -> None:
    for name in ("val", "noval", "dist"):
        for epoch in range(EPOCHS):
            files = {p.name for p in (runs[name].ok().dir / "out" / f"epoch_{epoch}").iterdir()}
            assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "original"} <= files, files
            merged = "model-00001-of-00001.safetensors" in files
            assert merged == (name != "val"), files
            # adapter-only: the adapter names its base model, and no config.json claims a full model
            assert ("config.json" in files) == merged, files
            adapter_config = json.loads((runs[name].dir / "out" / f"epoch_{epoch}" / "adapter_config.json").read_text())
            if name == "val":
                assert adapter_config["base_model_name_or_path"] == str(tiny["model"].resolve())


def test_adapter_only_checkpoint_loads_as_base_plus_adapter(runs: dict[str, Run], tiny: dict) -> None:
    """transformers + peft load an adapter-only epoch as base + adapter: the same logits as the
    merged checkpoint of the same training (`noval`)."""
    if importlib.util.find_spec("peft") is None:
        pytest.skip("peft is not installed (transformers needs it to load an adapter)")
    import torch
    import transformers

    tokens = [128000, 65, 66, 67, 128009, 68, 69]
    # In a subprocess without torchao, as in an eval environment without torchtune: peft >= 0.19
    # (which transformers 5 needs) refuses the torchao < 0.16 that torchtune 0.6.1 needs.
    script = (
        "import sys, json, torch; sys.modules['torchao'] = None\n"
        "import transformers\n"
        "out = {}\n"
        "for d in sys.argv[1:]:\n"
        "    m = transformers.AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()\n"
        "    assert hasattr(m, 'peft_config'), d\n"
        f"    out[d] = m(torch.tensor([{tokens}])).logits[0].tolist()\n"
        "print(json.dumps(out))\n"
    )
    dirs = [str(runs["val"].ok().dir / "out" / f"epoch_{e}") for e in range(EPOCHS)]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "-c", script, *dirs], check=False, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    adapter_logits = json.loads(done.stdout.splitlines()[-1])
    base = transformers.AutoModelForCausalLM.from_pretrained(tiny["model"], dtype=torch.float32).eval()
    with torch.no_grad():
        base_logits = base(torch.tensor([tokens])).logits[0]
        for epoch, d in enumerate(dirs):
            expected = _merged_model(runs["noval"].ok().dir / "out" / f"epoch_{epoch}")(torch.tensor([tokens])).logits[0]
            assert not torch.allclose(base_logits, expected, atol=1e-4)  # the adapter changed the model
            torch.testing.assert_close(torch.tensor(adapter_logits[d]), expected, atol=1e-4, rtol=1e-4)


def test_distributed_validation_on_two_processes(runs: dict[str, Run], tiny: dict) -> None:
    """2 ranks (gloo on CPU): the same validation steps (per-rank step count), each line once (rank 0
    only), the value all-reduced: the mean over the whole validation set, not rank 0's share."""
    run = runs["dist"].ok()
    found = run.validations()
    assert [(e, s, b, end) for e, s, _, b, end in found] == _expected(WORLD), found
    assert _val_losses(run) == _unique_steps(found)
    for epoch, loss in [(e, loss) for e, _, loss, _, end in found if end]:
        assert _val_loss(run.dir / "out" / f"epoch_{epoch}", tiny) == pytest.approx(loss, abs=2e-5)
    losses = run.disk_log("loss")
    assert [step for step, _ in losses] == list(range(1, EPOCHS * _steps_per_epoch(WORLD) + 1))
    assert all(math.isfinite(float(v)) for _, v in losses)
