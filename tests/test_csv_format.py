"""CSV files as people write them: one column, quoted headers, decimal commas,
thousands marks. Each is read through `load_series` like a training file."""

import numpy as np
import pandas as pd
import pytest

from components.config.schema import DataSpec
from components.data.csv_format import CsvFormat, sniff_text
from components.data.ingest import load_series


def _load(tmp_path, text: str, **spec):
    path = tmp_path / "series.csv"
    path.write_text(text, encoding="utf-8")
    return load_series(DataSpec(path=str(path), **spec))


def test_a_one_column_file_with_a_header_is_one_column(tmp_path):
    loaded = _load(tmp_path, "value\n1.5\n2\n-3e2\n4\n")
    assert loaded.targets == ["value"]
    np.testing.assert_array_equal(loaded.frame["value"], [1.5, 2.0, -300.0, 4.0])


def test_a_time_column_and_one_value_column(tmp_path):
    loaded = _load(
        tmp_path,
        "time,value\n2020-01-01 00:00:00,1\n2020-01-01 01:00:00,2\n"
        "2020-01-01 02:00:00,3\n",
        time_column="time",
        frequency="h",
    )
    assert loaded.targets == ["value"] and loaded.frequency == "h"
    assert loaded.frame.index[0] == pd.Timestamp("2020-01-01", tz="UTC")


@pytest.mark.parametrize(
    "text, expected",
    [
        ('"load (MW)";"temp, C"\n1;2\n3;4\n', {"load (MW)": [1, 3], "temp, C": [2, 4]}),
        ("day;load\n1;2,5\n2;3,25\n", {"day": [1, 2], "load": [2.5, 3.25]}),
        ("a;b\n1.234,5;2\n3;4\n", {"a": [1234.5, 3], "b": [2, 4]}),
        ('a,b\n"1,234.5",2\n3,4\n', {"a": [1234.5, 3], "b": [2, 4]}),
        ("a\tb\n1,234.5\t2\n3\t4\n", {"a": [1234.5, 3], "b": [2, 4]}),
        ("value\n1,5\n2,25\n", {"value": [1.5, 2.25]}),
        ("a|b\n1|2\n3|4\n", {"a": [1, 3], "b": [2, 4]}),
    ],
    ids=["quoted-header", "decimal-comma", "eu-thousands", "quoted-thousands",
         "tab-thousands", "one-column-decimal-comma", "pipe"],
)  # fmt: skip
def test_separators_decimal_and_thousands_marks(tmp_path, text, expected):
    frame = _load(tmp_path, text).frame
    assert list(frame.columns) == list(expected)
    for column, values in expected.items():
        np.testing.assert_allclose(frame[column], values)


def test_the_sniffer_never_takes_a_letter_or_a_time_stamp_for_a_separator():
    assert sniff_text("value\n1\n2\n").sep not in "value"
    found = sniff_text("time value\n2020-01-01 00:00 1\n2020-01-01 01:00 2\n")
    assert found.sep not in " -:"  # no real separator: one column
    assert sniff_text("a,b\n1,2\n") == CsvFormat(",", ".", None)
    assert sniff_text("a;b\n0,123;1\n") == CsvFormat(";", ",", None)  # not thousands


def test_a_one_column_file_that_is_not_numeric_names_the_cell(tmp_path):
    from components.common.errors import DataError

    with pytest.raises(DataError, match=r"column 'value' must be numeric; row 1"):
        _load(tmp_path, "value\n1\nn/a?\n3\n", targets=["value"])
