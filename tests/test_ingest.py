"""Reading real files and a real HTTP server on 127.0.0.1; errors name the problem."""

import hashlib

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_GAS_FURNACE, make_series

from components.common.errors import DataError
from components.common.redact import redact_url
from components.config.schema import DataSpec
from components.data.download import cache_path
from components.data.ingest import load_series


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
        DataSpec(
            path="statsmodels:sunspots", time_column="YEAR", targets=["SUNACTIVITY"]
        )
    )
    assert loaded.frame.index.name == "YEAR" and loaded.frame.index[0] == 1700
    assert loaded.features == ["SUNACTIVITY"] and len(loaded.frame) == 309


def test_url_is_downloaded_once_cached_and_checked(http_server, monkeypatch, tmp_path):
    base, root = http_server
    monkeypatch.setenv("RNNFLOW_CACHE_DIR", str(tmp_path / "cache"))
    # not a shipped series' bytes (those are never downloaded)
    payload = make_series().to_csv(index=False).encode()
    (root / "furnace.txt").write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    spec = DataSpec(path=f"{base}/furnace.txt", sha256=digest)
    first = load_series(spec)
    assert cache_path(spec.path).read_bytes() == payload
    (root / "furnace.txt").unlink()  # the second load must come from the cache
    second = load_series(spec)
    pd.testing.assert_frame_equal(first.frame, second.frame)
    assert second.sha256 == digest


def test_cached_copy_with_a_different_checksum_is_an_error(
    http_server, monkeypatch, tmp_path
):
    base, root = http_server
    monkeypatch.setenv("RNNFLOW_CACHE_DIR", str(tmp_path / "cache"))
    (root / "d.csv").write_text("a,b\n1,2\n3,4\n")
    with pytest.raises(
        DataError, match=r"d.csv: sha256 mismatch .*expected `data.sha256`"
    ):
        load_series(DataSpec(path=f"{base}/d.csv", sha256="0" * 64))


def test_unreachable_url_names_the_url_the_cache_path_and_the_override(
    http_server, monkeypatch, tmp_path
):
    base, _ = http_server
    monkeypatch.setenv("RNNFLOW_CACHE_DIR", str(tmp_path / "cache"))
    url = f"{base}/nope.csv"
    with pytest.raises(DataError, match=r"Cannot download http://127.0.0.1:\d+/nope.csv") as err:
        load_series(DataSpec(path=url))
    assert f"save the file as {cache_path(url)}" in str(err.value)
    assert "`data.path=/path/to/file`" in str(err.value)
    # the file saved there by hand is then read as if downloaded
    cache_path(url).write_text(make_series(30).to_csv(index=False))
    assert len(load_series(DataSpec(path=url, targets=["a"])).frame) == 30


def test_the_tours_gas_furnace_reads_its_shipped_copy_offline(monkeypatch, tmp_path):
    """conf/data/gas_furnace.yaml names a public URL and its sha256; the bytes
    ship with rnnflow, so an empty cache and no network still read it."""
    from components.config import load_experiment

    monkeypatch.setenv("RNNFLOW_CACHE_DIR", str(tmp_path / "empty"))
    spec = load_experiment("gas_furnace").data
    assert spec.path.startswith("https://")
    series = load_series(spec)
    assert series.frame.shape == (296, 2)
    assert series.sha256 == spec.sha256
    if SHARED_GAS_FURNACE.is_file():  # the same bytes as the course's copy
        assert hashlib.sha256(SHARED_GAS_FURNACE.read_bytes()).hexdigest() == spec.sha256
    assert not (tmp_path / "empty").exists()  # nothing downloaded or cached


def test_transient_http_errors_are_retried_and_404_fails_at_once(tmp_path, monkeypatch):
    import http.server
    import threading

    from components.data import download

    monkeypatch.setenv("RNNFLOW_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(download, "RETRY_DELAYS", (0.01, 0.02, 0.04))
    hits = []
    body = make_series(60).to_csv(index=False).encode()

    class Flaky(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            if self.path == "/busy.csv":
                self.send_error(503)
            elif self.path != "/flaky.csv":
                self.send_error(404)
            elif hits.count("/flaky.csv") <= 2:  # busy twice, then the file
                self.send_error(503)
            else:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        series = load_series(DataSpec(path=f"{base}/flaky.csv"))
        assert len(series.frame) == 60 and hits.count("/flaky.csv") == 3
        with pytest.raises(DataError, match=r"gone.csv: HTTP 404 Not Found\."):
            load_series(DataSpec(path=f"{base}/gone.csv"))
        assert hits.count("/gone.csv") == 1  # no retry for a missing file
        with pytest.raises(DataError, match="busy.csv: HTTP 503 .* after 4 tries"):
            load_series(DataSpec(path=f"{base}/busy.csv"))
        assert hits.count("/busy.csv") == 4
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "encoding, sep", [("utf-8-sig", ","), ("utf-8", ";"), ("utf-8-sig", ";")]
)
def test_csv_with_a_bom_or_semicolons_reads_like_a_plain_one(tmp_path, encoding, sep):
    frame = make_series(30)
    plain, odd = tmp_path / "plain.csv", tmp_path / "odd.csv"
    frame.to_csv(plain, index=False)
    frame.to_csv(odd, index=False, sep=sep, encoding=encoding)
    assert odd.read_bytes().startswith(b"\xef\xbb\xbf") == (encoding == "utf-8-sig")
    spec = DataSpec(path=str(odd), targets=["a"])  # the BOM must not rename column a
    read = load_series(spec).frame
    pd.testing.assert_frame_equal(
        read, load_series(spec.model_copy(update={"path": str(plain)})).frame
    )


def test_credentials_are_redacted():
    shown = redact_url("https://user:secret@example.org:8443/d.csv?token=abc")
    assert shown == "https://example.org:8443/d.csv?<redacted>"
    assert "secret" not in shown and "abc" not in shown


@pytest.mark.parametrize(
    "path, expected",
    [
        ("file:///etc/passwd", "scheme 'file' is not supported"),
        ("ftp://host/x.csv", "scheme 'ftp' is not supported"),
        ("statsmodels:nope", "statsmodels has no dataset 'nope'"),
    ],
)
def test_unsupported_sources(path, expected):
    with pytest.raises(DataError, match=expected):
        load_series(DataSpec(path=path))


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(
        DataError, match=r"'.*missing.csv' \(`data.path`\) does not exist"
    ):
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
    with pytest.raises(
        DataError, match=r"bad.csv: column 'b' must be numeric; row 1 holds 'oops'"
    ):
        load_series(DataSpec(path=str(path), targets=["b"], features=["a", "b"]))


def test_missing_values_are_counted_not_imputed(tmp_path):
    path = tmp_path / "gaps.csv"
    frame = make_series(20)
    frame.loc[[4, 9], "a"] = np.nan
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"missing values in 'a': 2 \(first at row 4\)"):
        load_series(DataSpec(path=str(path)))
    loaded = load_series(DataSpec(path=str(path), missing="ffill"))
    assert loaded.missing_counts == {"a": 2} and loaded.frame["a"].isna().sum() == 2


def test_inf_is_refused(tmp_path):
    path = tmp_path / "inf.csv"
    path.write_text("a,b\n1,2\n3,inf\n")
    with pytest.raises(
        DataError, match=r"column 'b' holds a non-finite value inf at row 1"
    ):
        load_series(DataSpec(path=str(path)))


def test_html_instead_of_data_is_named(http_server, monkeypatch, tmp_path):
    base, root = http_server
    monkeypatch.setenv("RNNFLOW_CACHE_DIR", str(tmp_path / "cache"))
    (root / "page.csv").write_text(
        "\n  <!DOCTYPE html><html><body>Not found</body></html>"
    )
    with pytest.raises(DataError, match=r"page.csv returned an HTML page, not data"):
        load_series(DataSpec(path=f"{base}/page.csv"))
    assert not list((tmp_path / "cache").glob("*page.csv"))  # nothing bad cached


def _hourly(tmp_path, drop=()):
    index = pd.date_range("2024-03-04", periods=72, freq="h")
    frame = pd.DataFrame(
        {
            "when": index.strftime("%Y-%m-%dT%H:%M:%S+01:00"),
            "v": np.sin(np.arange(72) / 5),
        }
    )
    path = tmp_path / "hourly.csv"
    frame.drop(index=list(drop)).to_csv(path, index=False)
    return path


def test_time_column_is_utc_and_frequency_is_inferred(tmp_path):
    loaded = load_series(DataSpec(path=str(_hourly(tmp_path)), time_column="when"))
    assert str(loaded.frame.index.tz) == "UTC"
    assert loaded.frame.index[0] == pd.Timestamp("2024-03-03 23:00", tz="UTC")
    assert loaded.frequency == "h"


def test_gaps_in_a_declared_frequency_are_counted_with_their_spans(tmp_path):
    path = _hourly(tmp_path, drop=[10, 11, 12, 40])
    with pytest.raises(DataError) as err:
        load_series(DataSpec(path=str(path), time_column="when", frequency="h"))
    message = str(err.value)
    assert "4 time stamp(s) missing for `data.frequency` 'h'" in message
    assert "2024-03-04 09:00:00+00:00 to 2024-03-04 11:00:00+00:00 (3 steps)" in message
    assert "(1 step)" in message


def test_calendar_features_are_cyclic_inputs(tmp_path):
    spec = DataSpec(
        path=str(_hourly(tmp_path)),
        time_column="when",
        calendar=["hour", "day"],
        targets=["v"],
    )
    loaded = load_series(spec)
    assert loaded.features == ["v", "hour_sin", "hour_cos", "day_sin", "day_cos"]
    assert loaded.targets == ["v"] and loaded.calendar_columns == loaded.features[1:]
    hours = loaded.frame.index.hour
    np.testing.assert_allclose(loaded.frame["hour_sin"], np.sin(2 * np.pi * hours / 24))
    np.testing.assert_allclose(
        loaded.frame["hour_sin"] ** 2 + loaded.frame["hour_cos"] ** 2, 1
    )
    with pytest.raises(DataError, match="`data.calendar` needs `data.time_column`"):
        load_series(DataSpec(path=str(_hourly(tmp_path)), calendar=["hour"]))


def test_duplicate_and_unsorted_time_stamps(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("when,a\n2024-01-01,1\n2024-01-03,2\n2024-01-02,3\n")
    with pytest.raises(DataError, match=r"'when' is not sorted: row 2"):
        load_series(DataSpec(path=str(path), time_column="when"))
    path.write_text("when,a\n2024-01-01,1\n2024-01-01,2\n")
    with pytest.raises(DataError, match=r"'when' has a duplicate value"):
        load_series(DataSpec(path=str(path), time_column="when"))


def test_a_bad_cell_in_a_default_column_is_reported_not_skipped(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text("station,a,b\nx,1,2\ny,3,oops\nz,5,6\n")
    with pytest.raises(
        DataError, match=r"column 'b' must be numeric; row 1 holds 'oops'"
    ):
        load_series(DataSpec(path=str(path)))
    path.write_text("station,a,b\nx,1,2\ny,3,4\nz,5,6\n")
    assert load_series(DataSpec(path=str(path))).features == ["a", "b"]  # text skipped
