"""The base of an update's 3-way merge: what the *old* design generated with the *old* template.

When the template version did not change (the usual update: the summary changed), the base is the
old design rendered by the current code, which is exact. When it did change, the base must come
from the old version's code: `copier update` runs our task in a throw-away render of the old
template version, and that task keeps a copy of its own `cruijff_gen` package here (a few dozen
small files, instead of rendering thousands), keyed by the template version (`_src_path` and
`_commit` of the answers file it rendered: there the answers file holds only these, which spares
Copier dumping the whole design into each throw-away copy; versions before that keyed it by the
whole answers text, which is looked up too). finish-update looks it up by the answers file of the
last commit and runs it in a subprocess:

    PYTHONPATH=<stored> python -m cruijff_gen base-render ANSWERS_FILE   ->  {path: text} as JSON

`base-render` is the interface between template versions: keep it stable.

The store is one private directory per user under the system's temporary directory; entries are
removed by the update that used them, and entries older than a day by any later update.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import yamlio

MAX_AGE_S = 24 * 3600
PACKAGE = Path(__file__).resolve().parent


def _store() -> Path | None:
    """The per-user directory (created 0700), or None when it is not safely ours."""
    path = Path(tempfile.gettempdir()) / f"cruijff_gen-{os.getuid()}"
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        info = path.lstat()
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        return None
    return path


def _version(answers_text: str) -> tuple[str, str] | None:
    """(_src_path, _commit) of an answers file: the template version it was rendered from. Read
    from those two top-level entries alone (a full answers file is large; the throw-away renders'
    holds nothing else, see the answers file's template)."""
    lines = answers_text.splitlines(keepends=True)
    picked, keep = [], False
    for line in lines:
        if not line.startswith((" ", "\t")):
            keep = line.startswith(("_commit:", "_src_path:"))
        if keep:
            picked.append(line)
    try:
        data = yamlio.load("".join(picked))
    except Exception:  # noqa: BLE001 - an unusual layout: read the whole file
        try:
            data = yamlio.load(answers_text)
        except Exception:  # noqa: BLE001
            return None
    if not isinstance(data, dict) or not data.get("_src_path") or not data.get("_commit"):
        return None
    return str(data["_src_path"]), str(data["_commit"])


def _entries(store: Path, answers_text: str) -> list[Path]:
    """Where the code for this answers file's template version is kept: by its version, and (how
    versions before that keyed it) by the whole answers text."""
    version = _version(answers_text)
    keys = [hashlib.sha256("\0".join(version).encode("utf-8")).hexdigest()[:40]] if version else []
    keys.append(hashlib.sha256(answers_text.encode("utf-8")).hexdigest()[:40])
    return [store / f"code-{key}" for key in keys]


def keep_code(answers_text: str) -> None:
    """Called in Copier's throw-away renders: keep this template version's package."""
    store = _store()
    if store is None or not answers_text.strip():
        return  # (Copier's render of the new version may leave its answers file empty: not needed)
    target = _entries(store, answers_text)[0]
    if (target / PACKAGE.name).is_dir():
        return
    tmp = Path(tempfile.mkdtemp(dir=store, prefix=".code-"))
    try:
        shutil.copytree(PACKAGE, tmp / PACKAGE.name, ignore=shutil.ignore_patterns("__pycache__"))
        (tmp / "answers.yml").write_text(answers_text, encoding="utf-8")  # what it is for (to inspect)
        tmp.rename(target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another update stored the same version first


def old_rendering(answers_text: str) -> dict[str, str] | None:
    """The old version's rendering of the old design (its stored package run on the answers
    file of the last commit), or None when that version's package is not stored or fails."""
    store = _store()
    if store is None:
        return None
    code = next((entry for entry in _entries(store, answers_text) if (entry / PACKAGE.name).is_dir()), None)
    if code is None:
        return None
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".yml", dir=store, delete=False) as handle:
        handle.write(answers_text)
    try:
        result = subprocess.run(
            [sys.executable, "-m", PACKAGE.name, "base-render", handle.name],
            env={**os.environ, "PYTHONPATH": str(code)}, capture_output=True, text=True,
        )
    finally:
        os.unlink(handle.name)
    if result.returncode != 0:
        return None
    try:
        files = json.loads(result.stdout)
    except ValueError:
        return None
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        return None
    return files


def discard(*answers_texts: str) -> None:
    """Forget the entries for these answers files, and every entry older than a day."""
    store = _store()
    if store is None:
        return
    for text in answers_texts:
        for entry in _entries(store, text):
            shutil.rmtree(entry, ignore_errors=True)
    now = time.time()
    for entry in store.glob("code-*"):
        try:
            if now - entry.stat().st_mtime > MAX_AGE_S:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            pass
