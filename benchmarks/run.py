#!/usr/bin/env python3
"""Benchmark cruijff_gen at scale: synthetic designs of 10, 100 and 1,000 fine-tuned runs.

    .venv/bin/python benchmarks/run.py [--sizes 10,100,1000] [--repeat 3] [--json FILE] [--keep]

Everything runs the real programs, the way a user does (see benchmarks/README.md):

* copy       `copier copy --trust --defaults --data-file design.yaml TEMPLATE DEST` end to end
             (Copier renders the answers file, its task renders + verifies + commits)
* copier     the same with `--skip-tasks`: Copier's own part (clone, questions, answers file)
* task       the render task alone (`hooks/copier_task.py render --operation copy --commit .`)
             in a destination holding only the answers file Copier wrote
* plain      `copier copy` of a static template (no tasks, no .jinja files) holding as many files
             of the same sizes as the scaffold: what Copier itself costs for such a tree
* verify     `python -m cruijff_gen verify DEST`
* update-lr  edit one run's lr in experiment_summary.yaml, commit, `copier update --trust
             --defaults` (the README's command); checks the update commit's files
* update-add the same, adding one fine-tuned run (2 eval epochs)
* hook       `pre-commit run` (the experiment's installed hook) after staging a one-file change
* commit     `git commit` of a one-file change, the installed hook included

Times are medians of --repeat runs (wall clock; the static-template copy: --plain-repeat runs);
CPU is user+sys of the whole process tree. A failed `copier update` is reported (not timed), undone,
and the benchmark goes on. The
template under test is the working tree holding this script (committed or not, like the test
suite's `template_repo` fixture), copied into a temporary git repository. Targets are printed
with PASS/FAIL; nothing is asserted. Nothing outside the temporary directory is written.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
BIN = str(Path(PY).parent)
MODELS = ("Llama-3.2-1B-Instruct", "Qwen2.5-3B-Instruct")
SHORT = {"Llama-3.2-1B-Instruct": "llama", "Qwen2.5-3B-Instruct": "qwen"}
RANKS = (4, 8, 16, 32, 64)
TASK = "capitalization"
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024

# Targets (printed next to the numbers, never asserted).
COPY_LIMIT_S = 15.0
PLAIN_RATIO_LIMIT = 2.0
PER_RUN_RATIO_LIMIT = 1.3
UPDATE_LIMIT_S = 10.0
VERIFY_LIMIT_S = 3.0
HOOK_LIMIT_S = 2.0
# Ratios within one run (robust to the machine's load): the cost of a change follows the change.
UPDATE_VS_COPIER_LIMIT = 1.5  # one-lr update / Copier's own --skip-tasks copy, largest size
UPDATE_GROWTH_LIMIT = 1.5  # one-lr update at the largest size / at the next smaller one
HOOK_GROWTH_LIMIT = 1.2  # pre-commit hook, one-file change: largest size / smallest
VERIFY_VS_TASK_LIMIT = 0.3  # full verify / the render task, largest size


# --------------------------------------------------------------------------- designs
def run_name(i: int) -> str:
    model = MODELS[i % len(MODELS)]
    return f"{SHORT[model]}_r{RANKS[(i // 2) % len(RANKS)]}_{i:04d}"


def design(n: int) -> dict[str, Any]:
    """n fine-tuned runs over two catalog models (ranks x lrs), each evaluated at epochs 0 and 1,
    plus one control run (base model) per model."""
    runs, matrix = [], []
    for i in range(n):
        name = run_name(i)
        lr = f"{1 + (i // 10) % 9}e-{4 + (i // 90) % 3}"
        runs.append({"name": name, "type": "fine-tuned", "model": MODELS[i % len(MODELS)],
                     "parameters": {"lora_rank": RANKS[(i // 2) % len(RANKS)], "lr": lr}})
        matrix.append({"run": name, "tasks": [TASK], "epochs": [0, 1]})
    for model in MODELS:
        name = f"base_{SHORT[model]}"
        runs.append({"name": name, "type": "control", "model": model, "parameters": {}})
        matrix.append({"run": name, "tasks": [TASK], "epochs": None})
    return {
        "experiment": {"name": f"bench_{n}", "project": "bench", "question": "Does rank or lr matter more?",
                       "date": "2025-10-22", "dir": f"/scratch/u/bench_{n}"},
        "tools": {"preparation": "torchtune", "evaluation": "inspect-ai"},
        "controls": {"epochs": 2, "batch_size": 4, "system_prompt": "",
                     "prompt": "Capitalize the following word: {input}\n", "dataset_type": "chat_completion"},
        "models": {"base": [{"name": m, "path": f"/models/{m}"} for m in MODELS]},
        "data": {"training": {"path": "/data/words.json", "format": "json", "splits": {"train": 240, "validation": 30}}},
        "runs": runs,
        "evaluation": {"tasks": [{"name": TASK, "script": "/tasks/cap_task.py", "dataset": "/data/words.json"}],
                       "matrix": matrix},
    }


def write_yaml(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1_000_000), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- processes
@dataclass
class Sample:
    wall: float  # seconds
    cpu: float  # user + sys seconds of the whole (waited-for) process tree
    max_rss_kb: int  # largest single process of the tree
    tree_rss_kb: int = 0  # largest sum of RSS over the live tree (sampled every 20 ms)
    rc: int = 0


class TreeSampler(threading.Thread):
    """Polls /proc for the RSS of a process and all its descendants; keeps the largest sum."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak_kb, self._done = pid, 0, threading.Event()

    @staticmethod
    def _children(pid: int) -> list[int]:
        out: list[int] = []
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/children") as fh:
                    out += [int(c) for c in fh.read().split()]
        except OSError:
            pass
        return out

    def _tree_kb(self) -> int:
        total, todo, seen = 0, [self.pid], set()
        while todo:
            pid = todo.pop()
            if pid in seen:
                continue
            seen.add(pid)
            try:
                with open(f"/proc/{pid}/statm") as fh:
                    total += int(fh.read().split()[1]) * PAGE_KB
            except (OSError, IndexError, ValueError):
                continue
            todo += self._children(pid)
        return total

    def run(self) -> None:
        while not self._done.is_set():
            self.peak_kb = max(self.peak_kb, self._tree_kb())
            self._done.wait(0.02)

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak_kb


class Failed(RuntimeError):
    pass


def measure(argv: list[str], cwd: Path, env: dict[str, str], sample_tree: bool = False, check: bool = True) -> tuple[Sample, str]:
    """Run argv to completion; its wall time, tree CPU time and memory, and its stdout+stderr."""
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        sampler = TreeSampler(proc.pid) if sample_tree else None
        if sampler:
            sampler.start()
        # wait4: the rusage of this child and every descendant it waited for (max RSS: the largest one)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        tree_kb = sampler.stop() if sampler else 0
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    if check and proc.returncode != 0:
        raise Failed(f"{' '.join(map(str, argv))} (in {cwd}) exited {proc.returncode}:\n{text[-3000:]}")
    return Sample(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, tree_kb, proc.returncode), text


def git(cwd: Path, env: dict[str, str], *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


# --------------------------------------------------------------------------- fixtures
def make_env(work: Path, template: Path) -> dict[str, str]:
    settings = work / "copier-settings.yml"
    settings.write_text("{}\n")
    env = dict(os.environ)
    env.update({
        "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
        "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid",
        "COPIER_SETTINGS_PATH": str(settings),  # never the developer's cluster defaults
        "PRE_COMMIT_HOME": str(work / "pre-commit-home"),
        "PATH": BIN + os.pathsep + env.get("PATH", ""),  # cruijff-gen for the experiment's hook
        # `cruijff-gen verify` and the hook import the package under test, not an installed one
        "PYTHONPATH": str(template) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""),
    })
    env.pop("COPIER_SETTINGS", None)
    return env


def make_template(source: Path, dest: Path, env: dict[str, str]) -> Path:
    """The source working tree as it is now (committed or not) in a fresh one-commit git repo."""
    files = git(source, env, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    for rel in filter(None, files):
        src = source / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    git(dest, env, "init", "-q", "-b", "main")
    git(dest, env, "add", "-A")
    git(dest, env, "commit", "-q", "-m", "template under benchmark")
    return dest


def make_plain_template(scaffold: Path, dest: Path, env: dict[str, str]) -> int:
    """A static Copier template (no questions, no tasks, no .jinja files) whose template/ holds a
    file of the same size for every file of the scaffold. Returns the number of files."""
    (dest / "template").mkdir(parents=True)
    (dest / "copier.yml").write_text("_subdirectory: template\n")
    files = [f for f in git(scaffold, env, "ls-files", "-z").split("\0") if f]
    for rel in files:
        target = dest / "template" / (rel if rel != ".copier-answers.yml" else "copier-answers.static.yml")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(scaffold / rel, target)
    git(dest, env, "init", "-q", "-b", "main")
    git(dest, env, "add", "-A", "--force")
    git(dest, env, "commit", "-q", "-m", "static template")
    return len(files)


# --------------------------------------------------------------------------- design edits
def set_lr(summary: Path, run: str, lr: str) -> None:
    """Change one run's lr the way a user does: one line of experiment_summary.yaml."""
    lines = summary.read_text(encoding="utf-8").splitlines(keepends=True)
    name_at = next(i for i, line in enumerate(lines) if re.fullmatch(rf"(- |  )name: {re.escape(run)}\n", line))
    start = next(i for i in range(name_at, -1, -1) if lines[i].startswith("- "))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith("  ")), len(lines))
    lr_at = next(i for i in range(start, end) if re.match(r"\s+lr: ", lines[i]))
    lines[lr_at] = re.sub(r"lr: .*", f"lr: {lr}", lines[lr_at])
    summary.write_text("".join(lines), encoding="utf-8")
    got = next(r for r in yaml.safe_load(summary.read_text())["runs"] if r["name"] == run)["parameters"]["lr"]
    if float(got) != float(lr):
        raise Failed(f"editing {summary}: lr of {run} is {got!r}, not {lr!r}")


def add_run(summary: Path, name: str) -> None:
    text = summary.read_text(encoding="utf-8")
    header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    data = yaml.safe_load(text)
    data["runs"].append({"name": name, "type": "fine-tuned", "model": MODELS[0], "parameters": {"lora_rank": 8, "lr": "3e-4"}})
    data["evaluation"]["matrix"].append({"run": name, "tasks": [TASK], "epochs": [0, 1]})
    summary.write_text(header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1_000_000), encoding="utf-8")


def last_commit_files(dest: Path, env: dict[str, str]) -> list[str]:
    return sorted(filter(None, git(dest, env, "diff", "--name-only", "HEAD~1", "HEAD").splitlines()))


def scope_problems(files: list[str], allowed_prefix: str | None, allowed: set[str], required: str) -> list[str]:
    extra = [f for f in files if not ((allowed_prefix and f.startswith(allowed_prefix)) or f in allowed or f.startswith("logs/"))]
    missing = [] if required in files else [f"missing {required}"]
    return [f"also touched {f}" for f in extra] + missing


# --------------------------------------------------------------------------- one size
@dataclass
class Step:
    samples: list[Sample] = field(default_factory=list)
    note: str = ""
    ok: bool = True
    failed: int = 0  # runs of the command that failed (not in samples)

    @property
    def wall(self) -> float:  # callers check `samples` first
        return statistics.median(s.wall for s in self.samples)

    @property
    def cpu(self) -> float:
        return statistics.median(s.cpu for s in self.samples)

    def as_dict(self) -> dict[str, Any]:
        return {"median_s": round(self.wall, 4) if self.samples else None, "cpu_median_s": round(self.cpu, 4) if self.samples else None,
                "samples": [asdict(s) for s in self.samples], "failed": self.failed, "note": self.note, "ok": self.ok}


STEPS = {
    "copy": "copy: copier copy end to end (render + verify + commit)",
    "copier": "  Copier's own part (`--skip-tasks`)",
    "task": "  render task alone (render + verify + commit)",
    "plain": "plain copier copy of a static template, same files",
    "verify": "cruijff-gen verify",
    "update-lr": "copier update: one run's lr changed",
    "update-add": "copier update: one run added",
    "hook": "pre-commit run (installed hook), one-file change",
    "commit": "git commit of a one-file change, hook included",
}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def bench_update(n: int, repeat: int, dest: Path, env: dict[str, str], label: str, edit, ok_note: str) -> Step:
    """`repeat` times: edit the summary (edit(i) -> run, message, allowed files, allowed prefix),
    commit, `copier update`; check the update commit's files. A failed update is reported in the
    step (not timed) and undone (edit commit dropped, tree reset), and the next one goes on."""
    step, problems = Step(), []
    for i in range(repeat):
        run, message, allowed, prefix = edit(i)
        git(dest, env, "commit", "-q", "--no-verify", "-am", message)
        sample, text = measure([PY, "-m", "copier", "update", "--trust", "--defaults"],
                               dest, env, sample_tree=True, check=False)
        if sample.rc != 0:
            last = [line for line in text.strip().splitlines() if line.strip()][-1:] or ["?"]
            step.failed += 1
            problems.append(f"{run}: copier update failed after {sample.wall:.1f} s ({last[0].strip()[:200]})")
            log(f"{n} runs: {label} {i + 1}/{repeat}: FAILED after {sample.wall:.2f} s: {last[0].strip()[:200]}")
            if git(dest, env, "log", "-1", "--format=%s").strip() == message:
                git(dest, env, "reset", "-q", "--hard", "HEAD~1")
            git(dest, env, "reset", "-q", "--hard", "HEAD")
            git(dest, env, "clean", "-fdq")
            continue
        step.samples.append(sample)
        touched = last_commit_files(dest, env)
        problems += [f"{run}: {p}" for p in scope_problems(touched, prefix, allowed, f"{run}/finetune.yaml")]
        if not git(dest, env, "log", "-1", "--format=%s").startswith("Update ") or git(dest, env, "status", "--porcelain"):
            problems.append(f"{run}: no update commit, or a dirty tree after it")
        log(f"{n} runs: {label} {i + 1}/{repeat}: {sample.wall:.2f} s, {len(touched)} files: {', '.join(touched)}")
    step.ok, step.note = not problems, "; ".join(problems) or ok_note
    return step


def bench_size(n: int, repeat: int, template: Path, work: Path, env: dict[str, str], skip: set[str], plain_repeat: int = 1) -> dict[str, Any]:
    root = work / f"n{n}"
    root.mkdir()
    summary = write_yaml(root / "design.yaml", design(n))
    steps: dict[str, Step] = {}
    copier = [PY, "-m", "copier"]

    # copy, end to end
    step = steps["copy"] = Step()
    dest = None
    for i in range(repeat):
        if dest is not None:
            shutil.rmtree(dest)
        dest = root / f"exp{i}"
        sample, _ = measure([*copier, "copy", "--trust", "--defaults", "--data-file", str(summary), str(template), str(dest)], root, env, sample_tree=True)
        step.samples.append(sample)
        log(f"{n} runs: copy {i + 1}/{repeat}: {sample.wall:.2f} s")
    assert dest is not None
    files = len([f for f in git(dest, env, "ls-files", "-z").split("\0") if f])
    if git(dest, env, "status", "--porcelain") or git(dest, env, "rev-list", "--count", "HEAD").strip() != "1":
        step.ok, step.note = False, "scaffold is not one commit with a clean tree"

    # Copier's part and the task's part, separately
    if "breakdown" not in skip:
        copier_step = steps["copier"] = Step()
        task_step = steps["task"] = Step()
        for i in range(repeat):
            part = root / f"part{i}"
            sample, _ = measure([*copier, "copy", "--trust", "--defaults", "--skip-tasks", "--data-file", str(summary), str(template), str(part)], root, env, sample_tree=True)
            copier_step.samples.append(sample)
            sample, _ = measure([PY, str(template / "hooks" / "copier_task.py"), "render", "--operation", "copy", "--commit", "."], part, env, sample_tree=True)
            task_step.samples.append(sample)
            shutil.rmtree(part)
            log(f"{n} runs: copier part {copier_step.samples[-1].wall:.2f} s, task part {sample.wall:.2f} s")

    # a plain copier copy of a static template with the same files
    if "plain" not in skip:
        plain = root / "plain-template"
        make_plain_template(dest, plain, env)
        step = steps["plain"] = Step()
        for i in range(plain_repeat):
            out = root / f"plain{i}"
            sample, _ = measure([*copier, "copy", "--trust", "--defaults", str(plain), str(out)], root, env, sample_tree=True)
            step.samples.append(sample)
            shutil.rmtree(out)
            log(f"{n} runs: plain copier copy {i + 1}/{plain_repeat}: {sample.wall:.2f} s")
        shutil.rmtree(plain)

    # verify
    step = steps["verify"] = Step()
    for _ in range(repeat):
        sample, _ = measure([PY, "-m", "cruijff_gen", "verify", str(dest)], root, env)
        step.samples.append(sample)
    log(f"{n} runs: verify {step.wall:.2f} s")

    # update after changing one lr / adding one run
    if "update" not in skip:
        def lr_edit(i: int) -> tuple[str, str, set[str], str | None]:
            run = run_name(i)
            set_lr(dest / "experiment_summary.yaml", run, f"{i + 2}.5e-5")
            return run, f"{run}: lr {i + 2}.5e-5", {f"{run}/finetune.yaml", f"{run}/setup_finetune.yaml", "README.md", ".copier-answers.yml"}, None

        def add_edit(i: int) -> tuple[str, str, set[str], str | None]:
            run = f"added_{i}"
            add_run(dest / "experiment_summary.yaml", run)
            return run, f"add {run}", {"README.md", "submit.sh", ".copier-answers.yml"}, f"{run}/"

        steps["update-lr"] = bench_update(n, repeat, dest, env, "update lr", lr_edit,
                                          "touched only {run}/finetune.yaml, {run}/setup_finetune.yaml, README.md, logs/, .copier-answers.yml")
        steps["update-add"] = bench_update(n, repeat, dest, env, "update add", add_edit,
                                           "touched only the new run's files, README.md, submit.sh, logs/, .copier-answers.yml")

    # the pre-commit hook on a one-file change
    if "hook" not in skip:
        slurm = dest / run_name(0) / "finetune.slurm"
        hook = steps["hook"] = Step()
        commit = steps["commit"] = Step()
        for i in range(repeat + 1):  # the first one warms pre-commit's cache up (not counted)
            with slurm.open("a") as fh:
                fh.write(f"# hand note {i}\n")
            git(dest, env, "add", str(slurm))
            sample, text = measure([PY, "-m", "pre_commit", "run"], dest, env, check=False)
            if sample.rc != 0 or "Passed" not in text:
                hook.ok, hook.note = False, text.strip()[-300:]
            if i:
                hook.samples.append(sample)
        for i in range(repeat):
            with slurm.open("a") as fh:
                fh.write(f"# committed note {i}\n")
            git(dest, env, "add", str(slurm))
            sample, text = measure(["git", "commit", "-m", f"note {i}"], dest, env, check=False)
            if sample.rc != 0 or "Passed" not in text or git(dest, env, "status", "--porcelain"):
                commit.ok, commit.note = False, text.strip()[-300:]
            commit.samples.append(sample)
        log(f"{n} runs: hook {hook.wall:.2f} s, commit {commit.wall:.2f} s")

    shutil.rmtree(root)
    return {"runs": n, "files": files, "steps": steps}


# --------------------------------------------------------------------------- report
def fmt_s(x: float) -> str:
    return f"{x:.2f}"


def results_table(results: list[dict[str, Any]]) -> list[str]:
    out = ["| step | runs | files | median s | min–max s | CPU s | per run ms | peak RSS MB (tree / largest process) |",
           "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for key, title in STEPS.items():
        for r in results:
            step = r["steps"].get(key)
            if step is None:
                continue
            if not step.samples:
                out.append(f"| {title} **(failed)** | {r['runs']} | {r['files']} | – | – | – | – | – |")
                continue
            walls = [s.wall for s in step.samples]
            tree = max(s.tree_rss_kb for s in step.samples) / 1024
            largest = max(s.max_rss_kb for s in step.samples) / 1024
            rss = f"{tree:.0f} / {largest:.0f}" if tree else f"– / {largest:.0f}"
            out.append(f"| {title}{'' if step.ok else ' **(check failed)**'} | {r['runs']} | {r['files']} | {fmt_s(step.wall)} | "
                       f"{fmt_s(min(walls))}–{fmt_s(max(walls))} | {fmt_s(step.cpu)} | {1000 * step.wall / r['runs']:.1f} | {rss} |")
    return out


def targets_table(results: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    big, small = results[-1], results[0]
    nb, ns = big["runs"], small["runs"]
    rows: list[dict[str, Any]] = []

    def add(what: str, measured: str, limit: str, ok: bool | None) -> None:
        rows.append({"target": what, "measured": measured, "limit": limit,
                     "pass": "–" if ok is None else ("PASS" if ok else "FAIL")})

    s = big["steps"]
    copy = s["copy"].wall
    add(f"copy + verify + commit, {nb} runs", f"{copy:.2f} s", f"<= {COPY_LIMIT_S:g} s", copy <= COPY_LIMIT_S and s["copy"].ok)
    if "plain" in s:
        ratio = copy / s["plain"].wall
        add(f"copy vs plain copier copy (same {big['files']} files), {nb} runs",
            f"{ratio:.2f}x ({copy:.2f} s / {s['plain'].wall:.2f} s)", f"<= {PLAIN_RATIO_LIMIT:g}x", ratio <= PLAIN_RATIO_LIMIT)
    if len(results) > 1:
        per_big, per_small = copy / nb, small["steps"]["copy"].wall / ns
        ratio = per_big / per_small
        add(f"per-run copy cost, {nb} vs {ns} runs", f"{ratio:.2f}x ({1000 * per_big:.1f} ms / {1000 * per_small:.1f} ms)",
            f"<= {PER_RUN_RATIO_LIMIT:g}x", ratio <= PER_RUN_RATIO_LIMIT)
        marginal = [(results[i]["steps"]["copy"].wall - results[i - 1]["steps"]["copy"].wall) / (results[i]["runs"] - results[i - 1]["runs"])
                    for i in range(1, len(results))]
        add("marginal copy cost per added run (between sizes)",
            ", ".join(f"{results[i]['runs']}→{results[i + 1]['runs']}: {1000 * m:.1f} ms" for i, m in enumerate(marginal)), "(info)", None)
    if "update-lr" in s:
        u = s["update-lr"]
        if u.samples:
            add(f"update of one lr, {nb} runs", f"{u.wall:.2f} s" + (f" ({u.failed} of {u.failed + len(u.samples)} failed)" if u.failed else ""),
                f"<= {UPDATE_LIMIT_S:g} s", u.wall <= UPDATE_LIMIT_S)
        else:
            add(f"update of one lr, {nb} runs", "every update failed", f"<= {UPDATE_LIMIT_S:g} s", False)
        add(f"update of one lr touches only that run's files, {nb} runs", u.note, "that run + README + logs + answers", u.ok)
        a = s["update-add"]
        add(f"update adding one run, {nb} runs", f"{a.wall:.2f} s" if a.samples else "every update failed", "(info)", None)
        add(f"update adding one run touches only its files, {nb} runs", a.note, "new run + README + submit.sh + logs + answers", a.ok)
    if s.get("update-lr") and s["update-lr"].samples:
        u = s["update-lr"]
        if s.get("copier") and s["copier"].samples:
            ratio = u.wall / s["copier"].wall
            add(f"update of one lr vs Copier's own copy (`--skip-tasks`), {nb} runs", f"{ratio:.2f}x ({u.wall:.2f} s / {s['copier'].wall:.2f} s)",
                f"<= {UPDATE_VS_COPIER_LIMIT:g}x", ratio <= UPDATE_VS_COPIER_LIMIT)
        prev = results[-2] if len(results) > 1 else None
        if prev and prev["steps"].get("update-lr") and prev["steps"]["update-lr"].samples:
            pu = prev["steps"]["update-lr"]
            ratio = u.wall / pu.wall
            add(f"update of one lr, {nb} vs {prev['runs']} runs", f"{ratio:.2f}x ({u.wall:.2f} s / {pu.wall:.2f} s)",
                f"<= {UPDATE_GROWTH_LIMIT:g}x", ratio <= UPDATE_GROWTH_LIMIT)
    v = s["verify"]
    add(f"verify, {nb} runs", f"{v.wall:.2f} s", f"<= {VERIFY_LIMIT_S:g} s", v.wall <= VERIFY_LIMIT_S)
    if s.get("task") and s["task"].samples:
        ratio = v.wall / s["task"].wall
        add(f"verify vs the render task, {nb} runs", f"{ratio:.2f}x ({v.wall:.2f} s / {s['task'].wall:.2f} s)",
            f"<= {VERIFY_VS_TASK_LIMIT:g}x", ratio <= VERIFY_VS_TASK_LIMIT)
    if "hook" in s:
        h = s["hook"]
        add(f"pre-commit hook, one-file change, {nb} runs", f"{h.wall:.2f} s", f"<= {HOOK_LIMIT_S:g} s", h.wall <= HOOK_LIMIT_S and h.ok)
        if len(results) > 1 and small["steps"].get("hook") and small["steps"]["hook"].samples:
            sh = small["steps"]["hook"]
            ratio = h.wall / sh.wall
            add(f"pre-commit hook, one-file change, {nb} vs {ns} runs", f"{ratio:.2f}x ({h.wall:.2f} s / {sh.wall:.2f} s)",
                f"<= {HOOK_GROWTH_LIMIT:g}x", ratio <= HOOK_GROWTH_LIMIT and h.ok and sh.ok)
    peak = max(x.tree_rss_kb for x in s["copy"].samples) / 1024
    largest = max(x.max_rss_kb for x in s["copy"].samples) / 1024
    add(f"peak memory of the copy, {nb} runs", f"{peak:.0f} MB process tree (sampled), {largest:.0f} MB largest process", "(info)", None)
    if s.get("update-lr") and s["update-lr"].samples:
        peak = max(x.tree_rss_kb for x in s["update-lr"].samples) / 1024
        add(f"peak memory of an update, {nb} runs", f"{peak:.0f} MB process tree (sampled)", "(info)", None)
    lines = ["| target | measured | limit | result |", "|---|---|---|---|"]
    lines += [f"| {r['target']} | {r['measured']} | {r['limit']} | {r['pass']} |" for r in rows]
    return lines, rows


def machine() -> dict[str, str]:
    def version(*argv: str) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"

    cpu = "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import copier

    return {
        "cpus": str(os.cpu_count()), "cpu": cpu, "python": platform.python_version(),
        "copier": getattr(copier, "__version__", "?"), "git": version("git", "--version"),
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,100,1000", help="comma-separated numbers of fine-tuned runs (default 10,100,1000)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per measurement; medians are reported (default 3)")
    parser.add_argument("--plain-repeat", type=int, default=1,
                        help="repetitions of the static-template copy (the slowest step: ~45 s at 1,000 runs; only its ratio to ours is a target; default 1)")
    parser.add_argument("--json", type=Path, help="also write the results (every sample) as JSON to this file")
    parser.add_argument("--template", type=Path, default=REPO, help="working tree of the template under test (default: this checkout)")
    parser.add_argument("--skip", default="", help="comma-separated parts to leave out: breakdown, plain, update, hook")
    parser.add_argument("--workdir", type=Path, help="where to make the temporary directory (default: the system's)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    sizes = sorted({int(x) for x in args.sizes.split(",") if x.strip()})
    skip = {x.strip() for x in args.skip.split(",") if x.strip()}

    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="cruijff-bench-", dir=args.workdir))
    meta = machine()
    results = []
    try:
        env = make_env(work, work / "cruijff_gen")
        template = make_template(args.template.resolve(), work / "cruijff_gen", env)
        for n in sizes:
            log(f"== {n} fine-tuned runs (+{len(MODELS)} control runs), repeat {args.repeat}")
            results.append(bench_size(n, args.repeat, template, work, env, skip, args.plain_repeat))
    except Failed as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    total = time.perf_counter() - started

    lines = [f"cruijff_gen benchmark: designs of {', '.join(map(str, sizes))} fine-tuned runs (2 eval epochs each) "
             f"+ {len(MODELS)} control runs, models {', '.join(MODELS)}; median of {args.repeat} repetitions "
             f"({args.plain_repeat} for the static-template copy).",
             f"Machine: {meta['cpus']} CPUs ({meta['cpu']}), Python {meta['python']}, copier {meta['copier']}, {meta['git']}; "
             f"load average at start {meta['load average at start']}; temporary files in {work.parent}; "
             f"the benchmark took {total / 60:.1f} min.", "", *results_table(results), ""]
    target_lines, target_rows = targets_table(results)
    lines += target_lines
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({
            "machine": meta, "repeat": args.repeat, "total_s": round(total, 1),
            "sizes": [{"runs": r["runs"], "files": r["files"], "steps": {k: v.as_dict() for k, v in r["steps"].items()}} for r in results],
            "targets": target_rows,
        }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
