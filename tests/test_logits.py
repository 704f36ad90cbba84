"""Logit baselines and the estimator contract they share with every detector."""

import math
import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from sklearn_ood import GEN, Energy, Entropy, MaxLogit, MaxSoftmax
from sklearn_ood.metrics import auroc_scorer

from _helpers import energy_loop, float32_features, score_peak_bytes
from sklearn_ood.discovery import tuning_grid

LOGITS = np.array([[2.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 3.0, -1.0]])


def test_hand_computed_scores():
    e2 = np.e**2
    np.testing.assert_allclose(
        MaxSoftmax().fit(LOGITS).score_samples(LOGITS),
        [e2 / (e2 + 2), 1 / 3, np.e**3 / (np.e**3 + 1 + np.e**-1)],
    )
    np.testing.assert_allclose(MaxLogit().fit(LOGITS).score_samples(LOGITS), [2, 1, 3])
    np.testing.assert_allclose(
        Energy().fit(LOGITS).score_samples(LOGITS),
        [np.log(e2 + 2), 1 + np.log(3), np.log(1 + np.e**3 + np.e**-1)],
    )
    # T = 2: 2 * log(sum exp(z / 2))
    np.testing.assert_allclose(
        Energy(temperature=2.0).fit(LOGITS).score_samples(LOGITS[:1]),
        [2 * np.log(np.e + 2)],
    )


def test_energy_scores_float32_features_in_float32_close_to_float64_by_hand():
    X, (W, b) = float32_features()
    det = Energy((W, b), temperature=2.0).fit(X)
    # T * logsumexp(z / T) = 2 * energy of (h W^T + b) / 2; in float32: errors ~1e-7
    np.testing.assert_allclose(det.score_samples(X), 2 * energy_loop(X, W / 2, b / 2), rtol=1e-5)
    # no float64 copy of the features (one would take 2 x X.nbytes)
    X, head = float32_features(n=2000, d=256)
    assert score_peak_bytes(Energy(head).fit(X), X) < 2 * X.nbytes


@pytest.mark.parametrize("as_linear", [True, False])
def test_head_as_linear_or_pair(as_linear):
    coef = np.array([[1.0, -1.0], [0.5, 2.0], [0.0, 0.0]])
    intercept = np.array([0.0, 1.0, -1.0])
    X = np.array([[1.0, 2.0], [0.0, -1.0]])
    if as_linear:
        head = torch.nn.Linear(2, 3)
        with torch.no_grad():
            head.weight.copy_(torch.as_tensor(coef))
            head.bias.copy_(torch.as_tensor(intercept))
    else:
        head = (coef, intercept)
    # logits by hand: row 0 -> [-1, 5.5, -1]; row 1 -> [1, -1, -1]
    np.testing.assert_allclose(
        MaxLogit(head=head).fit(X).score_samples(X), [5.5, 1.0], rtol=1e-6)


def test_offset_is_contamination_percentile_and_predict_signs():
    X = np.arange(100, dtype=float).reshape(-1, 1)  # MaxLogit score = x
    det = MaxLogit(contamination=0.1).fit(X)
    assert det.offset_ == pytest.approx(np.percentile(np.arange(100), 10))
    np.testing.assert_allclose(det.decision_function(X), X[:, 0] - det.offset_)
    assert (det.predict(X) == -1).sum() == 10
    assert set(det.predict(X)) == {-1, 1}


def test_negative_labels_are_ignored_in_fit():
    X = np.array([[0.0], [1.0], [2.0], [100.0], [200.0]])
    y = np.array([0, 1, 0, -1, -1])
    det = MaxLogit(contamination=0.5).fit(X, y)
    assert det.offset_ == pytest.approx(1.0)  # median of the ID scores 0, 1, 2
    with pytest.raises(ValueError, match="every row as OOD"):
        MaxLogit().fit(X, -np.ones(5))


def test_grid_search_with_ood_rows():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(3, 1, (40, 4)), rng.normal(0, 1, (40, 4))])
    y = np.r_[rng.integers(0, 4, 40), -np.ones(40, int)]
    cv = StratifiedKFold(4, shuffle=True, random_state=0)  # every fold holds OOD rows
    search = GridSearchCV(Energy(), {"temperature": [0.5, 1.0, 5.0]}, scoring=auroc_scorer,
                          cv=cv, error_score="raise").fit(X, y)
    assert search.best_score_ > 0.9


def test_errors_leave_the_fitted_estimator_unchanged():
    det = Energy(head=(np.eye(3), np.zeros(3))).fit(LOGITS)
    state = pickle.dumps(det)
    with pytest.raises(ValueError, match="NaN"):
        det.fit(np.array([[np.nan, 0.0, 1.0]]))
    with pytest.raises(ValueError, match="features"):
        det.score_samples(np.ones((2, 4)))
    with pytest.raises(ValueError, match="head expects 3 features"):
        det.fit(np.ones((2, 4)))
    with pytest.raises(ValueError, match="temperature"):
        det.set_params(temperature=-1.0).fit(LOGITS)
    det.set_params(temperature=1.0)
    with pytest.raises(ValueError, match="empty|0 sample"):
        det.fit(np.ones((0, 3)))
    assert pickle.dumps(det) == state


@pytest.mark.parametrize("head, error", [
    ("fc", TypeError),
    ((np.ones((2, 3)), np.ones(3)), ValueError),
    ((np.ones(3), np.ones(3)), ValueError),
    ((np.full((2, 3), np.inf), None), ValueError),
])
def test_bad_heads(head, error):
    with pytest.raises(error, match="head"):
        MaxLogit(head=head).fit(np.ones((4, 3)))


def test_unfitted():
    with pytest.raises(NotFittedError):
        Energy().score_samples(LOGITS)


# ------------------------------------------------- entropy, GEN, temperature
def _softmax_loop(z, T=1.0):
    e = [math.exp(v / T) for v in z]
    return [v / sum(e) for v in e]


def test_entropy_by_hand():
    expected = [sum(p * math.log(p) for p in _softmax_loop(z)) for z in LOGITS]
    np.testing.assert_allclose(Entropy().fit(LOGITS).score_samples(LOGITS), expected)
    # uniform posterior: -log 3
    assert Entropy().fit(LOGITS).score_samples(LOGITS[1:2])[0] == pytest.approx(-math.log(3))


def test_entropy_is_exact_for_confident_rows():
    z = np.array([[60.0, 0.0, 0.0]])  # p_1 = e^-60: no clipping to 1e-7
    expected = 2 * math.exp(-60) * (-60) - 2 * math.exp(-60)  # to first order
    assert Entropy().fit(z).score_samples(z)[0] == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("gamma, n_top", [(0.1, 100), (0.5, 2), (2.0, 1)])
def test_gen_by_hand(gamma, n_top):
    expected = []
    for z in LOGITS:
        p = sorted(_softmax_loop(z), reverse=True)[:n_top]
        expected.append(-sum(q ** gamma * (1 - q) ** gamma for q in p))
    det = GEN(gamma=gamma, n_top=n_top).fit(LOGITS)
    np.testing.assert_allclose(det.score_samples(LOGITS), expected)


def test_gen_tuning_grid_candidates_fit():
    from sklearn.model_selection import ParameterGrid

    candidates = list(ParameterGrid(tuning_grid(GEN, len(LOGITS))))
    assert len(candidates) == 42
    for params in candidates:
        scores = GEN(**params).fit(LOGITS).score_samples(LOGITS)
        assert np.all(np.isfinite(scores)) and np.all(scores <= 0)


def test_max_softmax_temperature_by_hand():
    det = MaxSoftmax(temperature=2.0).fit(LOGITS)
    assert det.temperature_ == 2.0
    np.testing.assert_allclose(det.score_samples(LOGITS),
                               [max(_softmax_loop(z, 2.0)) for z in LOGITS])


def _nll_loop(Z, y, T):
    return sum(-math.log(_softmax_loop(z, T)[c]) for z, c in zip(Z, y)) / len(y)


def test_fitted_temperature_minimises_nll():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    Z = rng.normal(size=(200, 4)) * 2
    Z[np.arange(200), y] += 6.0  # very confident and mostly right: T_opt far from 1
    det = MaxSoftmax(temperature="fit").fit(Z, y)
    T = det.temperature_
    # the optimum by a dense grid on log T, then the NLL at T is below its neighbours'
    grid = np.exp(np.linspace(np.log(0.05), np.log(20), 2001))
    nlls = [_nll_loop(Z, y, t) for t in grid]
    T_grid = grid[int(np.argmin(nlls))]
    assert abs(np.log(T) - np.log(T_grid)) < 0.01
    assert _nll_loop(Z, y, T) <= min(nlls) + 1e-12
    for t in (T * 0.999, T * 1.001):
        assert _nll_loop(Z, y, T) <= _nll_loop(Z, y, t)
    np.testing.assert_allclose(det.score_samples(Z[:3]),
                               [max(_softmax_loop(z, T)) for z in Z[:3]])


def test_two_class_temperature_closed_form():
    # margin +1 on three rows, -1 on one: sigmoid(1/T) = 3/4, T = 1/log 3
    Z = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 0.0]])
    y = np.array([0, 0, 0, 0, -1])  # the OOD row is ignored
    det = MaxSoftmax(temperature="fit").fit(Z, y)
    assert det.temperature_ == pytest.approx(1 / math.log(3), rel=1e-8)


def test_calibration_rows_all_classified_correctly_warn_no_finite_temperature():
    Z = np.array([[3.0, 0.0], [0.0, 2.0], [1.0, 0.5]])
    with pytest.warns(UserWarning, match="no finite minimum"):
        det = MaxSoftmax(temperature="fit").fit(Z, [0, 1, 0])
    assert det.temperature_ < 0.05
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one row wrong: a finite optimum, no warning
        MaxSoftmax(temperature="fit").fit(Z, [0, 1, 1])


def test_fitted_temperature_needs_integer_labels():
    with pytest.raises(ValueError, match=r"pass the class labels, fit\(X, y\)"):
        MaxSoftmax(temperature="fit").fit(LOGITS)
    with pytest.raises(ValueError, match="pass the class labels"):
        MaxSoftmax(temperature="fit").fit(LOGITS, [np.nan] * 3)
    with pytest.raises(ValueError, match=r"indexing the 3 logits \(0 \.\. 2\)"):
        MaxSoftmax(temperature="fit").fit(LOGITS, [0, 1, 3])
    with pytest.raises(ValueError, match="temperature"):
        MaxSoftmax(temperature="auto").fit(LOGITS)
