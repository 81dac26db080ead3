"""`cruijff-gen verify [DIR]`: re-derive every expected value from the design the tree was rendered
from (.copier-answers.yml) and compare it with the files. Exit 1 on any mismatch."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import VerifyFailed
from ..parse import DESIGN_SECTIONS, parse
from ..plan import plan
from ..project import ANSWERS_FILE, SUMMARY_FILE, read_answers, read_design_file
from ..render import layout
from ..verify import verify


def run(dest: Path, files: list[str] | None = None) -> int:
    """`files`: the values of these files only (what pre-commit passes: the files a commit or push
    changes); every other generated file is checked to exist. The whole tree when they include
    the answers file (the design itself changed) or when none are given."""
    answers = read_answers(dest)
    the_plan = plan(parse(answers))
    if files is not None:
        files = [Path(f).as_posix().removeprefix("./") for f in files]
        if not files or ANSWERS_FILE in files:
            files = None
    mismatches = verify(dest, the_plan, files=files)
    if mismatches:
        raise VerifyFailed(mismatches)
    note = _pending_design_change(dest, answers)
    what = "every generated value matches the design" if files is None else (
        f"the values in the {sum(f in {e.path for e in layout(the_plan)} for f in files)} changed generated file(s) "
        "match the design; every generated file exists")
    print(f"cruijff-gen: verify: {len(the_plan.runs)} runs, {len(the_plan.cells)} eval cells: {what}" + note, file=sys.stderr)
    return 0


def _pending_design_change(dest: Path, answers: dict) -> str:
    """experiment_summary.yaml edited but not rendered yet is normal between edit and update."""
    summary = dest / SUMMARY_FILE
    if not summary.exists():
        return ""
    try:
        edited = read_design_file(summary)
    except Exception:  # noqa: BLE001 - the update will report it properly
        return f" (note: {SUMMARY_FILE} does not parse; fix it before updating)"
    if any(edited.get(k) != answers.get(k) for k in DESIGN_SECTIONS if k in edited or answers.get(k) not in (None, {}, [])):
        return f" (note: {SUMMARY_FILE} has changes not rendered yet: run the update)"
    return ""
