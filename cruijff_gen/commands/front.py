"""`cruijff-gen new` / `cruijff-gen update`: the front door to `copier copy` / `copier update`.

Copier reads a data file with a plain YAML loader: broken YAML, binary junk or a top-level list end
in a traceback, and duplicate keys are silently merged. `new` reads the summary first with
cruijff_gen's loader (duplicate keys refused, errors with line and column) and checks the whole
design (same parse stage as the template's task), so bad input gets one readable message and nothing
is written; then it runs the real Copier command. `update` gives Copier no design at all: the
template's task reads the experiment's summary itself, with the same loader.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Any

from .. import lock, yamlio
from ..errors import DesignError, UsageError
from ..experiment_dir import DEST_ENV, DEST_KEY, SUMMARY_ENV, no_copier_keys, read_answers, read_design_file
from ..parse import parse
from ..plan import plan
from ..schema import SETTINGS_KEYS

REPO_ROOT = Path(__file__).resolve().parent.parent.parent


def template_root() -> Path:
    """This checkout of cruijff_gen, when the package runs from one (it holds copier.yml)."""
    if (REPO_ROOT / "copier.yml").is_file():
        return REPO_ROOT
    raise UsageError("--template: cruijff_gen is not running from a checkout of its template; give --template PATH-or-URL")


REMOTE = ("gh:", "gl:", "git@", "git+")


def template_address(text: str) -> str:
    """--template as Copier must record it for a later `copier update`: a URL as given; a local
    directory (a path, relative or not, or a file:// URL, which Copier itself cannot read) as an
    absolute path."""
    if text.startswith(REMOTE) or ("://" in text and not text.startswith("file://")):
        return text
    path = Path(urllib.parse.unquote(urllib.parse.urlparse(text).path)) if text.startswith("file://") else Path(text).expanduser()
    if not path.is_dir():
        raise UsageError(f"--template: {text}: no such directory (give the cruijff_gen checkout as a path, or a git URL)")
    return str(path.resolve())


def relative_template(src: Any) -> str | None:
    """One line when Copier recorded the template as a relative path (`copier copy ../cruijff_gen`):
    `copier update` could not find it again ("only supported in git-tracked templates")."""
    if not isinstance(src, str) or src.startswith(("/", "~", *REMOTE)) or "://" in src:
        return None
    here = os.path.join(os.environ.get("PWD", ""), src) if os.environ.get("PWD") else "/absolute/path/to/" + src
    return (f"template {src}: a relative path, which Copier records as given and `copier update` cannot follow later; "
            f"give it as an absolute path (copier copy ... {os.path.normpath(here)} DEST) or a git URL")


def user_settings() -> dict[str, Any]:
    """Copier's per-user defaults (the cluster settings a user keeps in settings.yml)."""
    try:
        from copier._settings import Settings  # Copier's own reader of that file

        return {k: v for k, v in Settings.from_file().defaults.items() if k in SETTINGS_KEYS}
    except Exception:  # noqa: BLE001 - no settings file, or another Copier version: the task will check
        return {}


def _yaml_questions() -> set[str]:
    """The Copier questions of `type: yaml` (copier.yml): Copier reads their --data values as YAML."""
    try:
        questions = read_design_file(REPO_ROOT / "copier.yml")
    except (DesignError, UsageError):
        return set()
    return {k for k, q in questions.items() if isinstance(q, dict) and q.get("type") == "yaml"}


def _data_pairs(pairs: list[str]) -> dict[str, Any]:
    out = {}
    as_yaml = _yaml_questions() if pairs else set()
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UsageError(f"--data: expected KEY=VALUE, got {pair!r}")
        if key in as_yaml:  # `--data 'finetune_overrides={device: cpu}'`, read as Copier reads it
            try:
                out[key] = yamlio.load(value)
            except Exception as exc:  # noqa: BLE001 - any YAML problem becomes one line
                raise UsageError(f"--data {key}: not valid YAML: {str(exc).splitlines()[0]}") from None
        else:
            out[key] = value
    no_copier_keys(out, "--data ")
    return out


def check(summary: Path, settings: dict[str, Any]) -> None:
    design = read_design_file(summary)
    no_copier_keys(design, "")
    plan(parse({**settings, **design}))  # the plan stage refuses too (e.g. finetune_overrides against the design)


def _copier(*args: str, cwd: Path | None = None) -> int:
    return subprocess.run([sys.executable, "-m", "copier", *args], cwd=cwd).returncode


STAGING = ".cruijff-new-"


def _staging_dirs(dest: Path) -> list[Path]:
    return sorted(dest.parent.glob(f".{dest.name}{STAGING}*"))


def _remove_stale_stagings(dest: Path) -> None:
    """Staging directories of earlier `new` runs into the same DEST that were killed."""
    for path in _staging_dirs(dest):
        pid = path.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not lock.alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def new(summary: Path, dest: Path, template: str | None = None, data: list[str] = ()) -> int:
    """Scaffold into a hidden sibling of DEST, then rename it into place: DEST appears only once
    the first commit is complete, so a kill (or a failure) leaves no DEST at all."""
    pairs = _data_pairs(list(data))
    dest = dest.absolute()
    check(summary, {**user_settings(), **pairs, DEST_KEY: str(dest)})
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UsageError(f"{dest} exists and is not empty; choose a new directory (or `cruijff-gen update` an existing experiment)")
    if not dest.parent.is_dir():
        raise UsageError(f"{dest.parent} does not exist; create it first")
    _remove_stale_stagings(dest)
    staging = dest.parent / f".{dest.name}{STAGING}{os.getpid()}"
    source = template_address(template) if template else str(template_root())
    os.environ[SUMMARY_ENV] = str(summary.resolve())  # the task commits the user's own bytes (experiment_dir.user_summary)
    os.environ[DEST_ENV] = str(dest)  # experiment.dir's default is DEST, not the staging directory
    code = _copier("copy", "--trust", "--defaults", "--data-file", str(summary.resolve()), *(f"--data={p}" for p in data), source, str(staging))
    if code != 0 or not (staging / ".git").is_dir():
        shutil.rmtree(staging, ignore_errors=True)
        return code or 1
    if dest.exists():
        dest.rmdir()  # the empty directory the user made for it
    staging.rename(dest)
    print(f"cruijff-gen: the experiment is in {dest}", file=sys.stderr)
    return 0


def update(dest: Path) -> int:
    """`copier update --trust --defaults` in an experiment. Copier is given no design: the
    template's task reads experiment_summary.yaml with cruijff_gen's loader and checks it before
    anything changes (commands/update.py), so there is nothing to check first here."""
    read_answers(dest)  # not an experiment (no answers file): one line, before Copier starts
    return _copier("update", "--trust", "--defaults", cwd=dest)
