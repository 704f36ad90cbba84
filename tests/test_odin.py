"""ODIN against a NumPy hand computation on a linear model, model state, sklearn API."""

import pickle

import numpy as np
import pytest
import torch
from _model_state_checks import Faulty, check_model_left_unchanged
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from torch import nn

from sklearn_ood.metrics import fpr95_scorer
from sklearn_ood.model_detectors import ODIN
from sklearn_ood.pseudo_ood import make_pseudo_ood
from sklearn_ood.tuning import PseudoOODSplit
from sklearn_ood.discovery import tuning_grid

C, H, W, K = 2, 3, 3, 4
STD = np.array([0.5, 0.25])


def linear_net(seed=0):
    """``z = W x + b`` on flattened images (float64), with a Faulty pass-through."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), Faulty(), nn.Linear(C * H * W, K).double())


def images(n, seed=0):
    return np.random.default_rng(seed).normal(size=(n, C, H, W))


def softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def odin_by_hand(net, X, T, eps, std):
    """Closed form: grad_x(-log softmax(z/T)_y) = W^T (softmax(z/T) - e_y) / T."""
    Wt, b = net[2].weight.detach().numpy(), net[2].bias.detach().numpy()
    x = X.reshape(len(X), -1)
    z = x @ Wt.T + b
    onehot = np.eye(K)[z.argmax(1)]
    grad = (softmax(z / T) - onehot) @ Wt / T
    sign = np.where(grad >= 0, 1.0, -1.0)  # zero counts as +1 (reference code)
    per_pixel_std = np.repeat(std, H * W) if std is not None else 1.0
    x_tilde = x - eps * sign / per_pixel_std
    return softmax((x_tilde @ Wt.T + b) / T).max(1)


@pytest.mark.parametrize("T, eps, std", [(1000, 0.0014, STD), (1.0, 0.05, None),
                                         (10.0, 0.0, STD), (2.0, 0.3, 0.5)])
def test_matches_closed_form_on_linear_model(T, eps, std):
    net = linear_net()
    X = images(30)
    det = ODIN(net, temperature=T, magnitude=eps, input_std=std, batch_size=7).fit(X)
    expected = odin_by_hand(net, X, T, eps, None if std is None else np.broadcast_to(std, C))
    np.testing.assert_allclose(det.score_samples(X), expected, rtol=1e-12)
    assert det.offset_ == pytest.approx(np.percentile(expected, 5), rel=1e-12)
    # The perturbation matters: it raises every score here (towards confidence).
    if eps > 0:
        plain = odin_by_hand(net, X, T, 0.0, None)
        assert (expected > plain).all()


def test_float32_model_integer_and_tensor_input():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 5))
    X = np.random.default_rng(0).integers(0, 255, size=(10, 3, 8, 8), dtype=np.uint8)
    det = ODIN(net, temperature=100, magnitude=0.5).fit(X)
    from_int = det.score_samples(X)
    from_tensor = det.score_samples(torch.from_numpy(X.astype(np.float32)))
    np.testing.assert_allclose(from_int, from_tensor, rtol=1e-6)
    assert from_int.dtype == np.float64


def test_input_tensor_in_a_graph_is_left_alone():
    net = linear_net()
    X = torch.from_numpy(images(6)).requires_grad_(True)
    scores = ODIN(net, magnitude=0.01).fit(X).score_samples(X)
    assert X.grad is None
    expected = odin_by_hand(net, X.detach().numpy(), 1000, 0.01, None)
    np.testing.assert_allclose(scores, expected, rtol=1e-12)


def test_batch_norm_in_train_mode_is_evaluated_with_running_stats():
    torch.manual_seed(0)
    bn = nn.BatchNorm1d(C * H * W).double()
    bn.running_mean.normal_()
    net = nn.Sequential(nn.Flatten(), bn, nn.Linear(C * H * W, K).double()).train()
    X = images(12)
    scores = ODIN(net, magnitude=0.01, batch_size=5).fit(X).score_samples(X)
    net.eval()
    ref = ODIN(net, magnitude=0.01, batch_size=12).fit(X).score_samples(X)
    np.testing.assert_allclose(scores, ref, rtol=1e-12)


def test_model_left_unchanged_after_success_and_errors():
    net = linear_net()
    X = images(9)
    check_model_left_unchanged(
        lambda: ODIN(net, magnitude=0.01, input_std=STD, batch_size=4), net, net[1], X)


def test_parameter_validation_and_atomic_fit():
    net = linear_net()
    X = images(10)
    det = ODIN(net).fit(X)
    state = dict(vars(det))
    for params, match in [({"temperature": 0}, "temperature"), ({"magnitude": -1}, "magnitude"),
                          ({"input_std": [1.0, 2.0, 3.0]}, "one positive std per input"),
                          ({"input_std": [1.0, 0.0]}, "input_std"),
                          ({"batch_size": 0}, "batch_size"), ({"model": "net"}, "model")]:
        with pytest.raises(ValueError, match=match):
            clone(det).set_params(**params).fit(X) if "model" in params else \
                det.set_params(**params).fit(X)
        det.set_params(**{k: ODIN(net).get_params()[k] for k in params})
    assert vars(det).keys() == state.keys()
    assert det.offset_ == state["offset_"]
    with pytest.raises(ValueError, match="channels"):
        det.score_samples(images(3)[:, :1])
    with pytest.raises(NotFittedError):
        ODIN(net).score_samples(X)


def test_clone_pickle_pipeline_and_grid_search():
    net = linear_net()
    X = images(40)
    det = ODIN(net, temperature=10, magnitude=0.01, input_std=STD)
    assert clone(det).get_params()["temperature"] == 10
    fitted = det.fit(X)
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.score_samples(X), fitted.score_samples(X))
    pipe = make_pipeline(FunctionTransformer(_normalise), ODIN(net, magnitude=0.01)).fit(X)
    direct = ODIN(net, magnitude=0.01).fit(_normalise(X))
    np.testing.assert_array_equal(pipe.score_samples(X), direct.score_samples(_normalise(X)))

    X_aug, y_aug = make_pseudo_ood(X, method="noise", random_state=0)
    grid = tuning_grid(ODIN, len(X))
    search = GridSearchCV(ODIN(net), {"magnitude": grid["magnitude"]}, scoring=fpr95_scorer,
                          cv=PseudoOODSplit(3, random_state=0)).fit(X_aug, y_aug)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_params_["magnitude"] in grid["magnitude"]
    assert search.best_estimator_.model is not net  # GridSearchCV clones (copies) it


def _normalise(X):
    return (X - 0.5) / 0.25
