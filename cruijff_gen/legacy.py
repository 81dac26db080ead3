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
"""

from __future__ import annotations

import datetime as dt
import posixpath
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator

from . import facts, yamlio
from .errors import DesignError, Problem


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
    """The design an `experiment_summary.md` describes; raises DesignError naming the line when
    the document cannot be read (malformed run table, unknown tool, bad table value)."""
    importer = _Importer(_split_sections(text), source)
    design = importer.run()
    return ImportResult(design=design, unmapped=importer.report(), source=source)


# --------------------------------------------------------------------------- document structure
@dataclass(frozen=True)
class _Line:
    no: int  # 1-based
    text: str


@dataclass
class _Section:
    title: str  # H2 heading as written ("" for the text before the first H2)
    line: int  # line of the heading (1 for the preamble)
    body: list[_Line]


_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def _split_sections(text: str) -> tuple[tuple[str, int] | None, list[_Section]]:
    """The H1 title (text, line) and the H2 sections; H3+ headings stay inside their section."""
    title: tuple[str, int] | None = None
    sections = [_Section("", 1, [])]
    fenced = False
    for no, raw in enumerate(text.splitlines(), start=1):
        if _FENCE.match(raw):
            fenced = not fenced
        heading = None if fenced else _HEADING.match(raw)
        if heading and len(heading.group(1)) == 1 and title is None:
            title = (heading.group(2).strip(), no)
            continue
        if heading and len(heading.group(1)) <= 2:
            sections.append(_Section(heading.group(2).strip(), no, []))
            continue
        sections[-1].body.append(_Line(no, raw))
    return title, sections


def _norm(text: str) -> str:
    """Key form for matching names: lower case, words of letters and digits only."""
    return re.sub(r"[^a-z0-9&]+", " ", text.lower()).strip()


@dataclass
class _Item:
    kind: str  # "kv" | "heading" | "table" | "code" | "text"
    line: int
    text: str = ""
    key: str = ""  # kv: the key as written (no markup)
    value: str = ""  # kv: the rest of the line
    style: str = ""  # kv: bold | italic | plain
    indent: int = 0
    lines: list[_Line] = field(default_factory=list)  # table / code: its lines

    @property
    def last(self) -> int:
        return self.lines[-1].no if self.lines else self.line


_LIST_MARK = re.compile(r"^(\s*)(?:[-*+]\s+|\d+[.)]\s+)?(.*)$")


def _key_value(text: str) -> tuple[int, str, str, str] | None:
    """`- **Key:** value`, `**Key**: value`, `*Key:* value`, `- Key: value` -> (indent, key, value, style)."""
    m = _LIST_MARK.match(text)
    assert m is not None
    indent, rest = len(m.group(1).expandtabs(4)), m.group(2)
    for style, pattern in (("bold", r"\*\*(.+?)\*\*"), ("bold", r"__(.+?)__"), ("italic", r"\*(.+?)\*"), ("italic", r"_(.+?)_")):
        km = re.match(pattern + r"\s*(:?)\s*(.*)$", rest)
        if km:
            key, colon, value = km.group(1).strip(), km.group(2), km.group(3).strip()
            if key.endswith(":"):
                key, colon = key[:-1].strip(), ":"
            if style == "italic" and not colon:
                return None
            return indent, key, value, style
    km = re.match(r"([A-Za-z][^:`|*]{0,60}?)\s*:\s*(.*)$", rest)
    if km and not km.group(2).startswith("//"):
        return indent, km.group(1).strip(), km.group(2).strip(), "plain"
    return None


def _items(body: list[_Line]) -> Iterator[_Item]:
    i = 0
    while i < len(body):
        line = body[i]
        stripped = line.text.strip()
        if _FENCE.match(line.text):
            j = i + 1
            while j < len(body) and not _FENCE.match(body[j].text):
                j += 1
            yield _Item("code", line.no, lines=body[i : j + 1])
            i = j + 1
            continue
        if stripped.startswith("|"):
            j = i
            while j < len(body) and body[j].text.strip().startswith("|"):
                j += 1
            yield _Item("table", line.no, lines=body[i:j])
            i = j
            continue
        i += 1
        if not stripped or re.fullmatch(r"(-{3,}|\*{3,}|_{3,})", stripped) or re.fullmatch(r"<!--.*-->", stripped):
            continue
        heading = _HEADING.match(line.text)
        if heading:
            yield _Item("heading", line.no, text=heading.group(2).strip())
            continue
        kv = _key_value(line.text)
        if kv:
            indent, key, value, style = kv
            yield _Item("kv", line.no, text=stripped, key=key, value=value, style=style, indent=indent)
        else:
            yield _Item("text", line.no, text=stripped)


# --------------------------------------------------------------------------- tables
@dataclass
class _Table:
    where: str
    header: list[str]
    header_line: int
    rows: list[tuple[int, list[str]]]


_SEPARATOR_CELL = re.compile(r"^:?-+:?$")


def _cells(text: str) -> list[str]:
    s = text.strip()
    if s.startswith("|"):
        s = s[1:]
    if s.endswith("|") and not s.endswith("\\|"):
        s = s[:-1]
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", s)]


def _read_table(item: _Item, where: str, source: str) -> _Table:
    header_line = item.lines[0]
    header = _cells(header_line.text)

    def fail(line: int, message: str) -> DesignError:
        return DesignError(Problem(f"{where}, line {line}", message), source)

    if len(item.lines) < 2 or not all(_SEPARATOR_CELL.match(c) for c in _cells(item.lines[1].text)):
        raise fail(header_line.no, f"the table header is not followed by a separator row (line {header_line.no + 1} should be | --- | --- |)")
    separator = item.lines[1]
    if len(_cells(separator.text)) != len(header):
        raise fail(separator.no, f"the separator row has {len(_cells(separator.text))} cells, the header (line {header_line.no}) has {len(header)}")
    rows = []
    for line in item.lines[2:]:
        cells = _cells(line.text)
        if len(cells) != len(header):
            raise fail(line.no, f"row has {len(cells)} cells, the header (line {header_line.no}) has {len(header)}")
        rows.append((line.no, cells))
    return _Table(where, header, header_line.no, rows)


# --------------------------------------------------------------------------- values
_NOT_APPLICABLE = {"", "-", "--", "—", "–", "n/a", "na", "none", "null"}
_MARKS = re.compile(r"\s*(?:[✓✔✅☑]+\s*(?:verified\b)?|\(?\bverified\b[^)]*\)?)\s*", re.IGNORECASE)


def _plain(text: str) -> str:
    """A cell or value without markdown decoration: bold, backticks, check marks."""
    text = text.strip()
    text = re.sub(r"^\*\*(.*)\*\*$", r"\1", text)
    text = _MARKS.sub(" ", text).strip()
    if len(text) >= 2 and text[0] == text[-1] == "`":
        text = text[1:-1]
    return text.strip()


def _is_na(text: str) -> bool:
    return _plain(text).lower() in _NOT_APPLICABLE


def _path_in(text: str) -> str | None:
    """The path a value gives: its first `backticked` part, else its first token that looks like a path."""
    ticked = re.search(r"`([^`]+)`", text)
    if ticked:
        candidate = ticked.group(1).strip()
        return candidate if "/" in candidate or candidate.startswith("~") else None
    for token in text.split():
        if token.startswith(("/", "~/", "./")):
            return token.rstrip(",;")
    return None


def _is_placeholder(text: str) -> bool:
    return bool(re.search(r"\{[A-Za-z_][A-Za-z0-9_ ]*\}", text))


_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _number(text: str) -> int | float | str | None:
    """A table value as a number: int, float, or the text itself for `1e-5` (the parse stage reads
    it as a number and it stays as written in the YAML); None if it is not a number."""
    t = text.strip().replace("_", "")
    if _INT.fullmatch(t):
        return int(t)
    if _FLOAT.fullmatch(t):
        if "e" in t.lower() and "." not in t:
            return t
        return float(t)
    return None


_TRUE = {"yes", "true", "on", "enabled", "enable", "y"}
_FALSE = {"no", "false", "off", "disabled", "disable", "n", "none"}


def _bool(text: str) -> bool | None:
    words = _plain(text).lower().replace("✓", "yes").replace("✗", "no").split()
    first = words[0].strip(".,;:()") if words else ""
    return True if first in _TRUE else False if first in _FALSE else None


def _quoted(text: str) -> str | None:
    """A prompt as written: `"..."` (with \\n, \\t, \\" escapes), `...`, or a word meaning empty."""
    value = text.strip()
    m = re.match(r'"((?:[^"\\]|\\.)*)"', value)
    if m:
        return re.sub(r"\\(.)", lambda e: {"n": "\n", "t": "\t"}.get(e.group(1), e.group(1)), m.group(1))
    m = re.match(r"`([^`]*)`", value)
    if m:
        return m.group(1)
    if re.match(r"^\(?(blank|empty|none|no system prompt)\b", value, re.IGNORECASE) or value in ("''", ""):
        return ""
    return None


_DATE = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")


def _date_in(text: str) -> dt.date | None:
    for m in _DATE.finditer(text):
        try:
            return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            continue
    return None


def _size(text: str, unit: str) -> float | int | None:
    """`~2.5 GB`, `21KB`, `1.2 MiB` in `unit` (GB or KB)."""
    m = re.search(r"([\d.]+)\s*(bytes|b|kib|kb|k|mib|mb|m|gib|gb|g|tib|tb|t)\b", text, re.IGNORECASE)
    if not m:
        return None
    try:
        amount = float(m.group(1))
    except ValueError:
        return None
    power = {"b": 0, "k": 1, "m": 2, "g": 3, "t": 4}[m.group(2).lower()[0] if m.group(2).lower() != "bytes" else "b"]
    value = amount * 1024 ** (power - (3 if unit == "GB" else 1))
    value = round(value, 3)
    return int(value) if value.is_integer() else value


# --------------------------------------------------------------------------- vocabulary
_SECTION_KINDS = {
    "": "overview", "overview": "overview", "summary": "overview", "experiment": "overview",
    "experiment overview": "overview", "metadata": "overview", "experiment metadata": "overview",
    "tools": "tools", "tool selection": "tools",
    "variables": "variables", "factors": "variables",
    "all runs": "runs", "runs": "runs", "run table": "runs", "run list": "runs",
    "resources": "resources", "models": "resources", "model": "resources", "dataset": "resources",
    "data": "resources", "evaluation tasks": "resources",
    "evaluation plan": "evaluation", "evaluation": "evaluation",
    "configuration": "configuration", "training configuration": "configuration", "config": "configuration",
    "quick reference": "quickref",
    "question": "question", "scientific question": "question", "research question": "question",
    "hypothesis": "hypothesis", "hypotheses": "hypothesis",
    "purpose": "purpose", "goal": "purpose", "goals": "purpose", "objective": "purpose",
}

# All Runs table columns; hyperparameter names (lora_alpha, epochs, ...) are understood too.
_RUN_COLUMNS = {
    "run name": "name", "run": "name", "name": "name", "run id": "name",
    "model": "model", "base model": "model",
    "lora rank": "lora_rank", "rank": "lora_rank", "r": "lora_rank", "lora r": "lora_rank",
    "learning rate": "lr", "lr": "lr",
    "batch size": "batch_size", "bs": "batch_size", "batch": "batch_size",
    "type": "type", "run type": "type", "kind": "type",
    "lora alpha": "lora_alpha", "alpha": "lora_alpha", "lora dropout": "lora_dropout",
    "epochs": "epochs", "warmup steps": "num_warmup_steps", "max seq len": "max_seq_len",
    "checkpoint": "checkpoint_path", "checkpoint path": "checkpoint_path",
    "gpus": "gpus", "num gpus": "gpus", "gpu": "gpus",
}

# Configuration keys -> controls keys (hyperparameter names are understood as written too).
_CONTROL_KEYS = {
    "epochs": "epochs", "num epochs": "epochs", "training epochs": "epochs",
    "batch size": "batch_size", "batch sizes": "batch_size", "bs": "batch_size",
    "lora rank": "lora_rank", "lora ranks": "lora_rank", "rank": "lora_rank",
    "learning rate": "lr", "learning rates": "lr", "lr": "lr",
    "lora alpha": "lora_alpha", "lora dropout": "lora_dropout",
    "system prompt": "system_prompt", "prompt": "prompt", "prompt template": "prompt",
    "dataset type": "dataset_type",
    "validation during training": "validation_during_training", "validation": "validation_during_training",
    "dataset packing": "packed", "packing": "packed", "packed": "packed",
    "gradient accumulation": "gradient_accumulation_steps", "gradient accumulation steps": "gradient_accumulation_steps",
    "warmup steps": "num_warmup_steps", "max sequence length": "max_seq_len", "max seq len": "max_seq_len",
    "seed": "seed", "weight decay": "weight_decay", "lr scheduler": "lr_scheduler", "optimizer": "optimizer",
}

_EVAL_KEYS = {
    "temperature": "temperature", "scorer": "scorers", "scorers": "scorers",
    "max tokens": "max_tokens", "max new tokens": "max_tokens", "do sample": "do_sample", "sampling": "do_sample",
    "max connections": "max_connections",
}

_RUN_TYPES = {
    "fine tuned": "fine-tuned", "finetuned": "fine-tuned", "fine tune": "fine-tuned", "finetune": "fine-tuned",
    "ft": "fine-tuned", "trained": "fine-tuned", "lora": "fine-tuned",
    "control": "control", "base": "control", "baseline": "control", "base model": "control",
    "eval only": "eval-only", "evaluation only": "eval-only", "evalonly": "eval-only",
}

_TOOL_KEYS = {
    "model preparation": "preparation", "preparation": "preparation", "fine tuning": "preparation",
    "finetuning": "preparation", "training": "preparation",
    "evaluation": "evaluation", "eval": "evaluation",
}
_TOOL_ALIASES = {"inspect": "inspect-ai", "inspect-ai": "inspect-ai", "inspect_ai": "inspect-ai", "torch-tune": "torchtune"}
_TOOL_LABELS = {"preparation": "model preparation", "evaluation": "evaluation"}

_DERIVED = "derived from the rest of the design (ignored)"
_RESOURCE_KEYS = {  # Resources keys that are not model names
    "dataset", "training data", "data", "dataset path", "training dataset", "training set", "path", "format",
    "dataset format", "file format", "size", "dataset size", "splits", "label", "dataset label", "name",
    "verified", "status", "exists",
}


def _hyper_key(name: str) -> str | None:
    key = _norm(name).replace(" ", "_")
    return key if key in facts.hyperparameters() else None


def _column(header: str) -> str | None:
    n = _norm(_plain(header))
    return _RUN_COLUMNS.get(n) or _hyper_key(n)


def _section_kind(title: str) -> str | None:
    n = _norm(re.sub(r"^\s*\d+[.)]?\s*", "", title))
    return _SECTION_KINDS.get(n)


# --------------------------------------------------------------------------- the importer
class _Importer:
    def __init__(self, document: tuple[tuple[str, int] | None, list[_Section]], source: str):
        self.title, self.sections = document
        self.source = source
        self.catalog = facts.catalog()
        self._notes: list[tuple[int, str]] = []
        # what the sections say, with the line they said it on
        self.experiment: dict[str, tuple[Any, int]] = {}
        self.tools: dict[str, str] = {}
        self.variables: dict[str, list[Any]] = {}
        self.controls: dict[str, tuple[Any, int]] = {}
        self.runs: list[dict[str, Any]] = []
        self.table_batch: dict[str, tuple[int, int]] = {}  # run -> (batch size, line)
        self.run_gpus: dict[str, tuple[int, int]] = {}
        self.models_dir: tuple[str, int] | None = None
        self.model_paths: dict[str, tuple[str, int]] = {}
        self.model_sizes: dict[str, float] = {}
        self.dataset: dict[str, tuple[Any, int]] = {}
        self.tasks: list[dict[str, Any]] = []
        self.evaluation: dict[str, Any] = {}
        self.matrix: list[dict[str, Any]] | None = None
        self.eval_epochs: tuple[str, int] | None = None
        self.output: dict[str, Any] = {}
        self.runs_section_line = 0
        self.config_line = 0

    # ---- reporting
    def note(self, where: str, line: int | None, message: str) -> None:
        self._notes.append((line or 0, f"{where}, line {line}: {message}" if line else f"{where}: {message}"))

    def note_range(self, where: str, first: int, last: int, message: str) -> None:
        span = f"line {first}" if first == last else f"lines {first}-{last}"
        self._notes.append((first, f"{where}, {span}: {message}"))

    def report(self) -> list[str]:
        return [text for _, text in sorted(self._notes, key=lambda n: n[0] or 10**9)]

    def not_mapped(self, where: str, item: _Item, why: str = "not part of the design (ignored)") -> None:
        if item.kind == "heading":
            return  # a heading carries no value; its lines are reported one by one
        if item.kind in ("table", "code"):
            self.note_range(where, item.line, item.last, f"{'table' if item.kind == 'table' else 'code block'} {why}")
        elif item.kind == "kv":
            self.note(where, item.line, f"{item.key!r} is {why}" if not item.value else f"{item.key!r} ({_plain(item.value)!r}) is {why}")
        else:
            self.note(where, item.line, f"{item.text[:80]!r} is {why}")

    # ---- the whole document
    def run(self) -> dict[str, Any]:
        # Sections are read in this order, whatever the document's: Resources needs the run table's
        # model names, the Evaluation Plan's matrix needs the Resources' task names.
        handlers = {
            "overview": self._overview, "question": self._prose, "hypothesis": self._prose, "purpose": self._prose,
            "tools": self._tools, "variables": self._variables, "runs": self._runs, "resources": self._resources,
            "configuration": self._configuration, "evaluation": self._evaluation_plan, "quickref": self._quick_reference,
        }
        order = list(handlers)
        kinds = [(_section_kind(s.title), s) for s in self.sections]
        for kind, section in sorted(kinds, key=lambda ks: order.index(ks[0]) if ks[0] in handlers else len(order)):
            where = section.title or "(before the first section)"
            if kind in handlers:
                handlers[kind](section, where, kind)
            elif any(line.text.strip() for line in section.body):
                last = section.body[-1].no if section.body else section.line
                self.note_range(section.title, section.line, last, "section is not part of the design (ignored)")
        if not any(kind == "runs" for kind, _ in kinds):
            raise DesignError(Problem("All Runs", "no \"All Runs\" section: the run table (| Run Name | Model | ... | Type |) is required"), self.source)
        if not any(kind == "tools" for kind, _ in kinds):
            self.note("Tools", None, "no Tools section; assumed torchtune + inspect-ai")
        return self._design()

    # ---- sections
    def _overview(self, section: _Section, where: str, kind: str) -> None:
        for item in _items(section.body):
            if item.kind != "kv":
                if section.title:
                    self.not_mapped(where, item)
                continue
            k, value = _norm(item.key), item.value
            if k in ("question", "scientific question", "research question"):
                self.set_experiment("question", _plain(value), item.line, where)
            elif k in ("hypothesis", "purpose", "project"):
                self.set_experiment(k, _plain(value), item.line, where)
            elif k in ("goal", "objective"):
                self.set_experiment("purpose", _plain(value), item.line, where)
            elif k in ("date", "created", "created on", "created at"):
                date = _date_in(value)
                if date:
                    self.experiment.setdefault("date_line", (date, item.line))
                else:
                    self.not_mapped(where, item, "not a date YYYY-MM-DD (ignored)")
            elif k in ("directory", "experiment directory", "experiment dir", "experiment", "location", "path") and _path_in(value):
                self.experiment.setdefault("dir", (_path_in(value), item.line))
            elif k in ("name", "experiment name"):
                self.experiment.setdefault("name_line", (_plain(value), item.line))
            elif k in ("type", "runs", "total runs", "experiment type", "design", "total evaluations"):
                self.not_mapped(where, item, _DERIVED)
            else:
                self.not_mapped(where, item)

    def _prose(self, section: _Section, where: str, kind: str) -> None:
        field_name = "question" if kind == "question" else kind
        words, first = [], None
        for item in _items(section.body):
            if item.kind == "kv" and _norm(item.key) in (kind, "question", "scientific question", "research question"):
                text = item.value
            elif item.kind in ("text", "kv"):
                text = _LIST_MARK.match(item.text).group(2)  # type: ignore[union-attr]
            else:
                self.not_mapped(where, item)
                continue
            words.append(_plain(text.replace("**", "")))
            first = first or item.line
        if words:
            self.set_experiment(field_name, " ".join(w for w in words if w), first, where)

    def set_experiment(self, key: str, value: str, line: int | None, where: str) -> None:
        if not value:
            return
        if key in self.experiment and self.experiment[key][0] != value:
            self.note(where, line, f"{key} {value!r} differs from the one on line {self.experiment[key][1]} (ignored)")
            return
        self.experiment.setdefault(key, (value, line))

    def _tools(self, section: _Section, where: str, kind: str) -> None:
        for item in _items(section.body):
            if item.kind != "kv":
                if item.kind in ("table", "code"):
                    self.not_mapped(where, item)
                continue  # prose ("This experiment uses the following tools:")
            if item.style == "italic" or item.indent > 0 or not item.value:
                continue  # *Purpose:*, *Used by:*, *Current status:* describe the tool above; "...tools:" is prose
            role = _TOOL_KEYS.get(_norm(item.key))
            if role is None:
                self.not_mapped(where, item)
                continue
            words = _plain(item.value).split()
            name = words[0].strip("`*,.;:()").lower() if words else ""
            name = _TOOL_ALIASES.get(name, name)
            supported = facts.SUPPORTED_TOOLS[role]
            if name not in supported:
                raise DesignError(
                    Problem(f"{where}, line {item.line}", f"unknown {_TOOL_LABELS[role]} tool {name or item.value!r}; supported: {', '.join(supported)}"),
                    self.source,
                )
            self.tools[role] = name
        for role, default in facts.DEFAULT_TOOLS.items():
            if role not in self.tools:
                self.tools[role] = default
                self.note(where, section.line, f"no {_TOOL_LABELS[role]} tool named; assumed {default}")

    def _variables(self, section: _Section, where: str, kind: str) -> None:
        def add(name: str, levels: str, line: int, item: _Item) -> None:
            key = "model" if _norm(name) in ("model", "models", "base model") else _column(name)
            if key in (None, "name", "type", "gpus", "checkpoint_path"):
                self.not_mapped(where, item, f"factor {name!r} is not a design parameter (ignored)")
                return
            values = [_plain(v) for v in re.split(r",|\s+and\s+", _plain(levels)) if _plain(v)]
            if key != "model":
                converted = [_number(v) for v in values]
                if any(v is None for v in converted):
                    self.not_mapped(where, item, f"factor {name!r} has levels that are not numbers (ignored)")
                    return
                values = converted
            self.variables[key] = values

        for item in _items(section.body):
            if item.kind == "table":
                table = _read_table(item, where, self.source)
                for line, cells in table.rows:
                    add(_plain(cells[0]), cells[1] if len(cells) > 1 else "", line, _Item("text", line, text=" | ".join(cells)))
            elif item.kind == "kv" and item.value:
                add(item.key, item.value, item.line, item)
            else:
                self.not_mapped(where, item)

    def _runs(self, section: _Section, where: str, kind: str) -> None:
        self.runs_section_line = section.line
        tables = [item for item in _items(section.body)]
        run_table = next((t for t in tables if t.kind == "table"), None)
        for item in tables:
            if item is not run_table:
                self.not_mapped(where, item)
        if run_table is None:
            raise DesignError(Problem(f"{where}, line {section.line}", "no run table (| Run Name | Model | ... | Type |) in this section"), self.source)
        self._run_table(_read_table(run_table, where, self.source))

    def _run_table(self, table: _Table) -> None:
        where = table.where
        columns: dict[str, int] = {}
        for i, header in enumerate(table.header):
            key = _column(header)
            if key is None:
                self.note(where, table.header_line, f"column {_plain(header)!r} is not part of the design (ignored)")
            elif key in columns:
                raise DesignError(Problem(f"{where}, line {table.header_line}", f"columns {table.header[columns[key]]!r} and {header!r} both give {key}"), self.source)
            else:
                columns[key] = i
        if "name" not in columns:
            raise DesignError(Problem(f"{where}, line {table.header_line}", f"the run table has no Run Name column (columns: {', '.join(table.header)})"), self.source)
        if "model" not in columns:
            raise DesignError(Problem(f"{where}, line {table.header_line}", f"the run table has no Model column (columns: {', '.join(table.header)})"), self.source)
        if not table.rows:
            raise DesignError(Problem(f"{where}, line {table.header_line}", "the run table has no rows"), self.source)
        if "type" not in columns:
            self.note(where, table.header_line, "no Type column; runs with a LoRA rank are fine-tuned, the others controls (assumed)")
        param_columns = [k for k in columns if k not in ("name", "model", "type", "gpus")]

        def fail(line: int, message: str) -> DesignError:
            return DesignError(Problem(f"{where}, line {line}", message), self.source)

        for line, cells in table.rows:
            cell = {key: cells[i] for key, i in columns.items()}
            name = _plain(cell["name"])
            if _is_na(name):
                raise fail(line, "the Run Name cell is empty")
            if "type" in cell:
                run_type = _RUN_TYPES.get(_norm(_plain(cell["type"])))
                if run_type is None:
                    raise fail(line, f"Type {_plain(cell['type'])!r} is not one of Fine-tuned, Control, Eval-only")
            else:
                run_type = "fine-tuned" if "lora_rank" in cell and not _is_na(cell["lora_rank"]) else "control"
            model = self._model_name(cell["model"], line, where)
            parameters: dict[str, Any] = {}
            for key in param_columns:
                raw = _plain(cell[key])
                if _is_na(raw):
                    continue
                header = table.header[columns[key]]
                if run_type == "control" or (run_type == "eval-only" and key != "checkpoint_path"):
                    if key != "batch_size":  # a control's batch size is harmless and often repeated
                        self.note(where, line, f"{run_type} run {name!r}: {_plain(header)} {raw!r} ignored ({run_type} runs are not trained)")
                    continue
                parameters[key] = self._table_value(key, raw, header, line, fail)
            if run_type == "fine-tuned" and "batch_size" in parameters:
                self.table_batch[name] = (parameters["batch_size"], line)
            if "gpus" in cell and not _is_na(cell["gpus"]):
                gpus = _number(_plain(cell["gpus"]))
                if not isinstance(gpus, int) or gpus < 1:
                    raise fail(line, f"{_plain(table.header[columns['gpus']])}: expected a whole number of GPUs, got {_plain(cell['gpus'])!r}")
                self.run_gpus[name] = (gpus, line)
            self.runs.append({"name": name, "type": run_type, "model": model, "parameters": parameters})

    def _table_value(self, key: str, raw: str, header: str, line: int, fail) -> Any:  # noqa: ANN001
        if key == "checkpoint_path":
            return _path_in(raw) or raw
        spec = facts.hyperparameters().get(key, {})
        kind = spec.get("type", "str")
        if kind == "int":
            value = _number(raw)
            if not isinstance(value, int):
                raise fail(line, f"{_plain(header)}: expected a whole number, got {raw!r}")
            return value
        if kind in ("float", "number"):
            value = _number(raw)
            if value is None:
                raise fail(line, f"{_plain(header)}: expected a number, got {raw!r}")
            return value
        if kind == "bool":
            value = _bool(raw)
            if value is None:
                raise fail(line, f"{_plain(header)}: expected yes or no, got {raw!r}")
            return value
        return raw

    def _model_name(self, raw: str, line: int, where: str) -> str:
        name = _plain(raw)
        if _is_na(name):
            raise DesignError(Problem(f"{where}, line {line}", "the Model cell is empty (every run needs a base model)"), self.source)
        names = self.catalog.names()
        if name in names:
            return name
        folded = [n for n in names if n.lower() == name.lower()]
        if len(folded) == 1:
            return folded[0]
        self.note(where, line, f"model {name!r} is not in the bundled model catalog (add it with the model_catalog setting)")
        return name

    def _same_model(self, a: str, b: str) -> bool:
        if a.lower() == b.lower():
            return True
        ea, eb = self.catalog.get(a), self.catalog.get(b)
        return ea is not None and ea is eb

    def run_model(self, name: str) -> str | None:
        """The run table's spelling of a model named elsewhere in the document."""
        for run in self.runs:
            if self._same_model(run["model"], name):
                return run["model"]
        return None

    def _resources(self, section: _Section, where: str, kind: str) -> None:
        title = _norm(section.title)
        context = "models" if "model" in title else "tasks" if "task" in title else "dataset" if "data" in title else None
        current_model: str | None = None
        sub = where
        skipped: list[int] = []  # lines of a subsection that is not part of the design

        def flush() -> None:
            if skipped:
                self.note_range(sub, skipped[0], skipped[-1], "subsection is not part of the design (ignored)")
                skipped.clear()

        for item in _items(section.body):
            if item.kind == "heading":
                flush()
                t = _norm(item.text)
                context = "tasks" if "task" in t else "models" if "model" in t else "dataset" if "data" in t else "skip"
                sub = f"{where} > {item.text}"
                current_model = None
                if context == "skip":
                    skipped.append(item.line)
                continue
            if context == "skip":
                skipped.append(item.last)
                continue
            if item.kind == "table":
                table = _read_table(item, sub, self.source)
                if any(_norm(_plain(h)) in ("script", "script path", "task script") for h in table.header):
                    self._tasks_table(table)
                else:
                    self.not_mapped(sub, item)
                continue
            if item.kind == "code":
                self.not_mapped(sub, item)
                continue
            if item.kind == "text":
                # a bare list item: a model directory, or a model name under a models directory
                path = _path_in(item.text)
                words = _plain(_LIST_MARK.match(item.text).group(2)).split()  # type: ignore[union-attr]
                named = posixpath.basename(path.rstrip("/")) if path else (words[0].strip("`*") if words else "")
                model = self.run_model(named)
                if model and path:
                    self.model_paths.setdefault(model, (path, item.line))
                    current_model = model
                elif model and context == "models":
                    current_model = model  # its path is the models directory joined with its name
                elif self.catalog.get(named) is not None:
                    self.note(sub, item.line, f"model {named!r} is listed but no run uses it (ignored)")
                else:
                    self.not_mapped(sub, item)
                continue
            k, value = _norm(item.key), item.value
            path = _path_in(value)
            if path and _is_placeholder(path):
                self.not_mapped(sub, item, "a template placeholder, not a path (ignored)")
                continue
            if k in ("location", "models dir", "models directory", "model directory", "models location", "directory") and context in ("models", None):
                if path:
                    self.models_dir = self.models_dir or (path, item.line)
                    context = "models"
                else:
                    self.not_mapped(sub, item, "not a path (ignored)")
            elif k in ("models", "models used", "model", "base model", "base models"):
                context = "models"
                if path:
                    model = self.run_model(posixpath.basename(path.rstrip("/")))
                    if model:
                        self.model_paths.setdefault(model, (path, item.line))
                        current_model = model
                    else:
                        self.models_dir = self.models_dir or (path, item.line)
                elif _plain(value):
                    current_model = self.run_model(_plain(value).split()[0])
                    if current_model is None:
                        self.not_mapped(sub, item, "not a model any run uses (ignored)")
            elif k in ("dataset", "training data", "data", "dataset path", "training dataset", "training set"):
                context = "dataset"
                if path:
                    self.dataset.setdefault("path", (path, item.line))
                elif _plain(value):
                    self.not_mapped(sub, item, "not a path (ignored)")
            elif k == "path" and context == "models" and current_model:
                self.model_paths.setdefault(current_model, (path or _plain(value), item.line))
            elif k == "path" and context in ("dataset", None) and path:
                self.dataset.setdefault("path", (path, item.line))
            elif k in ("format", "dataset format", "file format") and context in ("dataset", None):
                self.dataset.setdefault("format_text", (_plain(value), item.line))
            elif k == "size" and context == "models" and current_model:
                size = _size(value, "GB")
                if size is None:
                    self.not_mapped(sub, item, "not a size such as 2.5 GB (ignored)")
                else:
                    self.model_sizes[current_model] = size
            elif k in ("size", "dataset size") and context in ("dataset", None):
                size = _size(value, "KB")
                if size is None:
                    self.not_mapped(sub, item, "not a size such as 21 KB (ignored)")
                else:
                    self.dataset.setdefault("size_kb", (size, item.line))
            elif k == "splits" and context in ("dataset", None):
                splits = _splits(value)
                if splits:
                    self.dataset.setdefault("splits", (splits, item.line))
                else:
                    self.not_mapped(sub, item, "not splits such as 'train (240), validation (30)' (ignored)")
            elif k in ("label", "dataset label", "name") and context in ("dataset", None):
                self.dataset.setdefault("dataset_label", (_plain(value), item.line))
            elif self.run_model(_plain(item.key)) or self.catalog.get(_plain(item.key)) or (context == "models" and path and k not in _RESOURCE_KEYS):
                model = self.run_model(_plain(item.key))
                context = "models"
                if model is None:
                    self.note(sub, item.line, f"model {_plain(item.key)!r} is listed but no run uses it (ignored)")
                    current_model = None
                    continue
                current_model = model
                if path:
                    self.model_paths.setdefault(model, (path, item.line))
                size = _size(value, "GB")
                if size is not None:
                    self.model_sizes[model] = size
            elif k in ("verified", "status", "exists"):
                continue  # the original workflow's checklist, not design
            else:
                self.not_mapped(sub, item)
        flush()

    def _tasks_table(self, table: _Table) -> None:
        aliases = {
            "task name": "name", "task": "name", "name": "name",
            "script": "script", "script path": "script", "task script": "script",
            "dataset": "dataset", "eval dataset": "dataset", "data": "dataset", "description": "description", "desc": "description",
        }
        columns: dict[str, int] = {}
        for i, header in enumerate(table.header):
            key = aliases.get(_norm(_plain(header)))
            if key is None or key in columns:
                self.note(table.where, table.header_line, f"column {_plain(header)!r} is not part of the design (ignored)")
            else:
                columns[key] = i
        if "name" not in columns:
            raise DesignError(Problem(f"{table.where}, line {table.header_line}", "the evaluation task table has no Task Name column"), self.source)
        for line, cells in table.rows:
            cell = {key: _plain(cells[i]) for key, i in columns.items()}
            task: dict[str, Any] = {"name": cell["name"]}
            script = _path_in(cells[columns["script"]]) or cell["script"]
            if _is_na(script) or _is_placeholder(script):
                self.note(table.where, line, f"task {cell['name']!r} has no script path (the task is kept; add evaluation.tasks[].script)")
            else:
                task["script"] = script
            if "description" in cell and not _is_na(cell["description"]):
                task["description"] = cell["description"]
            if "dataset" in cell and not _is_na(cell["dataset"]):
                path = _path_in(cells[columns["dataset"]]) or (cell["dataset"] if cell["dataset"].startswith("/") else None)
                if path:
                    task["dataset"] = path
                else:
                    self.note(table.where, line, f"task {cell['name']!r}: dataset {cell['dataset']!r} is not a path (ignored)")
            self.tasks.append(task)

    def _configuration(self, section: _Section, where: str, kind: str) -> None:
        self.config_line = self.config_line or section.line
        context, sub = None, where
        for item in _items(section.body):
            if item.kind == "heading":
                t = _norm(item.text)
                context = "evaluation" if "eval" in t else "output" if "output" in t else "training" if "train" in t else None
                sub = f"{where} > {item.text}"
                continue
            if item.kind != "kv":
                self.not_mapped(sub, item)
                continue
            if not item.value and item.style == "bold":
                t = _norm(item.key)  # a label over a list: **Training:**
                context = "evaluation" if "eval" in t else "output" if "output" in t else "training" if "train" in t else context
                continue
            self._setting(item, sub, context)

    def _setting(self, item: _Item, where: str, context: str | None) -> None:
        """One `**Key:** value` line of Configuration / Evaluation Plan."""
        k, value = _norm(item.key), item.value
        if k in ("epochs to evaluate", "evaluation epochs", "eval epochs", "epochs evaluated"):
            self.eval_epochs = self.eval_epochs or (value, item.line)
            return
        if k in _EVAL_KEYS or (context == "evaluation" and k in ("seed", "system prompt")):
            self._eval_setting(item, where, _EVAL_KEYS.get(k, k.replace(" ", "_")))
            return
        if k in ("wandb project", "w&b project", "wandb"):
            self.output["wandb_project"] = _plain(value)
            return
        if k in ("checkpoint directory", "output directory", "output dir", "naming pattern", "example", "checkpoints"):
            self.not_mapped(where, item, "not part of the design: checkpoints go to <experiment dir>/<run>/artifacts/ (ignored)")
            return
        if k == "recipe":
            self.not_mapped(where, item, "not part of the design: the recipe follows from the GPUs per run (ignored)")
            return
        if k in ("gpus", "gpus per job", "num gpus", "gpu", "gpus per run"):
            gpus = _number(_plain(value).split()[0]) if _plain(value) else None
            if isinstance(gpus, int) and gpus >= 1:
                self.controls.setdefault("gpus", (gpus, item.line))
            else:
                self.not_mapped(where, item, "not a whole number of GPUs (ignored)")
            return
        if k in ("dataset", "training data", "dataset path") and _path_in(value):
            self.dataset.setdefault("path", (_path_in(value), item.line))
            return
        key = _CONTROL_KEYS.get(k) or _hyper_key(k)
        if key is None:
            self.not_mapped(where, item)
            return
        converted = self._control_value(key, value, item, where)
        if converted is _SKIP:
            return
        if key in self.controls and self.controls[key][0] != converted:
            self.note(where, item.line, f"{item.key} {_plain(value)!r} differs from line {self.controls[key][1]} (ignored)")
            return
        self.controls.setdefault(key, (converted, item.line))

    def _control_value(self, key: str, value: str, item: _Item, where: str) -> Any:
        if key in ("system_prompt", "prompt"):
            text = _quoted(value)
            if text is None:
                text = _plain(value)
            if key == "prompt" and "{input}" not in text:
                self.not_mapped(where, item, "a prompt without the {input} placeholder (ignored)")
                return _SKIP
            return text
        kind = facts.hyperparameters()[key].get("type", "str")
        plain = _plain(value)
        if kind == "bool":
            result = _bool(plain)
            if result is None:
                self.not_mapped(where, item, "not yes or no (ignored)")
                return _SKIP
            return result
        if kind in ("int", "float", "number"):
            first = re.split(r"\s+[-–—(]|\s+\(|,|\s*×", plain)[0].strip()
            number = _number(first)
            if number is None or (kind == "int" and not isinstance(number, int)) or ("," in plain and key in ("lora_rank", "lr", "batch_size")):
                why = "varies per run: taken from the All Runs table" if key in ("lora_rank", "lr", "batch_size") else f"not a {'whole ' if kind == 'int' else ''}number"
                if key == "lora_alpha":
                    why = "not a number: the product default is 2 × lora_rank"
                self.not_mapped(where, item, f"{why} (ignored)")
                return _SKIP
            return number
        if key == "dataset_type":
            text = _norm(plain).replace(" ", "_")
            if text not in ("chat_completion", "text_completion"):
                self.not_mapped(where, item, "not chat_completion or text_completion (ignored)")
                return _SKIP
            return text
        return plain

    def _eval_setting(self, item: _Item, where: str, key: str) -> None:
        plain = _plain(item.value)
        if key == "system_prompt":
            text = _quoted(item.value)
            text = plain if text is None else text
            if "system_prompt" not in self.controls:
                self.controls["system_prompt"] = (text, item.line)
            elif self.controls["system_prompt"][0] != text:
                self.not_mapped(where, item, "an evaluation system prompt that differs from the training one (ignored; give evaluation.tasks[].system_prompt)")
            return
        if key == "scorers":
            names = [s.strip("` ") for s in re.sub(r"\(.*?\)", "", plain).split(",") if s.strip("` ")]
            if names and all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", n) for n in names):
                self.evaluation["scorers"] = [{"name": n} for n in names]
            else:
                self.not_mapped(where, item, "not a scorer name such as match or includes (ignored)")
            return
        if key == "do_sample":
            value = _bool(plain)
            if value is None:
                self.not_mapped(where, item, "not yes or no (ignored)")
            else:
                self.evaluation["do_sample"] = value
            return
        number = _number(plain.split()[0]) if plain else None
        if number is None or (key != "temperature" and not isinstance(number, int)):
            self.not_mapped(where, item, "not a number (ignored)")
            return
        self.evaluation[key] = float(number) if key == "temperature" else number

    def _evaluation_plan(self, section: _Section, where: str, kind: str) -> None:
        sub = where
        for item in _items(section.body):
            if item.kind == "heading":
                sub = f"{where} > {item.text}"
                continue
            if item.kind == "table":
                table = _read_table(item, sub, self.source)
                headers = [_norm(_plain(h)) for h in table.header]
                if any(h in ("script", "script path", "task script") for h in headers):
                    self._tasks_table(table)
                elif _RUN_COLUMNS.get(headers[0]) == "name":
                    self._matrix_table(table)
                else:
                    self.not_mapped(sub, item)
                continue
            if item.kind == "kv" and not item.value and item.style == "bold":
                continue  # a label over a list
            if item.kind == "kv" and _norm(item.key) in ("total evaluations", "evaluations"):
                self.not_mapped(sub, item, _DERIVED)
            elif item.kind == "kv" and item.value:
                self._setting(item, sub, "evaluation")
            else:
                self.not_mapped(sub, item)

    def _matrix_table(self, table: _Table) -> None:
        tasks = {t["name"].lower(): t["name"] for t in self.tasks}
        task_columns: list[tuple[int, str]] = []
        for i, header in enumerate(table.header[1:], start=1):
            name = tasks.get(_plain(header).lower())
            if name is None:
                self.note(table.where, table.header_line, f"column {_plain(header)!r} is not an evaluation task (ignored)")
            else:
                task_columns.append((i, name))
        runs = {r["name"]: r for r in self.runs}
        matrix: list[dict[str, Any]] = []
        for line, cells in table.rows:
            run = runs.get(_plain(cells[0]))
            if run is None:
                self.note(table.where, line, f"run {_plain(cells[0])!r} is not in the All Runs table (ignored)")
                continue
            by_epochs: dict[tuple[int, ...] | None, list[str]] = {}
            for i, task in task_columns:
                raw, cell = cells[i].strip(), _plain(cells[i])
                checked = bool(re.search("[✓✔✅☑]", raw))
                if (_is_na(cell) and not checked) or cell.lower() in ("✗", "✘", "❌", "x", "no"):
                    continue
                epochs = tuple(dict.fromkeys(int(n) for n in re.findall(r"\d+", re.sub(r"\(.*?\)", "", cell)))) or None
                if epochs and run["type"] != "fine-tuned":
                    self.note(table.where, line, f"{run['type']} run {run['name']!r} is not trained: epochs {cell!r} ignored")
                    epochs = None
                by_epochs.setdefault(epochs, []).append(task)
            for epochs, names in by_epochs.items():
                entry: dict[str, Any] = {"run": run["name"], "tasks": names}
                if epochs is not None or run["type"] != "fine-tuned":
                    entry["epochs"] = list(epochs) if epochs else None
                matrix.append(entry)
        self.matrix = (self.matrix or []) + matrix

    def _quick_reference(self, section: _Section, where: str, kind: str) -> None:
        block: tuple[str, int, int] | None = None  # an ignored labelled list: (label, first, last)

        def close() -> None:
            nonlocal block
            if block:
                self.note_range(where, block[1], block[2], f"{block[0]!r} is not part of the design (ignored)")
            block = None

        for item in _items(section.body):
            if item.kind == "kv" and not item.value and item.indent == 0:
                close()
                if _norm(item.key) not in ("paths", "path"):
                    block = (item.key, item.line, item.line)
                continue
            if block and (item.indent > 0 or item.kind in ("text", "kv", "code")):
                block = (block[0], block[1], item.last)
                continue
            close()
            if item.kind != "kv":
                self.not_mapped(where, item)
                continue
            k, path = _norm(item.key), _path_in(item.value)
            if path and _is_placeholder(path):
                self.not_mapped(where, item, "a template placeholder, not a path (ignored)")
            elif k in ("experiment", "experiment dir", "experiment directory", "directory") and path:
                self.experiment.setdefault("dir", (path, item.line))
            elif k in ("models", "model", "models dir") and path:
                model = self.run_model(posixpath.basename(path.rstrip("/")))
                if model:
                    self.model_paths.setdefault(model, (path, item.line))
                else:
                    self.models_dir = self.models_dir or (path, item.line)
            elif k in ("dataset", "data", "training data") and path:
                self.dataset.setdefault("path", (path, item.line))
            else:
                self.not_mapped(where, item)
        close()

    # ---- assembling the design
    def _design(self) -> dict[str, Any]:
        design: dict[str, Any] = {"experiment": self._experiment(), "tools": dict(self.tools or facts.DEFAULT_TOOLS)}
        if self.variables:
            design["variables"] = self.variables
        models = self._models()
        controls = self._controls()
        design["controls"] = controls
        design["models"] = {"base": models}
        training = self._training_data()
        design["data"] = {"training": training} if training else {}
        if self.output:
            design["output"] = dict(self.output)
        design["runs"] = self.runs
        evaluation = self._evaluation(controls)
        if evaluation:
            design["evaluation"] = evaluation
        return design

    def _experiment(self) -> dict[str, Any]:
        found = self.experiment
        title, title_line = self.title if self.title else ("", 0)
        name = re.sub(r"^(experiment(\s+summary)?|summary)\s*[:\-–—]\s*", "", title, flags=re.IGNORECASE).strip()
        if not name or _norm(name) in ("experiment summary", "experiment"):
            name = found["name_line"][0] if "name_line" in found else ""
        if not name and "dir" in found:
            name = posixpath.basename(found["dir"][0].rstrip("/"))
            self.note("Title", None, f"no experiment name in the title; used the experiment directory's name {name!r}")
        elif not name:
            self.note("Title", None, "no H1 title (# <experiment name>); experiment.name is missing")
        out: dict[str, Any] = {"name": name} if name else {}
        if "project" in found:
            out["project"] = found["project"][0]
        if "question" in found:
            out["question"] = found["question"][0]
        elif name:
            out["question"] = name
            self.note("Title", title_line or None, "no Question (an Overview line or a section); used the title as experiment.question")
        else:
            self.note("Overview", None, "no Question; experiment.question is missing")
        date = _date_in(title) or (_date_in(found["dir"][0]) if "dir" in found else None)
        if date is None and "date_line" in found:
            date = found["date_line"][0]
        if date is not None:
            out["date"] = date
        else:
            self.note("Overview", None, "no date (YYYY-MM-DD in the title, the directory or a Date / Created line); experiment.date is missing")
        for key in ("hypothesis", "purpose"):
            if key in found:
                out[key] = found[key][0]
        if "dir" in found:
            out["dir"] = found["dir"][0]
        else:
            self.note("Quick Reference", None, "no experiment directory (Paths > Experiment, or a Directory line); experiment.dir is missing")
        return out

    def _models(self) -> list[dict[str, Any]]:
        base: list[dict[str, Any]] = []
        for run in self.runs:
            name = run["model"]
            if any(m["name"] == name for m in base):
                continue
            entry: dict[str, Any] = {"name": name}
            if name in self.model_paths:
                entry["path"] = self.model_paths[name][0]
            elif self.models_dir:
                entry["path"] = posixpath.join(self.models_dir[0], name)
            else:
                self.note("Resources", None, f"no path for model {name!r} (a Models line with its path, or a models directory); models.base[].path is missing")
            if name in self.model_sizes:
                entry["size_gb"] = self.model_sizes[name]
            base.append(entry)
        return base

    def _controls(self) -> dict[str, Any]:
        given = {k: v for k, (v, _) in self.controls.items()}
        where_config = ("Configuration", self.config_line or None)
        out: dict[str, Any] = {}
        if "epochs" in given:
            out["epochs"] = given["epochs"]
        else:
            self.note(*where_config, "no Epochs line; controls.epochs is missing")
        out["batch_size"] = self._batch_size(given.get("batch_size"))
        if out["batch_size"] is None:
            del out["batch_size"]
        if "system_prompt" in given:
            out["system_prompt"] = given["system_prompt"]
        else:
            out["system_prompt"] = ""
            self.note(*where_config, 'no System prompt line; assumed system_prompt: "" (the original workflow\'s default)')
        if "prompt" in given:
            out["prompt"] = given["prompt"]
        if "dataset_type" in given:
            out["dataset_type"] = given["dataset_type"]
        else:
            out["dataset_type"] = "chat_completion"
            self.note(*where_config, "no dataset type given; assumed dataset_type: chat_completion (instruct models)")
        for key, value in given.items():
            if key not in out and key not in ("gpus", "batch_size"):
                out[key] = value
        self._gpus(given.get("gpus"))
        return out

    def _batch_size(self, configured: int | None) -> int | None:
        """controls.batch_size: the Configuration value, else the value every fine-tuned run shares;
        a run keeps its own batch size only where it differs."""
        sizes = {name: size for name, (size, _) in self.table_batch.items()}
        if configured is None and sizes:
            counts = Counter(sizes.values())
            configured = counts.most_common(1)[0][0]
            if len(counts) > 1:
                self.note("All Runs", self.runs_section_line, f"batch sizes differ between runs; controls.batch_size is {configured} (the most common), the other runs keep their own")
        if configured is None:
            self.note("Configuration", self.config_line or None, "no batch size (Configuration or the All Runs table); controls.batch_size is missing")
            return None
        for run in self.runs:
            if run["parameters"].get("batch_size") == configured:
                del run["parameters"]["batch_size"]
        return configured

    def _gpus(self, configured: int | None) -> None:
        """GPUs per run: the catalog knows each model's default; only a different number is written,
        as the fine-tuned runs' compute.gpus."""
        for run in self.runs:
            gpus = self.run_gpus.get(run["name"], (configured, None))[0]
            if gpus is None or run["type"] != "fine-tuned":
                continue
            entry = self.catalog.get(run["model"])
            if entry is None or entry.resources.get("gpus") != gpus:
                run["compute"] = {"gpus": gpus}

    def _training_data(self) -> dict[str, Any]:
        if "path" not in self.dataset:
            self.note("Resources", None, "no dataset path (Resources > Dataset > Path, or Quick Reference > Dataset); data.training is missing")
            return {}
        path, line = self.dataset["path"]
        out: dict[str, Any] = {"path": path}
        if "dataset_label" in self.dataset:
            out["dataset_label"] = self.dataset["dataset_label"][0]
        suffix = posixpath.splitext(path.rstrip("/"))[1].lower()
        by_extension = "json" if suffix in (".json", ".jsonl") else "parquet" if suffix == ".parquet" or not suffix or path.endswith("/") else None
        stated = None
        if "format_text" in self.dataset:
            text, format_line = self.dataset["format_text"]
            stated = {"json": "json", "jsonl": "json", "parquet": "parquet"}.get(_norm(text).split(" ")[0] if text else "")
            if stated is None:
                self.note("Resources", format_line, f"dataset format {text!r} is not json or parquet (ignored)")
            elif by_extension and stated != by_extension:
                self.note("Resources", format_line, f"dataset format {text!r} disagrees with the path's extension; used {by_extension}")
        chosen = by_extension or stated
        if chosen:
            out["format"] = chosen
        else:
            self.note("Resources", line, f"cannot tell the format of {path!r} (json or parquet); data.training.format is missing")
        for key in ("size_kb", "splits"):
            if key in self.dataset:
                out[key] = self.dataset[key][0]
        return out

    def _evaluation(self, controls: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.tasks:
            out["tasks"] = self.tasks
        else:
            self.note("Resources", None, "no Evaluation Tasks table (| Task Name | Script | ... |); the design has no evaluation tasks")
        if self.matrix is not None:
            out["matrix"] = self.matrix
            if self.eval_epochs:
                self.note("Evaluation Plan", self.eval_epochs[1], "'Epochs to evaluate' is superseded by the Evaluation Matrix table, which gives the epochs per run (ignored)")
        elif self.eval_epochs and self.tasks:
            text, line = self.eval_epochs
            epochs = self._epochs_spec(text, controls.get("epochs"))
            if epochs is _SKIP:
                self.note("Evaluation Plan", line, f"epochs to evaluate {_plain(text)!r} is not a list of 0-based epochs (ignored; every fine-tuned run is evaluated at its last epoch)")
            else:
                names = [t["name"] for t in self.tasks]
                out["matrix"] = [
                    {"run": r["name"], "tasks": list(names), "epochs": epochs if r["type"] == "fine-tuned" else None}
                    for r in self.runs
                ]
                for entry in out["matrix"]:
                    if entry["epochs"] is None and any(r["name"] == entry["run"] and r["type"] == "fine-tuned" for r in self.runs):
                        del entry["epochs"]
        out.update(self.evaluation)
        return out

    @staticmethod
    def _epochs_spec(text: str, n_epochs: Any) -> Any:
        plain = re.sub(r"\(.*?\)", "", _plain(text).lower()).strip()
        if re.match(r"^(all|every)\b", plain) and isinstance(n_epochs, int):
            return list(range(n_epochs))
        if re.match(r"^(last|final)\b", plain):
            return None
        numbers = list(dict.fromkeys(int(n) for n in re.findall(r"\d+", plain)))
        return numbers if numbers else _SKIP


_SKIP = object()


def _splits(text: str) -> dict[str, int]:
    names = {"train": "train", "training": "train", "validation": "validation", "val": "validation", "valid": "validation", "test": "test"}
    out: dict[str, int] = {}
    for m in re.finditer(r"\b(training|train|validation|valid|val|test)\b\s*[:=(]?\s*~?(\d[\d,_]*)", text, re.IGNORECASE):
        out.setdefault(names[m.group(1).lower()], int(m.group(2).replace(",", "").replace("_", "")))
    return out
