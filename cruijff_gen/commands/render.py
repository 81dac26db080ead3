"""`cruijff-gen render`: what Copier's task runs in the destination of `copier copy` (and of
`copier recopy`) after rendering the answers, and what a user runs to render an experiment again.

parse -> plan -> render -> write (atomic, changed files only) -> verify -> logs -> commit.
Bad input raises before anything is written. An experiment with commits is rendered the way an
update merges (tree_merge.py). During `copier update` the task goes to commands/update.py instead.
"""

from __future__ import annotations

import fnmatch
import json
import os
import sys
from pathlib import Path

from .. import design_diff, gitrepo, logs, plancache, tree_merge
from ..errors import DesignError, GitError, UpdateRefused, UsageError, VerifyFailed
from ..experiment_dir import ANSWERS_FILE, DEST_ENV, DEST_KEY, SUMMARY_FILE, UPDATE_COMMAND, design_from_text, misplaced, read_answers, read_design_file, record_answers, user_summary, write_tree
from ..filekinds import Entry, executable_paths, layout, select
from ..parse import DESIGN_SECTIONS, parse
from ..plan import ExperimentPlan, plan
from ..render import render, render_entry, renderer
from ..unused_fields import extra_keys
from ..verify import verify
from . import front, update


def report(lines: list[str], level: str) -> None:
    for line in lines:
        print(f"cruijff-gen: {level}: {line}", file=sys.stderr)


def check_only(the_plan: ExperimentPlan, only: tuple[str, ...]) -> None:
    names = [r.name for r in the_plan.runs]
    for pattern in only:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            raise UsageError(f"--only: no run matches {pattern!r} (runs: {', '.join(names)})")


def run(dest: Path, operation: str = "render", data_keys: tuple[str, ...] = (), commit: bool = False, only: tuple[str, ...] = ()) -> int:
    """`render` (a user's) or `render --operation copy` (Copier's task in `copier copy`/`recopy`)."""
    dest = dest.resolve()
    try:
        if operation == "copy":  # the answers Copier just rendered: the design as a record (experiment_dir.py)
            record_answers(dest, data_keys, gitrepo.head_text(dest, ANSWERS_FILE) if gitrepo.head(dest) else None)
        answers = read_answers(dest)
        if operation == "copy" and (relative := front.relative_template(answers.get("_src_path"))):
            raise UsageError(relative)
        parsed = parse(answers, extra_top_level=data_keys)
    except (DesignError, UsageError):
        if operation == "copy" and not gitrepo.is_repo_root(dest):
            # A failed first scaffold leaves nothing behind: Copier removes a destination it
            # created; in a destination that already existed we remove the one file it rendered.
            (dest / ANSWERS_FILE).unlink(missing_ok=True)
        elif operation == "copy" and gitrepo.head(dest):
            update.refuse_bad_design(dest)  # `copier recopy` (a copy over the experiment): back to HEAD's answers
        raise
    the_plan = plan(parsed)

    def keep_plan() -> None:
        # what `parse(answers)` gives too: kept in .git for the commands that plan this design next
        # (verify, the hooks, the next update's merge base; see plancache.py)
        if not extra_keys(data_keys):
            plancache.store(dest, (dest / ANSWERS_FILE).read_bytes(), answers, the_plan)

    kept = gitrepo.is_repo_root(dest)  # a first scaffold has no .git yet: kept once it is committed
    if kept:
        keep_plan()
    check_only(the_plan, only)
    unused = [f"{path}: given but not used by any generated file (a typo?)" for path in parsed.unused]
    old_text = gitrepo.head_text(dest, ANSWERS_FILE) if gitrepo.head(dest) else None
    if old_text is not None:
        return _rerender(dest, the_plan, answers, old_text, operation, commit, only, unused)
    files = render(the_plan, answers, only, progress=logs.Progress("rendering"))
    if operation == "copy" and (mine := user_summary(answers, DESIGN_SECTIONS)) is not None:
        files[SUMMARY_FILE] = mine  # the user's file, byte for byte
    if (dest / SUMMARY_FILE).exists():
        # The summary is the user's file once it exists (comments, layout and all): rendered on
        # the first scaffold only, never rewritten.
        del files[SUMMARY_FILE]
    executable = executable_paths(the_plan)
    written = write_tree(dest, files, executable, progress=logs.Progress("writing"))
    mismatches = verify(dest, the_plan, only=only, rendered=renderer(answers))
    report(unused, "warning")
    report(list(the_plan.warnings) + ([elsewhere] if operation == "copy" and (elsewhere := misplaced(the_plan, answers[DEST_KEY])) else []), "warning")
    written += write_tree(dest, logs.catalog_copy(the_plan.settings.model_catalog), set())
    if written or not (dest / logs.LOG_DIR).exists():
        logs.append_logs(dest, logs.scaffold_logs(the_plan, operation, written, parsed.unused, list(the_plan.warnings), len(mismatches)))
    if mismatches:
        raise VerifyFailed(mismatches)
    sha = None
    if commit:
        sha = gitrepo.commit_all(dest, design_diff.commit_message(the_plan))
        if not kept:
            keep_plan()
        gitrepo.install_hooks(dest)
        report([note] if (note := gitrepo.identity_note(dest)) else [], "note")
    # counted as git counts them: with the logs and Copier's answers file, when committed
    print(
        f"cruijff-gen: {len(the_plan.runs)} runs, {len(the_plan.cells)} eval cells, {len(written)} file(s) written"
        + (f"; committed {sha[:8]}: {gitrepo.files_in_commit(dest, sha)} files in git (those, the logs and {ANSWERS_FILE})" if sha else ""),
        file=sys.stderr,
    )
    return 0


def _refuse(dest: Path, operation: str, problem: str) -> None:
    """A re-render refused before it writes anything. Under `copier recopy` the answers file Copier
    rewrote goes back to HEAD's; under `render` it is the user's input and stays as it is."""
    if operation == "copy":
        update.refuse_bad_design(dest)
    raise GitError(problem)


def _rerender(dest: Path, the_plan: ExperimentPlan, answers: dict, old_text: str, operation: str, commit: bool,
              only: tuple[str, ...], unused: list[str]) -> int:
    """Render an experiment that has commits (`cruijff-gen render [--only]`, and `copier recopy`,
    which Copier runs as a copy over the experiment) the way an update merges: base = what the
    committed design (HEAD's answers) generates, ours = the file, theirs = what the design in
    .copier-answers.yml generates. A file nobody edited takes the new rendering, a committed hand
    edit is kept (merged with `git merge-file`), a missing generated file is generated again; a
    generated file with uncommitted changes stops it before anything is written."""
    old_answers = design_from_text(old_text, ANSWERS_FILE)
    if operation == "copy" and old_answers.get("_commit") != answers.get("_commit"):
        _refuse(dest, operation, f"a copy over the experiment from another template version ({old_answers.get('_commit')} -> "
                                 f"{answers.get('_commit')}) would drop your hand edits; nothing was changed: run `{UPDATE_COMMAND}` instead")
    entries = [e for e in select(layout(the_plan), only) if e.path != SUMMARY_FILE]
    sides = tree_merge.renderings(dest, the_plan, answers, old_text, old_answers)
    chosen = {e.path for e in select([Entry(path, "keep") for path in {*sides.base, *sides.new}], only)}
    base = {rel: text for rel, text in sides.base.items() if rel in chosen}
    new = {rel: text for rel, text in sides.new.items() if rel in chosen}
    dirty = sorted(set(gitrepo.changed(dest)) & ({e.path for e in entries} | set(base)))
    if dirty:
        shown = ", ".join(dirty[:5]) + (f" (and {len(dirty) - 5} more)" if len(dirty) > 5 else "")
        _refuse(dest, operation, f"uncommitted changes to generated files: {shown}; commit them (`git commit -am ...`) "
                                 f"or discard them (`git checkout -- FILE`), then run it again; nothing was written")
    executable = executable_paths(the_plan)
    merged = tree_merge.merge(dest, base, new, executable)
    missing = {e.path: render_entry(e, answers) for e in entries if e.path not in new and not os.path.lexists(dest / e.path)}
    merged.written += write_tree(dest, missing, executable)
    keep_answers = [] if operation == "copy" else [f"(the recovery also resets {ANSWERS_FILE}: copy it first if you edited it)"]
    if merged.conflicts:
        raise UpdateRefused([f"your committed edits and the design changed the same lines in: {', '.join(merged.conflicts)}; "
                                    "resolve the <<<<<<< / >>>>>>> blocks, `cruijff-gen verify`, commit", *keep_answers])
    mismatches = verify(dest, the_plan, only=only, rendered=renderer(answers))
    kept, wrong = tree_merge.split_kept(dest, old_answers, mismatches) if mismatches else ([], [])
    if wrong:
        raise UpdateRefused(["the rendered tree disagrees with the design; nothing was committed:", *(f"  {m}" for m in wrong), *keep_answers])
    report(unused, "warning")
    report(list(the_plan.warnings), "warning")
    report([f"kept your hand edit, which differs from the design: {m}" for m in kept] + merged.notes, "note")
    written = sorted({*merged.written, *merged.deleted})
    if written:
        logs.append_logs(dest, logs.scaffold_logs(the_plan, operation, written, [], list(the_plan.warnings), 0))
    sha = gitrepo.commit_all(dest, design_diff.commit_message(the_plan, "Re-render")) if commit else None
    if commit:
        gitrepo.install_hooks(dest)  # (a first scaffold killed between its commit and its hooks)
    print(f"cruijff-gen: {len(the_plan.runs)} runs, {len(the_plan.cells)} eval cells, {len(written)} file(s) written"
          + (f", committed {sha[:8]}" if sha else "") + (" (review with `git diff`, then commit)" if written and not commit else ""),
          file=sys.stderr)
    return 0


def base_render(answers_file: Path) -> int:
    """`base-render ANSWERS_FILE`: the rendering of that design as JSON {path: text} on stdout
    (the summary aside). The stable interface finish-update uses to run an older template
    version's package (see merge_base.py)."""
    # finish-update runs this in the experiment: its directory is experiment.dir's default
    answers = {DEST_KEY: os.environ.get(DEST_ENV) or os.getcwd(), **read_design_file(answers_file)}
    files = render(plan(parse(answers)), answers)
    del files[SUMMARY_FILE]
    json.dump(files, sys.stdout, ensure_ascii=False)
    return 0
