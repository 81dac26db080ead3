"""The package's compiled code kept in the per-user store (cruijff_gen/bytecode.py): Copier runs every
task from a fresh clone of the template, and the second start of the same code must read the kept
bytecode instead of compiling, from whatever path it runs; a changed source file must never be
served stale, and a corrupt entry must not break a task. Real subprocesses, each from its own copy
of the package (as Copier's clones are), with PYTHONDONTWRITEBYTECODE set as here and on clusters."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import designs
from cruijff_gen import bytecode, merge_base

REPO = Path(__file__).resolve().parent.parent
MODULES = ("cruijff_gen.cli", "cruijff_gen.commands.update", "cruijff_gen.lock", "cruijff_gen.merge_base")

# In the child: the hook's first lines (its checkout first on the path, then install()), then the
# modules of an update step; prints how each was loaded and where its code says it comes from.
PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
from cruijff_gen import bytecode
bytecode.install()
import importlib
mods = {name: importlib.import_module(name) for name in sys.argv[2:]}
print(json.dumps({"loaded": bytecode.LOADED,
                  "files": {n: [m.__file__, m.main.__code__.co_filename if hasattr(m, "main") else m.__file__] for n, m in mods.items()},
                  "marker": getattr(mods["cruijff_gen.cli"], "MARKER", None)}))
"""


def clone(root: Path, name: str) -> Path:
    """A fresh copy of the template's files, as Copier clones it (no __pycache__)."""
    dest = root / name
    for rel in ("cruijff_gen", "hooks"):
        shutil.copytree(REPO / rel, dest / rel, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "TMPDIR": str(tmp), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": ""}


def probe(checkout: Path, tmp: Path) -> dict:
    result = subprocess.run([sys.executable, "-c", PROBE, str(checkout), *MODULES], capture_output=True, text=True, env=env(tmp))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def entries(tmp: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in tmp.glob(f"cruijff_gen-*/{bytecode.CACHE_PREFIX}*/*")}


def test_a_second_start_from_another_clone_reads_the_kept_bytecode(tmp_path):
    store = tmp_path / "tmp"
    store.mkdir()
    first = probe(clone(tmp_path, "clone1"), store)
    assert set(MODULES) <= set(first["loaded"])
    assert set(first["loaded"].values()) == {"compiled"}, first["loaded"]
    kept = entries(store)
    assert len(kept) == len(first["loaded"])  # one entry per module compiled
    second_clone = clone(tmp_path, "clone2")
    second = probe(second_clone, store)
    assert second["loaded"] == dict.fromkeys(first["loaded"], "cache")
    assert entries(store) == kept  # nothing compiled, nothing written
    for name, (file, code_file) in second["files"].items():  # tracebacks name the clone that runs
        assert Path(file).is_relative_to(second_clone) and Path(code_file).is_relative_to(second_clone), (name, file, code_file)


def test_a_changed_source_file_is_compiled_never_served_stale(tmp_path):
    store = tmp_path / "tmp"
    store.mkdir()
    probe(clone(tmp_path, "clone1"), store)
    changed = clone(tmp_path, "clone2")
    cli = changed / "cruijff_gen" / "cli.py"
    cli.write_text(cli.read_text(encoding="utf-8") + "\nMARKER = 'changed'\n", encoding="utf-8")
    out = probe(changed, store)
    assert out["marker"] == "changed"
    assert out["loaded"]["cruijff_gen.cli"] == "compiled"
    assert {v for k, v in out["loaded"].items() if k != "cruijff_gen.cli"} == {"cache"}
    # ...and the unchanged file again: its own entry, not the changed one's
    again = probe(clone(tmp_path, "clone3"), store)
    assert again["marker"] is None and again["loaded"]["cruijff_gen.cli"] == "cache"


DOC = b"Command line: wires argparse"  # (cli.py's docstring)


def test_a_corrupt_or_partial_entry_is_compiled_again(tmp_path):
    store = tmp_path / "tmp"
    store.mkdir()
    probe(clone(tmp_path, "clone1"), store)
    paths = sorted(tmp_path.glob(f"tmp/cruijff_gen-*/{bytecode.CACHE_PREFIX}*/*"))
    damaged = {}
    for i, path in enumerate(paths):
        data = path.read_bytes()
        if DOC in data:
            damaged[path.name] = data.replace(DOC, DOC.upper())  # still loads, but is not what was kept
        elif i % 3 == 0:
            damaged[path.name] = data[: len(data) // 2]  # cut short
        elif i % 3 == 1:
            damaged[path.name] = data[:-1] + bytes([data[-1] ^ 0xFF])  # one byte changed
        else:
            damaged[path.name] = b""
        path.write_bytes(damaged[path.name])
    assert any(DOC.upper() in data for data in damaged.values())
    out = probe(clone(tmp_path, "clone2"), store)
    assert set(out["loaded"].values()) == {"compiled"}
    assert all(p.read_bytes() != damaged[p.name] for p in paths)  # written again, whole


def test_the_task_keeps_its_bytecode_and_the_next_start_writes_none(tmp_path):
    """The real hook (hooks/copier_task.py) in one of Copier's throw-away renders, twice."""
    store = tmp_path / "tmp"
    store.mkdir()
    render = tmp_path / "render"
    render.mkdir()
    (render / ".copier-answers.yml").write_text('_commit: "v1"\n_src_path: "/template"\n')
    for name in ("clone1", "clone2"):
        hook = clone(tmp_path, name) / "hooks" / "copier_task.py"
        result = subprocess.run([sys.executable, str(hook), "render", "--operation", "update", str(render)],
                                capture_output=True, text=True, env=env(store))
        assert result.returncode == 0, result.stderr
        if name == "clone1":
            kept = entries(store)
            assert kept
    assert entries(store) == kept


def test_no_store_no_cache(tmp_path):
    """A store that is not safely ours (another's mode): the task compiles as before and keeps nothing."""
    store = tmp_path / "tmp"
    (store / f"cruijff_gen-{os.getuid()}").mkdir(parents=True)
    (store / f"cruijff_gen-{os.getuid()}").chmod(0o755)
    out = probe(clone(tmp_path, "clone1"), store)
    assert out["loaded"] == {}
    assert entries(store) == {}


# --------------------------------------------------------------------------- the version key, without YAML
PLAIN = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E, blacklist_characters='"\\'), min_size=1, max_size=30)


@settings(max_examples=300, deadline=None)
@given(PLAIN, PLAIN, st.booleans())
def test_plain_version_entries_read_as_yaml_reads_them(src, commit, crlf):
    """The throw-away renders' answers file (two JSON strings) is read without YAML: the key must be
    what the YAML reading gives, which finish-update uses on the experiment's answers file."""
    end = "\r\n" if crlf else "\n"
    text = f'_commit: "{commit}"{end}_src_path: "{src}"{end}'
    assert all(merge_base._PLAIN_ENTRY.fullmatch(line) for line in text.splitlines(keepends=True))  # (read without YAML)
    fast = merge_base._version(text)
    from cruijff_gen import yamlio

    data = yamlio.load(text)
    assert fast == (str(data["_src_path"]), str(data["_commit"]))


# --------------------------------------------------------------------------- Jinja's compiled templates
def base_render(checkout: Path, tmp: Path, answers: Path) -> dict[str, str]:
    """`base-render` (the whole rendering of a design, as JSON) run from `checkout`."""
    result = subprocess.run([sys.executable, "-m", "cruijff_gen", "base-render", str(answers)], capture_output=True, text=True,
                            env={**env(tmp), "PYTHONPATH": str(checkout)}, cwd=tmp)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def templates(tmp: Path) -> dict[str, int]:
    return {k: v for k, v in entries(tmp).items() if k.endswith(".template")}


def test_templates_are_compiled_once_per_source_and_render_the_same(tmp_path):
    store = tmp_path / "tmp"
    store.mkdir()
    answers = tmp_path / "answers.yml"
    answers.write_text(yaml.safe_dump(designs.rich()), encoding="utf-8")
    first = base_render(clone(tmp_path, "clone1"), store, answers)
    kept = templates(store)
    assert len(kept) == len(list((REPO / "cruijff_gen" / "templates").glob("*.j2")))
    assert base_render(clone(tmp_path, "clone2"), store, answers) == first  # the same files, byte for byte
    assert templates(store) == kept  # read from the store: none compiled again
    changed = clone(tmp_path, "clone3")
    readme = changed / "cruijff_gen" / "templates" / "README.md.j2"
    readme.write_text(readme.read_text(encoding="utf-8") + "changed template\n", encoding="utf-8")
    out = base_render(changed, store, answers)
    assert out["README.md"] == first["README.md"] + "changed template\n"  # never the kept code of the old source
    assert {k: v for k, v in out.items() if k != "README.md"} == {k: v for k, v in first.items() if k != "README.md"}
    assert len(templates(store)) == len(kept) + 1
    for path in store.glob(f"cruijff_gen-*/{bytecode.CACHE_PREFIX}*/*.template"):
        path.write_bytes(path.read_bytes()[:100])  # damaged: compiled again
    assert base_render(clone(tmp_path, "clone4"), store, answers) == first
