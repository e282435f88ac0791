"""Chronological split and the train-only normalizer."""

import numpy as np
import pandas as pd
import pytest

from components.common.errors import DataError
from components.config.schema import DataSpec, SplitSpec, WindowSpec
from components.data.preprocess import (
    Normalizer,
    check_window_fits,
    fill_missing,
    fit_normalizer,
    prepare_split,
    scale_split,
    split_chronologically,
)


def _frame(n=100):
    return pd.DataFrame({"x": np.arange(n, dtype=float), "y": np.arange(n) ** 1.5})


def test_split_counts_are_chronological_and_contiguous():
    splits = split_chronologically(_frame(296), SplitSpec(val=30, test=100))
    assert splits.sizes() == {"train": 166, "val": 30, "test": 100}
    assert splits.train["x"].iloc[-1] + 1 == splits.val["x"].iloc[0]
    assert splits.val["x"].iloc[-1] + 1 == splits.test["x"].iloc[0]
    assert splits.test["x"].iloc[-1] == 295


def test_split_fractions():
    splits = split_chronologically(_frame(200), SplitSpec(val=0.1, test=0.25))
    assert splits.sizes() == {"train": 130, "val": 20, "test": 50}


def test_split_that_leaves_no_training_rows_names_both_keys():
    with pytest.raises(DataError, match=r"split.val.*split.test.*none of the 50"):
        split_chronologically(_frame(50), SplitSpec(val=20, test=30))


def test_window_longer_than_a_split_reports_required_and_actual_rows():
    splits = split_chronologically(_frame(100), SplitSpec(val=10, test=20))
    with pytest.raises(DataError) as err:
        check_window_fits(splits.sizes(), WindowSpec(input_width=12, horizon=1))
    message = str(err.value)
    assert "needs 13 rows" in message and "val has 10" in message
    assert "test" not in message.split("but")[1].split("(")[0]


def test_empty_validation_split_is_allowed():
    splits = split_chronologically(_frame(100), SplitSpec(val=0, test=20))
    check_window_fits(splits.sizes(), WindowSpec(input_width=12, horizon=1))


def test_normalizer_uses_training_rows_only():
    frame = _frame(100)
    splits = split_chronologically(frame, SplitSpec(val=10, test=20))
    before = fit_normalizer(splits.train)
    changed = frame.copy()
    changed.iloc[70:] = 1e6  # rewrite every validation and test row
    after = fit_normalizer(
        split_chronologically(changed, SplitSpec(val=10, test=20)).train
    )
    assert before == after
    assert before.mean[0] == pytest.approx(np.arange(70).mean())
    assert before.std[0] == pytest.approx(np.arange(70).std())


def test_normalizer_round_trip_and_serialization():
    frame = _frame(50)
    normalizer = fit_normalizer(frame)
    scaled = normalizer.transform(frame)
    assert scaled.dtype == np.float32
    np.testing.assert_allclose(scaled.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(scaled.std(axis=0), 1, atol=1e-5)
    back = normalizer.inverse(scaled[:, [1, 0]], ["y", "x"])
    np.testing.assert_allclose(back, frame[["y", "x"]].to_numpy(), rtol=1e-5, atol=1e-4)
    assert Normalizer.from_dict(normalizer.to_dict()) == normalizer


def test_scale_split_selects_inputs_and_targets():
    frame = _frame(30)
    prepared = prepare_split(frame, DataSpec(), ["y"])
    split = scale_split(prepared, fit_normalizer(frame), ["x", "y"], ["y"])
    assert split.inputs.shape == (30, 2) and split.targets.shape == (30, 1)
    np.testing.assert_array_equal(split.targets[:, 0], split.inputs[:, 1])
    np.testing.assert_array_equal(split.levels[:, 0], frame["y"].to_numpy())


def test_constant_training_column_is_named():
    frame = _frame(40).assign(flat=3.0)
    with pytest.raises(DataError, match=r"\['flat'\] are constant"):
        fit_normalizer(frame)


def _gappy():
    return pd.DataFrame({"v": [np.nan, 1.0, np.nan, 3.0, np.nan, np.nan, 9.0, np.nan]})


def test_ffill_only_looks_back_and_drops_leading_gaps():
    filled = fill_missing(_gappy(), "ffill")
    assert list(filled.index) == [1, 2, 3, 4, 5, 6, 7]
    assert list(filled["v"]) == [1, 1, 3, 3, 3, 9, 9]


def test_interpolate_fills_inside_and_carries_the_end_forward():
    filled = fill_missing(_gappy(), "interpolate")
    assert list(filled["v"]) == [1, 2, 3, 5, 7, 9, 9]


def test_drop_removes_incomplete_rows():
    assert list(fill_missing(_gappy(), "drop")["v"]) == [1, 3, 9]


def test_missing_values_are_filled_within_each_split_only():
    frame = pd.DataFrame({"v": [1.0, 2.0, np.nan, np.nan, 5.0, 6.0]})
    splits = split_chronologically(
        frame, SplitSpec(val=0, test=3)
    )  # [1,2,nan] [nan,5,6]
    spec = DataSpec(missing="interpolate")
    train = prepare_split(splits.train, spec, ["v"]).frame["v"].tolist()
    test = prepare_split(splits.test, spec, ["v"]).frame["v"].tolist()
    assert train == [1, 2, 2]  # not interpolated towards the test value 5
    assert test == [5, 6]  # the leading gap has nothing before it in its split


def test_diff_transform_keeps_levels_aligned_and_leaves_calendar_alone():
    frame = pd.DataFrame(
        {"v": [10.0, 12.0, 15.0, 19.0], "hour_sin": [0.0, 0.5, 1.0, 0.5]}
    )
    prepared = prepare_split(
        frame, DataSpec(transform="diff"), ["v"], keep=["hour_sin"]
    )
    assert prepared.frame["v"].tolist() == [2, 3, 4]
    assert prepared.frame["hour_sin"].tolist() == [0.5, 1.0, 0.5]
    assert prepared.levels["v"].tolist() == [12, 15, 19]


def test_log_diff_needs_positive_values():
    frame = pd.DataFrame({"v": [1.0, np.e, np.e**3]})
    prepared = prepare_split(frame, DataSpec(transform="log_diff"), ["v"])
    np.testing.assert_allclose(prepared.frame["v"], [1, 2])
    with pytest.raises(DataError, match=r"column 'v' holds 0.0 at row 1"):
        prepare_split(
            pd.DataFrame({"v": [1.0, 0.0]}), DataSpec(transform="log_diff"), ["v"]
        )
