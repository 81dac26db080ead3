"""`cruijff-gen render`: what Copier's task runs in the destination after rendering the answers.

parse -> plan -> render -> write (atomic, changed files only) -> verify -> logs -> commit.
Bad input raises before anything is written.
"""

from __future__ import annotations

import fnmatch
import json
import sys
from pathlib import Path

from .. import gitrepo, lock, logs, plancache, pristine
from . import update
from ..errors import DesignError, Problem, VerifyFailed
from ..parse import DESIGN_SECTIONS, SETTINGS_KEYS, parse
from ..plan import ExperimentPlan, plan
from ..project import ANSWERS_FILE, SUMMARY_FILE, read_answers, read_design_file, write_tree
from ..render import EXECUTABLE_KINDS, layout, render
from ..verify import verify


def commit_message(the_plan: ExperimentPlan, verb: str = "Scaffold") -> str:
    runs = the_plan.runs
    kinds = ", ".join(f"{n} {t}" for t in ("fine-tuned", "control", "eval-only") if (n := sum(r.type == t for r in runs)))
    return f"{verb} {the_plan.design.experiment.name}: {len(runs)} runs ({kinds}), {len(the_plan.cells)} eval cells"


def report(lines: list[str], level: str) -> None:
    for line in lines:
        print(f"cruijff-gen: {level}: {line}", file=sys.stderr)


def check_only(the_plan: ExperimentPlan, only: tuple[str, ...]) -> None:
    names = [r.name for r in the_plan.runs]
    for pattern in only:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            raise DesignError(Problem("--only", f"no run matches {pattern!r} (runs: {', '.join(names)})"))


def run(dest: Path, operation: str = "render", data_keys: tuple[str, ...] = (), commit: bool = False, only: tuple[str, ...] = ()) -> int:
    dest = dest.resolve()
    try:
        answers = read_answers(dest)
        parsed = parse(answers, extra_top_level=data_keys)
    except DesignError:
        if operation == "copy" and not gitrepo.is_repo_root(dest):
            # A failed first scaffold leaves nothing behind: Copier removes a destination it
            # created; in a destination that already existed we remove the one file it rendered.
            (dest / ANSWERS_FILE).unlink(missing_ok=True)
        elif operation == "update" and gitrepo.is_repo_root(dest):
            # The real experiment (not one of Copier's throw-away renders): back to HEAD.
            update.refuse_bad_design(dest)
            pristine.discard(gitrepo.head_text(dest, ANSWERS_FILE) or "")  # kept by the old version's throw-away render
            lock.release(dest)
            print(f"cruijff-gen: the update stopped before changing anything; HEAD is still the last good commit "
                  f"(if anything looks changed: {gitrepo.RECOVER})", file=sys.stderr)
        raise
    the_plan = plan(parsed)
    if not [k for k in data_keys if k not in DESIGN_SECTIONS and k not in SETTINGS_KEYS and not k.startswith("_")]:
        # what `parse(answers)` gives too: kept for the commands that plan this design next
        # (finish-update, verify, the hooks; see plancache.py)
        plancache.store(dest, (dest / ANSWERS_FILE).read_bytes(), answers, the_plan)
    check_only(the_plan, only)
    unused = [f"{path}: given but not used by any generated file (a typo?)" for path in parsed.unused]
    if operation == "update":
        return _during_update(dest, the_plan, unused)
    files = render(the_plan, answers, only)
    if (dest / SUMMARY_FILE).exists():
        # The summary is the user's file once it exists (comments, layout and all): rendered on
        # the first scaffold only, never rewritten.
        del files[SUMMARY_FILE]
    executable = {e.path for e in layout(the_plan) if e.kind in EXECUTABLE_KINDS}
    written = write_tree(dest, files, executable)
    mismatches = verify(dest, the_plan, only=only)
    report(unused, "warning")
    report(list(the_plan.warnings), "warning")
    if written or not (dest / logs.LOG_DIR).exists():
        logs.append_logs(dest, logs.scaffold_logs(the_plan, operation, written, parsed.unused, list(the_plan.warnings), len(mismatches)))
    if mismatches:
        raise VerifyFailed(mismatches)
    sha = None
    if commit:
        sha = gitrepo.commit_all(dest, commit_message(the_plan))
        gitrepo.install_hooks(dest)
    print(
        f"cruijff-gen: {len(the_plan.runs)} runs, {len(the_plan.cells)} eval cells, {len(written)} file(s) written"
        + (f", committed {sha[:8]}" if sha else ""),
        file=sys.stderr,
    )
    return 0


def _during_update(dest: Path, the_plan: ExperimentPlan, unused: list[str]) -> int:
    """`copier update` runs this task in the experiment after rendering the new answers (and in
    its throw-away renders, see cli.py). It writes nothing: the design has been checked (a bad
    one stops the update before anything changes), and the generated files are merged by
    finish-update, after Copier's own step, with the user's hand edits kept."""
    report(unused, "warning")
    report(list(the_plan.warnings), "warning")
    return 0


def base_render(answers_file: Path) -> int:
    """`base-render ANSWERS_FILE`: the rendering of that design as JSON {path: text} on stdout
    (the summary aside). The stable interface finish-update uses to run an older template
    version's package (see pristine.py)."""
    answers = read_design_file(answers_file)
    files = render(plan(parse(answers)), answers)
    del files[SUMMARY_FILE]
    json.dump(files, sys.stdout, ensure_ascii=False)
    return 0
