"""File names and user text as safe, lossless strings for records, CSV, JSON and HTML.

A POSIX file name is bytes; Python hands names that are not valid UTF-8 over with "surrogate escapes"
(``b"\\xff"`` becomes ``"\\udcff"``), which no UTF-8 writer accepts. Every name genaudit records goes
through :func:`escape_name` once, where it is read:

* a byte that is not valid UTF-8 becomes the four characters ``\\xNN``;
* any other lone surrogate (e.g. from a JSON ``"\\ud800"`` escape) becomes ``\\uNNNN``;
* a backslash becomes two, so the escaping is injective: two different names never share a form, and
  :func:`unescape_name` gives the original back.

The path that is opened stays the original (``os`` takes surrogate escapes); only the recorded name is
escaped. Labels and captions from manifests are text, not names: :func:`clean_text` escapes their lone
surrogates only.

CSV files meant for a spreadsheet (the audit's ``classes.csv``, the deepfake check's ``detections.csv``,
the review sheet) pass their text cells through :func:`spreadsheet_text`: a label or file name such as
``=HYPERLINK(...)`` would otherwise run as a formula when the file is opened (OWASP, "CSV Injection").
"""

from __future__ import annotations

import re

_SURROGATES = re.compile("[\ud800-\udfff]")
_ESCAPED = re.compile(r"\\(\\|x[0-9a-f]{2}|u[0-9a-f]{4})")


def _escape_surrogate(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not valid UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"


def escape_name(name: str) -> str:
    """The lossless, UTF-8-safe form of a file name (see the module docstring)."""
    if "\\" not in name and not _SURROGATES.search(name):
        return name
    return "".join("\\\\" if ch == "\\" else _escape_surrogate(ch) if "\ud800" <= ch <= "\udfff" else ch for ch in name)


def unescape_name(text: str) -> str:
    """The original name of :func:`escape_name`'s output (``os.fsencode`` of it gives the original bytes)."""

    def back(m: re.Match[str]) -> str:
        token = m.group(1)
        if token == "\\":
            return "\\"
        if token[0] == "x":
            return chr(0xDC00 + int(token[1:], 16))
        return chr(int(token[1:], 16))

    return _ESCAPED.sub(back, text)


def clean_text(text: str) -> str:
    """User text (a label, a caption) with any lone surrogate escaped, so that it encodes as UTF-8."""
    return _SURROGATES.sub(lambda m: _escape_surrogate(m.group()), text) if _SURROGATES.search(text) else text


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def spreadsheet_text(value: object) -> str:
    """A CSV text cell that a spreadsheet shows as text: a cell starting with ``= + - @``, a tab or a carriage
    return gets a single quote in front (OWASP's CSV-injection advice), unless it is a plain number
    (``-1``, ``+2.5e3``), which a spreadsheet reads as that number and never as a formula. None is empty."""
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text
