"""`cruijff-gen finish-update`: the last step of `copier update`, run by Copier as an "after"
migration in the real experiment directory once its 3-way merge is done.

It refuses to commit a tree with conflicts, a design the summary file no longer says, or a value
that disagrees with the design; otherwise it logs the update and makes one commit
"Update <experiment>: <what changed>". On any refusal HEAD stays at the last good commit and the
message says how to get back to it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import facts, gitrepo, lock, logs, merge_base, plancache, yamlio
from ..errors import CruijffError, GitError, UpdateRefused, VerifyFailed
from ..experiment_dir import ANSWERS_FILE, DEST_KEY, SUMMARY_FILE, design_from_text, read_answers, read_design_file, unrendered_sections, write_tree
from ..parse import DESIGN_SECTIONS, SETTINGS_KEYS, parse
from ..plan import ExperimentPlan, plan
from ..render import executable_paths, layout, render, render_entry
from ..verify import mismatch_key, verify


# --------------------------------------------------------------------------- what changed
def _keyed(section: str, value: Any) -> Any:
    """Lists of named things become mappings, so a change reads `runs.r8.parameters.lr`."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        key = "run" if section == "matrix" else "name"
        if all(key in v for v in value) and len({str(v[key]) for v in value}) == len(value):
            return {str(v[key]): v for v in value}
    return value


def design_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    changes = []
    for section in (*DESIGN_SECTIONS, *SETTINGS_KEYS):
        before, after = old.get(section), new.get(section)
        if before == after:
            continue
        if section == "runs":
            old_runs, new_runs = _keyed("runs", before or []), _keyed("runs", after or [])
            if isinstance(old_runs, dict) and isinstance(new_runs, dict):
                changes += [f"add run {n}" for n in new_runs if n not in old_runs]
                changes += [f"remove run {n}" for n in old_runs if n not in new_runs]
                before = {n: r for n, r in old_runs.items() if n in new_runs}
                after = {n: r for n, r in new_runs.items() if n in old_runs}
        a, b = (dict(facts.flat_items(v, section, _keyed)) for v in (before, after))
        for key in dict.fromkeys([*a, *b]):  # first-seen order, as before; O(n) at 1,000s of runs
            if a.get(key) != b.get(key):
                show = lambda v: "(none)" if v is None else yamlio.dump_inline(v)  # noqa: E731
                changes.append(f"{key}: {show(a.get(key))} -> {show(b.get(key))}")
    return changes


def commit_message(the_plan: ExperimentPlan, verb: str = "Scaffold", changes: list[str] | None = None) -> str:
    """The commit a render makes: `verb` and the plan's size, or, for an update (`changes`, the
    design changes), the first change as subject and every change in the body."""
    name = the_plan.design.experiment.name
    if changes is None:
        runs = the_plan.runs
        kinds = ", ".join(f"{n} {t}" for t in ("fine-tuned", "control", "eval-only") if (n := sum(r.type == t for r in runs)))
        return f"{verb} {name}: {len(runs)} runs ({kinds}), {len(the_plan.cells)} eval cells"
    first = changes[0] if changes else "re-render"
    subject = f"Update {name}: {first}" + (f" (and {len(changes) - 1} more)" if len(changes) > 1 else "")
    return subject + ("\n\n" + "\n".join(f"- {c}" for c in changes) if len(changes) > 1 else "")


# --------------------------------------------------------------------------- checks
def _summary_disagreements(dest: Path, answers: dict[str, Any]) -> list[str]:
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
            out.append(f"{SUMMARY_FILE}: section {section!r} differs from the design Copier rendered (was --data-file {SUMMARY_FILE} given?)")
    return out


def _head_mismatches(dest: Path, old_answers: dict[str, Any], files: list[str]) -> list[str]:
    try:
        return verify(dest, plan(parse(old_answers)), read=gitrepo.head_reader(dest), files=files)
    except CruijffError:
        return []


def split_kept(dest: Path, old_answers: dict[str, Any], mismatches: list[str]) -> tuple[list[str], list[str]]:
    """(kept, wrong): the mismatches HEAD already had against its own design (hand edits of design
    values, the user's) and the ones the new rendering introduced."""
    files = sorted({m.split(": ", 1)[0] for m in mismatches})
    before = {mismatch_key(m) for m in _head_mismatches(dest, old_answers, files)}
    return [m for m in mismatches if mismatch_key(m) in before], [m for m in mismatches if mismatch_key(m) not in before]


# --------------------------------------------------------------------------- the merge
LABELS = ("your version", "generated before the update", "generated after the update")


@dataclass
class Merged:
    written: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def touched(self) -> list[str]:
        return sorted({*self.written, *self.deleted, *self.conflicts})


UNREADABLE = "\0unreadable"  # (never equal to a rendering)


def _read(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        return UNREADABLE


def merge(dest: Path, base: dict[str, str], new: dict[str, str], executable: set[str]) -> Merged:
    """Bring the experiment from what the old design generated (`base`) to what the new one
    generates (`new`), keeping hand edits: only files whose rendering changed are touched; a file
    the user did not edit is replaced, an edited one is merged line by line (`git merge-file`;
    overlapping edits become conflict blocks), a file the user deleted stays deleted."""
    out = Merged()
    to_write: dict[str, str] = {}
    for rel in dict.fromkeys([*base, *new]):
        before, after = base.get(rel), new.get(rel)
        if before == after:
            continue
        ours = _read(dest / rel)
        if ours == after:
            continue
        if after is None:  # the new design no longer generates it
            if ours is not None:
                (dest / rel).unlink()
                out.deleted.append(rel)
                if ours != before:
                    out.notes.append(f"removed with its run although edited by hand: {rel} (git history keeps it: git show HEAD:{rel})")
        elif ours == before or (ours is None and before is None):
            to_write[rel] = after
        elif ours is None:
            out.notes.append(f"not regenerated, you deleted it: {rel}")
        elif ours == UNREADABLE:
            out.conflicts.append(rel)  # not UTF-8 text (or not readable): left as it is, for the user
        else:
            text, conflicted = gitrepo.merge_text(ours, before or "", after, LABELS)
            to_write[rel] = text
            if conflicted:
                out.conflicts.append(rel)
            else:
                out.notes.append(f"merged the update into your hand edit: {rel}")
    out.written = [rel for rel in write_tree(dest, to_write, executable) if rel not in out.conflicts]
    for rel in out.deleted:  # directories the removed files leave empty
        parent = (dest / rel).parent
        while parent != dest and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    return out


@dataclass
class Renderings:
    """The two sides of the merge: `base` (old design) and `new` (new design), for the paths that
    may differ; `check`: the files whose expected values may have changed (None: all of them)."""

    base: dict[str, str]
    new: dict[str, str]
    check: list[str] | None


def renderings(dest: Path, the_plan: ExperimentPlan, answers: dict[str, Any], old_text: str, old_answers: dict[str, Any]) -> Renderings:
    try:
        old_plan: ExperimentPlan | None = plancache.plan_of(dest, old_text.encode("utf-8"), old_answers)[1]
    except CruijffError:
        old_plan = None
    new_layout = [e for e in layout(the_plan) if e.path != SUMMARY_FILE]  # the summary is the user's file
    if old_plan is not None and old_answers.get("_commit") == answers.get("_commit"):
        # Same template version: a file renders differently only if its plan entry (path, kind and
        # the run, cell or plan it is made from) changed, so only those are rendered and checked.
        old_layout = {e.path: e for e in layout(old_plan) if e.path != SUMMARY_FILE}
        changed = [e for e in new_layout if old_layout.get(e.path) != e]
        new_paths = {e.path for e in new_layout}
        old_side = [old_layout[e.path] for e in changed if e.path in old_layout]
        old_side += [e for path, e in old_layout.items() if path not in new_paths]
        return Renderings(
            base={e.path: render_entry(e, old_answers) for e in old_side},
            new={e.path: render_entry(e, answers) for e in changed},
            check=[e.path for e in changed],
        )
    # The template version changed: the base comes from the old version's own code.
    new = {e.path: render_entry(e, answers) for e in new_layout}
    base = merge_base.old_rendering(old_text)
    if base is None and old_plan is not None:
        print(
            f"cruijff-gen: warning: the template changed ({old_answers.get('_commit')} -> {answers.get('_commit')}) "
            "and the old version's code was not kept; the merge base is the old design rendered by the new version",
            file=sys.stderr,
        )
        base = {rel: text for rel, text in render(old_plan, old_answers).items() if rel != SUMMARY_FILE}
    if base is None:
        print("cruijff-gen: warning: the old design could not be rendered again; files the update changes are "
              "regenerated without keeping hand edits in them", file=sys.stderr)
        base = {rel: text for rel in new if (text := _read(dest / rel)) not in (None, UNREADABLE)}
    base.pop(SUMMARY_FILE, None)
    return Renderings(base=base, new=new, check=None)


def _leftovers(dest: Path, the_plan: ExperimentPlan, deleted: list[str]) -> list[str]:
    """One note for the runs this update removed (or renamed) whose directory still holds files it
    did not generate (checkpoints, eval logs, a notebook): they stay where they are."""
    names = {r.name for r in the_plan.runs}
    gone = sorted({rel.split("/", 1)[0] for rel in deleted if "/" in rel} - names)
    kept = {run: sum(len(files) for _, _, files in os.walk(dest / run)) for run in gone if (dest / run).is_dir()}
    kept = {run: n for run, n in kept.items() if n}
    if not kept:
        return []
    where = ", ".join(f"{run}/ ({n} file{'s' if n > 1 else ''})" for run, n in kept.items())
    return [f"removed run(s) {', '.join(kept)}: the files cruijff_gen did not generate (outputs, your own files) stay in "
            f"{where}; delete them when you no longer need them"]


# --------------------------------------------------------------------------- the step
def finish(dest: Path) -> int:
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
    problems = _summary_disagreements(dest, answers)
    if problems:
        raise UpdateRefused(problems)
    the_plan = found[1] if found else plancache.plan_of(dest, raw, answers)[1]
    sides = renderings(dest, the_plan, answers, old_text, old_answers)
    executable = executable_paths(the_plan)
    merged = merge(dest, sides.base, sides.new, executable)
    if merged.conflicts:
        raise UpdateRefused(
            [f"the update left conflicts in {len(merged.conflicts)} file(s); nothing was committed:"]
            + [f"  {rel}" + ("  (not readable as UTF-8 text: left as it was)" if _read(dest / rel) == UNREADABLE else "")
               for rel in merged.conflicts]
            + ["Resolve the <<<<<<< / >>>>>>> blocks (your edit vs. the new design), then `cruijff-gen verify` and commit."]
        )
    # Every file the update touched or whose expected values changed; the rest were verified when
    # they were committed and neither they nor what they must say changed (all exist: checked too).
    mismatches = verify(dest, the_plan, files=None if sides.check is None else sorted({*sides.check, *merged.touched}))
    if mismatches:
        # Hand edits of design values that the last commit already had are the user's, kept as
        # they were (and reported); anything the update itself got wrong stops it.
        kept, wrong = split_kept(dest, old_answers, mismatches)
        if wrong:
            raise UpdateRefused(["the updated tree disagrees with the design; nothing was committed:"] + [f"  {m}" for m in wrong])
        for m in kept:
            print(f"cruijff-gen: note: kept your hand edit, which differs from the design: {m}", file=sys.stderr)
    for note in merged.notes + _leftovers(dest, the_plan, merged.deleted):
        print(f"cruijff-gen: note: {note}", file=sys.stderr)
    changes = design_changes(recorded, answers) + ([f"model_catalog: {answers['model_catalog']} edited"] if old_catalog else [])
    if changes or merged.touched:
        write_tree(dest, logs.catalog_copy(answers.get("model_catalog") or ""), set())
    changed = gitrepo.changed(dest)
    if not changed:
        print("cruijff-gen: the design did not change; nothing to commit", file=sys.stderr)
        return 0
    entries = logs.update_logs(the_plan, changes, changed)
    logs.append_logs(dest, entries)
    sha = gitrepo.commit_all(dest, commit_message(the_plan, changes=changes))
    print(f"cruijff-gen: committed {sha[:8] if sha else '(nothing)'}: {len(changed)} file(s) changed", file=sys.stderr)
    for change in changes:
        print(f"cruijff-gen:   {change}", file=sys.stderr)
    return 0


def refuse_bad_design(dest: Path) -> None:
    """A bad design reached the real destination during an update: put back the one file Copier
    changed before our task ran, so the tree is exactly the last good commit again."""
    if gitrepo.head(dest) is not None:
        gitrepo.restore(dest, ANSWERS_FILE)


__all__ = ["finish", "refuse_bad_design", "design_changes", "UpdateRefused", "VerifyFailed"]
