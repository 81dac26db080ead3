"""How sbatch reads the directives of a batch script: which lines, split into which arguments, read
as which options. Slurm's own rules, from its source (src/sbatch/opt.c: the batch script's header
lines, its get_argument() and the getopt_long() tables of sbatch's options) and the sbatch(1) man
page ("sbatch will stop processing further #SBATCH directives once the first non-comment non-whitespace
line has been reached in the script"), checked against `sbatch --test-only -v` on the test cluster
(tests/test_verify.py):

* `#SBATCH` (and `#SLURM`) lines are read only before the first command (a line that is neither
  blank nor a comment); `#PBS` and `#BSUB` lines are applied wherever they are, over #SBATCH;
* each line's text is split into arguments by sbatch's own rules (not the shell's), and the
  arguments of all the lines are one argv, read by getopt_long: long and short forms, values after
  `=`, attached or in the next argument, flags bundled.

This module knows what sbatch does, not which options cruijff_gen allows (verify.py's policy tables).
getopt_long knows every option sbatch has; the caller names those it knows (`known`): one of them
without `=` takes the next argument as its value unless sbatch's tables make it a flag or its value
optional. Any other name (an abbreviation, a typo) is read alone, for the caller to refuse.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

C_SPACE = " \t\n\v\f\r"  # C's isspace() in the C locale: where sbatch splits an #SBATCH line
SBATCH_MAGIC = ("#SBATCH", "#SLURM")  # sbatch reads both (the second with a warning)
WRAPPER_MAGIC = ("#PBS", "#BSUB")  # sbatch applies these anywhere in the script, over #SBATCH

# sbatch's short options (src/sbatch/opt.c): the ones that take a value, and the flags.
SHORT_WITH_VALUE = {
    "a": "array", "A": "account", "b": "begin", "B": "extra-node-info", "c": "cpus-per-task", "C": "constraint",
    "d": "dependency", "D": "chdir", "e": "error", "F": "nodefile", "G": "gpus", "i": "input", "J": "job-name",
    "L": "licenses", "m": "distribution", "M": "clusters", "n": "ntasks", "N": "nodes", "o": "output",
    "p": "partition", "q": "qos", "S": "core-spec", "t": "time", "w": "nodelist", "x": "exclude",
}
SHORT_FLAGS = {
    "h": "help", "H": "hold", "I": "immediate", "k": "no-kill", "O": "overcommit", "Q": "quiet",
    "s": "oversubscribe", "u": "usage", "v": "verbose", "V": "version", "W": "wait",
}
# Long options whose value is optional (`--exclusive`, `--exclusive=user`) or absent (flags). Every
# other long option takes a value (`--time=1:00` or `--time 1:00`).
LONG_OPTIONAL = {"exclusive", "nice", "export", "propagate", "get-user-env", "wrap", "x11", "parsable"}
LONG_FLAGS = set(SHORT_FLAGS.values()) | {
    "requeue", "no-requeue", "contiguous", "reboot", "spread-job", "use-min-nodes", "test-only", "ignore-pbs",
}


class SbatchSyntax(ValueError):
    """Text in an #SBATCH line that sbatch itself refuses."""


def sbatch_words(rest: str) -> list[str]:
    """The arguments sbatch reads from the text after `#SBATCH` (its get_argument()): split at C
    whitespace; `'` and `"` group and are dropped; a backslash keeps the next character (but never
    protects whitespace); an unquoted `#` ends the line; an empty argument (`""`) ends it too."""
    words: list[str] = []
    i, n = 0, len(rest)
    while True:
        while i < n and rest[i] in C_SPACE:
            i += 1
        if i >= n:
            return words
        if rest[i] == ":":
            raise SbatchSyntax("an argument starting with ':'")
        arg: str | None = None
        quote = ""
        escape = False
        while i < n and (quote or rest[i] not in C_SPACE):
            c = rest[i]
            if escape:
                escape = False
            elif c == "\\":
                escape = True
                i += 1
                continue
            elif quote:
                if c == quote:
                    quote = ""
                    i += 1
                    continue
            elif c in "\"'":
                quote = c
                i += 1
                continue
            elif c == "#":
                break
            arg = (arg or "") + c
            i += 1
        if quote:
            raise SbatchSyntax(f"an unmatched {quote}")
        if arg is None:
            return words
        words.append(arg)


@dataclass(frozen=True)
class Option:
    """One option of the #SBATCH lines, as getopt_long returns it to sbatch."""

    name: str  # the long name (`time` for `-t`); `-X` for an unknown short option
    value: str | None
    line: int
    written: str  # as written: `--time`, `-t`


def sbatch_options(words: list[tuple[str, int]], known: Collection[str]) -> tuple[list[Option], list[tuple[int, str]]]:
    """getopt_long over the arguments of every #SBATCH line (one argv, as sbatch builds it): a long
    option's value after `=` or in the next argument, a short option's value attached or in the
    next argument, flags bundled (`known`: as the module says). Returns the options and what sbatch
    would refuse (line, text)."""
    opts: list[Option] = []
    problems: list[tuple[int, str]] = []
    i = 0
    while i < len(words):
        word, line = words[i]
        if word == "--":  # the end of the options: anything after it is refused
            if i + 1 < len(words):
                problems.append((words[i + 1][1], f"{words[i + 1][0]!r} after '--' (sbatch refuses the script)"))
            break
        if word.startswith("--"):
            name, eq, value = word[2:].partition("=")
            takes = "flag" if name in LONG_FLAGS else "optional" if name in LONG_OPTIONAL else "value"
            if not eq and takes == "value" and name in known:
                if i + 1 >= len(words):
                    problems.append((line, f"{word} without a value (sbatch refuses the script)"))
                    break
                i += 1
                value = words[i][0]
                eq = "="
            opts.append(Option(name, value if eq else None, line, f"--{name}"))
            i += 1
            continue
        if word.startswith("-") and len(word) > 1:
            j = 1
            while j < len(word):
                c = word[j]
                if c in SHORT_WITH_VALUE:
                    value = word[j + 1:]
                    if not value:
                        if i + 1 >= len(words):
                            problems.append((line, f"-{c} without a value (sbatch refuses the script)"))
                            return opts, problems
                        i += 1
                        value = words[i][0]
                    opts.append(Option(SHORT_WITH_VALUE[c], value, line, f"-{c}"))
                    break
                opts.append(Option(SHORT_FLAGS.get(c, f"-{c}"), None, line, f"-{c}"))
                j += 1
            i += 1
            continue
        problems.append((line, f"{word!r} is not an option (sbatch refuses the script, or reads 'hetjob' as a second job)"))
        break
    return opts, problems


@dataclass
class Directives:
    """What sbatch reads from a script's directives, and where it stops."""

    options: list[Option]
    problems: list[tuple[int, str]]  # (line, what sbatch refuses or misreads)
    first_command: tuple[int, str] | None  # where sbatch stops reading directives
    ignored: list[tuple[int, str]]  # #SBATCH lines after the first command (sbatch ignores them)
    wrappers: list[tuple[int, str]]  # #PBS / #BSUB lines (applied wherever they are)


def read_directives(text: str, known: Collection[str]) -> Directives:
    """The directives of a batch script as sbatch reads them (`known`: as the module says)."""
    words: list[tuple[str, int]] = []
    problems: list[tuple[int, str]] = []
    first_command: tuple[int, str] | None = None
    ignored: list[tuple[int, str]] = []
    wrappers: list[tuple[int, str]] = []
    for n, line in enumerate(text.split("\n"), 1):
        if line.startswith(WRAPPER_MAGIC):
            wrappers.append((n, line))
            continue
        magic = next((m for m in SBATCH_MAGIC if line.startswith(m)), None)
        if first_command is not None:
            if magic:
                ignored.append((n, line))
            continue
        if magic is None:
            body = line.strip(C_SPACE)
            if body and not body.startswith("#"):
                first_command = (n, line)
            continue
        lowered = line.lower()
        if "hetjob" in lowered or "packjob" in lowered:
            problems.append((n, f"{line!r} (sbatch may read it as the start of a second, heterogeneous job)"))
            continue
        if magic == "#SLURM":
            problems.append((n, f"{line!r} (#SLURM is read like #SBATCH: write #SBATCH)"))
        try:
            words += [(w, n) for w in sbatch_words(line[len(magic):])]
        except SbatchSyntax as exc:
            problems.append((n, f"{line!r}: {exc} (sbatch refuses the script)"))
    options, more = sbatch_options(words, known)
    return Directives(options, problems + more, first_command, ignored, wrappers)


def options_of(lines: list[tuple[int, str]], known: Collection[str]) -> list[Option]:
    """The options of #SBATCH lines read on their own (those sbatch ignores after the first command,
    for the caller's messages); a line sbatch would refuse gives none."""
    words = []
    for n, line in lines:
        magic = next(m for m in SBATCH_MAGIC if line.startswith(m))
        try:
            words += [(w, n) for w in sbatch_words(line[len(magic):])]
        except SbatchSyntax:
            continue
    return sbatch_options(words, known)[0]
