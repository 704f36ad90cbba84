"""GradNorm: the closed form against torch autograd on the last layer's weight."""

import numpy as np
import pytest
import torch

from sklearn_ood.detectors.gradnorm import GradNorm

from _helpers import (
    CONTRACT_HEAD,
    check_bad_input_leaves_fitted_estimator_unchanged,
    check_float32_input_gives_float64_scores,
    check_missing_head_is_a_clear_error,
)


def _autograd_gradnorm(W, b, X, T):
    """The official recipe: one sample at a time, sum_c -log softmax(z/T)_c, d/dW, L1."""
    fc = torch.nn.Linear(W.shape[1], W.shape[0]).double()
    with torch.no_grad():
        fc.weight.copy_(torch.as_tensor(W))
        fc.bias.copy_(torch.as_tensor(b))
    out = []
    for x in X:
        fc.zero_grad()
        z = fc(torch.as_tensor(x)[None])
        loss = torch.sum(-torch.log_softmax(z / T, dim=1))
        loss.backward()
        out.append(fc.weight.grad.abs().sum().item())
    return np.array(out)


@pytest.mark.parametrize("T", [1.0, 0.5, 3.0])
def test_gradnorm_equals_the_weight_gradient_l1_norm(T):
    W, b = CONTRACT_HEAD
    X = np.random.default_rng(4).normal(size=(7, 4))
    det = GradNorm(CONTRACT_HEAD, temperature=T).fit(X)
    np.testing.assert_allclose(det.score_samples(X), _autograd_gradnorm(W, b, X, T),
                               rtol=1e-10)


def test_gradnorm_hand_value():
    # W = (e1, -e1), h = (log(3)/2, 1): z = +-log(3)/2, p = (3/4, 1/4),
    # ||2p - 1||_1 = 1, ||h||_1 = 1 + log(3)/2.
    det = GradNorm((np.array([[1.0, 0.0], [-1.0, 0.0]]), np.zeros(2))).fit(np.ones((2, 2)))
    np.testing.assert_allclose(det.score_samples([[np.log(3) / 2, 1.0]]), [1 + np.log(3) / 2])


def test_gradnorm_contract():
    check_missing_head_is_a_clear_error(GradNorm)
    check_bad_input_leaves_fitted_estimator_unchanged(GradNorm)
    check_float32_input_gives_float64_scores(GradNorm)
    with pytest.raises(ValueError, match="temperature"):
        GradNorm(CONTRACT_HEAD, temperature=0.0).fit(np.ones((2, 4)))
