"""Command line: wires argparse to the commands; errors become readable lines here, once."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import CruijffError, DesignError, VerifyFailed


def _patterns(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


class _Unused:
    """Stands in for the parser of a command not given (its arguments are not built)."""

    def add_argument(self, *args: object, **kwargs: object) -> None:
        pass


def _parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line; with `only`, just that command's (about 6 ms less at every start: each
    Copier task and git hook starts one), or all of them when `only` is not one."""
    parser = argparse.ArgumentParser(prog="cruijff-gen", description="Scaffold and verify LoRA fine-tuning experiments on SLURM.")
    # Copier's steps (start-update, finish-update: commands/update.py; base-render) are commands too, but not listed:
    # a subcommand given no help= stays out of the listing, and the metavar hides it from the choices.
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    formatter = argparse.ArgumentDefaultsHelpFormatter
    experiment_dir = "the experiment directory, or any directory inside it"

    def add(name: str, **kwargs: object) -> argparse.ArgumentParser | _Unused:
        return sub.add_parser(name, formatter_class=formatter, **kwargs) if only in (None, name) else _Unused()

    p = add(name="new", help="scaffold a new experiment from SUMMARY into DEST (checks the summary, then runs copier copy)")
    p.add_argument("summary", type=Path, help="the design: experiment_summary.yaml")
    p.add_argument("dest", type=Path, help="the experiment directory to create")
    p.add_argument("--template", help="template path or git URL (default: the cruijff_gen checkout this runs from)")
    p.add_argument("--data", action="append", default=[], metavar="KEY=VALUE", help="a cluster setting (repeatable), as copier's --data")

    p = add(name="update", help="re-render DIR after its experiment_summary.yaml changed (checks it, then runs copier update)")
    p.add_argument("dest", nargs="?", type=Path, default=Path("."), help=experiment_dir)

    p = add(name="render", help="render the experiment in DIR from its .copier-answers.yml (what the Copier task runs)")
    p.add_argument("dest", nargs="?", type=Path, default=Path("."), help=experiment_dir)
    # set by the Copier task, not by hand
    p.add_argument("--operation", default="render", choices=("copy", "update", "render"), help=argparse.SUPPRESS)
    p.add_argument("--data-keys", default="", help=argparse.SUPPRESS)
    p.add_argument("--commit", action=argparse.BooleanOptionalAction, default=False, help=argparse.SUPPRESS)
    p.add_argument("--only", type=_patterns, default=(), help="re-render only these runs (comma-separated names or shell patterns, e.g. 'rank8_lr1e-5,rank16_*')")

    p = add(name="start-update", description="first step of `copier update` (a Copier migration): take the experiment's update lock")
    p.add_argument("dest", nargs="?", type=Path, default=Path("."))

    p = add(name="base-render", description="print the rendering of the design in ANSWERS as JSON (used by finish-update)")
    p.add_argument("answers", type=Path)

    p = add(name="finish-update", description="last step of `copier update` (a Copier migration): check, log and commit the update")
    p.add_argument("dest", nargs="?", type=Path, default=Path("."))

    p = add(name="verify", help="check every generated value in DIR against the design; exit 1 on mismatch")
    p.add_argument("dest", nargs="?", type=Path, default=Path("."), help=experiment_dir)
    p.add_argument("--files", nargs="*", metavar="FILE", help="check the values of these files only (paths relative to DIR; "
                   "what the pre-commit hook passes); the others are checked to exist")

    p = add(name="install-hooks", help="install the experiment's git hooks in DIR (once per clone: git does not clone hooks)")
    p.add_argument("dest", nargs="?", type=Path, default=Path("."), help=experiment_dir)

    p = add(name="import", help="convert an older experiment_summary.md design into experiment_summary.yaml")
    p.add_argument("source", type=Path, help="the markdown design (experiment_summary.md)")
    p.add_argument("-o", "--output", type=Path, help="where to write (default: experiment_summary.yaml beside the source)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")

    p = add(name="plan", help="dry run: run table, eval cells and files a scaffold would write; writes nothing")
    p.add_argument("design", type=Path, help="experiment_summary.yaml, or an experiment directory")
    p.add_argument("--settings", type=Path, help="YAML file of cluster settings (the Copier questions' answers)")
    p.add_argument("--dest", type=Path, help="compare with this experiment directory")
    p.add_argument("--only", type=_patterns, default=(), help="only these runs (comma-separated names or shell patterns)")

    # The lifecycle after the scaffold: submit, watch, collect (cruijff_gen/lifecycle.py).
    runs_help = "only the jobs of these runs (names or shell patterns such as 'rank8_*'; default: every run)"
    p = add(name="submit", help="submit the jobs not yet queued, running or done (evals after their training; "
                       "under the queue cap; recorded in logs/jobs.jsonl)")
    p.add_argument("runs", nargs="*", metavar="RUN", default=argparse.SUPPRESS, help=runs_help)
    p.add_argument("-C", "--dir", dest="dest", metavar="DIR", type=Path, default=Path("."), help=experiment_dir)
    p.add_argument("--retry-failed", action="store_true", help="also resubmit jobs that failed, were cancelled or timed out (and eval cells held by them)")
    p.add_argument("--stale", action="store_true", help="also resubmit jobs whose files changed after they ran (`cruijff-gen status` marks them stale)")
    p.add_argument("--dry-run", action="store_true", help="say what would be submitted; submit and record nothing")
    p.add_argument("--max-in-queue", type=int, metavar="N", default=argparse.SUPPRESS, help="queue cap: at most N of your jobs pending or running at once, 0 = none "
                   "(default: the cluster setting max_in_queue)")
    p.add_argument("--wait", action="store_true", help="when the cap leaves jobs out, stay and submit them as jobs leave the queue")
    p.add_argument("--poll", type=float, default=60.0, metavar="SECONDS", help="with --wait: how often to look at the queue")

    p = add(name="status", help="a row per training and eval cell: pending, running, completed, failed (with its log), "
                       "stale, ...; one sacct call")
    p.add_argument("runs", nargs="*", metavar="RUN", default=argparse.SUPPRESS, help=runs_help)
    p.add_argument("-C", "--dir", dest="dest", metavar="DIR", type=Path, default=Path("."), help=experiment_dir)
    p.add_argument("--json", action="store_true", help="print JSON (rows, counts, next commands) instead of a table")

    p = add(name="results", help="every eval cell's scores joined with the design's parameters and the "
                       "training/validation loss: a table, a CSV and plots")
    p.add_argument("runs", nargs="*", metavar="RUN", default=argparse.SUPPRESS, help=runs_help)
    p.add_argument("-C", "--dir", dest="dest", metavar="DIR", type=Path, default=Path("."), help=experiment_dir)
    p.add_argument("-o", "--out", type=Path, help="where to write results.csv and the plots (default: results/ in the experiment, git-ignored)")
    p.add_argument("--no-plots", action="store_true", help="write the CSV only (plots need matplotlib)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    return parser if only in (None, *sub.choices) else _parser()


ANSWERS_FILE = ".copier-answers.yml"


def experiment_root(path: Path) -> Path:
    """The experiment `path` is in: the nearest directory, from `path` up, that holds the answers
    file (as git finds a repository from any directory inside it); `path` itself when none does."""
    start = path.resolve()
    for candidate in (start, *start.parents):
        if (candidate / ANSWERS_FILE).is_file():
            return candidate
    return path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser(argv[0] if argv else None).parse_args(argv)
    if args.command in ("update", "verify", "install-hooks", "submit", "status", "results") or (args.command == "render" and args.operation == "render"):
        args.dest = experiment_root(args.dest)  # a user's command, from anywhere inside the experiment
    try:
        if args.command in ("new", "update"):
            from .commands import front

            return front.new(args.summary, args.dest, args.template, args.data) if args.command == "new" else front.update(args.dest)
        if args.command in ("start-update", "finish-update") or (args.command == "render" and args.operation == "update"):
            from .commands import update  # the update protocol, step by step

            if args.command == "start-update":
                return update.start(args.dest)
            if args.command == "finish-update":
                return update.finish(args.dest)
            return update.render_task(args.dest, tuple(k for k in args.data_keys.split(",") if k))
        if args.command == "base-render":
            from .commands import render

            return render.base_render(args.answers)
        if args.command == "render":
            from .commands import render

            keys = tuple(k for k in args.data_keys.split(",") if k)
            return render.run(args.dest, args.operation, keys, args.commit, args.only)
        if args.command == "verify":
            from .commands import verify

            return verify.run(args.dest, args.files)
        if args.command == "install-hooks":
            from .commands import verify

            return verify.install(args.dest.resolve())
        if args.command == "import":
            from .commands import import_md

            return import_md.run(args.source, args.output, args.force)
        if args.command == "plan":
            from .commands import plan

            return plan.run(args.design, args.settings, args.dest, args.only)
        if args.command == "submit":
            from .commands import submit

            return submit.run(args.dest, tuple(getattr(args, "runs", ())), retry_failed=args.retry_failed, stale=args.stale,
                              dry_run=args.dry_run, wait=args.wait, poll=args.poll, max_in_queue=getattr(args, "max_in_queue", None))
        if args.command == "status":
            from .commands import status

            return status.run(args.dest, tuple(getattr(args, "runs", ())), as_json=args.json)
        if args.command == "results":
            from .commands import results

            return results.run(args.dest, tuple(getattr(args, "runs", ())), out=args.out, plots=not args.no_plots, as_json=args.json)
    except DesignError as exc:
        first, *more = exc.lines()
        print(f"cruijff-gen: error: {first}", file=sys.stderr)
        for line in more:
            print(f"cruijff-gen:   also: {line}", file=sys.stderr)
        print("cruijff-gen: nothing was written; fix the design and run again.", file=sys.stderr)
        return exc.exit_code
    except CruijffError as exc:
        for line in exc.lines():
            bare = args.command == "verify" and isinstance(exc, VerifyFailed)  # verify's mismatch lines, as they are
            print(line if bare else f"cruijff-gen: error: {line}", file=sys.stderr)
        return exc.exit_code
    return 2
