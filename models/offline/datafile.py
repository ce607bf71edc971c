"""Labelled transaction files for ``train`` and ``backtest``: JSON Lines or CSV, gzip too.

A bank's export or a public data set rarely uses Vigil's field names, so columns are mapped
with ``--field account_id=CUSTOMER_ID`` style options instead of editing the file. Errors
name the line and the column, so a 10-million-row file is fixed once, not by bisection.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from models.transaction import TRANSACTION_FIELDS, transaction_from_dict

FORMATS = ("jsonl", "csv")
#: The column naming a row's fraud pattern (``legit`` for the rest); the backtest reports
#: recall per pattern when a file has it. Like any other column it stays in the document,
#: where the features never look.
PATTERN_COLUMN = "pattern"
_TRUE = frozenset({"1", "1.0", "true", "yes", "fraud", "y", "t"})
_FALSE = frozenset({"0", "0.0", "false", "no", "legit", "n", "f"})


class DataFileError(ValueError):
    """A labelled file that cannot be read; the message names the line and column."""


def parse_field_map(options: Sequence[str]) -> dict[str, str]:
    """Turn ``["account_id=CUSTOMER_ID", ...]`` into ``{"account_id": "CUSTOMER_ID"}``."""
    mapping: dict[str, str] = {}
    for option in options:
        target, sep, source = option.partition("=")
        target, source = target.strip(), source.strip()
        if not sep or not target or not source:
            raise DataFileError(f"--field {option!r}: expected FIELD=COLUMN")
        if target not in TRANSACTION_FIELDS:
            raise DataFileError(
                f"--field {option!r}: {target!r} is not a Transaction field "
                f"(one of {', '.join(TRANSACTION_FIELDS)})"
            )
        mapping[target] = source
    return mapping


def detect_format(path: Path) -> str:
    """Return ``jsonl`` or ``csv`` from the file name (``.gz`` ignored)."""
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if name.endswith((".csv", ".tsv")):
        return "csv"
    raise DataFileError(f"{path}: cannot tell the format from the name; pass --format jsonl|csv")


def parse_label(value: Any, where: str) -> int:
    """Read a fraud label: 1/0, true/false, fraud/legit, yes/no."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float) and value in (0, 1):
        return int(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return 1
        if text in _FALSE:
            return 0
    raise DataFileError(f"{where}: label {value!r} is not 1/0, true/false or fraud/legit")


def _open_text(path: Path) -> IO[str]:
    with open(path, "rb") as probe:
        gz = probe.read(2) == b"\x1f\x8b"
    # utf-8-sig: spreadsheet exports start with a BOM, which would otherwise become part of
    # the first column's name (and that column would then be "missing").
    if gz:
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def _csv_value(name: str, text: str) -> Any:
    if name == "ts" and text.isdigit():
        return int(text)  # epoch milliseconds
    return text


def _rows(path: Path, fmt: str) -> Iterator[tuple[int, dict[str, Any]]]:
    with _open_text(path) as handle:
        if fmt == "jsonl":
            for lineno, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    doc = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise DataFileError(f"{path}:{lineno}: not valid JSON ({exc})") from None
                if not isinstance(doc, dict):
                    raise DataFileError(f"{path}:{lineno}: expected a JSON object")
                yield lineno, doc
        else:
            tsv = path.name.lower().removesuffix(".gz").endswith(".tsv")
            dialect = "excel-tab" if tsv else "excel"
            reader = csv.DictReader(handle, dialect=dialect)
            for row in reader:
                if None in row:
                    raise DataFileError(f"{path}:{reader.line_num}: more cells than columns")
                yield reader.line_num, {k: v for k, v in row.items() if v not in ("", None)}


def read_labelled(
    path: Path,
    fields: Mapping[str, str] | None = None,
    label_column: str = "label",
    fmt: str | None = None,
) -> Iterator[tuple[dict[str, Any], int]]:
    """Yield ``(transaction dict, label)`` pairs, validated, in file order.

    Mapped columns are renamed to their Transaction field; other columns are kept as unknown
    fields (the stream keeps them too). The label column is removed from the transaction.
    """
    if not path.exists():
        raise DataFileError(f"{path}: no such file")
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise DataFileError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    mapping = dict(fields or {})
    for lineno, raw in _rows(path, fmt):
        where = f"{path}:{lineno}"
        doc = dict(raw)
        for target, source in mapping.items():
            if source in doc:
                doc[target] = doc.pop(source)
        if label_column not in doc:
            raise DataFileError(f"{where}: label column {label_column!r} is missing")
        label = parse_label(doc.pop(label_column), where)
        if fmt == "csv":
            doc = {k: _csv_value(k, v) for k, v in doc.items()}
        try:
            transaction_from_dict(doc)
        except ValueError as exc:
            hint = ""
            field = getattr(exc, "field", "")
            if field in mapping:
                hint = f" (column {mapping[field]!r})"
            raise DataFileError(f"{where}: {exc}{hint}") from None
        yield doc, label


def write_labelled(
    path: Path, records: Iterable[tuple[Mapping[str, Any], int, str]], label_column: str = "label"
) -> int:
    """Write ``(transaction, label, pattern)`` rows as JSON Lines (gzip if ``.gz``).

    Each line is the transaction with ``label`` and :data:`PATTERN_COLUMN` added, what
    ``train --data`` and ``backtest --data`` read. Returns the rows written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    gz = path.name.lower().endswith(".gz")
    count = 0
    with gzip.open(path, "wb", compresslevel=5) if gz else open(path, "wb") as out:
        for tx, label, pattern in records:
            row = {**tx, label_column: label, PATTERN_COLUMN: pattern}
            out.write(orjson.dumps(row) + b"\n")
            count += 1
    return count
