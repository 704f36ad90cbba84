"""Feature helpers shared by several detectors, against hand computations."""

import numpy as np
import pytest
from scipy import linalg

from sklearn_ood.detectors._features import class_moments, l2_normalize, pool_maps, pseudo_inverse


def test_l2_normalize_by_hand():
    X = np.array([[3.0, -4.0], [0.0, 0.0], [1.0, 1.0]])
    r = 1 / np.sqrt(2)
    np.testing.assert_allclose(l2_normalize(X), [[0.6, -0.8], [0.0, 0.0], [r, r]])


def test_l2_normalize_neither_overflows_nor_underflows():
    # the squares of 1e200 overflow float64, those of 1e-200 underflow to 0
    X = np.array([[3e200, 4e200], [-3e-200, 4e-200]])
    np.testing.assert_allclose(l2_normalize(X), [[0.6, 0.8], [-0.6, 0.8]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_l2_normalize_keeps_the_dtype_and_the_input(dtype):
    X = np.array([[1.0, 2.0, 2.0]], dtype=dtype)
    out = l2_normalize(X)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, [[1 / 3, 2 / 3, 2 / 3]], rtol=1e-6)
    np.testing.assert_array_equal(X, [[1.0, 2.0, 2.0]])


def test_pool_maps_by_hand():
    maps = np.arange(16.0).reshape(2, 2, 2, 2)  # channels 0-3, 4-7, 8-11, 12-15
    np.testing.assert_array_equal(pool_maps(maps), [[1.5, 5.5], [9.5, 13.5]])
    pooled = pool_maps(maps.astype(np.float32), np.float64)
    assert pooled.dtype == np.float64
    np.testing.assert_array_equal(pooled, [[1.5, 5.5], [9.5, 13.5]])
    X = np.ones((3, 2), dtype=np.float32)
    assert pool_maps(X) is X  # 2-D input as it is
    assert pool_maps(X, np.float64).dtype == np.float64


@pytest.mark.parametrize("chunk_rows", [1, 7, 64, 4096])
@pytest.mark.parametrize("scale, offset", [(1e3, 1e4), (1.0, 1e5)])
def test_class_moments_by_chunks_equal_a_two_pass_computation(chunk_rows, scale, offset):
    # Cancellation-prone: with an offset of 1e5 x the spread, the one-pass
    # sum(x x^T) - n mean mean^T in float64 is ~1e-6 off (float32: useless).
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(100, 4)) * scale + offset).astype(np.float32)
    codes = rng.integers(0, 3, size=100)
    counts, means, scatters = class_moments(X, codes, 3, chunk_rows=chunk_rows)
    _, tied_means, tied = class_moments(X, codes, 3, tied=True, chunk_rows=chunk_rows)
    H = X.astype(np.float64)
    for c in range(3):
        rows = H[codes == c]
        centred = rows - rows.mean(axis=0)
        assert counts[c] == len(rows)
        np.testing.assert_allclose(means[c], rows.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(scatters[c], centred.T @ centred, rtol=1e-9)
    np.testing.assert_allclose(tied_means, means)
    np.testing.assert_allclose(tied, scatters.sum(axis=0), rtol=1e-9)
    _, diag_means, diag = class_moments(X, codes, 3, diagonal=True, chunk_rows=chunk_rows)
    np.testing.assert_allclose(diag_means, means)
    np.testing.assert_allclose(diag, [np.var(H[codes == c], axis=0) * counts[c] for c in range(3)],
                               rtol=1e-9)
    # Means only: counts and means alike, no scatter (a class absent from some chunks,
    # class 4 never seen: count 0, mean 0).
    only = class_moments(X, codes, 5, scatter=False, chunk_rows=chunk_rows)
    assert only[2] is None
    np.testing.assert_array_equal(only[0], list(counts) + [0, 0])
    np.testing.assert_allclose(only[1][:3], means, rtol=1e-12)
    np.testing.assert_array_equal(only[1][3:], 0.0)
    # ... and merged into the statistics of earlier rows.
    first = class_moments(X[:30], codes[:30], 5, scatter=False, chunk_rows=chunk_rows)
    merged = class_moments(X[30:], codes[30:], 5, scatter=False, chunk_rows=chunk_rows,
                           moments=first)
    np.testing.assert_array_equal(merged[0], only[0])
    np.testing.assert_allclose(merged[1], only[1], rtol=1e-12)


def test_pseudo_inverse_is_pinvh_with_or_without_a_cholesky_factor():
    rng = np.random.default_rng(0)
    q = np.linalg.qr(rng.normal(size=(6, 6)))[0]
    # positive definite, condition number 1e6: the inverse (by a Cholesky factor)
    a = (q * np.logspace(0, -6, 6)) @ q.T
    np.testing.assert_allclose(pseudo_inverse(a), linalg.pinvh(a), rtol=1e-8, atol=1e-3)
    # a factor exists, but an eigenvalue is below pinvh's cutoff (1 x 2 x eps): dropped,
    # not inverted to 1e17
    b = np.diag([1.0, 1e-17])
    np.testing.assert_array_equal(pseudo_inverse(b), [[1.0, 0.0], [0.0, 0.0]])
    # singular: no factor
    c = (q[:, :4] * [3.0, 2.0, 1.0, 0.5]) @ q[:, :4].T
    np.testing.assert_allclose(pseudo_inverse(c), linalg.pinvh(c), atol=1e-12)
