"""ASCII tables as etcdctl draws them (olekukonko/tablewriter, the 2017 version etcd 3.4 pins).

Cells wider than 30 columns are word-wrapped (minimum raggedness), headers are centred and
upper-cased, and etcdctl right-aligns every cell.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

__all__ = ["render_table"]

_MAX_WIDTH = 30
_PENALTY = 100_000


def display_width(text: str) -> int:
    """Terminal columns of `text` (wide East Asian characters count two, marks none)."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Cc", "Cf", "Mn", "Me"):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def _wrap_words(words: list[str], limit: int) -> list[list[str]]:
    # tablewriter's WrapWords: minimise the sum of squared slack per line.
    n = len(words)
    length = [[0] * n for _ in range(n)]
    for i in range(n):
        length[i][i] = display_width(words[i])
        for j in range(i + 1, n):
            length[i][j] = length[i][j - 1] + 1 + display_width(words[j])
    nbrk = [0] * n
    cost = [2**31 - 1] * n
    for i in range(n - 1, -1, -1):
        if length[i][n - 1] <= limit:
            cost[i] = 0
            nbrk[i] = n
            continue
        for j in range(i + 1, n):
            d = limit - length[i][j - 1]
            c = d * d + cost[j]
            if length[i][j - 1] > limit:
                c += _PENALTY
            if c < cost[i]:
                cost[i] = c
                nbrk[i] = j
    lines = []
    i = 0
    while i < n:
        lines.append(words[i : nbrk[i]])
        i = nbrk[i]
    return lines


def _wrap_string(text: str, limit: int) -> list[str]:
    words = text.replace("\n", " ").split(" ")
    for word in words:
        limit = max(limit, display_width(word))
    return [" ".join(line) for line in _wrap_words(words, limit)]


def _title(header: str) -> str:
    return header.replace("_", " ").replace(".", " ").strip().upper()


def _pad_center(text: str, width: int) -> str:
    gap = width - display_width(text)
    if gap <= 0:
        return text
    left = gap // 2
    return " " * left + text + " " * (gap - left)


def _pad_left(text: str, width: int) -> str:
    gap = width - display_width(text)
    return " " * gap + text if gap > 0 else text


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """The table etcdctl prints: borders, centred header, right-aligned wrapped cells."""
    widths: dict[int, int] = {}
    for col, name in enumerate(header):
        widths[col] = max(widths.get(col, 0), min(display_width(name), _MAX_WIDTH))
    wrapped_rows: list[list[list[str]]] = []
    for row in rows:
        cells: list[list[str]] = []
        for col, cell in enumerate(row):
            # Width grows with each row as it is appended; wrapping uses the width so far.
            widths[col] = max(widths.get(col, 0), min(display_width(cell), _MAX_WIDTH))
            lines = _wrap_string(cell, widths[col])
            widths[col] = max(widths[col], *(display_width(line) for line in lines))
            cells.append(lines)
        wrapped_rows.append(cells)

    columns = range(len(widths))
    rule = "+" + "+".join("-" * (widths[c] + 2) for c in columns) + "+\n"
    out = [rule, "|"]
    for col in columns:
        out.append(f" {_pad_center(_title(header[col]), widths[col])} |")
    out.append("\n")
    out.append(rule)
    for cells in wrapped_rows:
        height = max(len(lines) for lines in cells)
        for line_no in range(height):
            out.append("|")
            for col, lines in enumerate(cells):
                text = lines[line_no] if line_no < len(lines) else "  "
                out.append(f" {_pad_left(text, widths[col])} |")
            out.append("\n")
    out.append(rule)
    return "".join(out)
