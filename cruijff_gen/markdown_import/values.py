"""Values as a design document writes them, in cells and after `**Key:**`: plain text without
markup, "not applicable", numbers, yes/no, paths, quoted prompts, dates, sizes, splits, epochs."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from .phrases import PHRASES

SKIP = object()  # a value that was reported as not mapped: leave the design without it

_NOT_APPLICABLE = frozenset(PHRASES["not_applicable"])
_TRUE = frozenset(PHRASES["true_words"])
_FALSE = frozenset(PHRASES["false_words"])
_SPLIT_NAMES: dict[str, str] = PHRASES["split_names"]
_MARKS = re.compile(r"\s*(?:[✓✔✅☑]+\s*(?:verified\b)?|\(?\bverified\b[^)]*\)?)\s*", re.IGNORECASE)


def plain(text: str) -> str:
    """A cell or value without markdown decoration: bold, backticks, check marks."""
    text = text.strip()
    text = re.sub(r"^\*\*(.*)\*\*$", r"\1", text)
    text = _MARKS.sub(" ", text).strip()
    if len(text) >= 2 and text[0] == text[-1] == "`":
        text = text[1:-1]
    return text.strip()


def is_na(text: str) -> bool:
    return plain(text).lower() in _NOT_APPLICABLE


def path_in(text: str) -> str | None:
    """The path a value gives: its first `backticked` part, else its first token that looks like a path."""
    ticked = re.search(r"`([^`]+)`", text)
    if ticked:
        candidate = ticked.group(1).strip()
        return candidate if "/" in candidate or candidate.startswith("~") else None
    for token in text.split():
        if token.startswith(("/", "~/", "./")):
            return token.rstrip(",;")
    return None


def is_placeholder(text: str) -> bool:
    return bool(re.search(r"\{[A-Za-z_][A-Za-z0-9_ ]*\}", text))


_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def number(text: str) -> int | float | str | None:
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


def yes_no(text: str) -> bool | None:
    words = plain(text).lower().replace("✓", "yes").replace("✗", "no").split()
    first = words[0].strip(".,;:()") if words else ""
    return True if first in _TRUE else False if first in _FALSE else None


def quoted(text: str) -> str | None:
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


def date_in(text: str) -> dt.date | None:
    for m in _DATE.finditer(text):
        try:
            return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            continue
    return None


def size(text: str, unit: str) -> float | int | None:
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


_SPLIT = re.compile(
    r"\b(" + "|".join(sorted(map(re.escape, _SPLIT_NAMES), key=len, reverse=True)) + r")\b\s*[:=(]?\s*~?(\d[\d,_]*)",
    re.IGNORECASE,
)


def splits(text: str) -> dict[str, int]:
    """`train (240), validation (30), test (30)` -> {train: 240, validation: 30, test: 30}."""
    out: dict[str, int] = {}
    for m in _SPLIT.finditer(text):
        out.setdefault(_SPLIT_NAMES[m.group(1).lower()], int(m.group(2).replace(",", "").replace("_", "")))
    return out


def epochs_spec(text: str, n_epochs: Any) -> Any:
    """'Epochs to evaluate': a list of 0-based epochs, None for the last one, SKIP if it is neither."""
    text = re.sub(r"\(.*?\)", "", plain(text).lower()).strip()
    if re.match(r"^(all|every)\b", text) and isinstance(n_epochs, int):
        return list(range(n_epochs))
    if re.match(r"^(last|final)\b", text):
        return None
    numbers = list(dict.fromkeys(int(n) for n in re.findall(r"\d+", text)))
    return numbers if numbers else SKIP
