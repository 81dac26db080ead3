"""The markdown of a design document: its H1 title and H2 sections, the items of a section's body
(`**Key:** value` lines, headings, tables, code blocks, text), and tables read into header and rows.
Nothing here knows what a design is."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterator

from ..errors import MarkdownError


@dataclass(frozen=True)
class Line:
    no: int  # 1-based
    text: str


@dataclass
class Section:
    title: str  # H2 heading as written ("" for the text before the first H2)
    line: int  # line of the heading (1 for the preamble)
    body: list[Line]


Document = tuple[tuple[str, int] | None, list[Section]]  # the H1 title (text, line) and the sections

HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
LIST_MARK = re.compile(r"^(\s*)(?:[-*+]\s+|\d+[.)]\s+)?(.*)$")


def error_at(where: str, line: int | None, message: str, source: str) -> MarkdownError:
    """The error for a document that cannot be read as a design, naming the section and line."""
    return MarkdownError(f"{where}, line {line}" if line else where, message, source)


def split_sections(text: str) -> Document:
    """The H1 title (text, line) and the H2 sections; H3+ headings stay inside their section."""
    title: tuple[str, int] | None = None
    sections = [Section("", 1, [])]
    fenced = False
    for no, raw in enumerate(text.splitlines(), start=1):
        if FENCE.match(raw):
            fenced = not fenced
        heading = None if fenced else HEADING.match(raw)
        if heading and len(heading.group(1)) == 1 and title is None:
            title = (heading.group(2).strip(), no)
            continue
        if heading and len(heading.group(1)) <= 2:
            sections.append(Section(heading.group(2).strip(), no, []))
            continue
        sections[-1].body.append(Line(no, raw))
    return title, sections


def norm(text: str) -> str:
    """Key form for matching names: lower case, words of letters and digits only."""
    return re.sub(r"[^a-z0-9&]+", " ", text.lower()).strip()


def unlisted(text: str) -> str:
    """A line without its list mark (`- `, `* `, `1. `) and indent."""
    return LIST_MARK.match(text).group(2)  # type: ignore[union-attr]  # the pattern matches any text


@dataclass
class Item:
    kind: str  # "kv" | "heading" | "table" | "code" | "text"
    line: int
    text: str = ""
    key: str = ""  # kv: the key as written (no markup)
    value: str = ""  # kv: the rest of the line
    style: str = ""  # kv: bold | italic | plain
    indent: int = 0
    lines: list[Line] = field(default_factory=list)  # table / code: its lines

    @property
    def last(self) -> int:
        return self.lines[-1].no if self.lines else self.line


_KEY_STYLES = (("bold", r"\*\*(.+?)\*\*"), ("bold", r"__(.+?)__"), ("italic", r"\*(.+?)\*"), ("italic", r"_(.+?)_"))


def key_value(text: str) -> tuple[int, str, str, str] | None:
    """`- **Key:** value`, `**Key**: value`, `*Key:* value`, `- Key: value` -> (indent, key, value, style)."""
    m = LIST_MARK.match(text)
    assert m is not None
    indent, rest = len(m.group(1).expandtabs(4)), m.group(2)
    for style, pattern in _KEY_STYLES:
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


def _block_end(body: list[Line], i: int) -> int:
    """Where the code block or table starting at body[i] ends (exclusive)."""
    if FENCE.match(body[i].text):
        j = i + 1
        while j < len(body) and not FENCE.match(body[j].text):
            j += 1
        return j + 1
    j = i
    while j < len(body) and body[j].text.strip().startswith("|"):
        j += 1
    return j


def _line_item(line: Line) -> Item | None:
    """One line outside tables and code: a heading, a key-value line, text; None for a blank line,
    a rule or a comment."""
    stripped = line.text.strip()
    if not stripped or re.fullmatch(r"(-{3,}|\*{3,}|_{3,})", stripped) or re.fullmatch(r"<!--.*-->", stripped):
        return None
    heading = HEADING.match(line.text)
    if heading:
        return Item("heading", line.no, text=heading.group(2).strip())
    kv = key_value(line.text)
    if kv:
        indent, key, value, style = kv
        return Item("kv", line.no, text=stripped, key=key, value=value, style=style, indent=indent)
    return Item("text", line.no, text=stripped)


def items(body: list[Line]) -> Iterator[Item]:
    i = 0
    while i < len(body):
        line = body[i]
        if FENCE.match(line.text) or line.text.strip().startswith("|"):
            j = _block_end(body, i)
            yield Item("code" if FENCE.match(line.text) else "table", line.no, lines=body[i:j])
            i = j
            continue
        i += 1
        item = _line_item(line)
        if item is not None:
            yield item


# --------------------------------------------------------------------------- tables
@dataclass
class Table:
    where: str
    header: list[str]
    header_line: int
    rows: list[tuple[int, list[str]]]


_SEPARATOR_CELL = re.compile(r"^:?-+:?$")


def cells(text: str) -> list[str]:
    s = text.strip()
    if s.startswith("|"):
        s = s[1:]
    if s.endswith("|") and not s.endswith("\\|"):
        s = s[:-1]
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", s)]


def read_table(item: Item, where: str, source: str) -> Table:
    """The table an item holds; raises MarkdownError naming the line of a missing separator row or
    of a row whose cells do not match the header."""
    header_line = item.lines[0]
    header = cells(header_line.text)
    if len(item.lines) < 2 or not all(_SEPARATOR_CELL.match(c) for c in cells(item.lines[1].text)):
        message = f"the table header is not followed by a separator row (line {header_line.no + 1} should be | --- | --- |)"
        raise error_at(where, header_line.no, message, source)
    separator = item.lines[1]
    if len(cells(separator.text)) != len(header):
        message = f"the separator row has {len(cells(separator.text))} cells, the header (line {header_line.no}) has {len(header)}"
        raise error_at(where, separator.no, message, source)
    rows = []
    for line in item.lines[2:]:
        row = cells(line.text)
        if len(row) != len(header):
            raise error_at(where, line.no, f"row has {len(row)} cells, the header (line {header_line.no}) has {len(header)}", source)
        rows.append((line.no, row))
    return Table(where, header, header_line.no, rows)
