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

The Jinja templates the package renders (templates/) are compiled by Jinja at each start too
(~40 ms in each process that renders: the copy's render task, finish-update, base-render):
template_cache() keeps them in the same directory and format (render.py sets it up).
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
from typing import Any

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


# --------------------------------------------------------------------------- Jinja's compiled templates
def _environment_settings(environment: Any) -> bytes:
    """What a template's compiled code depends on besides its source and name: Jinja's version and
    the environment's syntax, options, extensions and the names of its filters and tests (a filter
    that does not exist is a compile-time error)."""
    import jinja2

    env = environment
    return repr((
        jinja2.__version__, importlib.util.MAGIC_NUMBER, sys.flags.optimize, type(env).__qualname__,
        env.code_generator_class.__qualname__, env.block_start_string, env.block_end_string,
        env.variable_start_string, env.variable_end_string, env.comment_start_string, env.comment_end_string,
        env.line_statement_prefix, env.line_comment_prefix, env.trim_blocks, env.lstrip_blocks,
        env.newline_sequence, env.keep_trailing_newline, env.optimized, env.autoescape, env.is_async,
        env.finalize is not None, sorted(env.extensions), sorted(env.filters), sorted(env.tests),
    )).encode("utf-8")


def template_cache(environment: Any) -> Any:
    """A Jinja bytecode cache for `environment` (set up, filters added) in the store, or None
    without one. Jinja's own keys a template by its file's path, a fresh clone's each time: this one
    by its name, its source's checksum and the environment's settings, in the format above."""
    import jinja2

    root = store()
    if root is None:
        return None
    directory = cache_dir(root)
    settings = _environment_settings(environment)

    class TemplateCache(jinja2.BytecodeCache):
        def get_cache_key(self, name: str, filename: str | None = None) -> str:
            return super().get_cache_key(name)  # (not the file's path)

        def _path(self, bucket: Any) -> Path:
            h = hashlib.sha256(settings)
            h.update(f"\0{bucket.key}\0{bucket.checksum}".encode())
            return directory / f"{h.hexdigest()}.template"

        def load_bytecode(self, bucket: Any) -> None:
            code = read(self._path(bucket))
            if code is not None:
                bucket.code = code

        def dump_bytecode(self, bucket: Any) -> None:
            if bucket.code is not None:
                write(self._path(bucket), bucket.code)

    return TemplateCache()
