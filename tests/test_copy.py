"""Real `copier copy` of real designs: the tree, the commit, and every value checked against the
design (expectations written here from the design dict, independently of cruijff_gen's plan)."""

from __future__ import annotations

import filecmp
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import designs
from conftest import EXAMPLE

pytestmark = pytest.mark.copier


def git(dest: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=dest, check=True, capture_output=True, text=True).stdout


def load(path: Path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def sbatch(script: Path) -> dict[str, str]:
    out = {}
    for line in script.read_text().splitlines():
        if line.startswith("#SBATCH --"):
            key, _, value = line[len("#SBATCH --"):].partition("=")
            out[key] = value
    return out


def command(script: Path, program: str) -> list[str]:
    text = script.read_text()
    start = text.index("\n" + program + " ") + 1
    block = []
    for line in text[start:].splitlines():
        block.append(line.rstrip("\\").rstrip())
        if not line.endswith("\\"):
            break
    return shlex.split(" ".join(block))


def option_values(argv: list[str], option: str) -> list[str]:
    return [argv[i + 1] for i, w in enumerate(argv[:-1]) if w == option]


# --------------------------------------------------------------------------- the example
def test_example_tree_commit_and_clean(scaffold):
    dest = scaffold(EXAMPLE)
    design = load(EXAMPLE)
    for top in ("experiment_summary.yaml", "README.md", ".copier-answers.yml", ".pre-commit-config.yaml", "submit.sh",
                "logs/scaffold-experiment.log", "logs/scaffold-torchtune.log", "logs/scaffold-inspect.log"):
        assert (dest / top).is_file(), top
    for run in design["runs"]:
        rdir = dest / run["name"]
        training = {"setup_finetune.yaml", "finetune.yaml", "finetune.slurm"}
        present = {p.name for p in rdir.iterdir() if p.is_file()}
        if run["type"] == "fine-tuned":
            assert training <= present
        else:
            assert not training & present
    for cell in design["evaluation"]["matrix"]:
        eval_dir = dest / cell["run"] / "eval"
        assert (eval_dir / "logs").is_dir()
        stems = [f"{t}_epoch{e}" for t in cell["tasks"] for e in cell["epochs"]] if cell["epochs"] else cell["tasks"]
        for stem in stems:
            assert (eval_dir / f"{stem}.yaml").is_file() and (eval_dir / f"{stem}.slurm").is_file()
    assert git(dest, "rev-list", "--count", "HEAD").strip() == "1"
    assert git(dest, "status", "--porcelain") == ""
    tracked = set(git(dest, "ls-files").split())
    assert {"logs/scaffold-experiment.log", ".copier-answers.yml", "experiment_summary.yaml"} <= tracked
    log = (dest / "logs/scaffold-experiment.log").read_text()
    assert log.startswith("[20") and "\nDetails: " in log and "\nResult: " in log
    # the summary in the repo says what the design file said
    assert load(dest / "experiment_summary.yaml")["runs"] == design["runs"]


def test_copies_are_byte_identical_outside_logs(scaffold, tmp_path):
    first, second = scaffold(EXAMPLE, "one"), scaffold(EXAMPLE, "two")
    cmp = filecmp.dircmp(first, second, ignore=[".git", "logs"])

    def differing(c: filecmp.dircmp) -> list[str]:
        out = c.diff_files + c.left_only + c.right_only + c.funny_files
        for sub in c.subdirs.values():
            out += differing(sub)
        return out

    assert differing(cmp) == []
    for path in first.rglob("*"):
        if path.is_file() and ".git" not in path.parts and "logs" not in path.relative_to(first).parts[:1]:
            assert path.read_bytes() == (second / path.relative_to(first)).read_bytes(), path


def test_verify_passes_on_fresh_copy(scaffold):
    dest = scaffold(EXAMPLE)
    result = subprocess.run([sys.executable, "-m", "cruijff_gen", "verify", str(dest)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------- semantics
def check_finetune(dest: Path, design: dict, run: dict, catalog_gpus: int) -> None:
    controls = design["controls"]
    params = {**controls, **run.get("parameters", {})}
    rdir = dest / run["name"]
    cfg = load(rdir / "finetune.yaml")
    exp_dir = design["experiment"]["dir"]
    assert cfg["model"]["lora_rank"] == params["lora_rank"]
    assert cfg["model"]["lora_alpha"] == params.get("lora_alpha", 2 * params["lora_rank"])
    lr = float(params.get("lr", 5e-5))
    assert isinstance(cfg["optimizer"]["lr"], float) and cfg["optimizer"]["lr"] == lr
    assert cfg["batch_size"] == params["batch_size"] and isinstance(cfg["batch_size"], int)
    assert cfg["epochs"] == params["epochs"]
    assert cfg["seed"] == params.get("seed", 14)
    assert cfg["output_dir"] == f"{exp_dir}/{run['name']}/artifacts/"
    assert cfg["checkpointer"]["output_dir"] == cfg["output_dir"]
    assert cfg["dataset"]["system_prompt"] == params["system_prompt"]
    assert cfg["dataset"].get("prompt") == params.get("prompt") and "prompt_template" not in cfg["tokenizer"]
    assert cfg["dataset"]["model_dir"] == cfg["checkpointer"]["checkpoint_dir"]  # its chat template
    if params.get("validation_during_training"):
        assert cfg["dataset_val"]["field"] == "validation" and cfg["run_val_every_n_steps"] > 0
    else:
        assert "dataset_val" not in cfg and "run_val_every_n_steps" not in cfg
    for key in ("lora_dropout",):
        if key in params:
            assert cfg["model"][key] == params[key]
    setup = load(rdir / "setup_finetune.yaml")
    assert setup["parameters"]["lr"] == lr and setup["parameters"]["lora_rank"] == params["lora_rank"]

    script = rdir / "finetune.slurm"
    directives = sbatch(script)
    compute = run.get("compute", {})
    gpus = compute.get("gpus", catalog_gpus)
    assert directives["job-name"] == run["name"]
    assert directives["gres"] == f"gpu:{gpus}"
    if "mem" in compute:
        assert directives["mem"] == compute["mem"]
    if "time" in compute:
        assert directives["time"] == compute["time"]
    assert directives["output"].startswith(f"{exp_dir}/{run['name']}/artifacts/")
    argv = command(script, "tune")
    if gpus == 1:
        assert argv[:3] == ["tune", "run", "cruijff_gen/job/recipes/lora_finetune_single_device.py"]
    else:
        assert argv[:4] == ["tune", "run", f"--nproc_per_node={gpus}", "cruijff_gen/job/recipes/lora_finetune_distributed.py"]
    assert argv[-2:] == ["--config", f"{exp_dir}/{run['name']}/finetune.yaml"]


def check_cells(dest: Path, design: dict) -> int:
    ev = design["evaluation"]
    exp_dir = design["experiment"]["dir"]
    tasks = {t["name"]: t for t in ev["tasks"]}
    runs = {r["name"]: r for r in design["runs"]}
    models = {m["name"]: m for m in design["models"]["base"]}
    n = 0
    for entry in ev["matrix"]:
        run = runs[entry["run"]]
        params = {**design["controls"], **run.get("parameters", {})}
        epochs = entry.get("epochs")
        if run["type"] == "fine-tuned" and epochs is None:
            epochs = [params["epochs"] - 1]
        for task_name in entry["tasks"]:
            task = tasks[task_name]
            for epoch in epochs or [None]:
                stem = task_name if epoch is None else f"{task_name}_epoch{epoch}"
                eval_dir = dest / run["name"] / "eval"
                settings = load(eval_dir / f"{stem}.yaml")
                if run["type"] == "fine-tuned":
                    model_path = f"{exp_dir}/{run['name']}/artifacts/epoch_{epoch}"
                elif run["type"] == "control":
                    model_path = models[run["model"]]["path"]
                else:
                    model_path = run["parameters"]["checkpoint_path"]
                assert settings["model_path"] == model_path
                assert settings["prompt"] == task.get("prompt", params.get("prompt"))
                assert settings["system_prompt"] == task.get("system_prompt", params["system_prompt"])
                assert settings["dataset_type"] == params["dataset_type"]
                gen = settings["generation"]
                assert gen["do_sample"] == ev.get("do_sample", False)
                for key in ("max_tokens", "seed", "max_connections"):
                    if key in ev:
                        assert gen[key] == ev[key]
                if ev.get("do_sample"):
                    assert gen["temperature"] == ev["temperature"]
                else:
                    assert "temperature" not in gen
                assert [s["name"] if isinstance(s, dict) else s for s in ev.get("scorers", [])] == [s["name"] for s in settings["scorers"]]
                script = eval_dir / f"{stem}.slurm"
                text = script.read_text()
                assert "export HF_HUB_OFFLINE=1" in text
                argv = command(script, "inspect")
                assert argv[:3] == ["inspect", "eval", f"{task['script']}@{task_name}"]
                assert f"model_path={model_path}" in option_values(argv, "-M")
                assert f"do_sample={'true' if ev.get('do_sample') else 'false'}" in option_values(argv, "-M")
                assert f"config_path={exp_dir}/{run['name']}/eval/{stem}.yaml" in option_values(argv, "-T")
                assert option_values(argv, "--log-dir") == [f"{exp_dir}/{run['name']}/eval/logs"]
                assert not any(v.startswith("prompt=") for v in option_values(argv, "-T"))
                if "max_tokens" in ev:
                    assert option_values(argv, "--max-tokens") == [str(ev["max_tokens"])]
                if ev.get("do_sample"):
                    assert option_values(argv, "--temperature") == [str(ev["temperature"])]
                else:
                    assert "--temperature" not in argv
                n += 1
    return n


CATALOG_GPUS = {"Llama-3.2-1B-Instruct": 1, "Qwen2.5-3B-Instruct": 1, "Llama-3.3-70B-Instruct": 4}


@pytest.mark.parametrize("make", [designs.base, designs.rich], ids=["base", "rich"])
def test_every_value_matches_the_design(scaffold, make):
    design = make()
    dest = scaffold(design)
    for run in design["runs"]:
        if run["type"] == "fine-tuned":
            check_finetune(dest, design, run, CATALOG_GPUS[run["model"]])
    n_cells = check_cells(dest, design)
    assert n_cells == len(list(dest.glob("*/eval/*.slurm")))
    assert git(dest, "status", "--porcelain") == ""


def test_rich_design_specifics(scaffold):
    design = designs.rich()
    dest = scaffold(design, slurm_account="acct1", slurm_partition="gpu", slurm_constraint="gpu80", mail_user="me@example.org", conda_env="tt")
    big = sbatch(dest / "big_r4/finetune.slurm")
    assert big["gres"] == "gpu:4" and big["mem"] == "320G" and big["time"] == "2-00:00:00"
    assert big["account"] == "acct1" and big["partition"] == "gpu" and big["constraint"] == "gpu80"
    assert big["mail-user"] == "me@example.org"
    one = sbatch(dest / "big_r4_1gpu/finetune.slurm")
    assert one["gres"] == "gpu:1" and one["mem"] == "120G"
    assert command(dest / "big_r4_1gpu/finetune.slurm", "tune")[2] == "cruijff_gen/job/recipes/lora_finetune_single_device.py"
    mig = sbatch(dest / "llama_r8/finetune.slurm")
    assert mig["mem"] == "16G" and "partition" not in mig and "constraint" not in mig
    qwen = load(dest / "qwen_r16/finetune.yaml")
    assert qwen["model"]["_component_"] == "torchtune.models.qwen2_5.lora_qwen2_5_3b"
    assert qwen["tokenizer"]["merges_file"] == "/models/Qwen2.5-3B-Instruct/merges.txt"
    assert qwen["checkpointer"]["model_type"] == "QWEN2"
    assert qwen["model"]["lora_alpha"] == 8
    assert load(dest / "llama_r8/finetune.yaml")["optimizer"]["lr"] == 0.0005
    prior = sbatch(dest / "prior_ckpt/eval/capitalization.slurm")
    assert prior["time"] == "00:30:00"
    assert sbatch(dest / "llama_r8/eval/reverse_epoch0.slurm")["time"] == "00:45:00"
    script = (dest / "llama_r8/finetune.slurm").read_text()
    assert 'eval "$(conda shell.bash hook)"' in script and "conda activate tt" in script
    # the hostile prompt arrives byte-exact in training and eval configs
    assert load(dest / "llama_r8/finetune.yaml")["dataset"]["prompt"] == designs.HOSTILE_PROMPT
    assert load(dest / "llama_r8/eval/reverse_epoch1.yaml")["prompt"] == designs.HOSTILE_PROMPT
    assert load(dest / "qwen_base/eval/reverse.yaml")["vis_label"] == "Qwen base"


def test_no_site_specifics_without_settings(scaffold):
    dest = scaffold(designs.base())
    for script in dest.rglob("*.slurm"):
        text = script.read_text()
        for word in ("--account", "--partition", "--constraint", "--mail", "module load", "conda activate", "nomig", "gpu80", "princeton"):
            assert word not in text, (script, word)


def test_unused_fields_are_reported_not_dropped(scaffold):
    design = designs.base()
    design["notes"] = "free text at the top level"
    design["output"] = {"base_directory": "/scratch/out"}
    dest, result = scaffold(design, expect_ok=False)
    assert result.returncode == 0, result.stderr
    for path in ("notes", "output.base_directory"):
        assert path in result.stderr
        assert path in (dest / "logs/scaffold-experiment.log").read_text()


def test_mistral_gets_no_system_turn_and_refuses_a_system_prompt(scaffold):
    design = designs.base()
    design["models"]["base"] = [{"name": "Mistral-7B-Instruct-v0.1", "path": "/models/mistral"}]
    for run in design["runs"]:
        run["model"] = "Mistral-7B-Instruct-v0.1"
    dest, result = scaffold(design, expect_ok=False)
    assert result.returncode != 0 and "controls.system_prompt: Mistral-7B-Instruct-v0.1's chat template has no system turn" in result.stderr
    design["controls"]["system_prompt"] = ""
    dest = scaffold(design, name="mistral_ok")
    cfg = load(dest / "r8/finetune.yaml")
    assert cfg["dataset"]["system_prompt"] == ""
    assert cfg["tokenizer"]["_component_"] == "torchtune.models.mistral.mistral_tokenizer"


def test_answers_file_reads_back_as_the_design_in_either_layout(template_repo, tmp_path):
    """Copier renders the answers file with every section a YAML entry; the render task rewrites
    it with the design as one record (experiment_dir.record_answers), which reads back exactly
    as Copier's did: a text date and a YAML date in experiment.date, NEL in a setting; a design
    JSON cannot hold (a date elsewhere) stays byte for byte what Copier wrote."""
    import datetime as dt

    from cruijff_gen import experiment_dir

    day = dt.date(2025, 10, 22)
    cases = {
        "text_date": (designs.rich(), {}),
        "yaml_date": (designs.variant(designs.base(), "experiment.date", day), {"slurm_account": "a\u0085b"}),
        "date_elsewhere": (designs.variant(designs.base(), "controls.system_prompt", day), {}),
    }
    for name, (design, settings) in cases.items():
        summary = tmp_path / f"{name}.yaml"
        summary.write_text(yaml.safe_dump(design, sort_keys=False, allow_unicode=True), encoding="utf-8")
        extra = [f"--data={k}={v}" for k, v in settings.items()]
        result = subprocess.run([sys.executable, "-m", "copier", "copy", "--trust", "--defaults", "--skip-tasks", "--data-file", str(summary),
                                 *extra, str(template_repo), str(tmp_path / name)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        answers_file = tmp_path / name / ".copier-answers.yml"
        copiers = answers_file.read_text(encoding="utf-8")
        assert "_cruijff_design" not in copiers and "runs" in yaml.safe_load(copiers), name
        answers = experiment_dir.read_design_file(answers_file)
        assert {k: answers[k] for k in design} == yaml.safe_load(summary.read_text()), name
        assert all(answers[k] == v for k, v in settings.items()), name
        experiment_dir.record_answers(tmp_path / name, tuple(design), None)
        recorded = answers_file.read_text(encoding="utf-8")
        assert ("_cruijff_design: |" in recorded) == (name != "date_elsewhere"), name
        assert experiment_dir.read_design_file(answers_file) == answers, name
        if name == "date_elsewhere":
            assert recorded == copiers  # experiment_dir.answers_text writes what the template writes
