"""Compiled bytecode of this package that outlives Copier's fresh clones of the template.

Copier runs every task from a fresh clone of the template: no __pycache__, and with
PYTHONDONTWRITEBYTECODE (set here, and on some clusters) none is ever written, so each task start
compiled the modules it imports again (about 0.13 s for an update's last step, five starts per
`copier update`). hooks/copier_task.py calls install() before it imports anything else of the
package: this package's modules then load through a loader that keeps each module's code object
in the per-user store (store(); merge_base.py keeps the old template versions' code there too),
in a file named by the SHA-256 of the module's source bytes and of what else decides the bytecode
(the interpreter's magic number and optimization level). A changed source file has another name,
so it is compiled afresh and never served stale; the path it runs from does not matter (Copier's
clones have random names; the code's file names are set to the module's own path on load).

Safety: an entry is written to a temporary name and renamed into place (two tasks at once write
the same bytes; the last rename wins), and starts with the SHA-256 of its payload: an entry that
is missing, partial, corrupt or unreadable is ignored and the module compiled from its source as
without the cache. Only this package's modules; the rest of the interpreter keeps its own settings.
Entries older than a day are removed by finish-update (merge_base.discard), like the store's others.
"""

from __future__ import annotations

import _imp
import hashlib
import importlib.machinery
import importlib.util
import marshal
import os
import stat
import sys
import tempfile
from pathlib import Path
from types import CodeType

PACKAGE = Path(__file__).resolve().parent
CACHE_PREFIX = "pyc-"  # the store's directory of them: pyc-<interpreter cache tag>
_DIGEST = hashlib.sha256().digest_size
LOADED: dict[str, str] = {}  # module -> "cache" or "compiled": how this process got its code (for the tests)


def store() -> Path | None:
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


def cache_dir(root: Path) -> Path:
    return root / f"{CACHE_PREFIX}{sys.implementation.cache_tag}"


def entry_name(source: bytes) -> str:
    """The cache file of a module whose source is these bytes, under this interpreter."""
    h = hashlib.sha256(importlib.util.MAGIC_NUMBER)
    h.update(bytes([sys.flags.optimize]))
    h.update(source)
    return h.hexdigest() + ".code"


def read(path: Path) -> CodeType | None:
    """The code object kept in `path`, or None when there is none or it does not check out."""
    try:
        data = path.read_bytes()
        digest, payload = data[:_DIGEST], data[_DIGEST:]
        if len(digest) != _DIGEST or hashlib.sha256(payload).digest() != digest:
            return None
        code = marshal.loads(payload)
    except Exception:  # noqa: BLE001 - any unreadable entry: compile instead
        return None
    return code if isinstance(code, CodeType) else None


def write(path: Path, code: CodeType) -> None:
    """Keep `code` in `path` (temporary name, then rename); a failure only loses the cache."""
    payload = marshal.dumps(code)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(mode=0o700, exist_ok=True)
        with open(tmp, "wb") as handle:
            handle.write(hashlib.sha256(payload).digest() + payload)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


class _Loader(importlib.machinery.SourceFileLoader):
    """A source loader whose code comes from the store when the store has this source's."""

    cache: Path

    def get_code(self, fullname: str) -> CodeType:
        path = self.get_filename(fullname)
        source = self.get_data(path)
        entry = self.cache / entry_name(source)
        code = read(entry)
        if code is None:
            code = self.source_to_code(source, path)
            write(entry, code)
            LOADED[fullname] = "compiled"
        else:
            _imp._fix_co_filename(code, path)  # (what importlib does with a __pycache__ file)
            LOADED[fullname] = "cache"
        return code


class _Finder:
    """Finds this package's modules as Python's path finder does, with _Loader for the sources."""

    def __init__(self, cache: Path) -> None:
        self.cache = cache

    def find_spec(self, name: str, path=None, target=None):  # noqa: ANN001 - importlib's protocol
        if not name.startswith(f"{__package__}."):
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        if spec is None or type(spec.loader) is not importlib.machinery.SourceFileLoader:
            return spec
        origin = Path(spec.origin).resolve()
        if PACKAGE not in origin.parents:
            return spec  # (not this copy of the package: as Python would load it)
        loader = _Loader(spec.loader.name, spec.loader.path)
        loader.cache = self.cache
        spec.loader = loader
        return spec

    def invalidate_caches(self) -> None:
        pass


def install() -> bool:
    """Load this package's modules imported from now on through the cache; False when there is
    no store to keep it in (then nothing changes)."""
    if any(isinstance(finder, _Finder) for finder in sys.meta_path):
        return True
    root = store()
    if root is None:
        return False
    sys.meta_path.insert(0, _Finder(cache_dir(root)))
    return True
