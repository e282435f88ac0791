"""Reading real files and a real HTTP server on 127.0.0.1; errors name the problem."""

import hashlib
import http.server
import threading

import numpy as np
import pandas as pd
import pytest

from components.config import DataSpec
from components.errors import DataError
from components.ingest import cache_path, load_series, redact_url
from conftest import SHARED_GAS_FURNACE, make_series


@pytest.fixture
def http_server(tmp_path):
    """Serve tmp_path/www on a free loopback port; yields the base URL."""
    root = tmp_path / "www"
    root.mkdir()
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(  # noqa: E731
        *a, directory=str(root), **k
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


def test_csv_defaults_to_all_numeric_columns(series_csv):
    loaded = load_series(DataSpec(path=str(series_csv)))
    assert loaded.features == ["a", "b"] and loaded.targets == ["a", "b"]
    assert loaded.frame.dtypes.eq("float64").all() and len(loaded.frame) == 240
    assert loaded.sha256 == hashlib.sha256(series_csv.read_bytes()).hexdigest()


def test_parquet_and_separate_targets(tmp_path):
    path = tmp_path / "s.parquet"
    make_series().to_parquet(path)
    loaded = load_series(DataSpec(path=str(path), features=["a"], targets=["b"]))
    assert list(loaded.frame.columns) == ["a", "b"]
    assert loaded.features == ["a"] and loaded.targets == ["b"]


def test_packaged_dataset_with_time_column():
    loaded = load_series(
        DataSpec(path="statsmodels:sunspots", time_column="YEAR", targets=["SUNACTIVITY"])
    )
    assert loaded.frame.index.name == "YEAR" and loaded.frame.index[0] == 1700
    assert loaded.features == ["SUNACTIVITY"] and len(loaded.frame) == 309


def test_url_is_downloaded_once_cached_and_checked(http_server, monkeypatch, tmp_path):
    base, root = http_server
    monkeypatch.setenv("RNNFLOW_CACHE_DIR", str(tmp_path / "cache"))
    payload = SHARED_GAS_FURNACE.read_bytes() if SHARED_GAS_FURNACE.is_file() else (
        make_series().to_csv(index=False).encode()
    )
    (root / "furnace.txt").write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    spec = DataSpec(path=f"{base}/furnace.txt", sha256=digest)
    first = load_series(spec)
    assert cache_path(spec.path).read_bytes() == payload
    (root / "furnace.txt").unlink()  # the second load must come from the cache
    second = load_series(spec)
    pd.testing.assert_frame_equal(first.frame, second.frame)
    assert second.sha256 == digest


def test_cached_copy_with_a_different_checksum_is_an_error(http_server, monkeypatch, tmp_path):
    base, root = http_server
    monkeypatch.setenv("RNNFLOW_CACHE_DIR", str(tmp_path / "cache"))
    (root / "d.csv").write_text("a,b\n1,2\n3,4\n")
    with pytest.raises(DataError, match=r"d.csv: sha256 mismatch .*expected `data.sha256`"):
        load_series(DataSpec(path=f"{base}/d.csv", sha256="0" * 64))


def test_unreachable_url_names_the_url(http_server, monkeypatch, tmp_path):
    base, _ = http_server
    monkeypatch.setenv("RNNFLOW_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataError, match=r"Cannot download http://127.0.0.1:\d+/nope.csv"):
        load_series(DataSpec(path=f"{base}/nope.csv"))


def test_credentials_are_redacted():
    shown = redact_url("https://user:secret@example.org:8443/d.csv?token=abc")
    assert shown == "https://example.org:8443/d.csv?<redacted>"
    assert "secret" not in shown and "abc" not in shown


@pytest.mark.parametrize(
    "path, expected",
    [("file:///etc/passwd", "scheme 'file' is not supported"),
     ("ftp://host/x.csv", "scheme 'ftp' is not supported"),
     ("statsmodels:nope", "statsmodels has no dataset 'nope'")],
)
def test_unsupported_sources(path, expected):
    with pytest.raises(DataError, match=expected):
        load_series(DataSpec(path=path))


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DataError, match=r"'.*missing.csv' \(`data.path`\) does not exist"):
        load_series(DataSpec(path=str(tmp_path / "missing.csv")))
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty.csv: the file is empty"):
        load_series(DataSpec(path=str(tmp_path / "empty.csv")))


def test_missing_column_lists_the_available_ones(series_csv):
    with pytest.raises(DataError) as err:
        load_series(DataSpec(path=str(series_csv), targets=["c"]))
    message = str(err.value)
    assert str(series_csv) in message and "`data.targets`" in message
    assert "['c']" in message and "available: ['a', 'b']" in message


def test_non_numeric_cell_names_column_row_and_value(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n1,2\n3,oops\n5,6\n")
    with pytest.raises(DataError, match=r"bad.csv: column 'b' must be numeric; row 1 holds 'oops'"):
        load_series(DataSpec(path=str(path), targets=["b"], features=["a", "b"]))


def test_missing_values_are_counted_not_imputed(tmp_path):
    path = tmp_path / "gaps.csv"
    frame = make_series(20)
    frame.loc[[4, 9], "a"] = np.nan
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"column 'a' has 2 missing value\(s\), the first at row 4"):
        load_series(DataSpec(path=str(path)))


def test_duplicate_and_unsorted_time_stamps(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("when,a\n2024-01-01,1\n2024-01-03,2\n2024-01-02,3\n")
    with pytest.raises(DataError, match=r"'when' is not sorted: row 2"):
        load_series(DataSpec(path=str(path), time_column="when"))
    path.write_text("when,a\n2024-01-01,1\n2024-01-01,2\n")
    with pytest.raises(DataError, match=r"'when' has a duplicate value"):
        load_series(DataSpec(path=str(path), time_column="when"))
