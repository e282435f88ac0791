"""Chronological split and the train-only normalizer."""

import numpy as np
import pandas as pd
import pytest

from components.config import SplitSpec, WindowSpec
from components.errors import DataError
from components.preprocess import (
    Normalizer,
    check_window_fits,
    fit_normalizer,
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
        check_window_fits(splits, WindowSpec(input_width=12, horizon=1))
    message = str(err.value)
    assert "needs 13 rows" in message and "val has 10" in message
    assert "test" not in message.split("but")[1].split("(")[0]


def test_empty_validation_split_is_allowed():
    splits = split_chronologically(_frame(100), SplitSpec(val=0, test=20))
    check_window_fits(splits, WindowSpec(input_width=12, horizon=1))


def test_normalizer_uses_training_rows_only():
    frame = _frame(100)
    splits = split_chronologically(frame, SplitSpec(val=10, test=20))
    before = fit_normalizer(splits.train)
    changed = frame.copy()
    changed.iloc[70:] = 1e6  # rewrite every validation and test row
    after = fit_normalizer(split_chronologically(changed, SplitSpec(val=10, test=20)).train)
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
    split = scale_split(frame, fit_normalizer(frame), ["x", "y"], ["y"])
    assert split.inputs.shape == (30, 2) and split.targets.shape == (30, 1)
    np.testing.assert_array_equal(split.targets[:, 0], split.inputs[:, 1])


def test_constant_training_column_is_named():
    frame = _frame(40).assign(flat=3.0)
    with pytest.raises(DataError, match=r"\['flat'\] are constant"):
        fit_normalizer(frame)
