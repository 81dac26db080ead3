"""Golden files: the bundled example, scaffolded by real `copier copy`, must match tests/golden/
byte for byte (logs, .git and Copier's answers file with its commit id aside).

After an intended generator change: `make golden`, then review `git diff tests/golden`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import EXAMPLE

pytestmark = pytest.mark.copier

GOLDEN = Path(__file__).parent / "golden" / "capitalization"
SKIP = {".git", "logs", ".copier-answers.yml"}


def generated_files(root: Path) -> dict[str, bytes]:
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and rel.parts[0] not in SKIP:
            out[rel.as_posix()] = path.read_bytes()
    return out


def test_example_matches_golden(scaffold, request):
    dest = scaffold(EXAMPLE)
    got = generated_files(dest)
    if request.config.getoption("--update-golden"):
        shutil.rmtree(GOLDEN, ignore_errors=True)
        for rel, data in got.items():
            (GOLDEN / rel).parent.mkdir(parents=True, exist_ok=True)
            (GOLDEN / rel).write_bytes(data)
        pytest.skip(f"golden files rewritten in {GOLDEN}; review the diff")
    assert GOLDEN.is_dir(), "no golden files yet: run `make golden`"
    want = generated_files(GOLDEN)
    assert sorted(got) == sorted(want)
    changed = [rel for rel in got if got[rel] != want[rel]]
    assert not changed, f"differs from golden (run `make golden` if intended, review the diff): {changed}"
