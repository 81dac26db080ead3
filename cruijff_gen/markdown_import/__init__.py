"""Import an older markdown design (`experiment_summary.md`) into the YAML design schema.

The original workflow kept an experiment's design in a markdown file written for humans: an H1
title, a "Tools" section (`**Model Preparation:** torchtune`), an "All Runs" table
(`Run Name | Model | LoRA Rank | Learning Rate | Batch Size | Type | Est. Time`, `-` = not
applicable) and Resources / Configuration / Evaluation Plan / Quick Reference sections.
`import_markdown` reads that file and returns the equivalent design, the dict
`experiment_summary.yaml` holds, plus one line per thing it could not carry over, each naming
the section and the 1-based line it came from.

It is a converter, not a validator: the parse stage still checks the result. Only a document
that cannot be read as a design at all is an error here (a malformed run table, an unknown
tool, a table cell that is not a value of its column); the error names the line.

The modules, in the order the work happens:
  markdown.py         sections, key-value lines, tables (nothing about designs)
  values.py           cell values: plain text, numbers, yes/no, paths, dates, sizes, splits
  phrases.py          the words understood, from data/markdown_phrases.yaml
  findings.py         what the sections said, with lines; the report of what was not carried over
  overview.py, runs.py, resources.py, configuration.py, evaluation_plan.py, quick_reference.py
                      one reader per kind of section
  assemble.py         the design from the findings
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .. import yamlio
from .assemble import design
from .configuration import read_configuration
from .evaluation_plan import read_evaluation_plan
from .findings import Findings
from .markdown import Section, split_sections
from .overview import read_overview, read_prose, read_tools, read_variables
from .phrases import section_kind
from .quick_reference import read_quick_reference
from .resources import read_resources
from .runs import read_runs

__all__ = ["ImportResult", "import_markdown"]


@dataclass(frozen=True)
class ImportResult:
    design: dict[str, Any]  # in the experiment_summary.yaml schema (see parse.py)
    unmapped: list[str]  # "<section>, line <n>: <what was not carried over, and why>"
    source: str = "experiment_summary.md"

    def to_yaml(self) -> str:
        header = [
            f"# Imported from {self.source} by `cruijff-gen import`; review it before scaffolding.",
        ]
        if self.unmapped:
            header.append(f"# Not carried over, or assumed ({len(self.unmapped)}):")
            header += [f"#   - {' '.join(item.splitlines())}" for item in self.unmapped]
        else:
            header.append("# Everything in the markdown design was carried over.")
        return "\n".join(header) + "\n" + yamlio.dump(self.design)


def import_markdown(text: str, source: str = "experiment_summary.md") -> ImportResult:
    """The design an `experiment_summary.md` describes; raises MarkdownError naming the line when
    the document cannot be read (malformed run table, unknown tool, bad table value)."""
    title, sections = split_sections(text)
    found = Findings(source=source, title=title)
    _read_sections(found, sections)
    result = design(found)
    return ImportResult(design=result, unmapped=found.report(), source=source)


Reader = Callable[[Findings, Section, str, str], None]  # (findings, section, where, kind)

# Sections are read in this order, whatever the document's: Resources needs the run table's model
# names, the Evaluation Plan's matrix needs the Resources' task names.
READERS: dict[str, Reader] = {
    "overview": read_overview, "question": read_prose, "hypothesis": read_prose, "purpose": read_prose,
    "tools": read_tools, "variables": read_variables, "runs": read_runs, "resources": read_resources,
    "configuration": read_configuration, "evaluation": read_evaluation_plan, "quickref": read_quick_reference,
}
_ORDER = list(READERS)


def _read_sections(found: Findings, sections: list[Section]) -> None:
    kinds = [(section_kind(s.title), s) for s in sections]
    for kind, section in sorted(kinds, key=lambda ks: _ORDER.index(ks[0]) if ks[0] in READERS else len(_ORDER)):
        where = section.title or "(before the first section)"
        if kind in READERS:
            READERS[kind](found, section, where, kind)
        elif any(line.text.strip() for line in section.body):
            last = section.body[-1].no if section.body else section.line
            found.note_range(section.title, section.line, last, "section is not part of the design (ignored)")
    if not any(kind == "runs" for kind, _ in kinds):
        raise found.error("All Runs", None, "no \"All Runs\" section: the run table (| Run Name | Model | ... | Type |) is required")
    if not any(kind == "tools" for kind, _ in kinds):
        found.note("Tools", None, "no Tools section; assumed torchtune + inspect-ai")
