"""Shared fixtures: a real git checkout of this template, real `copier copy`, design builders."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "capitalization" / "experiment_summary.yaml"

# Tests never read the developer's git or copier configuration.
os.environ.setdefault("GIT_CONFIG_GLOBAL", os.devnull)
os.environ.setdefault("GIT_CONFIG_NOSYSTEM", "1")
os.environ.setdefault("GIT_AUTHOR_NAME", "test")
os.environ.setdefault("GIT_AUTHOR_EMAIL", "test@example.invalid")
os.environ.setdefault("GIT_COMMITTER_NAME", "test")
os.environ.setdefault("GIT_COMMITTER_EMAIL", "test@example.invalid")
_SETTINGS_DIR = tempfile.mkdtemp(prefix="copier-settings-")
atexit.register(shutil.rmtree, _SETTINGS_DIR, ignore_errors=True)
_SETTINGS = Path(_SETTINGS_DIR) / "settings.yml"
_SETTINGS.write_text("{}\n")
os.environ["COPIER_SETTINGS_PATH"] = str(_SETTINGS)  # never the developer's cluster defaults

# Under pytest-xdist (`-n 2`) each worker is its own process running tests at the same time as the
# others. What cruijff_gen keeps per user under the system's temporary directory (merge_base.py: the
# store an update takes its merge base from and then empties) would be one directory for all
# workers, and one worker's update could remove the entry another's is about to read. Each worker
# gets its own TMPDIR (inherited by copier, its tasks and SLURM jobs); a serial run is unchanged.
if os.environ.get("PYTEST_XDIST_WORKER"):
    _WORKER_TMP = tempfile.mkdtemp(prefix=f"tmp-{os.environ['PYTEST_XDIST_WORKER']}-")
    atexit.register(shutil.rmtree, _WORKER_TMP, ignore_errors=True)
    os.environ["TMPDIR"] = tempfile.tempdir = _WORKER_TMP


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="session")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repository holding this checkout's files as they are now (committed or not), the way
    a user's clone of cruijff_gen looks to Copier."""
    dest = tmp_path_factory.mktemp("template") / "cruijff_gen"
    files = _git(REPO, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    _git(dest, "init", "-q", "-b", "main")
    _git(dest, "add", "-A")
    _git(dest, "commit", "-q", "-m", "template under test")
    return dest


def copier(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real copier CLI."""
    return subprocess.run([sys.executable, "-m", "copier", *args], cwd=cwd, capture_output=True, text=True)


def write_summary(path: Path, design: dict) -> Path:
    path.write_text(yaml.safe_dump(design, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def copier_copy(template: Path, summary: Path, dest: Path, settings: dict[str, str]) -> subprocess.CompletedProcess:
    """The user's command: `copier copy --trust --defaults --data-file SUMMARY [--data K=V...] TEMPLATE DEST`."""
    extra = [f"--data={k}={v}" for k, v in settings.items()]
    return copier("copy", "--trust", "--defaults", "--data-file", str(summary), *extra, str(template), str(dest))


@pytest.fixture
def scaffold(template_repo: Path, tmp_path: Path):
    """scaffold(design_or_path, name="exp", **settings) -> experiment dir, via real `copier copy`."""

    def run(design: dict | Path, name: str = "exp", expect_ok: bool = True, **settings: str):
        summary = design if isinstance(design, Path) else write_summary(tmp_path / f"{name}.summary.yaml", design)
        dest = tmp_path / name
        result = copier_copy(template_repo, summary, dest, settings)
        if expect_ok:
            assert result.returncode == 0, result.stderr
        return dest if expect_ok else (dest, result)

    return run


@pytest.fixture(scope="session")
def _scaffolds(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    return {}, tmp_path_factory.mktemp("scaffolds")


@pytest.fixture
def scaffold_copy(template_repo: Path, tmp_path: Path, _scaffolds: tuple[dict, Path]):
    """scaffold_copy(design, name="exp", **settings) -> experiment dir: like `scaffold`, but the real
    `copier copy` of one design, settings and template state runs once per session, and each test
    gets its own copy of that experiment (`shutil.copytree`: a git repository moved is a real
    repository still, hooks and all; nothing in it names its own directory). For tests that start
    from a scaffold and change it, not for tests of what `copier copy` does."""
    cache, root = _scaffolds

    def run(design: dict, name: str = "exp", **settings: str) -> Path:
        user = Path(os.environ["COPIER_SETTINGS_PATH"])
        key = (
            yaml.safe_dump(design, sort_keys=True, allow_unicode=True), tuple(sorted(settings.items())),
            _git(template_repo, "rev-parse", "HEAD"), _git(template_repo, "status", "--porcelain"),
            user.read_text() if user.is_file() else "",
        )
        if key not in cache:
            made = root / str(len(cache)) / name
            made.parent.mkdir()
            result = copier_copy(template_repo, write_summary(made.parent / "summary.yaml", design), made, settings)
            assert result.returncode == 0, result.stderr
            cache[key] = made
        dest = tmp_path / name
        shutil.copytree(cache[key], dest, symlinks=True)
        return dest

    return run


def copier_answers(design: dict) -> dict:
    """The answers `copier copy --defaults --data-file` records for `design`: every question of
    copier.yml, a section the data file lacks at the question's default (Copier's own filling,
    e.g. `controls: {}`), plus the template keys. What the template's task reads."""
    questions = yaml.safe_load((REPO / "copier.yml").read_text(encoding="utf-8"))
    answers = {key: q.get("default") for key, q in questions.items() if not key.startswith("_")}
    return {**answers, **design, "_src_path": str(REPO)}


def render_task(design: dict, dest: Path, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """In-process, the step `copier copy` runs in a new destination: its answers file written, then
    the template's task (`cruijff-gen render --operation copy --commit .`, see copier.yml _tasks),
    called through the CLI's own entry point. Returns (exit code, stderr). The same messages as the
    real `copier copy` (tests/test_bad_input.py checks a few cases both ways)."""
    from cruijff_gen import cli

    dest.mkdir(parents=True, exist_ok=True)
    (dest / ".copier-answers.yml").write_text(yaml.safe_dump(copier_answers(design), allow_unicode=True), encoding="utf-8")
    capsys.readouterr()
    code = cli.main(["render", "--operation", "copy", "--data-keys", ",".join(design), "--commit", str(dest)])
    return code, capsys.readouterr().err


def error_lines(stderr: str) -> list[str]:
    """The error lines of cruijff-gen's messages (one per problem)."""
    return [line for line in stderr.splitlines() if line.startswith("cruijff-gen: error:")]


# Session fixtures shared by several test modules are registered here, once: a fixture imported into
# two test modules is two fixtures, each set up once (two SLURM clusters, two runs of the tiny
# experiment). Test modules use them without importing them.
from tiny_run import tiny_experiment, tiny_submitted  # noqa: E402, F401
from tiny_trainings import recipe_model, recipe_runs  # noqa: E402, F401

from slurm_cluster import slurm_cluster  # noqa: E402, F401

# Under `-n N --dist loadfile` each file goes to one worker, and a session fixture is set up once per
# worker that uses it: the files sharing the tiny experiment's run (tests/tiny_run.py), and those
# sharing the tiny trainings (tests/tiny_trainings.py), go to the same worker, as one unit each.
SAME_WORKER = {"tests/test_tiny_experiment.py": "tests/test_lifecycle.py", "tests/test_adapter_eval.py": "tests/test_job_recipes.py"}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    if config.getvalue("dist") != "loadfile":
        return None  # xdist's own scheduler
    from xdist.scheduler import LoadFileScheduling

    class Scheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            return SAME_WORKER.get(scope, scope)

    return Scheduling(config, log)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", help="rewrite tests/golden from the current generator (review the diff)")
