"""Typed errors. Raised by the stages, turned into readable lines once, at the CLI edge."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the design, located by the path of the offending value."""

    path: str  # e.g. "runs[3].parameters.lr"; "" for the file as a whole
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class CruijffError(Exception):
    """Base of every error the CLI reports as a message instead of a traceback."""

    exit_code = 2

    def lines(self) -> list[str]:
        return [str(self)]


class DesignError(CruijffError):
    """The experiment design (summary + cluster settings) is invalid. Nothing was written."""

    def __init__(self, problems: list[Problem] | Problem, source: str = "experiment_summary.yaml"):
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        self.source = source
        super().__init__("; ".join(map(str, self.problems)))

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]


class UsageError(CruijffError):
    """A command-line argument or destination is wrong (not the design), e.g. a file it names is
    missing or unreadable. Nothing was written."""


class MarkdownError(CruijffError):
    """An older markdown design document (`cruijff-gen import`) cannot be read as a design: the
    section and line of what stops it. Nothing was written. (Not a DesignError: the design it
    would become does not exist yet; parse's complaints about that design are reported apart.)"""

    def __init__(self, where: str, message: str, source: str = "experiment_summary.md"):
        self.where = where
        self.source = source
        super().__init__(f"{where}: {message}" if where else message)


class CatalogError(CruijffError):
    """A model catalog file (bundled or user's) is malformed."""


class VerifyFailed(CruijffError):
    """Generated files disagree with the design."""

    exit_code = 1

    def __init__(self, mismatches: list[str]):
        self.mismatches = mismatches
        super().__init__(f"{len(mismatches)} mismatch(es)")

    def lines(self) -> list[str]:
        return list(self.mismatches)


class GitError(CruijffError):
    """The experiment repository is in a state we will not write over."""


# How to return a refused update's tree to its last good commit (HEAD).
RECOVER = "git reset --hard HEAD && git clean -fd"  # (after `rm .git/index.lock` if git says it exists)


class UpdateRefused(CruijffError):
    """An update (or re-render) stopped before committing; HEAD is still the last good commit."""

    exit_code = 1

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))

    def lines(self) -> list[str]:
        return [*self.problems, f"HEAD is still the last good commit. To return the tree to it: {RECOVER}"]


class Locked(CruijffError):
    """Another update holds the experiment's update lock."""

    exit_code = 3
