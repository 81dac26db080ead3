"""`cruijff-gen status [RUN ...]`: a row per run's training and per eval cell: not submitted, pending
(reason), running (elapsed), completed, failed (exit code; the log to read), cancelled, timed out,
and stale when the files the job ran from have changed since (an update), with the commands that
resubmit what needs it.

SLURM is asked at most twice for the whole experiment: one `squeue` (this user's queue) and one
`sacct` for the recorded jobs not in it (`scontrol show job` where SLURM keeps no accounting).
A table (rich's when the output is a terminal and rich is installed, plain text otherwise) or
`--json`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .. import lifecycle as lc
from ..experiment_dir import read_answers
from ..parse import parse
from ..plan import plan

COLUMNS = ("run", "job", "state", "job id", "commit", "detail")


def _state(row: lc.Row) -> str:
    return f"{row.state}, stale" if row.stale else row.state


def _detail(row: lc.Row) -> str:
    parts = [row.detail] if row.detail else []
    if row.stale:
        parts.append("stale: " + "; ".join(row.why_stale))
    return "; ".join(parts)


def table_rows(rows: list[lc.Row]) -> list[tuple[str, ...]]:
    return [(r.unit.run, r.unit.label, _state(r), r.job or "-", (r.commit or "")[:8] or "-", _detail(r)) for r in rows]


def footer(rows: list[lc.Row], runs: tuple[str, ...]) -> list[str]:
    """What to do next, as commands."""
    only = (" " + " ".join(runs)) if runs else ""
    out = []
    bad = [r for r in rows if r.state in lc.ENDED_BADLY or lc.never_runs(r.info)]
    if bad:
        out.append(f"{len(bad)} failed, cancelled or timed out (read the logs named above); resubmit them with: cruijff-gen submit --retry-failed{only}")
    stale = [r for r in rows if r.stale]
    if stale:
        queued = [r for r in stale if r.state in lc.LIVE]
        out.append(f"{len(stale)} stale (the files they ran from have changed since); resubmit them with: cruijff-gen submit --stale{only}"
                   + (f" (still queued: scancel {' '.join(r.job for r in queued)} first)" if queued else ""))
    new = [r for r in rows if r.state == lc.NOT_SUBMITTED]
    if new:
        out.append(f"{len(new)} not submitted; submit them with: cruijff-gen submit{only}")
    return out


def plain(header: str, columns: tuple[str, ...], rows: list[tuple[str, ...]], notes: list[str]) -> str:
    widths = [max(len(str(row[i])) for row in [columns, *rows]) for i in range(len(columns))]
    lines = [header, ""]
    for row in [columns, *rows]:
        lines.append("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip())
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def print_table(header: str, columns: tuple[str, ...], rows: list[tuple[str, ...]], notes: list[str]) -> None:
    """rich's table on a terminal (when rich is installed), plain text otherwise (pipes, files)."""
    if not (sys.stdout.isatty() and _rich(header, columns, rows, notes)):
        sys.stdout.write(plain(header, columns, rows, notes))


def _rich(header: str, columns: tuple[str, ...], rows: list[tuple[str, ...]], notes: list[str]) -> bool:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        return False
    colours = {"completed": "green", "failed": "red", "running": "cyan", "pending": "yellow", "cancelled": "magenta",
               "timed out": "red", "unknown": "red"}
    table = Table(title=header, title_justify="left")
    for name in columns:
        table.add_column(name, overflow="fold")
    state_at = columns.index("state") if "state" in columns else None
    for row in rows:
        cells = list(row)
        if state_at is not None:
            state = cells[state_at]
            colour = "bold yellow" if "stale" in state else colours.get(state.split(",")[0], "")
            cells[state_at] = f"[{colour}]{state}[/]" if colour else state
        table.add_row(*cells)
    console = Console()
    console.print(table)
    for note in notes:
        console.print(note, highlight=False)
    return True


def run(root: Path, runs: tuple[str, ...] = (), as_json: bool = False, slurm: lc.Slurm | None = None) -> int:
    root = root.resolve()
    the_plan = plan(parse(read_answers(root)))
    wanted = lc.select(lc.units(the_plan), runs)
    slurm = slurm or lc.Slurm(strict=False)
    rows, _queue = lc.assess(root, the_plan, slurm, wanted)
    counts = lc.counts(rows)
    stale = sum(r.stale for r in rows)
    if as_json:
        json.dump({"experiment": the_plan.design.experiment.name, "commit": lc.head(root), "counts": counts, "stale": stale,
                   "rows": [r.as_dict() for r in rows], "next": footer(rows, runs), "notes": slurm.notes},
                  sys.stdout, separators=(",", ":"))
        sys.stdout.write("\n")
        return 0
    summary = ", ".join(f"{n} {state}" for state, n in counts.items()) + (f"; {stale} stale" if stale else "")
    header = f"{the_plan.design.experiment.name} at {lc.head(root)[:8]}: {len(rows)} job(s): {summary}"
    notes = footer(rows, runs) + [f"note: {n}" for n in slurm.notes]
    print_table(header, COLUMNS, table_rows(rows), notes)
    return 0
