"""How bash reads a script's lines and words: the rules the verifier needs to compare a script with
its generated text, from the Bash Reference Manual (3.1.2.1-3 escape character, single and double
quotes; 3.1.3 comments; 3.6.6 here documents) and, for words, Python's shlex in POSIX mode:

* lines: split at newlines only (never at the other characters str.splitlines() splits at); a
  line ending in an odd number of backslashes continues on the next; leading blanks are ignored;
  a blank or comment-only line runs nothing;
* a here document's body (after `<<WORD`, `<<'WORD'`, `<<"WORD"`, `<<\\WORD`, or `<<-WORD`, which
  strips leading tabs), up to its delimiter line, is data: kept line by line, exactly;
* quoting: nothing is special inside single quotes; a backslash escapes the next character;
  inside double quotes `$` and `` ` `` still expand; `#` starts a comment only at the start of a
  word, outside quotes;
* words: shlex.split's (quotes grouped and removed; space, tab, CR and LF between words).

Which generated line is which (the launch command, the environment, what may be added) is
verify.py's, not bash's.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass


@dataclass(frozen=True)
class Line:
    """A logical line of a shell script: `\\` continuations joined, leading blanks removed (bash
    ignores them), comment-only and blank lines left out; heredoc bodies line by line, exact."""

    number: int  # the physical line it starts at (1-based)
    text: str
    heredoc: bool = False


_HEREDOC = re.compile(r"<<(-?)[ \t]*(?:'([^'\n]*)'|\"([^\"\n]*)\"|\\?([A-Za-z_][A-Za-z0-9_]*))")


def shell_lines(text: str) -> list[Line]:
    """The logical lines of a script, in order (see Line)."""
    physical = text.split("\n")
    out: list[Line] = []
    delimiter: str | None = None
    strip_tabs = False
    i = 0
    while i < len(physical):
        raw = physical[i]
        if delimiter is not None:  # a heredoc's body: data, not commands
            if (raw.lstrip("\t") if strip_tabs else raw) == delimiter:
                delimiter = None
            if raw.strip():
                out.append(Line(i + 1, raw, True))
            i += 1
            continue
        block = raw.lstrip(" \t")
        if not block or block.startswith("#"):
            i += 1
            continue
        start = i
        while _continues(block) and i + 1 < len(physical):
            i += 1
            block = block[:-1] + physical[i]
        i += 1
        block = block.rstrip(" \t")
        out.append(Line(start + 1, block))
        if m := _HEREDOC.search(block):
            delimiter = next(g for g in m.groups()[1:] if g is not None)
            strip_tabs = bool(m.group(1))
    return out


def _continues(block: str) -> bool:
    return (len(block) - len(block.rstrip("\\"))) % 2 == 1


def _shell_chars(text: str):
    """(index, character, quote) for each character bash sees outside single quotes and not escaped
    by a backslash; quote is '"' inside double quotes, "" outside. Quote characters themselves are
    consumed."""
    quote = ""
    i = 0
    while i < len(text):
        c = text[i]
        if quote == "'":
            if c == "'":
                quote = ""
        elif c == "\\":
            i += 2
            continue
        elif quote == '"' and c == '"':
            quote = ""
        elif not quote and c in "'\"":
            quote = c
        else:
            yield i, c, quote
        i += 1


def strip_comment(line: str) -> str:
    """A shell line without its trailing comment (a `#` at the start of a word, outside
    quotes)."""
    for i, c, quote in _shell_chars(line):
        if not quote and c == "#" and (i == 0 or line[i - 1] in " \t;&|()<>"):
            return line[:i].rstrip(" \t")
    return line


def unquoted_specials(text: str) -> str:
    """Characters bash would expand or treat as operators, outside quotes (`$` and `` ` `` also in
    double quotes)."""
    out = [c for _, c, quote in _shell_chars(text) if c in ("$`" if quote else "$`;&|<>(){}*?[]~!#")]
    return "".join(dict.fromkeys(out))


def _lines(text: str) -> list[str]:
    """A script's lines as bash reads them: split at newlines only (str.splitlines() would also
    split at \\v, \\f, NEL, U+2028, ... which a quoted path may hold)."""
    return text.split("\n")


def split_words(text: str) -> list[str]:
    """shlex.split, without its cost for the common text that has nothing to unquote."""
    if not any(c in text for c in "'\"\\"):
        return _WORDS.findall(text)  # shlex's own separators only (not every Unicode space)
    return shlex.split(text)


_WORDS = re.compile(r"[^ \t\r\n]+")


def find_command(text: str, program: str) -> list[str] | None:
    """The argv of the first command line starting with `program`, joining `\\` continuations."""
    source = _lines(text)
    for i, line in enumerate(source):
        if line.startswith(program + " ") or line == program:
            block = line
            j = i
            while block.endswith("\\") and j + 1 < len(source):
                j += 1
                block = block[:-1] + " " + source[j]
            try:
                return split_words(block)
            except ValueError:
                return [block]
    return None
