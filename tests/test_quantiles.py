"""Exact bounded-memory percentiles against ``np.percentile`` on a float64 copy."""

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sklearn_ood.detectors._quantiles import column_percentiles, percentile_of_all

PERCENTILES = st.one_of(st.sampled_from([0, 100, 50, 90]), st.floats(0, 100))


def float_arrays(dtype):
    """2-D arrays with ties (a few small integers, +-0.0) or arbitrary finite floats."""
    shape = st.tuples(st.integers(1, 12), st.integers(1, 5))
    few = st.sampled_from([-2.0, -0.0, 0.0, 0.5, 1.0, 3.0])
    width = 32 if dtype == np.float32 else 64
    any_float = st.floats(allow_nan=False, allow_infinity=False, width=width)
    return arrays(dtype, shape, elements=st.one_of(few, any_float))


def reference(X, q, axis=None):
    return np.percentile(np.asarray(X, dtype=np.float64), q, axis=axis)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([np.float32, np.float64]).flatmap(float_arrays), PERCENTILES,
       st.integers(1, 25))
def test_percentile_of_all_equals_numpy(X, q, chunk_rows):
    # chunk_rows from 1 row to whole arrays.
    assert percentile_of_all(X, q, chunk_rows=chunk_rows) == reference(X, q)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([np.float32, np.float64]).flatmap(float_arrays), PERCENTILES,
       st.integers(1, 25))
def test_column_percentiles_equal_numpy(X, q, chunk_rows):
    np.testing.assert_array_equal(
        column_percentiles(X, [q, 60.0], chunk_rows=chunk_rows), reference(X, [q, 60.0], 0))
    np.testing.assert_array_equal(
        column_percentiles(X, q, chunk_rows=chunk_rows), reference(X, q, 0))


def test_small_cases_by_hand():
    X = np.array([[3.0, 1.0], [2.0, 1.0], [0.0, 1.0]], dtype=np.float32)
    # all six entries sorted: 0 1 1 1 2 3; position 0.5 * 5 = 2.5 -> (1 + 1) / 2
    assert percentile_of_all(X, 50, chunk_rows=1) == 1.0
    assert percentile_of_all(X, 0) == 0.0 and percentile_of_all(X, 100) == 3.0
    assert percentile_of_all(X, 90) == 2.5  # position 4.5 -> (2 + 3) / 2
    # column 0 sorted 0 2 3, column 1 all equal
    np.testing.assert_array_equal(column_percentiles(X, [0, 25, 100], chunk_rows=3),
                                  [[0.0, 1.0], [1.0, 1.0], [3.0, 1.0]])
    assert percentile_of_all(np.array([[-5.0]]), 37) == -5.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_values_that_differ_only_in_the_lowest_bits(dtype):
    # Every entry shares its top 16 bits (float32) or 48 bits (float64): the
    # last radix pass decides, and the interpolation reads neighbouring floats.
    rng = np.random.default_rng(0)
    steps = rng.integers(0, 300, size=(400, 3))
    X = (1.0 + steps * np.finfo(dtype).eps).astype(dtype)
    assert len(np.unique(X)) > 200
    for q in [0, 13.7, 50, 90, 99.99, 100]:
        assert percentile_of_all(X, q, chunk_rows=17) == reference(X, q)
        np.testing.assert_array_equal(column_percentiles(X, q, chunk_rows=17),
                                      reference(X, q, 0))


def test_chunk_boundaries_and_negative_values():
    rng = np.random.default_rng(1)
    X = (rng.standard_normal((1001, 7)) * 10.0 ** rng.integers(-20, 20, (1001, 7)))
    X[::3] = 0.0  # a tie over many chunks
    X32 = X.astype(np.float32)
    for chunk_rows in [1, 3, 143, 10**6]:  # 1 row, 3 rows + a remainder, 7 chunks, one
        for q in [0, 33.3, 90, 100]:
            assert percentile_of_all(X32, q, chunk_rows=chunk_rows) == reference(X32, q)
            assert percentile_of_all(X, q, chunk_rows=chunk_rows) == reference(X, q)
        np.testing.assert_array_equal(
            column_percentiles(X32, [60, 90], chunk_rows=chunk_rows),
            reference(X32, [60, 90], 0))


def test_extra_memory_is_bounded_by_the_chunk():
    # 40,000 x 64 float32 = 10 MiB; a float64 copy alone would be 20 MiB.
    X = np.random.default_rng(2).random((40_000, 64), dtype=np.float32)
    for fn, q in [(percentile_of_all, 90), (column_percentiles, [60, 90])]:
        tracemalloc.start()
        try:
            fn(X, q, chunk_rows=1024)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        # a few arrays of 1024 x 64 keys, 65,536 counts per wanted rank, one column
        assert peak < X.nbytes / 4, (fn.__name__, peak)


def test_empty_input_is_a_clear_error():
    with pytest.raises(ValueError, match="at least one entry"):
        percentile_of_all(np.empty((0, 3)), 50)
    with pytest.raises(ValueError, match="at least one row"):
        column_percentiles(np.empty((0, 3)), 50)
