"""AdaSCALE against a NumPy hand computation on a linear model."""

import pickle

import numpy as np
import pytest
import torch
from _model_state_checks import Faulty, check_model_left_unchanged
from scipy.special import logsumexp
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from torch import nn

from sklearn_ood.metrics import fpr95_scorer
from sklearn_ood.model_detectors import AdaSCALE
from sklearn_ood.pseudo_ood import make_pseudo_ood
from sklearn_ood.tuning import PseudoOODSplit
from sklearn_ood.discovery import tuning_grid

C, H, W, D, K = 2, 3, 3, 40, 5


def linear_net(seed=0):
    """``h = A x + c`` (the head's input), logits ``z = V h + b``; float64."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(C * H * W, D), Faulty(),
                         nn.Linear(D, K)).double()


def images(n, seed=0):
    return np.random.default_rng(seed).normal(size=(n, C, H, W))


def by_hand(net, X, fit_X, *, variant, p_min, p_max, lam, kc_pct, ks_pct, o, eps):
    A, c = net[1].weight.detach().numpy(), net[1].bias.detach().numpy()
    V, b = net[3].weight.detach().numpy(), net[3].bias.detach().numpy()
    kc, ks = max(1, int(D * kc_pct / 100)), max(1, int(D * ks_pct / 100))
    n_pix = int(C * H * W * o)

    def stats(X):
        x = X.reshape(len(X), -1)
        h = x @ A.T + c
        y = (h @ V.T + b).argmax(1)
        g = V[y] @ A  # d z_y / d x, closed form
        x_p = x.copy()
        for i in range(len(x)):
            smallest = np.argsort(np.abs(g[i]))[:n_pix]
            x_p[i, smallest] += eps * np.sign(g[i, smallest])
        h_p = x_p @ A.T + c
        q = np.empty(len(x))
        for i in range(len(x)):
            top_c = np.argsort(-h[i])[:kc]
            top_s = np.argsort(-h[i])[:ks]
            q[i] = np.maximum(h_p[i, top_c], 0).sum() + lam * np.abs(h[i] - h_p[i])[top_s].sum()
        return h, q

    _, fit_q = stats(fit_X)
    h, q = stats(X)
    scores = np.empty(len(X))
    for i in range(len(X)):
        ecdf = np.mean(fit_q <= q[i])
        p = p_min + (1 - ecdf) * (p_max - p_min)
        k = max(D - int(np.round(D * p / 100)), 1)
        a = np.maximum(h[i], 0)
        r = a.sum() / np.sort(a)[::-1][:k].sum()
        if variant == "A":
            logits = V @ (h[i] * np.exp(r)) + b
        else:
            logits = (V @ h[i] + b) * r**2
        scores[i] = logsumexp(logits)
    return scores, np.sort(fit_q)


@pytest.mark.parametrize("variant, percentiles, lam, kc, ks, o, eps", [
    ("A", (75, 85), 10.0, 5.0, 1.0, 0.05, 0.5),  # the defaults: kc = 2, ks = 1 (floor 1)
    ("L", (60, 90), 2.0, 10.0, 5.0, 0.25, 0.3),  # kc = 4, ks = 2, 4 pixels perturbed
    ("A", (50, 50), 0.0, 20.0, 20.0, 1.0, 0.0),  # fixed percentile, no perturbation
])
def test_matches_hand_computation(variant, percentiles, lam, kc, ks, o, eps):
    net = linear_net()
    fit_X, X = images(25, seed=1), images(15, seed=2)
    det = AdaSCALE(net, variant=variant, percentiles=percentiles, shift_weight=lam,
                   correction_percent=kc, shift_percent=ks, perturb_fraction=o,
                   magnitude=eps, batch_size=6).fit(fit_X)
    expected, fit_q = by_hand(net, X, fit_X, variant=variant, p_min=percentiles[0],
                              p_max=percentiles[1], lam=lam, kc_pct=kc, ks_pct=ks, o=o,
                              eps=eps)
    assert det.head_ == "3" and det.n_penultimate_ == D
    np.testing.assert_allclose(det.fit_shifts_, fit_q, rtol=1e-10)
    np.testing.assert_allclose(det.score_samples(X), expected, rtol=1e-10)
    train, _ = by_hand(net, fit_X, fit_X, variant=variant, p_min=percentiles[0],
                       p_max=percentiles[1], lam=lam, kc_pct=kc, ks_pct=ks, o=o, eps=eps)
    assert det.offset_ == pytest.approx(np.percentile(train, 5), rel=1e-10)
    assert [key for key in vars(det) if key.startswith("_")] == []  # no cache left


def test_ecdf_subset_and_explicit_head():
    net = linear_net()
    X = images(30)
    full = AdaSCALE(net, max_samples=None).fit(X)
    sub = AdaSCALE(net, max_samples=10, random_state=0).fit(X)
    assert len(full.fit_shifts_) == 30 and len(sub.fit_shifts_) == 10
    assert np.isin(sub.fit_shifts_, full.fit_shifts_).all()
    np.testing.assert_array_equal(
        sub.fit_shifts_, AdaSCALE(net, max_samples=10, random_state=0).fit(X).fit_shifts_)
    named = AdaSCALE(net, head="3", max_samples=None).fit(X)
    np.testing.assert_array_equal(named.score_samples(X), full.score_samples(X))
    with pytest.raises(ValueError, match="Unknown head 'fc'"):
        AdaSCALE(net, head="fc").fit(X)
    with pytest.raises(ValueError, match="2-D penultimate"):
        AdaSCALE(nn.Sequential(nn.Linear(W, 2), nn.Flatten(), nn.Linear(C * H * 2, K)),
                 head="0").fit(images(4).astype(np.float32))
    shared = nn.Linear(D, D).double()
    with pytest.raises(ValueError, match="ran 2 times"):
        AdaSCALE(nn.Sequential(nn.Flatten(), nn.Linear(C * H * W, D).double(), shared, shared),
                 head="2").fit(X)
    with pytest.raises(ValueError, match="no nn.Linear"):
        AdaSCALE(nn.Sequential(nn.Flatten())).fit(X)


def test_parameter_validation():
    X = images(6)
    for params, match in [({"percentiles": (85, 75)}, "p_min <= p_max"),
                          ({"percentiles": (0, 75)}, "0 < p_min"),
                          ({"percentiles": (60, 100)}, "p_max < 100"),
                          ({"percentiles": 80}, "percentiles"),
                          ({"variant": "B"}, "variant"),
                          ({"perturb_fraction": 1.5}, "perturb_fraction"),
                          ({"correction_percent": 0}, "correction_percent"),
                          ({"max_samples": 0}, "max_samples")]:
        with pytest.raises(ValueError, match=match):
            AdaSCALE(linear_net(), **params).fit(X)


def test_model_left_unchanged_after_success_and_errors():
    net = linear_net()
    X = images(9)
    check_model_left_unchanged(lambda: AdaSCALE(net, batch_size=4), net, net[2], X)


def test_clone_pickle_pipeline_and_grid_search():
    net = linear_net()
    X = images(40)
    det = AdaSCALE(net, variant="L", random_state=0).fit(X)
    restored = pickle.loads(pickle.dumps(det))
    np.testing.assert_array_equal(restored.score_samples(X), det.score_samples(X))
    assert clone(det).get_params()["variant"] == "L"
    pipe = make_pipeline(AdaSCALE(net, variant="L", random_state=0)).fit(X)
    np.testing.assert_array_equal(pipe.score_samples(X), det.score_samples(X))
    X_aug, y_aug = make_pseudo_ood(X, method="noise", random_state=0)
    grid = {"percentiles": tuning_grid(AdaSCALE, len(X))["percentiles"][::3]}
    search = GridSearchCV(AdaSCALE(net), grid, scoring=fpr95_scorer,
                          cv=PseudoOODSplit(3, random_state=0)).fit(X_aug, y_aug)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
