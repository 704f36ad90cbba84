"""NAP and NAP-E against hand-checkable computations."""

import math
import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, ParameterGrid, StratifiedKFold
from sklearn.pipeline import make_pipeline

from sklearn_ood.detectors.nap import NAP, nap_combine, nap_score
from sklearn_ood.extraction import BlockFeatureExtractor
from sklearn_ood.metrics import auroc_scorer

from _helpers import check_bad_maps_leave_detector_unchanged, images, small_net
from sklearn_ood.discovery import tuning_grid


def loop_nap(maps, eps=1.0):
    """Per-sample, per-channel loop; negative channel mean read as 0 (documented guard)."""
    out = []
    for sample in maps:
        terms = []
        for channel in sample:
            values = list(channel.ravel())
            mean = sum(values) / len(values)
            terms.append((max(values) / (max(mean, 0.0) + eps)) ** 2)
        out.append(sum(terms) / len(terms))
    return np.array(out)


# Channels for NAP by hand (eps = 1):
#   [[0, 4], [0, 0]]: max 4, mean 1        -> (4 / 2)^2 = 4
#   [[-2, 1], [0, 1]]: max 1, mean 0       -> (1 / 1)^2 = 1   (a silent ReLU would give 1/1.5)
#   [[-4, -4], [-4, 2]]: max 2, mean -2.5  -> guard: (2 / (0 + 1))^2 = 4
NAP_MAPS = np.array(
    [
        [[[0.0, 4.0], [0.0, 0.0]], [[-2.0, 1.0], [0.0, 1.0]], [[-4.0, -4.0], [-4.0, 2.0]]],
        [[[1.0, 1.0], [1.0, 1.0]], [[0.0, 0.0], [0.0, 8.0]], [[3.0, 0.0], [0.0, 1.0]]],
    ]
)
# sample 1: (1/2)^2 = 0.25; (8/3)^2 = 64/9; (3/2)^2 = 2.25
NAP_BY_HAND = np.array([(4 + 1 + 4) / 3, (0.25 + 64 / 9 + 2.25) / 3])


def test_nap_by_hand_and_loops():
    np.testing.assert_allclose(loop_nap(NAP_MAPS), NAP_BY_HAND)
    det = NAP().fit(NAP_MAPS)
    assert det.eps == 1.0
    np.testing.assert_allclose(det.score_samples(NAP_MAPS), NAP_BY_HAND)
    # eps enters the denominator; the ratio is squared before the channel mean.
    np.testing.assert_allclose(NAP(eps=0.5).fit(NAP_MAPS).score_samples(NAP_MAPS),
                               loop_nap(NAP_MAPS, eps=0.5))
    not_squared = np.array([(2 + 1 + 2) / 3])
    assert not np.isclose(det.score_samples(NAP_MAPS[:1])[0], not_squared[0])


def test_nap_2d_max_mean_path_equals_4d():
    flat = NAP_MAPS.reshape(2, 3, -1)
    X2 = np.hstack([flat.max(axis=2), flat.mean(axis=2)])
    det = NAP().fit(X2)
    assert det.n_channels_ == 3 and det.n_features_in_ == 6
    np.testing.assert_allclose(det.score_samples(X2), NAP_BY_HAND)
    np.testing.assert_allclose(nap_score(X2[:, :3], X2[:, 3:]), NAP_BY_HAND)


def test_nap_extractor_max_avg_equals_4d_maps():
    net, X = small_net(), images()
    maps = BlockFeatureExtractor(net, "3", reduce=None).fit(X).transform(X)
    expected = loop_nap(maps.astype(np.float64))
    np.testing.assert_allclose(NAP().fit(maps).score_samples(maps), expected, rtol=1e-5)
    pipe = make_pipeline(
        BlockFeatureExtractor(net, "3", reduce=["max", "avg"], batch_size=4), NAP()
    ).fit(X)
    np.testing.assert_allclose(pipe.score_samples(X), expected, rtol=1e-5)


def test_nap_odd_width_is_an_error():
    with pytest.raises(ValueError, match="even width"):
        NAP().fit(np.ones((4, 5)))


HEAD_COEF = np.array([[1.0, -1.0, 0.5], [0.0, 2.0, -1.0]])
HEAD_BIAS = np.array([0.5, -0.25])


def energy_by_hand(maps):
    out = []
    for sample in maps:
        h = [channel.mean() for channel in sample]
        logits = [sum(w * v for w, v in zip(row, h)) + b for row, b in zip(HEAD_COEF, HEAD_BIAS)]
        out.append(math.log(sum(math.exp(z) for z in logits)))
    return np.array(out)


@pytest.mark.parametrize("weight", [0.0, 0.4, 1.0])
def test_nap_e_combination_by_hand(weight):
    neg_e = energy_by_hand(NAP_MAPS)
    assert (neg_e > 0).all()
    expected = neg_e**weight * NAP_BY_HAND ** (1 - weight)
    det = NAP(head=(HEAD_COEF, HEAD_BIAS), weight=weight).fit(NAP_MAPS)
    np.testing.assert_allclose(det.score_samples(NAP_MAPS), expected)
    # Same through the 2-D [max | mean] input.
    flat = NAP_MAPS.reshape(2, 3, -1)
    X2 = np.hstack([flat.max(axis=2), flat.mean(axis=2)])
    det2 = NAP(head=(HEAD_COEF, HEAD_BIAS), weight=weight).fit(X2)
    np.testing.assert_allclose(det2.score_samples(X2), expected)


def test_nap_e_with_torch_linear_head_matches_pipeline():
    net, X = small_net(), images()
    fc = torch.nn.Linear(4, 3)
    maps = BlockFeatureExtractor(net, "3", reduce=None).fit(X).transform(X).astype(np.float64)
    h = torch.from_numpy(maps.mean(axis=(2, 3))).float()
    neg_e = torch.logsumexp(fc(h), dim=1).detach().numpy().astype(np.float64)
    expected = np.maximum(neg_e, np.finfo(float).tiny) ** 0.4 * loop_nap(maps) ** 0.6
    pipe = make_pipeline(BlockFeatureExtractor(net, "3", reduce=["max", "avg"]),
                         NAP(head=fc, weight=0.4)).fit(X)
    np.testing.assert_allclose(pipe.score_samples(X), expected, rtol=1e-5)


def test_nap_e_non_positive_energy_guard():
    # Logits h - 5: the first row has -E = log(2 e^-4) < 0, the second is positive.
    coef, bias = np.eye(2), np.array([-5.0, -5.0])
    X = np.array([[1.0, 1.0, 1.0, 1.0], [9.0, 9.0, 9.0, 9.0]])  # [max | mean]
    nap = np.array([(1 / 2) ** 2, (9 / 10) ** 2])
    neg_e = np.log(2 * np.exp(np.array([1.0, 9.0]) - 5))
    assert neg_e[0] < 0 < neg_e[1]
    scores = NAP(head=(coef, bias), weight=0.5).fit(X).score_samples(X)
    np.testing.assert_allclose(scores, [np.sqrt(np.finfo(float).tiny * nap[0]),
                                        np.sqrt(neg_e[1] * nap[1])])
    assert np.isfinite(scores).all() and scores[0] < scores[1]
    np.testing.assert_allclose(nap_combine([-3.0, 0.0], [4.0, 4.0], 0.0), [4.0, 4.0])


def test_nap_weight_none_is_plain_nap_even_with_head():
    det = NAP(head=(HEAD_COEF, HEAD_BIAS)).fit(NAP_MAPS)
    np.testing.assert_allclose(det.score_samples(NAP_MAPS), NAP_BY_HAND)


def test_nap_head_errors_and_atomic_fit():
    det = NAP(head=(HEAD_COEF, HEAD_BIAS), weight=0.4).fit(NAP_MAPS)
    state = {k: v for k, v in vars(det).items() if k.endswith("_")}
    bad_head = (np.ones((2, 5)), np.zeros(2))
    with pytest.raises(ValueError, match="head expects 5 features"):
        det.set_params(head=bad_head).fit(NAP_MAPS)
    for key, value in state.items():
        assert key in vars(det)
        np.testing.assert_equal(getattr(det, key), value)
    det.set_params(head=(HEAD_COEF, HEAD_BIAS))
    with pytest.raises(ValueError, match="weight combines NAP"):
        NAP(weight=0.4).fit(NAP_MAPS)
    with pytest.raises(ValueError, match="weight"):
        NAP(head=(HEAD_COEF, HEAD_BIAS), weight=1.5).fit(NAP_MAPS)
    with pytest.raises(ValueError, match="eps"):
        NAP(eps=0.0).fit(NAP_MAPS)


def test_bad_input_leaves_fitted_detector_unchanged():
    check_bad_maps_leave_detector_unchanged(NAP(), NAP_MAPS)


def test_nap_2d_input_properties():
    """What the odd-width estimator checks cannot test, on an even width."""
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 3, size=(30, 8))
    X[:, :4] += X[:, 4:]  # max >= mean, as from real maps
    det = NAP(head=(rng.normal(size=(3, 4)), rng.normal(size=3)), weight=0.4).fit(X)
    params = det.get_params()
    scores = det.score_samples(X)
    assert det.get_params() == params
    np.testing.assert_allclose(det.score_samples(X.astype(np.float32)), scores, rtol=1e-5)
    perm = rng.permutation(30)
    np.testing.assert_allclose(det.score_samples(X[perm]), scores[perm])
    np.testing.assert_allclose(det.score_samples(X[:7]), scores[:7])
    np.testing.assert_allclose(det.score_samples(np.asfortranarray(X)), scores)
    np.testing.assert_allclose(pickle.loads(pickle.dumps(det)).score_samples(X), scores)
    np.testing.assert_allclose(make_pipeline(clone(det)).fit(X).score_samples(X), scores)
    assert set(det.predict(X)) <= {-1, 1}
    with pytest.raises(ValueError, match="NaN"):
        det.score_samples(np.where(X > 2.9, np.nan, X))
    with pytest.raises(ValueError, match="Expected 2D array"):
        det.score_samples(X[0])


def test_pipeline_gridsearch_tunes_nap_weight_on_mixed_id_ood():
    rng = np.random.default_rng(0)
    # ID maps: sparse, peaked channels (high NAP), with logits that are confident;
    # OOD maps: flat positive activations.
    n = 40
    id_maps = np.zeros((n, 3, 4, 4))
    rows, chans = np.arange(n)[:, None], np.arange(3)[None, :]
    pos = rng.integers(0, 16, size=(n, 3))
    id_maps.reshape(n, 3, 16)[rows, chans, pos] = rng.uniform(2, 4, size=(n, 3))
    ood_maps = rng.uniform(0.2, 0.6, size=(n, 3, 4, 4))
    X = np.concatenate([id_maps, ood_maps])
    y = np.r_[rng.integers(0, 2, n), -np.ones(n, dtype=int)]
    weights = [0.0, 0.4, 1.0]
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    search = GridSearchCV(
        NAP(head=(HEAD_COEF, HEAD_BIAS)), {"weight": weights}, scoring=auroc_scorer, cv=cv,
    ).fit(X, y)
    # NAP fits no statistic: each fold's AUROC is that of the loop scores of its rows.
    nap, neg_e = loop_nap(X), energy_by_hand(X)
    assert (neg_e > 0).all()
    expected = [
        np.mean([roc_auc_score(y[test] >= 0, neg_e[test]**w * nap[test] ** (1 - w))
                 for _, test in cv.split(X, y)])
        for w in weights
    ]
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], expected)
    assert search.best_params_["weight"] == weights[int(np.argmax(expected))]
    assert search.best_score_ > 0.9
    # The 2-D per-batch representation in a Pipeline, tuned the same way.
    flat = X.reshape(len(X), 3, -1)
    X2 = np.hstack([flat.max(axis=2), flat.mean(axis=2)])
    pipe = make_pipeline(NAP(head=(HEAD_COEF, HEAD_BIAS)))
    search2 = GridSearchCV(pipe, {"nap__weight": [0.0, 0.4, 1.0]}, scoring=auroc_scorer,
                           cv=StratifiedKFold(3, shuffle=True, random_state=0)).fit(X2, y)
    np.testing.assert_allclose(search2.cv_results_["mean_test_score"],
                               search.cv_results_["mean_test_score"])


MAPS_STRATEGY = arrays(
    np.float64, st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(1, 3),
                          st.integers(1, 3)),
    elements=st.floats(-10, 10, allow_nan=False, width=32),
)


@settings(max_examples=40, deadline=None)
@given(maps=MAPS_STRATEGY, seed=st.integers(0, 2**16))
def test_nap_is_invariant_to_channel_and_pixel_order(maps, seed):
    rng = np.random.default_rng(seed)
    n, c, h, w = maps.shape
    shuffled = maps[:, rng.permutation(c)].reshape(n, c, h * w)[:, :, rng.permutation(h * w)]
    shuffled = shuffled.reshape(n, c, h, w)
    np.testing.assert_allclose(NAP().fit(shuffled).score_samples(shuffled),
                               NAP().fit(maps).score_samples(maps), rtol=1e-10, atol=1e-12)


def test_tuning_grid_candidates_fit_with_a_head_only():
    candidates = list(ParameterGrid(tuning_grid(NAP, len(NAP_MAPS))))
    assert len(candidates) == 4
    neg_e = energy_by_hand(NAP_MAPS)
    det = NAP(head=(HEAD_COEF, HEAD_BIAS))
    for params in candidates:
        w = params["weight"]
        det.set_params(**params).fit(NAP_MAPS)
        np.testing.assert_allclose(det.score_samples(NAP_MAPS),
                                   neg_e**w * NAP_BY_HAND ** (1 - w))
        # NAP-E only: without a head there is no energy to weigh
        with pytest.raises(ValueError, match="weight combines NAP"):
            NAP(**params).fit(NAP_MAPS)
