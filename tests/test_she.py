"""SHE: inner product with the mean correctly classified training feature of the prediction."""

import pickle

import numpy as np
import pytest

from sklearn_ood.detectors.she import SHE

from _helpers import CONTRACT_HEAD, check_failed_calls_leave_detector_unchanged


def _loop_she(X_train, y, W, b, X):
    D, K = len(W[0]), len(W)

    def predict(x):
        z = [sum(W[k][j] * x[j] for j in range(D)) + b[k] for k in range(K)]
        return max(range(K), key=lambda k: z[k])

    patterns = {}
    for c in range(K):
        rows = [x for x, label in zip(X_train, y) if label == c and predict(x) == c]
        patterns[c] = [sum(r[j] for r in rows) / len(rows) for j in range(D)]
    return np.array([sum(x[j] * patterns[predict(x)][j] for j in range(D)) for x in X])


def _fixture():
    W, b = CONTRACT_HEAD
    rng = np.random.default_rng(6)
    X = np.abs(rng.normal(size=(40, 4))) * 2
    y = np.argmax(X @ W.T + b, axis=1)
    flip = rng.choice(40, 8, replace=False)  # 8 rows get another label: misclassified
    y[flip] = (y[flip] + 1) % 3
    return X, y, rng.normal(size=(6, 4))


def test_she_matches_the_loop_and_drops_misclassified_rows():
    W, b = CONTRACT_HEAD
    X, y, X_test = _fixture()
    det = SHE(CONTRACT_HEAD).fit(X, y)
    np.testing.assert_allclose(det.score_samples(X_test), _loop_she(X, y, W, b, X_test),
                               rtol=1e-12)
    # the misclassified rows matter: all rows of each label would give other patterns
    all_rows = np.array([X[y == c].mean(axis=0) for c in range(3)])
    assert not np.allclose(det.patterns_, all_rows)
    # OOD rows (label -1) dropped
    det_ood = SHE(CONTRACT_HEAD).fit(np.vstack([X, 50 * np.ones((1, 4))]), np.r_[y, -1])
    np.testing.assert_allclose(det_ood.patterns_, det.patterns_)


def test_she_hand_values():
    X = np.array([[2.0, 0.0], [4.0, 0.0], [0.0, 2.0], [0.0, 1.0]])
    det = SHE((np.eye(2), np.zeros(2))).fit(X, [0, 0, 1, 0])
    np.testing.assert_allclose(det.patterns_, [[3.0, 0.0], [0.0, 2.0]])
    # (1, .5) predicts 0: 1 * 3; (1, 3) predicts 1: 3 * 2
    np.testing.assert_allclose(det.score_samples([[1.0, 0.5], [1.0, 3.0]]), [3.0, 6.0])


def test_she_errors_say_what_to_pass():
    X, y, _ = _fixture()
    with pytest.raises(ValueError, match=r"needs the final linear layer.*head="):
        SHE().fit(X, y)
    with pytest.raises(ValueError, match=r"SHE requires y.*fit\(X, y\)"):
        SHE(CONTRACT_HEAD).fit(X)
    with pytest.raises(ValueError, match=r"class indices 0..2"):
        SHE(CONTRACT_HEAD).fit(X, np.where(y == 0, "a", "b"))
    with pytest.raises(ValueError, match=r"class indices 0..2"):
        SHE(CONTRACT_HEAD).fit(X, y + 1)
    rows = y != 2
    with pytest.raises(ValueError, match=r"class\(es\) \[2\] .* no training row"):
        SHE(CONTRACT_HEAD).fit(X[rows], y[rows])
    det = SHE(CONTRACT_HEAD).fit(X, y)
    state = pickle.dumps(det)
    with pytest.raises(ValueError, match="no training row"):
        det.fit(X[rows], y[rows])
    assert pickle.dumps(det) == state
    check_failed_calls_leave_detector_unchanged(det, X, y)


def test_a_class_never_predicted_correctly_falls_back_to_all_its_rows():
    W, b = CONTRACT_HEAD
    X, y, X_test = _fixture()
    pred = np.argmax(X @ W.T + b, axis=1)
    y2 = np.where((y == 2) & (pred == 2), 0, y)  # class 2 keeps only misclassified rows
    assert (y2 == 2).any() and not ((y2 == 2) & (pred == 2)).any()
    with pytest.warns(UserWarning, match=r"class\(es\) \[2\] .* mean of all their"):
        det = SHE(CONTRACT_HEAD).fit(X, y2)
    np.testing.assert_allclose(det.patterns_[2], X[y2 == 2].mean(axis=0))
    rows0 = (y2 == 0) & (pred == 0)
    np.testing.assert_allclose(det.patterns_[0], X[rows0].mean(axis=0))
