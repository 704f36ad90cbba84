"""Logit baselines and the estimator contract they share with every detector."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_ood import Energy, MaxLogit, MaxSoftmax
from sklearn_ood.metrics import auroc_scorer

LOGITS = np.array([[2.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 3.0, -1.0]])


@parametrize_with_checks([MaxSoftmax(), MaxLogit(), Energy(), Energy(temperature=2.0)])
def test_sklearn_compatible(estimator, check):
    check(estimator)


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
