"""Pseudo-OOD images: jigsaw puzzles (Yu et al., CVPR 2023) checked tile by tile, make_pseudo_ood."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_ood.pseudo_ood import Jigsaw, jigsaw, make_pseudo_ood

METHODS = ["jigsaw", "noise", "blur", "permute"]


def _images(n=6, channels=2, size=6, seed=0):
    return np.random.default_rng(seed).random((n, channels, size, size))



def tiles_of(image, grid, s_h, s_w):
    """The grid*grid tiles of a 2-D image, row-major, by explicit slicing."""
    return [
        image[r * s_h : (r + 1) * s_h, c * s_w : (c + 1) * s_w]
        for r in range(grid)
        for c in range(grid)
    ]


def recover_permutation(original, puzzle, grid):
    """Per-image loop: which source tile sits at each output position (channel 0).

    Checks along the way that every channel of an output tile equals the same
    source tile (tiles move with all their channels) and that the remainder
    rows/columns are zero. Returns the permutation as a list.
    """
    channels, height, width = original.shape
    s_h, s_w = height // grid, width // grid
    sources = tiles_of(original[0], grid, s_h, s_w)
    placed = tiles_of(puzzle[0], grid, s_h, s_w)
    perm = []
    for position, tile in enumerate(placed):
        matches = [k for k, src in enumerate(sources) if np.array_equal(tile, src)]
        assert len(matches) == 1, "each output tile must be exactly one input tile"
        perm.append(matches[0])
        for ch in range(channels):
            want = tiles_of(original[ch], grid, s_h, s_w)[matches[0]]
            assert np.array_equal(tiles_of(puzzle[ch], grid, s_h, s_w)[position], want)
    assert sorted(perm) == list(range(grid * grid)), "tiles must form a permutation"
    assert not puzzle[:, grid * s_h :, :].any() and not puzzle[:, :, grid * s_w :].any()
    return perm


def test_7x7_every_2x2_tile_once_and_zero_remainder():
    X = np.arange(1.0, 50.0).reshape(1, 1, 7, 7)  # distinct, non-zero values
    out = jigsaw(X, grid=3, random_state=0)
    assert out.shape == X.shape and out.dtype == X.dtype
    # By hand: the 9 tiles are X[0, 0, 2r:2r+2, 2c:2c+2]; row 6 and column 6 are dropped.
    expected_tiles = sorted(
        tuple(X[0, 0, 2 * r : 2 * r + 2, 2 * c : 2 * c + 2].ravel())
        for r in range(3)
        for c in range(3)
    )
    got_tiles = sorted(
        tuple(out[0, 0, 2 * r : 2 * r + 2, 2 * c : 2 * c + 2].ravel())
        for r in range(3)
        for c in range(3)
    )
    assert got_tiles == expected_tiles
    np.testing.assert_array_equal(out[0, 0, 6, :], 0)
    np.testing.assert_array_equal(out[0, 0, :, 6], 0)
    # Values of the dropped row/column (43..49 and 7, 14, ...) do not appear anywhere.
    assert not np.isin(X[0, 0, 6, :], out).any()
    assert not np.isin(X[0, 0, :6, 6], out).any()


def test_vectorised_matches_per_image_loop_on_50_images():
    rng = np.random.default_rng(1)
    n = 50
    base = rng.permutation(n * 9 * 10).reshape(n, 1, 9, 10).astype(np.float32) + 1
    X = np.concatenate([base, -base, base * 10], axis=1)  # 3 channels, tiles tied
    out = jigsaw(X, grid=3, random_state=42)
    perms = [tuple(recover_permutation(X[i], out[i], 3)) for i in range(n)]
    # Independent permutation per image: 50 draws from 9! are almost surely distinct.
    assert len(set(perms)) >= 45
    # Rebuild each puzzle with the recovered permutation by explicit loops.
    for i in range(n):
        rebuilt = np.zeros_like(X[i])
        for position, source in enumerate(perms[i]):
            r, c = divmod(position, 3)
            sr, sc = divmod(source, 3)
            rebuilt[:, 3 * r : 3 * r + 3, 3 * c : 3 * c + 3] = X[
                i, :, 3 * sr : 3 * sr + 3, 3 * sc : 3 * sc + 3
            ]
        np.testing.assert_array_equal(out[i], rebuilt)


def test_non_square_tiles_and_remainders():
    X = np.arange(1.0, 1 + 2 * 7 * 11).reshape(1, 2, 7, 11)
    out = jigsaw(X, grid=3, random_state=3)  # s_h = 2, s_w = 3; 1 row, 2 cols left
    recover_permutation(X[0], out[0], 3)
    np.testing.assert_array_equal(out[..., 6, :], 0)
    np.testing.assert_array_equal(out[..., 9:], 0)
    assert np.count_nonzero(out) == 2 * 6 * 9


def test_permutations_are_uniform():
    # 1x1 tiles on 3x3 images: the value at each position is the source tile index.
    n = 9000
    X = np.tile(np.arange(9.0).reshape(1, 1, 3, 3), (n, 1, 1, 1))
    out = jigsaw(X, grid=3, random_state=0).reshape(n, 9)
    np.testing.assert_array_equal(np.sort(out, axis=1), np.tile(np.arange(9.0), (n, 1)))
    counts = np.stack([(out == k).sum(axis=0) for k in range(9)])  # tile k at position j
    assert counts.min() > 850 and counts.max() < 1150  # expected 1000, sd ~ 30


def test_determinism_and_seeding():
    X = np.random.default_rng(0).random((6, 2, 8, 8))
    a = jigsaw(X, random_state=7)
    np.testing.assert_array_equal(a, jigsaw(X, random_state=7))
    assert not np.array_equal(a, jigsaw(X, random_state=8))
    rs = np.random.RandomState(7)
    np.testing.assert_array_equal(jigsaw(X, random_state=rs), a)
    assert not np.array_equal(jigsaw(X, random_state=rs), a)  # the state advanced
    # Identical images get (generally) different permutations.
    same = np.repeat(X[:1], 20, axis=0)
    puzzles = jigsaw(same, random_state=0)
    assert len({p.tobytes() for p in puzzles}) > 15


def test_grid_2_and_integer_images():
    X = np.arange(16, dtype=np.uint8).reshape(1, 1, 4, 4)
    out = jigsaw(X, grid=2, random_state=0)
    assert out.dtype == np.uint8
    assert sorted(out.ravel()) == list(range(16))


@pytest.mark.parametrize(
    "X, grid, match",
    [
        (np.zeros((2, 8, 8)), 3, "channels, height, width"),
        (np.zeros((2, 1, 1, 8, 8)), 3, "channels, height, width"),
        (np.zeros((2, 1, 8, 8)), 1, "grid must be an integer >= 2"),
        (np.zeros((2, 1, 8, 8)), 2.5, "grid must be an integer >= 2"),
        (np.zeros((2, 1, 2, 8)), 3, "at least 3x3 pixels"),
        (np.zeros((0, 1, 8, 8)), 3, "empty"),
        (np.full((2, 1, 8, 8), np.nan), 3, "NaN"),
    ],
)
def test_bad_input(X, grid, match):
    with pytest.raises(ValueError, match=match):
        jigsaw(X, grid=grid)


def test_transformer():
    X = np.random.default_rng(0).random((5, 3, 9, 9))
    tr = Jigsaw(random_state=0)
    np.testing.assert_array_equal(tr.fit_transform(X), jigsaw(X, 3, random_state=0))
    np.testing.assert_array_equal(tr.transform(X), jigsaw(X, 3, random_state=0))
    assert tr.n_features_in_ == 3
    np.testing.assert_array_equal(Jigsaw(random_state=0).transform(X), tr.transform(X))
    with pytest.raises(ValueError, match="3 channels"):
        tr.transform(X[:, :2])
    with pytest.raises(ValueError, match="grid"):
        Jigsaw(grid=1).fit(X)
    assert clone(tr).get_params() == {"grid": 3, "random_state": 0}
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(tr)).transform(X), tr.transform(X))
    np.testing.assert_array_equal(make_pipeline(Jigsaw(grid=2, random_state=1)).fit_transform(X),
                                  jigsaw(X, 2, random_state=1))


def test_what_the_2d_checks_cannot_test_on_images():
    X = np.random.default_rng(0).random((4, 2, 6, 6)).astype(np.float32)
    X.setflags(write=False)  # read-only input (e.g. a memmap) is fine
    tr = Jigsaw(random_state=0)
    assert tr.fit(X) is tr
    out = tr.transform(X)
    assert out.dtype == np.float32 and not np.shares_memory(out, X)
    np.testing.assert_array_equal(tr.fit(X).transform(X), out)  # fit is idempotent
    np.testing.assert_array_equal(Jigsaw(random_state=0).transform(np.asfortranarray(X)), out)
    with pytest.raises(TypeError, match="sparse"):
        Jigsaw().fit(sp.csr_matrix(np.ones((3, 3))))
    with pytest.raises(TypeError, match="real numeric"):
        Jigsaw().fit(X.astype(np.complex64))


_IMAGES_ONLY = "Jigsaw transforms images (N, C, H, W); this check feeds 2-D data"
_JIGSAW_XFAIL = dict.fromkeys(
    [
        "check_complex_data",
        "check_dict_unchanged",
        "check_dont_overwrite_parameters",
        "check_dtype_object",
        "check_estimators_dtypes",
        "check_estimators_empty_data_messages",
        "check_estimators_fit_returns_self",
        "check_estimators_nan_inf",
        "check_estimators_overwrite_params",
        "check_estimators_pickle",
        "check_estimators_pickle(readonly_memmap=True)",
        "check_f_contiguous_array_estimator",
        "check_fit2d_1feature",
        "check_fit2d_1sample",
        "check_fit2d_predict1d",
        "check_fit_check_is_fitted",
        "check_fit_idempotent",
        "check_fit_score_takes_y",
        "check_methods_sample_order_invariance",
        "check_methods_subset_invariance",
        "check_n_features_in",
        "check_n_features_in_after_fitting",
        "check_pipeline_consistency",
        "check_positive_only_tag_during_fit",
        "check_readonly_memmap_input",
        "check_transformer_data_not_an_array",
        "check_transformer_general",
        "check_transformer_general(readonly_memmap=True)",
        "check_transformer_preserve_dtypes",
        "check_transformers_unfitted_stateless",
    ],
    _IMAGES_ONLY,
)


@parametrize_with_checks(
    [Jigsaw(random_state=0)], expected_failed_checks=lambda est: _JIGSAW_XFAIL
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


# ----------------------------------------------------------------- make_pseudo_ood
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("ratio, n_pseudo", [(1.0, 6), (0.5, 3), (0.4, 2), (2.2, 13)])
def test_shapes_labels_ratio(method, ratio, n_pseudo):
    X, y = _images(), np.array([3, 1, 4, 1, 5, 9])
    X_aug, y_aug = make_pseudo_ood(X, y, method=method, ratio=ratio, random_state=0)
    assert X_aug.shape == (6 + n_pseudo, 2, 6, 6)
    assert X_aug.dtype == X.dtype
    np.testing.assert_array_equal(X_aug[:6], X)
    np.testing.assert_array_equal(y_aug, [3, 1, 4, 1, 5, 9] + [-1] * n_pseudo)
    _, y_none = make_pseudo_ood(X, method=method, ratio=ratio, random_state=0)
    np.testing.assert_array_equal(y_none, [np.nan] * 6 + [-1] * n_pseudo)  # NaN: ID, class unknown


@pytest.mark.parametrize("method", METHODS)
def test_deterministic_given_seed(method):
    X = _images()
    a, _ = make_pseudo_ood(X, method=method, random_state=3)
    b, _ = make_pseudo_ood(X, method=method, random_state=3)
    c, _ = make_pseudo_ood(X, method=method, random_state=4)
    np.testing.assert_array_equal(a, b)
    assert np.array_equal(a, c) == (method == "blur")  # blur is the only non-random one
    assert not np.array_equal(a[6:], X)


def _source_of_each_pseudo_row(X, X_ood):
    """Match each permuted image to the ID image with the same sorted pixels."""
    keys = [np.sort(img, axis=None).tobytes() for img in X]
    return [keys.index(np.sort(img, axis=None).tobytes()) for img in X_ood]


@pytest.mark.parametrize("ratio, counts", [(0.5, [0, 1]), (1.0, [1]), (2.5, [2, 3])])
def test_ratio_subset_and_cycling(ratio, counts):
    X = _images(n=8)
    X_aug, _ = make_pseudo_ood(X, method="permute", ratio=ratio, random_state=0)
    sources = _source_of_each_pseudo_row(X, X_aug[8:])
    uses = np.bincount(sources, minlength=8)
    assert sorted(set(uses.tolist())) == counts  # every image used floor/ceil(ratio) times
    assert uses.sum() == round(ratio * 8)


def test_jigsaw_preserves_tiles_of_divisible_image():
    X = _images(n=4, channels=2, size=6)  # 3x3 grid of 2x2 tiles
    X_aug, _ = make_pseudo_ood(X, method="jigsaw", random_state=0)
    moved = 0
    for img, puzzle in zip(X, X_aug[4:]):
        tiles = sorted(img[:, r:r + 2, c:c + 2].tobytes() for r in (0, 2, 4) for c in (0, 2, 4))
        pieces = sorted(
            puzzle[:, r:r + 2, c:c + 2].tobytes() for r in (0, 2, 4) for c in (0, 2, 4))
        assert tiles == pieces
        moved += not np.array_equal(img, puzzle)
    assert moved >= 3


def test_permute_preserves_each_images_pixels_and_channel_vectors():
    X = _images(n=5, channels=3, size=4)
    X_aug, _ = make_pseudo_ood(X, method="permute", random_state=0)
    for img, perm in zip(X, X_aug[5:]):
        pixels = sorted(map(tuple, img.reshape(3, -1).T))  # (c0, c1, c2) per position
        assert pixels == sorted(map(tuple, perm.reshape(3, -1).T))
        assert not np.array_equal(img, perm)


def test_noise_changes_values_within_input_range():
    X = np.random.default_rng(1).random((40, 1, 8, 8))
    X_aug, _ = make_pseudo_ood(X, method="noise", random_state=0)
    noisy = X_aug[40:]
    assert noisy.min() >= X.min() and noisy.max() <= X.max()
    inside = (noisy > X.min()) & (noisy < X.max())  # not clipped
    assert inside.mean() > 0.5
    diff = (noisy - X)[inside]
    # documented sigma = 0.5 * std of all pixels (the clipped tails bias it a little)
    assert 0.7 < diff.std() / (0.5 * X.std()) < 1.1
    assert np.all(diff != 0)


def test_blur_smooths_checkerboard_and_keeps_constants():
    board = (np.indices((8, 8)).sum(axis=0) % 2).astype(float)[None, None]
    X = np.concatenate([board, np.full((1, 1, 8, 8), 0.3)])
    X_aug, _ = make_pseudo_ood(X, method="blur", random_state=0)
    assert X_aug[2].var() < 0.1 * board.var()
    assert abs(X_aug[2].mean() - 0.5) < 0.05
    np.testing.assert_allclose(X_aug[3], 0.3)


def test_integer_images_give_float64():
    X = (np.arange(2 * 36) % 256).astype(np.uint8).reshape(2, 1, 6, 6)
    X_aug, y_aug = make_pseudo_ood(X, np.array([0, 1], np.uint8), method="noise",
                                   random_state=0)
    assert X_aug.dtype == np.float64
    assert y_aug.tolist() == [0, 1, -1, -1]


def test_callable_method():
    calls = []

    def negate(X, random_state):
        calls.append((X.shape, type(random_state).__name__))
        return -X

    X = _images(n=4)
    X_aug, _ = make_pseudo_ood(X, method=negate, ratio=0.5, random_state=0)
    assert calls == [((2, 2, 6, 6), "RandomState")]
    sources = [i for i in range(4) if any(np.array_equal(-X[i], o) for o in X_aug[4:])]
    assert len(sources) == 2
    with pytest.raises(ValueError, match="shape of its input"):
        make_pseudo_ood(X, method=lambda X, random_state: X[:, :1])
    with pytest.raises(ValueError, match="NaN"):
        make_pseudo_ood(X, method=lambda X, random_state: X * np.nan)


@pytest.mark.parametrize("X, y, kwargs, error, match", [
    (np.zeros((4, 6, 6)), None, {}, ValueError, "channels, height, width"),
    (np.zeros((0, 1, 6, 6)), None, {}, ValueError, "empty"),
    (np.full((2, 1, 6, 6), np.nan), None, {}, ValueError, "NaN"),
    (np.array([[[["a"]]]]), None, {}, TypeError, "numeric"),
    (np.zeros((2, 1, 6, 6)), [0], {}, ValueError, "one label per row"),
    (np.zeros((2, 1, 6, 6)), [0, -1], {}, ValueError, "negative labels"),
    (np.zeros((2, 1, 6, 6)), ["a", "b"], {}, TypeError, "numeric class labels"),
    (np.zeros((2, 1, 6, 6)), None, {"method": "rotate"}, ValueError, "method must be"),
    (np.zeros((2, 1, 6, 6)), None, {"ratio": 0}, ValueError, "positive finite"),
    (np.zeros((2, 1, 6, 6)), None, {"ratio": np.nan}, ValueError, "positive finite"),
    (np.zeros((2, 1, 6, 6)), None, {"ratio": 0.1}, ValueError, "0 pseudo-OOD images"),
])
def test_make_pseudo_ood_bad_input(X, y, kwargs, error, match):
    with pytest.raises(error, match=match):
        make_pseudo_ood(X, y, **kwargs)
