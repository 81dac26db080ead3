"""The update protocol: every step cruijff_gen takes in a `copier update --trust --defaults`, in
the order Copier runs them (Copier 9's
`Worker._apply_update` in copier/_main.py; copier.yml's `_tasks` and `_migrations` name the
commands, hooks/copier_task.py runs them with this template commit's cruijff_gen):

  Copier renders the OLD template version, with the last answers, into a throw-away directory
  (its `copier._main.old_copy.*`) and runs that version's task there, `render --operation update`:
1. in_throwaway_render  keep that version's cruijff_gen package: the base of the 3-way merge when
                        the template version changes (merge_base.py). (An older template version
                        runs its own code here, which does the same.)
  Copier runs the "before" migration in the experiment, `start-update`:
2. start                take the experiment's update lock, naming the Copier process (lock.py).
  Copier renders the new answers into the experiment (the answers file is all the template
  renders) and runs the task there, `render --operation update`:
3. in_experiment        read the design from experiment_summary.yaml (what Copier was not
                        given: summary_entries), check it (a bad one: the answers file back to HEAD's, the lock
                        released, the update stops with nothing changed), plan it and keep the
                        plan for finish (plancache.py); it writes nothing.
  Copier renders the new version with the new answers into a second throw-away directory
  (`new_copy`) and runs the task there: in_throwaway_render again (what it keeps is not needed,
  and finish discards it). Copier then applies the difference between the old render and the
  experiment's last tree to the experiment (the answers file excluded) and removes the files the
  old render has and the new one lacks: with only the answers file in either render, finish
  undoes whatever that changes.
  Copier runs the "after" migration in the experiment, `finish-update`:
4. finish               merge the generated files from the old design's rendering to the new one's,
                        hand edits kept (tree_merge.py), verify, log, commit "Update <experiment>:
                        <what changed>" (design_diff.py); always: forget the kept code, unlock.

Which render is the experiment: `render --operation update` runs in all three, and tells them
apart by the update lock. The experiment is the directory whose lock names the Copier process that
runs the task: start-update took it there before Copier rendered into the experiment, and no other
directory can hold it (the throw-away renders are fresh temporary directories; the old version's
is rendered before start-update even runs). What it replaces, "a directory without .git is a
throw-away render", held only because Copier happens to `git init` its copies just after their
task; Copier's names for its temporary directories are private too (`copier._main.old_copy.` in
Copier 9.19: the prefix is Copier's module name, which has changed before), which is why the answers file's template uses them for speed only (a name it
does not know costs a full answers file, not a wrong step). A plain `cruijff-gen render` and
`copier copy` (operations "render" and "copy") never come here: commands/render.py.

Bad input never leaves a half-done update: a refusal restores what Copier changed, keeps HEAD at
the last good commit and says how to get back to it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from .. import lock, merge_base
from ..errors import RECOVER, CruijffError, DesignError, GitError, UpdateRefused, UsageError, VerifyFailed
from ..experiment_dir import ANSWERS_FILE, DEST_KEY, SUMMARY_FILE, UPDATE_COMMAND, design_from_text, no_copier_keys, read_answers, read_design_file, record_answers, unrendered_sections, write_tree

# The steps in the experiment import what they use (parse, plan, render, verify, git) when they run:
# Copier's throw-away renders run this module too, twice per update, and need none of it (it costs
# about 0.3 s of imports each).


def _copier_pid() -> int:
    """The Copier process running this step. Copier starts each task and migration as its own child
    (`subprocess.run` of the rendered command list, no shell: `{{ _copier_python }}
    hooks/copier_task.py ...`), and copier_task.py runs cruijff_gen in that same process, so the
    parent is Copier, the same one for every step of an update. The lock names it because it lives
    as long as the update: a killed update leaves a lock whose process is gone (stale: the next
    update takes it over), finish-update is its holder, and the experiment's task knows its lock."""
    return os.getppid()


def render_task(dest: Path, data_keys: tuple[str, ...] = ()) -> int:
    """`render --operation update`: Copier's task during an update, run in each of its three
    renders; in the experiment (the directory whose lock this update holds) or a throw-away one."""
    dest = dest.resolve()
    if lock.holder(dest) == _copier_pid():
        return in_experiment(dest, data_keys)
    return in_throwaway_render(dest)


# --------------------------------------------------------------------------- the steps, in Copier's order
def in_throwaway_render(dest: Path) -> int:
    """In Copier's throw-away renders of a template version: keep this version's package for
    finish's merge base, keyed by the version its answers file names (merge_base.py); nothing else."""
    try:
        text = (dest / ANSWERS_FILE).read_text(encoding="utf-8")
    except OSError:
        return 0  # nothing to key it by: a template upgrade then merges on the new version's base (warned)
    merge_base.keep_code(text)
    merge_base.note_old_copy(dest, _copier_pid())  # (the old version's copy only: start prepares it)
    return 0


def start(dest: Path) -> int:
    """`start-update` (Copier's "before" migration, in the experiment): one update at a time.
    The lock, the kept plan and the update's records live in the experiment's own .git directory:
    an experiment whose .git is not one (a `git worktree`, `--separate-git-dir`, or a directory
    inside another repository) is refused here, before Copier changes anything."""
    if not (dest / ".git").is_dir():
        raise UsageError(f"{dest.resolve()}: not an experiment's own git repository (its .git is not a directory: a git "
                         "worktree, --separate-git-dir or a directory inside another repository); nothing was changed: "
                         "update a clone of the experiment (`git clone`), then push")
    lock.acquire(dest.resolve(), _copier_pid())
    # Copier diffs its render of the old version against the experiment's tree: give that render
    # the experiment's tree as its index, so the diff is the answers file, not every generated file
    merge_base.prepare_old_copy(dest.resolve(), _copier_pid())
    return 0


def in_experiment(dest: Path, data_keys: tuple[str, ...] = ()) -> int:
    """In the experiment, after Copier rendered the new answers into it: the design is checked (a
    bad one stops the update before anything changes) and planned, and the plan kept for finish;
    nothing is written: the generated files are merged by finish, after Copier's own step."""
    from .. import gitrepo, plancache
    from ..parse import DESIGN_SECTIONS, parse
    from ..plan import plan
    from ..schema import SETTINGS_KEYS
    from ..unused_fields import extra_keys

    try:
        summary, summary_bytes = summary_entries(dest, data_keys)
        questions = {k: v for k, v in summary.items() if k in DESIGN_SECTIONS or k in SETTINGS_KEYS}
        # the answers Copier just rendered, with what the summary says that Copier was not given,
        # rewritten with the design as one record (experiment_dir.py)
        record_answers(dest, data_keys, gitrepo.head_text(dest, ANSWERS_FILE) if gitrepo.head(dest) else None, questions)
        answers = read_answers(dest)
        given = (*data_keys, *summary)
        parsed = parse(answers, extra_top_level=given)
        the_plan = plan(parsed)
    except (DesignError, UsageError):
        refuse_bad_design(dest)
        merge_base.discard(gitrepo.head_text(dest, ANSWERS_FILE) or "")  # kept by the old version's throw-away render
        lock.release(dest)
        print(f"cruijff-gen: the update stopped before changing anything; HEAD is still the last good commit "
              f"(if anything looks changed: {RECOVER})", file=sys.stderr)
        raise
    raw = (dest / ANSWERS_FILE).read_bytes()
    if not extra_keys(given):
        # the plan `parse(answers)` gives too: kept for finish-update, verify and the hooks
        plancache.store(dest, raw, answers, the_plan)
    if summary_bytes is not None and all(k in summary for k in DESIGN_SECTIONS):
        plancache.mark_summary(dest, raw, summary_bytes)  # every section from these bytes: finish need not read them again
    for line in [f"{path}: given but not used by any generated file (a typo?)" for path in parsed.unused] + list(the_plan.warnings):
        print(f"cruijff-gen: warning: {line}", file=sys.stderr)
    return 0


def summary_entries(dest: Path, given: tuple[str, ...]) -> tuple[dict[str, Any], bytes | None]:
    """The experiment's design file is the design of an update: what experiment_summary.yaml says
    that Copier was not given (`given`: its data keys; plain `copier update --trust --defaults`
    gives none, and Copier then never reads the design), read with this package's loader and
    limits, as `--data-file experiment_summary.yaml` would have given it; and the bytes read.
    Names starting with '_' are Copier's own and refused. A section the summary leaves out is not
    here (record_answers takes it from the last commit, and finish refuses a removed section by
    name); no summary in the tree: nothing (the last design is rendered, and finish says the file
    is missing)."""
    path = dest / SUMMARY_FILE
    if not path.is_file():
        return {}, None
    try:
        data = path.read_bytes()
    except OSError:
        return {}, None  # (finish names the problem)
    design = design_from_text(data, SUMMARY_FILE)
    no_copier_keys(design, "")
    return {k: v for k, v in design.items() if k not in given}, data


def finish(dest: Path) -> int:
    """`finish-update` (Copier's "after" migration, in the experiment, once Copier's own merge is
    done): refuse Copier's conflicts; undo whatever Copier's step changed but the answers file; check
    that the summary still says the design Copier rendered; merge the generated files from the old
    design's rendering to the new one's, hand edits kept (tree_merge.py); verify; log; commit
    "Update <experiment>: <what changed>" (design_diff.py). Whatever happens: forget the code the
    throw-away renders kept and release the lock."""
    from .. import gitrepo, logs

    dest = dest.resolve()
    if not gitrepo.is_repo_root(dest):
        raise GitError(f"{dest} is not the root of a git repository")
    old_text = gitrepo.head_text(dest, ANSWERS_FILE) or ""
    try:
        new_text = (dest / ANSWERS_FILE).read_text(encoding="utf-8")
    except OSError:
        new_text = ""
    try:
        return _finish(dest, old_text)
    finally:
        merge_base.discard(old_text, new_text)  # the code Copier's throw-away renders kept
        (dest / logs.OLD_CATALOG).unlink(missing_ok=True)
        lock.release(dest)


def _finish(dest: Path, old_text: str) -> int:
    from .. import design_diff, gitrepo, logs, plancache, tree_merge
    from ..filekinds import executable_paths
    from ..render import renderer
    from ..verify import verify

    unmerged = gitrepo.unmerged(dest)
    if unmerged:
        raise UpdateRefused([f"Copier's merge left conflicts in: {', '.join(unmerged)}; nothing was committed"])
    # Copier's own step only changes the answers file; anything else it did is undone here (our
    # merge below is the one that counts).
    gitrepo.restore_tracked(dest, keep=(ANSWERS_FILE,))
    # Both designs were planned before (the render task planned the new one, the last commit's
    # scaffold or update the old one): see plancache.py.
    raw = (dest / ANSWERS_FILE).read_bytes()
    found = plancache.load(dest, raw)
    answers = found[0] if found else read_answers(dest)
    old_found = plancache.load(dest, old_text.encode("utf-8")) if old_text else None
    recorded = old_found[0] if old_found else {**(design_from_text(old_text, ANSWERS_FILE) if old_text else {}), DEST_KEY: answers[DEST_KEY]}
    old_catalog = logs.edited_catalog(dest, recorded, answers)  # the catalog file was edited: render the base with the old one
    old_answers = {**recorded, "model_catalog": str(old_catalog)} if old_catalog else recorded
    problems = _summary_disagreements(dest, raw, answers)
    if problems:
        raise UpdateRefused(problems)
    the_plan = found[1] if found else plancache.plan_of(dest, raw, answers)[1]
    # (the old plan as kept, unless an edited catalog file makes the base another design)
    sides = tree_merge.renderings(dest, the_plan, answers, old_text, old_answers, old_found[1] if old_found and not old_catalog else None)
    executable = executable_paths(the_plan)
    merged = tree_merge.merge(dest, sides.base, sides.new, executable)
    if merged.conflicts:
        raise UpdateRefused(
            [f"the update left conflicts in {len(merged.conflicts)} file(s); nothing was committed:"]
            + [f"  {rel}" + ("  (not readable as UTF-8 text: left as it was)" if tree_merge.read_generated(dest / rel) == tree_merge.UNREADABLE else "")
               for rel in merged.conflicts]
            + ["Resolve the <<<<<<< / >>>>>>> blocks (your edit vs. the new design), then `cruijff-gen verify` and commit."]
        )
    # Every file the update touched or whose expected values changed; the rest were verified when
    # they were committed and neither they nor what they must say changed (all exist: checked too).
    mismatches = verify(dest, the_plan, files=None if sides.check is None else sorted({*sides.check, *merged.touched}), rendered=renderer(answers))
    if mismatches:
        # Hand edits of design values that the last commit already had are the user's, kept as
        # they were (and reported); anything the update itself got wrong stops it.
        kept, wrong = tree_merge.split_kept(dest, old_answers, mismatches)
        if wrong:
            raise UpdateRefused(["the updated tree disagrees with the design; nothing was committed:"] + [f"  {m}" for m in wrong])
        for m in kept:
            print(f"cruijff-gen: note: kept your hand edit, which differs from the design: {m}", file=sys.stderr)
    for note in merged.notes + tree_merge.leftovers(dest, the_plan, merged.deleted):
        print(f"cruijff-gen: note: {note}", file=sys.stderr)
    changes = design_diff.design_changes(recorded, answers) + ([f"model_catalog: {answers['model_catalog']} edited"] if old_catalog else [])
    if changes or merged.touched:
        write_tree(dest, logs.catalog_copy(answers.get("model_catalog") or ""), set())
    changed = gitrepo.changed(dest)
    if not changed:
        print("cruijff-gen: the design did not change; nothing to commit", file=sys.stderr)
        return 0
    entries = logs.update_logs(the_plan, changes, changed)
    logs.append_logs(dest, entries)
    sha = gitrepo.commit_all(dest, design_diff.commit_message(the_plan, changes=changes))
    print(f"cruijff-gen: committed {sha[:8] if sha else '(nothing)'}: {len(changed)} file(s) changed", file=sys.stderr)
    for change in changes:
        print(f"cruijff-gen:   {change}", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- refusals and checks
def refuse_bad_design(dest: Path) -> None:
    """A bad design reached the real destination (an update's, or `copier recopy`'s): put back the
    one file Copier changed before our task ran, so the tree is exactly the last good commit again."""
    from .. import gitrepo

    if gitrepo.head(dest) is not None:
        gitrepo.restore(dest, ANSWERS_FILE)


def _summary_disagreements(dest: Path, raw: bytes, answers: dict[str, Any]) -> list[str]:
    from .. import plancache
    from ..parse import DESIGN_SECTIONS

    try:
        if plancache.summary_marked(dest, raw, (dest / SUMMARY_FILE).read_bytes()):
            return []  # the render task took every section from these very bytes
    except OSError:
        pass  # (read_design_file names the problem)
    try:
        summary = read_design_file(dest / SUMMARY_FILE)
    except CruijffError as exc:
        return [f"{SUMMARY_FILE}: {exc}"]
    out = []
    for section in unrendered_sections(summary, answers, DESIGN_SECTIONS):
        if section not in summary:
            out.append(
                f"{SUMMARY_FILE}: section {section!r} was removed, but Copier keeps a section's previous "
                f"answer when the data file lacks it; write `{section}: {{}}` (or null) to clear it"
            )
        else:
            out.append(f"{SUMMARY_FILE}: section {section!r} differs from the design Copier was given (--data-file or --data); "
                       f"to render the summary, run `{UPDATE_COMMAND}`")
    return out


__all__ = ["render_task", "in_throwaway_render", "start", "in_experiment", "finish", "refuse_bad_design", "UpdateRefused", "VerifyFailed"]
