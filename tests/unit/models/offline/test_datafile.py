"""Labelled transaction files: JSON Lines, CSV/TSV, gzip, column mapping, clear errors."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest

from models.offline.datafile import (
    DataFileError,
    detect_format,
    parse_field_map,
    parse_label,
    read_labelled,
    write_labelled,
)
from models.transaction import TRANSACTION_FIELDS, transaction_from_dict

TS = 1_709_251_200_000


def row(i: int, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "tx_id": f"t{i}",
        "ts": TS + i * 1000,
        "account_id": f"a{i % 3}",
        "amount": 10.5 + i,
    }
    doc.update(extra)
    return doc


def write_jsonl(path: Path, docs: list[dict[str, Any]], gz: bool = False) -> Path:
    data = b"".join(orjson.dumps(d) + b"\n" for d in docs)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_text(path: Path, text: str, gz: bool = False) -> Path:
    data = text.encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


CSV = (
    "tx_id,ts,account_id,amount,counterparty_id,balance_before,label,branch\n"
    "t1,1709251200000,a1,12.50,m1,100.00,1,north\n"
    "t2,2024-03-01T10:00:00+01:00,a2,7,,,0,\n"
    "t3,1709251260000,a1,0.99,m2,,fraud,south\n"
)


def test_jsonl_yields_docs_and_labels_in_file_order(tmp_path: Path) -> None:
    docs = [row(1, label=1, branch="x"), row(2, label=0), row(3, label="fraud")]
    out = list(read_labelled(write_jsonl(tmp_path / "d.jsonl", docs)))
    assert [label for _, label in out] == [1, 0, 1]
    assert [d["tx_id"] for d, _ in out] == ["t1", "t2", "t3"]
    first = out[0][0]
    assert "label" not in first  # the label is not part of the transaction
    assert first["branch"] == "x"  # unknown columns are kept
    assert transaction_from_dict(first).raw["branch"] == "x"


def test_jsonl_skips_blank_lines_and_counts_them_in_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(
        orjson.dumps(row(1, label=0)) + b"\n\n   \n" + orjson.dumps(row(2, label=0, amount=-1))
    )
    rows = read_labelled(path)
    assert next(rows)[0]["tx_id"] == "t1"
    with pytest.raises(DataFileError, match=r"d\.jsonl:4: amount"):
        next(rows)


def test_csv_values_are_typed_by_the_transaction_rules(tmp_path: Path) -> None:
    out = list(read_labelled(write_text(tmp_path / "d.csv", CSV)))
    assert [label for _, label in out] == [1, 0, 1]
    d1, d2, d3 = (d for d, _ in out)
    assert d1["ts"] == 1_709_251_200_000  # epoch ms digits become an int
    assert d2["ts"] == "2024-03-01T10:00:00+01:00"
    assert "counterparty_id" not in d2 and "branch" not in d2  # empty cells are absent
    assert d1["branch"] == "north"
    t1 = transaction_from_dict(d1)
    assert t1.amount == 12.5 and t1.balance_before == 100.0 and t1.counterparty_id == "m1"
    t2 = transaction_from_dict(d2)
    assert t2.ts_ms == 1_709_283_600_000 and t2.counterparty_id is None
    assert transaction_from_dict(d3).amount == 0.99


def test_tsv(tmp_path: Path) -> None:
    text = "tx_id\tts\taccount_id\tamount\tlabel\nt1\t1709251200000\ta1\t3\tno\n"
    out = list(read_labelled(write_text(tmp_path / "d.tsv", text)))
    assert out == [({"tx_id": "t1", "ts": 1_709_251_200_000, "account_id": "a1", "amount": "3"}, 0)]


@pytest.mark.parametrize("name", ["d.csv.gz", "d.csv", "d.CSV.GZ"])
def test_gzip_is_detected_by_magic_bytes_not_the_name(tmp_path: Path, name: str) -> None:
    out = list(read_labelled(write_text(tmp_path / name, CSV, gz=True)))
    assert [d["tx_id"] for d, _ in out] == ["t1", "t2", "t3"]


def test_gzip_jsonl_and_plain_file_named_gz(tmp_path: Path) -> None:
    docs = [row(1, label=1), row(2, label=0)]
    gz = list(read_labelled(write_jsonl(tmp_path / "a.jsonl.gz", docs, gz=True)))
    plain = list(read_labelled(write_jsonl(tmp_path / "b.jsonl.gz", docs, gz=False)))
    assert gz == plain
    assert [label for _, label in gz] == [1, 0]


def test_utf8_bom_of_a_spreadsheet_export_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + CSV.encode())
    assert [d["tx_id"] for d, _ in read_labelled(path)] == ["t1", "t2", "t3"]


def test_field_mapping_renames_columns(tmp_path: Path) -> None:
    text = (
        "ID,TIME,CUSTOMER_ID,AMT,MERCHANT,Class,tx_id_hint\n"
        "x1,1709251200000,c1,5.00,m7,0,keep\n"
        "x2,1709251300000,c2,6.00,m8,1,keep\n"
    )
    fields = parse_field_map(
        [
            "tx_id=ID",
            "ts=TIME",
            " account_id = CUSTOMER_ID ",
            "amount=AMT",
            "counterparty_id=MERCHANT",
        ]
    )
    out = list(read_labelled(write_text(tmp_path / "bank.csv", text), fields, "Class"))
    assert out[0] == (
        {
            "tx_id": "x1",
            "ts": 1_709_251_200_000,
            "account_id": "c1",
            "amount": "5.00",
            "counterparty_id": "m7",
            "tx_id_hint": "keep",
        },
        0,
    )
    assert out[1][1] == 1
    assert transaction_from_dict(out[1][0]).counterparty_id == "m8"


def test_errors_name_the_line_and_the_mapped_column(tmp_path: Path) -> None:
    text = "ID,CUSTOMER_ID,ts,amount,label\nx1,c1,1709251200000,5,0\nx2,,1709251200000,5,0\n"
    path = write_text(tmp_path / "bank.csv", text)
    fields = parse_field_map(["tx_id=ID", "account_id=CUSTOMER_ID"])
    rows = read_labelled(path, fields)
    assert next(rows)[0]["tx_id"] == "x1"
    with pytest.raises(DataFileError) as err:
        next(rows)
    message = str(err.value)
    assert f"{path}:3: account_id" in message
    assert "(column 'CUSTOMER_ID')" in message


def test_an_unmapped_field_error_has_no_column_hint(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [row(1, label=0, currency="EURO")])
    with pytest.raises(DataFileError) as err:
        list(read_labelled(path, {"account_id": "CUST"}))
    assert str(err.value).startswith(f"{path}:1: currency")
    assert "column" not in str(err.value)


def test_parse_field_map_errors() -> None:
    assert parse_field_map([]) == {}
    for bad in ("account_id", "=X", "account_id=", "  =  "):
        with pytest.raises(DataFileError, match="expected FIELD=COLUMN"):
            parse_field_map([bad])
    with pytest.raises(DataFileError, match="'label' is not a Transaction field"):
        parse_field_map(["label=Class"])
    assert set(parse_field_map([f"{f}=C{i}" for i, f in enumerate(TRANSACTION_FIELDS)])) == set(
        TRANSACTION_FIELDS
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, 1),
        (0, 0),
        (1.0, 1),
        (0.0, 0),
        (True, 1),
        (False, 0),
        ("1", 1),
        ("0", 0),
        (" TRUE ", 1),
        ("false", 0),
        ("Fraud", 1),
        ("legit", 0),
        ("yes", 1),
        ("no", 0),
        ("Y", 1),
        ("n", 0),
        ("t", 1),
        ("F", 0),
        ("1.0", 1),  # pandas writes float label columns like this
        ("0.0", 0),
    ],
)
def test_label_variants(value: Any, expected: int) -> None:
    assert parse_label(value, "f:1") == expected


@pytest.mark.parametrize("value", [2, -1, 0.5, "2", "maybe", "", None, [1], float("nan")])
def test_bad_labels_name_the_place(value: Any) -> None:
    with pytest.raises(DataFileError, match=r"^f\.csv:7: label .* is not 1/0"):
        parse_label(value, "f.csv:7")


def test_jsonl_errors_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(orjson.dumps(row(1, label=0)) + b"\n{broken\n")
    with pytest.raises(DataFileError, match=r"d\.jsonl:2: not valid JSON"):
        list(read_labelled(path))
    path.write_bytes(b"[1, 2]\n")
    with pytest.raises(DataFileError, match=r"d\.jsonl:1: expected a JSON object"):
        list(read_labelled(path))
    write_jsonl(path, [row(1, label=0), row(2)])
    with pytest.raises(DataFileError, match=r"d\.jsonl:2: label column 'label' is missing"):
        list(read_labelled(path))
    write_jsonl(path, [row(1, label="perhaps")])
    with pytest.raises(DataFileError, match=r"d\.jsonl:1: label 'perhaps'"):
        list(read_labelled(path))


def test_csv_errors_name_file_and_line(tmp_path: Path) -> None:
    path = write_text(tmp_path / "d.csv", "tx_id,ts,account_id,amount,label\nt1,1,a,1,0\n")
    with pytest.raises(DataFileError, match=r"d\.csv:2: ts: .*outside 2000\.\.2100"):
        list(read_labelled(path))
    write_text(path, "tx_id,ts,account_id,amount,label\nt1,1709251200000,a,1,0,extra\n")
    with pytest.raises(DataFileError, match=r"d\.csv:2: more cells than columns"):
        list(read_labelled(path))
    write_text(path, "tx_id,ts,account_id,amount,label\nt1,1709251200000,a,abc,0\n")
    with pytest.raises(DataFileError, match=r"d\.csv:2: amount: not a number"):
        list(read_labelled(path))
    write_text(path, "tx_id,ts,account_id,amount\nt1,1709251200000,a,1\n")
    with pytest.raises(DataFileError, match=r"d\.csv:2: label column 'label' is missing"):
        list(read_labelled(path))


def test_missing_file_and_bad_format(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="no such file"):
        list(read_labelled(tmp_path / "absent.csv"))
    path = write_text(tmp_path / "d.csv", CSV)
    with pytest.raises(DataFileError, match="format 'xml' is not one of jsonl, csv"):
        list(read_labelled(path, fmt="xml"))


def test_explicit_format_overrides_the_name(tmp_path: Path) -> None:
    path = write_text(tmp_path / "export.txt", CSV)
    with pytest.raises(DataFileError, match="--format"):
        list(read_labelled(path))
    assert len(list(read_labelled(path, fmt="csv"))) == 3


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.jsonl", "jsonl"),
        ("a.ndjson", "jsonl"),
        ("a.json", "jsonl"),
        ("a.JSONL.GZ", "jsonl"),
        ("a.csv", "csv"),
        ("a.tsv.gz", "csv"),
        ("dir.v2/a.Csv", "csv"),
    ],
)
def test_detect_format(name: str, fmt: str) -> None:
    assert detect_format(Path(name)) == fmt


@pytest.mark.parametrize("name", ["a.txt", "a.gz", "a.parquet", "csv"])
def test_detect_format_refuses_unknown_names(name: str) -> None:
    with pytest.raises(DataFileError, match="cannot tell the format"):
        detect_format(Path(name))


@pytest.mark.parametrize("name", ["sim.jsonl", "sim.jsonl.gz"])
def test_write_labelled_round_trips_label_and_pattern(tmp_path: Path, name: str) -> None:
    rows = [(row(1), 0, "legit"), (row(2, currency="EUR"), 1, "account_takeover")]
    path = tmp_path / "sub" / name
    assert write_labelled(path, rows) == 2
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    out = list(read_labelled(path))
    assert [label for _, label in out] == [0, 1]
    # The pattern stays in the document as an unknown field, next to the transaction.
    assert [d["pattern"] for d, _ in out] == ["legit", "account_takeover"]
    assert out[1][0]["currency"] == "EUR" and "label" not in out[1][0]
