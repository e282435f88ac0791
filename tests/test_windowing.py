"""Golden windows on np.arange data: every value equals its own row index."""

import numpy as np
import pytest

from components.config.schema import WindowSpec
from components.data.windowing import (
    make_dataset,
    make_windows,
    target_rows,
    window_starts,
)


def _rows(n: int, columns: int = 2) -> np.ndarray:
    # Row r, column c holds r + 1000 * c: off-by-one errors show up as wrong values.
    return (np.arange(n)[:, None] + 1000 * np.arange(columns)).astype(np.float32)


def test_window_count_and_alignment_single_step():
    rows = _rows(6)
    x, y = make_windows(rows, rows[:, :1], WindowSpec(input_width=2, horizon=1))
    assert x.shape == (4, 2, 2) and y.shape == (4, 1, 1)
    np.testing.assert_array_equal(x[0, :, 0], [0, 1])
    np.testing.assert_array_equal(x[0, :, 1], [1000, 1001])
    np.testing.assert_array_equal(y[:, 0, 0], [2, 3, 4, 5])
    np.testing.assert_array_equal(x[3, :, 0], [3, 4])


def test_multi_step_targets_follow_the_inputs():
    rows = _rows(10, 1)
    x, y = make_windows(rows, rows, WindowSpec(input_width=3, horizon=4))
    assert x.shape == (4, 3, 1) and y.shape == (4, 4, 1)
    np.testing.assert_array_equal(y[1, :, 0], [4, 5, 6, 7])
    assert x[-1, -1, 0] + 1 == y[-1, 0, 0] and y[-1, -1, 0] == 9


def test_too_short_split_has_no_windows():
    assert len(window_starts(3, WindowSpec(input_width=3, horizon=1))) == 0
    assert len(window_starts(4, WindowSpec(input_width=3, horizon=1))) == 1


def test_windows_never_cross_a_split_boundary():
    # Windowing each split separately: every value of a window comes from that split.
    rows = _rows(30, 1)
    spec = WindowSpec(input_width=4, horizon=2)
    for lo, hi in [(0, 18), (18, 24), (24, 30)]:
        x, y = make_windows(rows[lo:hi], rows[lo:hi], spec)
        assert x.min() >= lo and y.max() < hi


@pytest.mark.parametrize("batch_size", [1, 4, 7])
def test_dataset_streams_the_same_windows_with_last_partial_batch(batch_size):
    rows = _rows(25)
    spec = WindowSpec(input_width=5, horizon=3)
    expected_x, expected_y = make_windows(rows, rows, spec)
    batches = list(make_dataset(rows, rows, spec, batch_size).as_numpy_iterator())
    last_batch = len(expected_x) % batch_size or batch_size
    assert len(batches[-1][0]) == last_batch
    assert len(batches) == -(-len(expected_x) // batch_size)
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), expected_x)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), expected_y)


def test_shuffled_epochs_differ_but_repeat_with_the_seed():
    rows = _rows(100, 1)
    spec = WindowSpec(input_width=3, horizon=1)

    def epochs(dataset, n=2):
        return [
            np.concatenate([x[:, 0, 0] for x, _ in dataset.as_numpy_iterator()])
            for _ in range(n)
        ]

    first, second = epochs(make_dataset(rows, rows, spec, 16, shuffle=True, seed=3))
    assert not np.array_equal(first, second)  # a new order every epoch
    again = epochs(make_dataset(rows, rows, spec, 16, shuffle=True, seed=3))
    np.testing.assert_array_equal(again[0], first)  # the same orders for the seed
    np.testing.assert_array_equal(again[1], second)
    dataset = make_dataset(rows, rows, spec, 16, shuffle=True, seed=3)
    assert int(dataset.cardinality()) == -(-97 // 16)  # Keras knows the epoch length


def test_datasets_with_the_same_seed_alive_together_give_the_same_orders():
    # Both stay referenced: no shuffle state may pass from one to the other.
    rows = _rows(60, 1)
    spec = WindowSpec(input_width=3, horizon=1)
    first = make_dataset(rows, rows, spec, 8, shuffle=True, seed=5)
    second = make_dataset(rows, rows, spec, 8, shuffle=True, seed=5)
    for _ in range(2):  # two epochs each, interleaved
        a = np.concatenate([x[:, 0, 0] for x, _ in first.as_numpy_iterator()])
        b = np.concatenate([x[:, 0, 0] for x, _ in second.as_numpy_iterator()])
        np.testing.assert_array_equal(a, b)


def test_shuffle_reorders_whole_windows_only():
    rows = _rows(40, 1)
    spec = WindowSpec(input_width=3, horizon=1)
    data = make_dataset(rows, rows, spec, batch_size=64, shuffle=True, seed=1)
    x, y = next(data.as_numpy_iterator())
    starts = x[:, 0, 0]
    assert not np.array_equal(starts, np.sort(starts))  # order changed
    np.testing.assert_array_equal(np.sort(starts), np.arange(37))  # same windows
    # each window stays intact: consecutive inputs, target right after
    np.testing.assert_array_equal(x[:, :, 0], starts[:, None] + np.arange(3))
    np.testing.assert_array_equal(y[:, 0, 0], starts + 3)


def test_stride_skips_window_starts():
    rows = _rows(12, 1)
    x, y = make_windows(rows, rows, WindowSpec(input_width=3, horizon=2, stride=4))
    # starts 0, 4 (8 would need rows up to 12): count = ceil((12 - 5 + 1) / 4) = 2
    np.testing.assert_array_equal(x[:, 0, 0], [0, 4])
    np.testing.assert_array_equal(y[:, :, 0], [[3, 4], [7, 8]])


def test_offset_leaves_a_gap_before_the_targets():
    rows = _rows(10, 1)
    spec = WindowSpec(input_width=2, horizon=2, offset=3)
    x, y = make_windows(rows, rows, spec)
    assert len(x) == 10 - 7 + 1
    np.testing.assert_array_equal(x[0, :, 0], [0, 1])
    np.testing.assert_array_equal(y[0, :, 0], [5, 6])  # rows 2..4 are skipped
    assert y[-1, -1, 0] == 9
    np.testing.assert_array_equal(target_rows(10, spec), [5, 6, 7, 8])


def test_dataset_honours_stride_and_offset():
    rows = _rows(50)
    spec = WindowSpec(input_width=4, horizon=3, stride=3, offset=2)
    expected_x, expected_y = make_windows(rows, rows, spec)
    batches = list(make_dataset(rows, rows, spec, 5).as_numpy_iterator())
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), expected_x)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), expected_y)
    assert expected_x[1, 0, 0] == 3 and expected_y[1, 0, 0] == 3 + 4 + 2
