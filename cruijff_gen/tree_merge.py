"""The tree merge of an update (and of a re-render of an experiment with commits).

The experiment goes from what the old design generated (the base) to what the new one generates,
keeping the user's hand edits, file by file: `renderings` makes the two sides (only the files whose
plan entries changed, when the template version is the same; every file, with the base from the old
version's own code, when it is not: see merge_base.py); `merge` writes the result (an unedited file
is replaced, an edited one merged with `git merge-file`, overlapping edits left as conflict blocks);
`split_kept` tells the mismatches the user's committed hand edits already had from the ones the
merge introduced; `leftovers` notes the files a removed run leaves behind.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import gitrepo, merge_base, plancache
from .errors import CruijffError
from .experiment_dir import SUMMARY_FILE, write_tree
from .filekinds import layout
from .parse import parse
from .plan import ExperimentPlan, plan
from .render import render, render_entry, renderer
from .verify import mismatch_key, verify

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


def read_generated(path: Path) -> str | None:
    """A file of the tree as text: None when it is missing, UNREADABLE when it is not UTF-8 text."""
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
        ours = read_generated(dest / rel)
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


def renderings(dest: Path, the_plan: ExperimentPlan, answers: dict[str, Any], old_text: str, old_answers: dict[str, Any],
               old_plan: ExperimentPlan | None = None) -> Renderings:
    """`old_plan`: the plan of `old_answers` when the caller has it (else planned, or kept: plancache)."""
    if old_plan is None:
        try:
            old_plan = plancache.plan_of(dest, old_text.encode("utf-8"), old_answers)[1]
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
        base = {rel: text for rel in new if (text := read_generated(dest / rel)) not in (None, UNREADABLE)}
    base.pop(SUMMARY_FILE, None)
    return Renderings(base=base, new=new, check=None)


def leftovers(dest: Path, the_plan: ExperimentPlan, deleted: list[str]) -> list[str]:
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


# --------------------------------------------------------------------------- hand edits of design values
def _head_mismatches(dest: Path, old_answers: dict[str, Any], files: list[str]) -> list[str]:
    try:
        return verify(dest, plan(parse(old_answers)), read=gitrepo.head_reader(dest, prefetch=files), files=files, rendered=renderer(old_answers))
    except CruijffError:
        return []


def split_kept(dest: Path, old_answers: dict[str, Any], mismatches: list[str]) -> tuple[list[str], list[str]]:
    """(kept, wrong): the mismatches HEAD already had against its own design (hand edits of design
    values, the user's) and the ones the new rendering introduced."""
    files = sorted({m.split(": ", 1)[0] for m in mismatches})
    before = {mismatch_key(m) for m in _head_mismatches(dest, old_answers, files)}
    return [m for m in mismatches if mismatch_key(m) in before], [m for m in mismatches if mismatch_key(m) not in before]
