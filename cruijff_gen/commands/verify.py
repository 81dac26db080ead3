"""`cruijff-gen verify [DIR]`: re-derive every expected value from the design the tree was rendered
from (.copier-answers.yml) and compare it with the files. Exit 1 on any mismatch.

As the experiment's git hooks it checks what git records, never the work tree:

* commit stage: the index being committed (`git ls-files -s` and the blobs it names; git exports
  GIT_INDEX_FILE for `git commit -a` and `git commit <paths>`): the contents of every file that
  differs from HEAD, the existence and mode of every generated file, and, when the design file or
  the answers file is among them, that the committed design is the one the tree was rendered from;
* push stage: every commit being pushed, each against its parents, and each pushed tip's design.

Two ways in. The sealed hook (`.git/hooks/<stage>.legacy`, written by gitrepo.install_hooks; pre-commit
runs it before the hooks of .pre-commit-config.yaml, so editing that file cannot switch it off) sets
CRUIJFF_GEN_HOOK and gets the pushed refs on stdin, every one of them. The configuration's
cruijff-verify hook (pre-commit sets PRE_COMMIT=1; `--files` without names) reports the sealed
hook's result when it ran in the same pre-commit process, else (a clone whose hooks were installed
with plain `pre-commit install`) checks itself, from the refs pre-commit exports.

A passing check prints nothing; a failing one prints one line per problem (`<commit>:<file>: ...` at
the push stage). The git plumbing is plain `git` commands (through gitrepo's runner, which adds
nothing to import) and the heavy imports wait until needed:
a hook of a one-file commit should cost little more than the plan.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from .. import gitrepo
from ..errors import CruijffError, DesignError, GitError, VerifyFailed
from ..trees import Blobs, Entries, GitTree

ANSWERS_FILE = ".copier-answers.yml"
SUMMARY_FILE = "experiment_summary.yaml"
STATUS_FILE = "cruijff-verify.status"  # in the git dir: the sealed hook's result, for the configuration's hook
ZERO = "0" * 40


def run(dest: Path, files: list[str] | None = None) -> int:
    """`files`: the values of these files only (the files a commit or an update changed); every
    other generated file is checked to exist. The whole tree when they include the answers file
    (the design itself changed) or when none are given. As a git hook: see the module docstring."""
    stage = os.environ.get("CRUIJFF_GEN_HOOK")
    if stage:
        problems = sealed_hook(dest, stage)
        _record(dest, stage, not problems)
        if problems:
            raise VerifyFailed(problems)
        return 0
    if files is not None and os.environ.get("PRE_COMMIT") == "1":
        passed = _recorded(dest)
        if passed is not None:
            if not passed:
                print("cruijff-gen: refused: see the lines above (the check of .git/hooks/*.legacy)", file=sys.stderr)
            return 0 if passed else 1
        problems = config_hook(dest)
        _seal(dest)
        if problems:
            raise VerifyFailed(problems)
        return 0
    return work_tree(dest, files)


def _seal(dest: Path) -> None:
    """The configuration's hook ran without the sealed one (a clone whose hooks came from plain
    `pre-commit install`): install cruijff_gen's hooks, both stages and the sealed checks, so the
    next commit or push is checked whatever .pre-commit-config.yaml says."""
    try:
        missing = gitrepo.sealed_hooks_missing(dest)
        if missing and gitrepo.install_hooks(dest):
            print(f"cruijff-gen: installed the experiment's sealed hooks ({', '.join(missing)}); "
                  "they check every later commit and push", file=sys.stderr)
    except Exception as exc:  # noqa: BLE001 - never fail a hook over its own installation
        print(f"cruijff-gen: warning: could not install the sealed hooks ({exc}); run `cruijff-gen install-hooks`", file=sys.stderr)


def install(dest: Path) -> int:
    """`cruijff-gen install-hooks [DIR]`: what a fresh clone of an experiment needs once (git does
    not clone hooks): pre-commit's hooks for the commit and push stages and the sealed checks."""
    if not gitrepo.is_repo_root(dest):
        raise CruijffError(f"{dest} is not the root of a git repository")
    if not gitrepo.install_hooks(dest):
        raise CruijffError("pre-commit could not install the hooks: is pre-commit installed (pip install pre-commit)?")
    print(f"cruijff-gen: installed the hooks of {dest} (commit and push stages, checked by cruijff-gen verify)", file=sys.stderr)
    return 0


def work_tree(dest: Path, files: list[str] | None) -> int:
    from .. import plancache
    from ..experiment_dir import read_answers
    from ..filekinds import layout
    from ..render import renderer
    from ..trees import WorkTree
    from ..verify import verify

    try:
        raw = (dest / ANSWERS_FILE).read_bytes()
    except OSError:
        raw = b""  # read_answers says what is wrong
    found = plancache.load(dest, raw) if raw else None
    answers, the_plan = found or plancache.plan_of(dest, raw, read_answers(dest))
    if files is not None:
        files = [Path(f).as_posix().removeprefix("./") for f in files]
        if not files or ANSWERS_FILE in files:
            files = None
    notes: list[str] = []
    mismatches = verify(dest, the_plan, files=files, tree=WorkTree(dest, git=True), rendered=renderer(answers),
                        alongside=lambda: notes.append(_pending_design_change(dest, answers)))
    if mismatches:
        raise VerifyFailed(mismatches)
    note = notes[0]
    what = "every generated value matches the design" if files is None else (
        f"the values in the {sum(f in {e.path for e in layout(the_plan)} for f in files)} changed generated file(s) "
        "match the design; every generated file exists")
    print(f"cruijff-gen: verify: {len(the_plan.runs)} runs, {len(the_plan.cells)} eval cells: {what}" + note, file=sys.stderr)
    return 0


def _pending_design_change(dest: Path, answers: dict) -> str:
    """experiment_summary.yaml edited but not rendered yet is normal between edit and update."""
    from ..experiment_dir import empty_section, read_design_file
    from ..parse import DESIGN_SECTIONS

    summary = dest / SUMMARY_FILE
    if not summary.exists():
        return ""
    try:
        edited = read_design_file(summary)
    except Exception:  # noqa: BLE001 - the update will report it properly
        return f" (note: {SUMMARY_FILE} does not parse; fix it before updating)"
    if any(edited.get(k) != answers.get(k) for k in DESIGN_SECTIONS if k in edited or not empty_section(answers.get(k))):
        return f" (note: {SUMMARY_FILE} has changes not rendered yet: run the update)"
    return ""


# --------------------------------------------------------------------------- git plumbing
def _records(out: bytes) -> list[list[str]]:
    """`git ls-files -s -z` records: [what precedes the tab, path]."""
    return [r.decode("utf-8", "surrogateescape").split("\t", 1) for r in out.split(b"\0") if r]


def index_entries(repo: Path) -> tuple[Entries, list[str]]:
    """The index git is about to commit (GIT_INDEX_FILE, as git exports it to its hooks): entries
    and the paths with unmerged stages."""
    entries: Entries = {}
    unmerged = set()
    for info, path in _records(gitrepo.run(repo, "ls-files", "-s", "-z")):
        mode, sha, stage = info.split()
        if stage != "0":
            unmerged.add(path)
        entries[path] = (mode, sha)
    return entries, sorted(unmerged)


# --------------------------------------------------------------------------- one recorded tree
class Plans:
    """Plans by answers blob (the commits of a push mostly share one design)."""

    def __init__(self) -> None:
        self.cache: dict[str, Any] = {}

    def get(self, tree: GitTree) -> tuple[dict[str, Any], Any] | list[str]:
        entry = tree.entries.get(ANSWERS_FILE)
        if entry is None:
            return [f"{ANSWERS_FILE}: file: expected it to exist (the design the tree was rendered from), found nothing"]
        if entry[1] not in self.cache:
            self.cache[entry[1]] = self._load(tree)
        return self.cache[entry[1]]

    @staticmethod
    def key(tree: GitTree, answers: dict[str, Any]) -> str | None:
        """The plan store's key of the tree's answers file (None: a plan the store never keeps)."""
        from .. import plancache

        data = tree.text(ANSWERS_FILE).encode("utf-8")
        return None if answers.get("model_catalog") else plancache.key(tree.repo, data)

    @staticmethod
    def _load(tree: GitTree) -> tuple[dict[str, Any], Any] | list[str]:
        from .. import plancache, yamlio
        from ..experiment_dir import DESIGN_RECORD, DEST_KEY, decode_answers

        try:
            text = tree.text(ANSWERS_FILE)
            found = plancache.load(tree.repo, text.encode("utf-8"))
            if found is not None:
                return found
            answers = yamlio.load(text, long_texts=(DESIGN_RECORD,))
        except Exception as exc:  # noqa: BLE001 - one line, whatever is wrong with it
            return [f"{ANSWERS_FILE}: yaml: expected valid YAML, found an error ({str(exc).splitlines()[0] if str(exc) else exc})"]
        try:
            if isinstance(answers, dict):
                answers = {**decode_answers(answers), DEST_KEY: str(tree.repo.resolve())}  # experiment.dir's default, as read_answers gives it
            return plancache.plan_of(tree.repo, text.encode("utf-8"), answers)
        except DesignError as exc:
            return [f"{ANSWERS_FILE}: design: expected a valid design, found {line}" for line in exc.lines()]


def check_tree(tree: GitTree, changed: set[str] | None, plans: Plans, design: bool, committed: bool) -> list[str]:
    """One recorded tree: the contents of `changed` (every file when None, or when the answers
    file changed), every generated file's existence and mode; `design`: the committed design
    against the rendered one."""
    from ..render import renderer
    from ..verify import verify

    loaded = plans.get(tree)
    if isinstance(loaded, list):
        return loaded
    answers, the_plan = loaded
    full = changed is None or ANSWERS_FILE in changed
    try:
        problems = verify(tree.repo, the_plan, files=None if full else changed, tree=tree,  # type: ignore[arg-type]
                          rendered=renderer(answers))
    finally:
        tree.close()
    if design:
        problems += _design_problems(tree, answers, committed)
    return problems


def _design_problems(tree: GitTree, answers: dict[str, Any], committed: bool) -> list[str]:
    """The tree's design file against the design it was rendered from."""
    from ..parse import DESIGN_SECTIONS
    from ..verify import summary_problems

    try:
        summary = tree.text(SUMMARY_FILE)
    except (FileNotFoundError, UnicodeDecodeError):
        summary = None
    return summary_problems(summary, answers, DESIGN_SECTIONS, committed)


def _differ(a: Entries, b: Entries) -> set[str]:
    return {p for p in a.keys() | b.keys() if a.get(p) != b.get(p)}


def check_index(repo: Path) -> list[str]:
    """The commit stage: the index. When HEAD's tree (or an earlier first-parent ancestor's) passed
    this check with this code (plancache.verified), only what the index changes from it: see
    check_changes; else every generated file, and each tree found to pass is recorded."""
    from .. import plancache

    trees = gitrepo.call(repo, "log", "--first-parent", f"--max-count={ANCESTORS}", "--format=%T", "HEAD")
    trees_up = trees.stdout.decode("ascii", "replace").split() if trees.ok else []
    for depth, base in enumerate(trees_up):
        plan_key = plancache.verified(repo, base)
        if plan_key is None:
            continue
        changes = _index_changes(repo, base)
        if changes is not None and not (depth and SUMMARY_FILE in changes):  # the design check is against HEAD
            lines = check_changes(repo, plan_key, changes, Blobs(repo))
            if lines is not None:
                if not lines:
                    _mark_index(repo, plan_key)
                return lines
        break
    entries, unmerged = index_entries(repo)
    problems = [f"{p}: merge: expected it resolved, found unmerged entries" for p in unmerged]
    head = gitrepo.tree_entries(repo, "HEAD") if trees_up else None
    changed = _differ(entries, head) if head is not None else None
    design = changed is None or bool({SUMMARY_FILE, ANSWERS_FILE} & changed)
    blobs, plans = Blobs(repo), Plans()
    tree = GitTree(repo, entries, blobs)
    problems += check_tree(tree, None, plans, design, committed=False)
    loaded = plans.get(tree)
    plan_key = None if problems or isinstance(loaded, list) else Plans.key(tree, loaded[0])
    if plan_key is not None:
        _mark_index(repo, plan_key)
        if head is not None and changed is not None:  # HEAD differs from the index by `changed`
            back = {p: head.get(p) for p in changed}
            if check_changes(repo, plan_key, back, blobs) == []:
                plancache.mark_verified(repo, trees_up[0], plan_key)
    return problems


ANCESTORS = 8  # first-parent commits looked at for a tree that passed (the tools' own commits are not checked)
GLOBAL_FILES = (".gitignore", ".gitattributes")  # rules over every file, wherever they are
Changes = dict[str, "tuple[str, str] | None"]  # path -> (mode, blob) in the tree checked, None: not in it


def _index_changes(repo: Path, base: str) -> Changes | None:
    """The index against the tree `base` (`git diff-index --cached`, which reads the index but
    walks only the trees that differ); None when the index has unmerged entries."""
    out = gitrepo.run(repo, "diff-index", "--cached", "-z", "--raw", "--no-renames", base)
    fields = out.split(b"\0")
    changes: Changes = {}
    for info, raw in zip(fields[0::2], fields[1::2]):
        _, mode, _, sha, status = info.decode("ascii", "replace").lstrip(":").split()
        if status.startswith("U"):
            return None
        changes[raw.decode("utf-8", "surrogateescape")] = None if status.startswith("D") else (mode, sha)
    return changes


def _mark_index(repo: Path, plan_key: str) -> None:
    """Record the index's tree as passed. Its id comes from `git write-tree` on a copy of the index
    (git writes the same tree objects when it commits); the index itself is git's, locked."""
    from .. import plancache

    index = os.environ.get("GIT_INDEX_FILE") or gitrepo.text(repo, "rev-parse", "--git-path", "index").strip()
    with tempfile.TemporaryDirectory(prefix="cruijff-index-") as scratch:
        copy = Path(scratch, "index")
        try:
            shutil.copyfile(Path(repo, index), copy)
        except OSError:
            return
        made = gitrepo.call(repo, "write-tree", env={"GIT_INDEX_FILE": str(copy)})
    if made.ok:
        plancache.mark_verified(repo, made.stdout.decode("ascii").strip(), plan_key)


def check_changes(repo: Path, plan_key: str, changes: Changes, blobs: Blobs) -> list[str] | None:
    """A tree that differs by `changes` from a tree that passed every check with the plan
    `plan_key`: the existence, mode and contents of the generated files among `changes` (and the
    design, when the design file is among them) are all that can differ. None when the changes
    reach beyond single files and need the full check: the answers file, ignore or attribute
    rules, a generated file removed (or a directory made a file), a run's job file in a directory
    that is no run (verify's stale runs), or nothing kept for `plan_key`."""
    from .. import plancache
    from ..verify import RUN_JOB_FILES, verify_entries

    if ANSWERS_FILE in changes or any(p.rpartition("/")[2] in GLOBAL_FILES for p in changes):
        return None
    if not changes:
        return []
    top_level = [p for p in changes if "/" not in p]
    whole = plancache.load_key(repo, plan_key) if top_level else None
    if top_level and whole is None:
        return None
    kept = _run_entries(repo, plan_key, {p.split("/", 1)[0] for p in changes if "/" in p}, whole)
    if kept is None:
        return None
    runs, by_path = kept
    if whole is not None:
        from ..filekinds import KINDS, Entry

        top = [k for k in KINDS if "{" not in k.path]  # as filekinds.layout begins
        by_path.update((k.path, ((-1, i), Entry(k.path, k.name, whole[1] if k.subject == "plan" else None))) for i, k in enumerate(top))
    checked = []
    for path, new in changes.items():
        if path in by_path:
            if new is None:
                return None
            checked.append(by_path[path])
            continue
        parts = path.split("/")
        if new is not None and len(parts) > 1 and parts[0] not in runs and (
                parts[1] in RUN_JOB_FILES or (parts[1] == "eval" and len(parts) > 2 and parts[2].endswith(".slurm"))):
            return None
    from ..render import renderer

    answers = whole[0] if whole is not None else {}
    tree = GitTree(repo, {p: new for p, new in changes.items() if new is not None}, blobs)
    problems = verify_entries(tree, [entry for _, entry in sorted(checked, key=lambda c: c[0])], renderer(answers))  # layout order
    if SUMMARY_FILE in changes and whole is not None:
        problems += _design_problems(tree, answers, committed=False)
    return problems


def _run_entries(repo: Path, plan_key: str, names: set[str], whole: tuple[dict[str, Any], Any] | None
                 ) -> tuple[set[str], dict[str, tuple[tuple[int, int], Any]]] | None:
    """(every run's name, {path: (place in the layout, entry)} of the generated files of the runs
    `names`), from the store's runs index (made from the whole plan the first time)."""
    from .. import plancache

    found = plancache.load_runs(repo, plan_key, names)
    if found is None:
        whole = whole or plancache.load_key(repo, plan_key)
        if whole is None:
            return None
        from ..filekinds import layout

        by_run: dict[str, list[Any]] = {r.name: [] for r in whole[1].runs}
        for entry in layout(whole[1]):
            top, sep, _ = entry.path.partition("/")
            if sep:
                by_run[top].append(entry)
        plancache.store_runs(repo, plan_key, by_run)
        found = list(by_run), {n: by_run[n] for n in names if n in by_run}
    runs, entries = found
    place = {name: i for i, name in enumerate(runs)}
    return set(runs), {e.path: ((place[name], i), e) for name, group in entries.items() for i, e in enumerate(group)}


def _commit_exists(repo: Path, sha: str) -> bool:
    return gitrepo.call(repo, "cat-file", "-e", f"{sha}^{{commit}}").ok


def check_push(repo: Path, pushes: list[tuple[str, list[str]]], remote: str = "") -> list[str]:
    """The push stage: every commit being pushed (each pushed tip's commits that are not behind
    the given exclusions, nor on `remote`'s branches), each against its parents; each tip's design."""
    blobs, plans = Blobs(repo), Plans()
    listings: dict[str, Entries] = {}

    def listing(commit: str) -> Entries:
        if commit not in listings:
            listings[commit] = gitrepo.tree_entries(repo, commit)
        return listings[commit]

    out: list[str] = []
    done: set[str] = set()
    for tip, exclude in pushes:
        seen: set[str] = set()  # a problem is named once, at the first commit of this tip that has it
        tip = gitrepo.text(repo, "rev-parse", "--verify", f"{tip}^{{commit}}").strip()
        not_these = [e for e in exclude if _commit_exists(repo, e)] + ([f"--remotes={remote}"] if remote else [])
        commits = gitrepo.text(repo, "rev-list", "--reverse", "--topo-order", tip, "--not", *not_these).split()
        for commit in commits + ([tip] if tip not in commits else []):
            if commit in done and commit != tip:
                continue
            done.add(commit)
            if commit not in commits:  # the tip is already on the remote: only its design
                lines = check_design_only(GitTree(repo, listing(commit), blobs), plans)
            else:
                parents = gitrepo.text(repo, "rev-list", "--parents", "-n", "1", commit).split()[1:]
                entries = listing(commit)
                changed = set().union(*(_differ(entries, listing(p)) for p in parents)) if parents else None
                lines = check_tree(GitTree(repo, entries, blobs), changed, plans, design=commit == tip, committed=True)
            for line in lines:
                if line not in seen:
                    seen.add(line)
                    out.append(f"{commit[:8]}:{line}")
    return out


def check_design_only(tree: GitTree, plans: Plans) -> list[str]:
    from ..parse import DESIGN_SECTIONS
    from ..verify import summary_problems

    loaded = plans.get(tree)
    if isinstance(loaded, list):
        return loaded
    try:
        summary = tree.text(SUMMARY_FILE)
    except (FileNotFoundError, UnicodeDecodeError):
        return []
    return summary_problems(summary, loaded[0], DESIGN_SECTIONS, True)


# --------------------------------------------------------------------------- the hooks
def sealed_hook(repo: Path, stage: str) -> list[str]:
    """The sealed hook: the commit stage, or the push stage from the refs git gives on stdin
    (`<local ref> <local sha> <remote ref> <remote sha>` per pushed ref)."""
    try:
        if stage != "pre-push":
            return check_index(repo)
        pushes = []
        for line in sys.stdin.read().splitlines():
            parts = line.split()
            if len(parts) == 4 and parts[1] != ZERO:
                pushes.append((parts[1], [parts[3]] if parts[3] != ZERO else []))
        return check_push(repo, pushes, os.environ.get("CRUIJFF_GEN_REMOTE", ""))
    except GitError as exc:
        return [f"cruijff-gen: verify: {exc}"]


def config_hook(repo: Path) -> list[str]:
    """The configuration's hook without the sealed one: the push stage when pre-commit exports the
    refs being pushed (it passes the first pushed ref only), else the commit stage."""
    env = os.environ
    try:
        if env.get("PRE_COMMIT_TO_REF"):
            return check_push(repo, [(env["PRE_COMMIT_TO_REF"], [env.get("PRE_COMMIT_FROM_REF", "")])], env.get("PRE_COMMIT_REMOTE_NAME", ""))
        if env.get("PRE_COMMIT_LOCAL_BRANCH"):
            return check_push(repo, [(env["PRE_COMMIT_LOCAL_BRANCH"], [])], env.get("PRE_COMMIT_REMOTE_NAME", ""))
        return check_index(repo)
    except GitError as exc:
        return [f"cruijff-gen: verify: {exc}"]


def _status_path(repo: Path) -> Path | None:
    try:
        return Path(repo, gitrepo.text(repo, "rev-parse", "--git-dir").strip(), STATUS_FILE)
    except GitError:
        return None


def _record(repo: Path, stage: str, passed: bool) -> None:
    """The sealed hook's result, for the configuration's hook that pre-commit runs next (the same
    pre-commit process is the parent of both)."""
    path = _status_path(repo)
    if path is not None:
        try:
            path.write_text(f"{os.getppid()} {stage} {'passed' if passed else 'refused'}\n", encoding="utf-8")
        except OSError:
            pass


def _recorded(repo: Path) -> bool | None:
    """The sealed hook's result when it ran in this pre-commit process, else None."""
    path = _status_path(repo)
    try:
        ppid, _, result = path.read_text(encoding="utf-8").split() if path else ("", "", "")
    except (OSError, ValueError):
        return None
    if ppid != str(os.getppid()):
        return None
    return result == "passed"
