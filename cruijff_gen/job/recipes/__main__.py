"""`python -m cruijff_gen.job.recipes NAME`: print what `tune run` takes to run our recipe NAME.

`--file` prints the recipe file's absolute path instead (for `python FILE` or `torchrun ... FILE`).
An unknown NAME: one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from cruijff_gen.job.recipes import RECIPES, recipe_path, tune_run_target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cruijff_gen.job.recipes", description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help=f"one of: {', '.join(RECIPES)}")
    parser.add_argument("--file", action="store_true", help="print the absolute path of the recipe file")
    args = parser.parse_args(argv)
    try:
        print(recipe_path(args.name) if args.file else tune_run_target(args.name))
    except ValueError as exc:
        print(f"python -m cruijff_gen.job.recipes: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
