"""ViM against a step-by-step reference (lstsq and SVD instead of pinv and eigh)."""

import pickle

import numpy as np
import pytest
import torch

from sklearn_ood.detectors.vim import ViM, vim_principal_dim

from _helpers import (
    float32_features,
    score_peak_bytes,
    check_failed_calls_leave_detector_unchanged,
)


def _vim_reference(W, b, X_train, X, n_comp):
    """Step by step, through lstsq and an SVD instead of pinv and eigh."""
    u = -np.linalg.lstsq(W, b, rcond=None)[0]  # minimum-norm solution of W u = -b
    _, _, Vt = np.linalg.svd((X_train - u) / np.sqrt(len(X_train)))
    P = Vt[:n_comp]  # principal directions (rows), singular values descending

    def residual(H):
        C = H - u
        return np.sqrt(((C - (C @ P.T) @ P) ** 2).sum(axis=1))

    def logits(H):
        return np.array([[sum(W[k, j] * h[j] for j in range(len(h))) + b[k]
                          for k in range(len(b))] for h in H])

    alpha = logits(X_train).max(axis=1).mean() / residual(X_train).mean()
    energy = np.log(np.exp(logits(X)).sum(axis=1))
    return -alpha * residual(X) + energy, alpha


def test_vim_matches_step_by_step_reference():
    rng = np.random.default_rng(6)
    W, b = rng.normal(size=(3, 6)), rng.normal(size=3)
    X_train = rng.normal(size=(25, 6)) * np.array([3, 2, 1.5, 1, 0.5, 0.2]) + 1.0
    X = rng.normal(size=(5, 6))
    det = ViM(head=(W, b)).fit(X_train)
    assert det.n_components_ == 3  # D // 2 for D = 6
    expected, alpha = _vim_reference(W, b, X_train, X, 3)
    assert det.alpha_ == pytest.approx(alpha, rel=1e-10)
    np.testing.assert_allclose(det.score_samples(X), expected, rtol=1e-10)
    det2 = ViM(head=(W, b), n_components=4).fit(X_train)
    np.testing.assert_allclose(det2.score_samples(X),
                               _vim_reference(W, b, X_train, X, 4)[0], rtol=1e-10)
    # the same with a torch head
    lin = torch.nn.Linear(6, 3).double()
    with torch.no_grad():
        lin.weight.copy_(torch.as_tensor(W))
        lin.bias.copy_(torch.as_tensor(b))
    np.testing.assert_allclose(ViM(head=lin).fit(X_train).score_samples(X), expected,
                               rtol=1e-10)


def test_float32_features_scored_in_float32_close_to_float64_by_hand():
    X, (W, b) = float32_features()
    det = ViM(head=(W, b)).fit(X)
    H = X.astype(np.float64) - det.origin_
    residual = np.sqrt(((H @ det.null_space_) ** 2).sum(axis=1))
    energy = np.log(np.exp(X.astype(np.float64) @ W.T + b).sum(axis=1))
    # scored in float32: relative errors of order 1e-7
    np.testing.assert_allclose(det.score_samples(X), -det.alpha_ * residual + energy, rtol=1e-5)
    # no float64 copy of the features (one would take 2 x X.nbytes)
    X, head = float32_features(n=2000, d=256)
    assert score_peak_bytes(ViM(head).fit(X), X) < 2 * X.nbytes


def test_vim_principal_dim_rule():
    assert [vim_principal_dim(d) for d in (4096, 2048, 2047, 768, 767, 6, 1)] == [
        1000, 1000, 512, 512, 383, 3, 0]


def test_vim_errors():
    X = np.random.default_rng(7).normal(size=(10, 4))
    head = (np.ones((2, 4)), np.zeros(2))
    with pytest.raises(ValueError, match="n_components=4 and n_features=4"):
        ViM(head=head, n_components=4).fit(X)
    with pytest.raises(ValueError, match="needs the final linear layer"):
        ViM().fit(X)
    with pytest.raises(ValueError, match="head expects 3 features"):
        ViM(head=(np.ones((2, 3)), np.zeros(2))).fit(X)
    with pytest.raises(ValueError, match="no residual.*n_samples=2"):
        ViM(head=head, n_components=2).fit(X[:2])


def test_errors_leave_the_fitted_estimator_unchanged():
    rng = np.random.default_rng(11)
    X, y = rng.normal(size=(12, 3)), np.repeat([0, 1], 6)
    det = ViM(head=(np.eye(3)[:2], np.zeros(2))).fit(X, y)
    state = pickle.dumps(det)
    with pytest.raises(ValueError, match="head expects 3 features"):
        det.fit(np.ones((12, 4)), y)
    assert pickle.dumps(det) == state
    check_failed_calls_leave_detector_unchanged(det, X, y)
