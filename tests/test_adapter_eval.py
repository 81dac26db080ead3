"""Adapter-only checkpoints evaluate through inspect without peft: the `cruijff-hf` provider
(cruijff_gen/job/inspect_model.py) merges the LoRA weights into the base model in memory.

The checkpoints are those of the session's tiny trainings (tests/tiny_trainings.py, shared with
tests/test_job_recipes.py): the tiny Llama-3.2-shaped model trained by our single-device recipe
through `tune run`, with the same seed and settings, once saving adapter-only checkpoints (`val`) and
once merged checkpoints (`noval`). Both train the same weights (tests/test_job_recipes.py
test_training_is_the_stock_recipes checks their losses step by step), so the provider's merge of the
adapter-only epoch must give the model torchtune merged and saved. The module fixture then starts
`inspect eval --model cruijff-hf/...` (the installed executable, the provider found through
cruijff_gen's `inspect_ai` entry point) on both epochs; they run while the in-process tests do.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO

pytestmark = pytest.mark.tools

INSPECT = str(Path(sys.executable).parent / "inspect")
TEST_WORDS = ["kiwi", "lemon", "mango"]
TOKENS = [[128000, 65, 66, 67, 128009, 68, 69], [128000, 120, 32, 121, 122, 33, 34, 35], [128006, 9125, 128007, 271, 72]]
KEY_PREFIX = "base_model.model."


def _env(home: Path) -> dict[str, str]:
    return dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(home / "hf"),
                HF_DATASETS_CACHE=str(home / "hf" / "datasets"), OMP_NUM_THREADS="1", WANDB_MODE="disabled",
                INSPECT_DISPLAY="none", TOKENIZERS_PARALLELISM="false")


class Eval:
    """One `inspect eval` subprocess, started by the fixture; `result()` waits for it once."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        self.log_dir = cwd / "logs"
        self.proc = subprocess.Popen([*argv, "--log-dir", str(self.log_dir), "--log-format", "json"], cwd=cwd,
                                     env=_env(cwd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        self._done: tuple[int, str, str] | None = None

    def result(self) -> tuple[int, str, str]:
        """(exit status, stdout, stderr)"""
        if self._done is None:
            out, err = self.proc.communicate(timeout=300)
            self._done = (self.proc.returncode, out, err)
        return self._done

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.communicate()


EPOCH = 1  # the last epoch: the most training steps (6) since the base model


@pytest.fixture(scope="module")
def trained(recipe_model: dict, recipe_runs: dict, tmp_path_factory: pytest.TempPathFactory):
    """The session's adapter-only and merged epochs of the same training, then the two `inspect eval`
    runs started at once (they go on while the in-process tests run): {"base": model dir, "adapter":
    adapter-only epoch, "merged": merged epoch, "broken": adapter-only with its v_proj weights
    renamed w_proj, "evals": {name: Eval}}."""
    root = tmp_path_factory.mktemp("adapter_eval")
    out: dict = {"root": root, "base": recipe_model["model"]}
    for name, run in (("adapter", "val"), ("merged", "noval")):
        out[name] = recipe_runs[run].ok().dir / "out" / f"epoch_{EPOCH}"
    assert not any(out["adapter"].glob("model*.safetensors")) and any(out["merged"].glob("model*.safetensors"))
    out["broken"] = _broken(out["adapter"], root / "broken")
    files = _task_inputs(root, out["merged"])
    task = [f"{REPO / 'tests' / 'tiny_task.py'}@capitalization", "-T", f"data_path={files['data']}",
            "-T", f"config_path={files['settings']}", "--model-config", str(files["model"]),
            "-M", "device=cpu", "-M", "do_sample=false", "--max-tokens", "4"]
    out["evals"] = {}
    for name in ("adapter", "merged"):
        (root / "eval" / name).mkdir(parents=True)
        argv = [INSPECT, "eval", *task, "--model", f"cruijff-hf/{name}", "-M", f"model_path={out[name]}", "--logprobs"]
        out["evals"][name] = Eval(argv, root / "eval" / name)
    yield out
    for run in out["evals"].values():
        run.stop()


def _broken(adapter: Path, dest: Path) -> Path:
    from safetensors.torch import load_file, save_file

    shutil.copytree(adapter, dest)
    weights = load_file(adapter / "adapter_model.safetensors")
    save_file({k.replace(".v_proj.", ".w_proj."): v for k, v in weights.items()}, dest / "adapter_model.safetensors")
    return dest


def _provider(model_path: Path, **model_args):
    from cruijff_gen.job.inspect_model import CruijffHuggingFaceAPI

    return CruijffHuggingFaceAPI("x", model_path=str(model_path), device="cpu", **model_args)


def _logits(model) -> list:
    import torch

    with torch.no_grad():
        return [model(torch.tensor([tokens])).logits[0] for tokens in TOKENS]


def test_in_memory_merge_is_the_merged_checkpoint(trained: dict) -> None:
    """(a) Base model + the adapter merged in memory gives the logits of torchtune's merged
    checkpoint of the same training, which differ clearly from the base model's."""
    import torch
    import transformers

    adapter_config = json.loads((trained["adapter"] / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == str(trained["base"].resolve())
    assert adapter_config["lora_alpha"] != adapter_config["r"]  # so a wrong scale shows
    api = _provider(trained["adapter"])
    # the tokenizer from the epoch directory, as inspect's hf provider loads it for any model_path
    assert Path(api.tokenizer.name_or_path) == trained["adapter"]
    merged = _provider(trained["merged"]).model.eval()
    base = transformers.AutoModelForCausalLM.from_pretrained(trained["base"], dtype=torch.float32).eval()
    for ours, theirs, before in zip(_logits(api.model.eval()), _logits(merged), _logits(base), strict=True):
        assert (theirs - before).abs().max() > 1e-2  # training moved the model
        torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def _task_inputs(root: Path, tokenizer_dir: Path) -> dict[str, Path]:
    """The files an eval cell hands inspect: the data, the cell's settings, the model settings."""
    from cruijff_gen.job import chat

    files = {"data": root / "test.json", "settings": root / "cell.yaml", "model": root / "cell.model.yaml"}
    files["data"].write_text(json.dumps({"test": [{"input": w, "output": w.upper()} for w in TEST_WORDS]}))
    files["settings"].write_text(yaml.safe_dump({"system_prompt": "", "prompt": "Capitalize: {input}",
                                                 "scorers": [{"name": "exact"}]}))
    settings = chat.model_settings(chat.load_tokenizer(str(tokenizer_dir)), "chat_completion")
    files["model"].write_text(yaml.safe_dump(settings))
    return files


def test_inspect_eval_cli_runs_both_checkpoints(trained: dict) -> None:
    """(b) `inspect eval --model cruijff-hf/...` completes on the adapter-only and the merged epoch
    (the provider found through the package's entry point), and the greedy outputs of the adapter-only
    epoch are those of the merged one, token log probabilities included."""
    from inspect_ai.log import read_eval_log

    outputs = {}
    for name in ("adapter", "merged"):
        run = trained["evals"][name]
        code, out, err = run.result()
        assert code == 0, (out[-2000:], err[-4000:])
        (log_file,) = run.log_dir.glob("*.json")
        log = read_eval_log(str(log_file))
        assert log.status == "success", (log.status, log.error)
        assert log.eval.model == f"cruijff-hf/{name}"
        assert [s.input[-1].content for s in log.samples] == [f"Capitalize: {w}" for w in TEST_WORDS]
        outputs[name] = [(s.output.completion, [t.logprob for t in s.output.choices[0].logprobs.content])
                         for s in log.samples]
    assert all(len(logprobs) == 4 for _, logprobs in outputs["merged"]), outputs
    for (text, logprobs), (expected_text, expected) in zip(outputs["adapter"], outputs["merged"], strict=True):
        assert text == expected_text
        assert logprobs == pytest.approx(expected, abs=1e-4)


def _copy(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


def test_what_cannot_be_merged_is_one_clear_line(trained: dict, tmp_path: Path) -> None:
    """(c) A missing lora_B, a PEFT feature the merge does not implement: each a one-line
    AdapterError naming the culprit (a key naming a module the base model lacks: next test). And an
    epoch directory without tokenizer files takes the base model's tokenizer."""
    from safetensors.torch import load_file, save_file

    from cruijff_gen.job.inspect_model import AdapterError

    weights = load_file(trained["adapter"] / "adapter_model.safetensors")
    real = next(k for k in weights if k.endswith(".q_proj.lora_A.weight"))

    half = _copy(trained["adapter"], tmp_path / "half")
    missing = real.replace("lora_A", "lora_B")
    save_file({k: v for k, v in weights.items() if k != missing}, half / "adapter_model.safetensors")
    with pytest.raises(AdapterError, match=f"{missing} is missing") as error:
        _provider(half)
    assert "\n" not in str(error.value)

    dora = _copy(trained["adapter"], tmp_path / "dora")
    config = json.loads((dora / "adapter_config.json").read_text())
    (dora / "adapter_config.json").write_text(json.dumps({**config, "use_dora": True}))
    with pytest.raises(AdapterError, match=r"use_dora: true: a PEFT feature cruijff-hf does not merge") as error:
        _provider(dora)
    assert "\n" not in str(error.value)

    bare = _copy(trained["adapter"], tmp_path / "bare")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"):
        (bare / name).unlink(missing_ok=True)
    assert Path(_provider(bare).tokenizer.name_or_path) == trained["base"].resolve()


def test_unknown_module_is_one_line_through_inspect(trained: dict) -> None:
    """(c) An adapter key naming a module the base model lacks: inspect's get_model("cruijff-hf/...")
    (the provider as `inspect eval` finds it) fails with one line naming the key. The CLI prints
    inspect's traceback, then this line as the last line of the job's output."""
    from inspect_ai.model import get_model

    from cruijff_gen.job.inspect_model import AdapterError

    with pytest.raises(AdapterError) as error:
        get_model("cruijff-hf/broken", memoize=False, model_path=str(trained["broken"]), device="cpu")
    module = "model.layers.0.self_attn.w_proj"
    assert str(error.value) == (
        f"{trained['broken']}: adapter key {KEY_PREFIX}{module}.lora_A.weight names module {module}, which the base "
        f"model {trained['base'].resolve()} does not have (or which has no weight)")


def test_rslora_scale(trained: dict, tmp_path: Path) -> None:
    """`use_rslora: true` scales by lora_alpha / sqrt(r) instead of lora_alpha / r: with r = 4, twice
    the change torchtune's merged checkpoint holds."""
    import torch
    from safetensors.torch import load_file

    config = json.loads((trained["adapter"] / "adapter_config.json").read_text())
    assert config["r"] == 4
    rslora = _copy(trained["adapter"], tmp_path / "rslora")
    (rslora / "adapter_config.json").write_text(json.dumps({**config, "use_rslora": True}))
    weights = _provider(rslora).model.state_dict()
    base = load_file(trained["base"] / "model.safetensors")
    merged = load_file(next(trained["merged"].glob("model*.safetensors")))
    module = "model.layers.1.mlp.down_proj.weight"
    torch.testing.assert_close(weights[module] - base[module], 2 * (merged[module] - base[module]), atol=1e-5, rtol=1e-4)
