"""How a CSV file is written: its separator, decimal mark and thousands mark.

Why not `csv.Sniffer` (pandas' `sep=None`): it picks any character that occurs
equally often on each line, so the header `value` of a one-column file gave
the separator `v` (columns `['Unnamed: 0', 'alue']`), and a time stamp
`2020-01-01 00:00` offers `-`, ` ` and `:`. Here only real separators are
candidates, a file with none of them is one column, and numbers written
`1,5` (decimal comma) or `1,234.5` (thousands) are recognized.

Example:
    >>> sniff_text("day;load\\n1;2,5\\n2;3,25\\n")
    CsvFormat(sep=';', decimal=',', thousands=None)
"""

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

SEPARATORS = (",", ";", "\t", "|")
_NO_SEPARATOR = "\x1f"  # ASCII's unit separator: a one-column file has none
_SAMPLE_BYTES = 1 << 16
_SAMPLE_LINES = 50
_PLAIN = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_COMMA_DECIMAL = re.compile(r"^[+-]?\d+,\d+$")  # 1,5 (or 1,234: ambiguous)
_GROUPED = {  # thousands mark -> a grouped number, the fraction optional
    ",": re.compile(r"^[+-]?[1-9]\d{0,2}(,\d{3})+(\.\d+)?$"),  # 1,234.5
    ".": re.compile(r"^[+-]?[1-9]\d{0,2}(\.\d{3})+(,\d+)?$"),  # 1.234,5
}
_BOTH_MARKS = {  # decimal mark -> a grouped number with a fraction: unambiguous
    ".": re.compile(r"^[+-]?[1-9]\d{0,2}(,\d{3})+\.\d+$"),
    ",": re.compile(r"^[+-]?[1-9]\d{0,2}(\.\d{3})+,\d+$"),
}


@dataclass(frozen=True)
class CsvFormat:
    """Keyword arguments for `pandas.read_csv` (`sep`, `decimal`, `thousands`)."""

    sep: str = ","
    decimal: str = "."
    thousands: str | None = None


def sniff_file(path: Path) -> CsvFormat:
    """The format of a CSV file, read from its first 64 KiB (BOM or not)."""
    with open(path, "rb") as handle:
        head = handle.read(_SAMPLE_BYTES)
    text = head.decode("utf-8-sig", errors="replace")
    if len(head) == _SAMPLE_BYTES:  # the last line may be cut
        text = text.rsplit("\n", 1)[0]
    return sniff_text(text)


def sniff_text(text: str) -> CsvFormat:
    """The format of CSV text: the first line is the header.

    The separator is the candidate (`SEPARATORS`) that splits every sampled
    line into the same number (> 1) of fields, quotes respected; among several,
    the one whose data cells read as numbers most often, then the one giving
    more fields. With none, the file is one column.
    """
    lines = [line for line in text.splitlines() if line.strip()][:_SAMPLE_LINES]
    best, best_key = None, None
    for sep in SEPARATORS:
        rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=sep))
        widths = {len(row) for row in rows}
        if len(widths) != 1 or widths == {1}:
            continue
        cells = [cell.strip() for row in rows[1:] for cell in row]
        key = (_numeric_share(cells), widths.pop())
        if best_key is None or key > best_key:
            best, best_key = sep, key
    if best is None:  # one column: no separator splits it
        cells = [line.strip().strip('"') for line in lines[1:]]
        return _with_marks(_NO_SEPARATOR, cells)
    rows = csv.reader(io.StringIO("\n".join(lines[1:])), delimiter=best)
    return _with_marks(best, [cell.strip() for row in rows for cell in row])


def _numeric_share(cells: list[str]) -> float:
    """Share of cells that read as a number in any of the accepted ways."""
    if not cells:
        return 0.0
    patterns = (_PLAIN, _COMMA_DECIMAL, *_GROUPED.values())
    return sum(any(p.match(c) for p in patterns) for c in cells) / len(cells)


def _with_marks(sep: str, cells: list[str]) -> CsvFormat:
    """The decimal and thousands marks the numbers in `cells` are written with.

    Under a `,` separator the decimal mark is `.` (a number with a comma must
    be quoted there, and is read as grouped: "1,234.5"). Otherwise `1,234.5`
    means a `.` decimal; `1.234,5` or any `1,5` a decimal comma (so `1,234`
    alone reads as 1.234, the convention of `;`-separated files).
    """
    def some(pattern) -> bool:
        return any(pattern.match(c) for c in cells)

    comma = sep != "," and not some(_BOTH_MARKS["."]) and (
        some(_BOTH_MARKS[","]) or some(_COMMA_DECIMAL)
    )
    decimal, grouping = (",", ".") if comma else (".", ",")
    return CsvFormat(sep, decimal, grouping if some(_GROUPED[grouping]) else None)
