"""InputPreprocessedMahalanobis against a NumPy hand computation on a linear model."""

import pickle

import numpy as np
import pytest
import torch
from _model_state_checks import Faulty, check_model_left_unchanged
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from torch import nn

from sklearn_ood import BlockFeatureExtractor, Mahalanobis
from sklearn_ood.metrics import fpr95_scorer
from sklearn_ood.model_detectors import InputPreprocessedMahalanobis
from sklearn_ood.pseudo_ood import make_pseudo_ood
from sklearn_ood.tuning import PseudoOODSplit
from sklearn_ood.discovery import tuning_grid

C, H, W, D1, D2, K = 2, 3, 3, 5, 4, 3
STD = np.array([0.5, 0.25])


def linear_net(seed=0):
    """Blocks ``"1"``: ``h1 = A1 x + c1`` and ``"3"``: ``h2 = A2 h1 + c2``; float64."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(C * H * W, D1), Faulty(), nn.Linear(D1, D2),
                         nn.Linear(D2, K)).double()


def images(n, seed=0):
    return np.random.default_rng(seed).normal(size=(n, C, H, W))


def by_hand(net, X_fit, y_fit, X, eps, std, weights):
    A1, c1 = net[1].weight.detach().numpy(), net[1].bias.detach().numpy()
    A2, c2 = net[3].weight.detach().numpy(), net[3].bias.detach().numpy()
    jacobians = [A1, A2 @ A1]  # d h_l / d x

    def feats(X):
        x = X.reshape(len(X), -1)
        h1 = x @ A1.T + c1
        return [h1, h1 @ A2.T + c2]

    classes = np.unique(y_fit)
    per_pixel_std = np.repeat(std, H * W) if std is not None else 1.0
    x = X.reshape(len(X), -1)
    scores = np.zeros((len(X), 2))
    for l, (F_fit, F) in enumerate(zip(feats(X_fit), feats(X))):
        means = np.array([F_fit[y_fit == c].mean(0) for c in classes])
        centred = F_fit - means[np.searchsorted(classes, y_fit)]
        P = np.linalg.pinv(centred.T @ centred / len(F_fit))
        for i in range(len(X)):
            md = [(F[i] - m) @ P @ (F[i] - m) for m in means]
            m = means[int(np.argmin(md))]
            grad = 2 * jacobians[l].T @ P @ (F[i] - m)
            x_t = x[i] - eps * np.where(grad >= 0, 1.0, -1.0) / per_pixel_std
            h_t = feats(x_t[None])[l][0]
            scores[i, l] = -min((h_t - m) @ P @ (h_t - m) for m in means)
    return scores, scores @ weights


@pytest.mark.parametrize("eps, std, weights", [(0.01, STD, None), (0.2, None, [0.3, -1.2]),
                                               (0.0, None, [1.0, 0.0])])
def test_matches_hand_computation(eps, std, weights):
    net = linear_net()
    X_fit, y_fit = images(60, seed=1), np.arange(60) % 3
    X = images(12, seed=2)
    det = InputPreprocessedMahalanobis(net, ["1", "3"], magnitude=eps, input_std=std,
                                       block_weights=weights, batch_size=5).fit(X_fit, y_fit)
    w = np.ones(2) if weights is None else np.asarray(weights)
    per_block, expected = by_hand(net, X_fit, y_fit, X, eps, std, w)
    np.testing.assert_allclose(det.score_blocks(X), per_block, rtol=1e-9)
    np.testing.assert_allclose(det.score_samples(X), expected, rtol=1e-9)
    _, train = by_hand(net, X_fit, y_fit, X_fit, eps, std, w)
    assert det.offset_ == pytest.approx(np.percentile(train, 5), rel=1e-9)
    if eps > 0:  # the pre-processing brings the images closer to their class
        plain, _ = by_hand(net, X_fit, y_fit, X, 0.0, None, w)
        assert (per_block > plain).all()


def test_without_perturbation_equals_feature_space_mahalanobis():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 6, 3), nn.ReLU(), nn.Conv2d(6, 8, 3), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))
    rng = np.random.default_rng(0)
    X, y = rng.random((80, 1, 9, 9), dtype=np.float32), rng.integers(0, 3, 80)
    det = InputPreprocessedMahalanobis(net, "3", magnitude=0.0).fit(X, y)
    feats = BlockFeatureExtractor(net, "3").fit(X)
    ref = Mahalanobis().fit(feats.transform(X), y)
    np.testing.assert_allclose(det.score_samples(X), ref.score_samples(feats.transform(X)),
                               rtol=1e-4)
    # Without labels: one class, the distance to the global mean.
    unlabelled = InputPreprocessedMahalanobis(net, "3", magnitude=0.0).fit(X)
    assert unlabelled.classes_ is None and len(unlabelled.means_[0]) == 1
    np.testing.assert_allclose(unlabelled.score_samples(X),
                               Mahalanobis().fit(feats.transform(X)).score_samples(
                                   feats.transform(X)), rtol=1e-4)


def test_labels_with_ood_rows_and_block_errors():
    net = linear_net()
    X = images(30)
    y = np.arange(30) % 3
    y_ood = y.copy()
    y_ood[::5] = -1
    a = InputPreprocessedMahalanobis(net, "1").fit(X, y_ood)
    b = InputPreprocessedMahalanobis(net, "1").fit(X[y_ood >= 0], y[y_ood >= 0])
    np.testing.assert_array_equal(a.means_[0], b.means_[0])
    with pytest.raises(ValueError, match="Unknown block"):
        InputPreprocessedMahalanobis(net, "fc").fit(X, y)
    with pytest.raises(ValueError, match="one finite weight per block"):
        InputPreprocessedMahalanobis(net, ["1", "3"], block_weights=[1.0]).fit(X, y)
    with pytest.raises(ValueError, match="did not run"):
        InputPreprocessedMahalanobis(WithSpare(), "spare").fit(X, y)
    shared = nn.Linear(C * H * W, C * H * W).double()
    with pytest.raises(ValueError, match="more than once"):
        InputPreprocessedMahalanobis(
            nn.Sequential(nn.Flatten(), shared, shared, nn.Linear(C * H * W, K).double()),
            ["1", "3"]).fit(X, y)


class WithSpare(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(C * H * W, K).double()
        self.spare = nn.Linear(2, 2)  # never called

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_model_left_unchanged_after_success_and_errors():
    net = linear_net()
    X, y = images(12), np.arange(12) % 2
    check_model_left_unchanged(
        lambda: InputPreprocessedMahalanobis(net, ["1", "3"], magnitude=0.01, batch_size=5),
        net, net[2], X, fit_y=y)


def test_clone_pickle_pipeline_grid_search_and_block_weights():
    net = linear_net()
    X, y = images(45), np.arange(45) % 3
    det = InputPreprocessedMahalanobis(net, ["1", "3"], magnitude=0.01).fit(X, y)
    restored = pickle.loads(pickle.dumps(det))
    np.testing.assert_array_equal(restored.score_blocks(X), det.score_blocks(X))
    assert clone(det).get_params()["blocks"] == ["1", "3"]
    pipe = make_pipeline(InputPreprocessedMahalanobis(net, ["1", "3"], magnitude=0.01))
    np.testing.assert_array_equal(pipe.fit(X, y).score_samples(X), det.score_samples(X))

    X_aug, y_aug = make_pseudo_ood(X, y, method="noise", random_state=0)
    search = GridSearchCV(InputPreprocessedMahalanobis(net, ["1", "3"]), tuning_grid(InputPreprocessedMahalanobis, len(X)),
                          scoring=fpr95_scorer, cv=PseudoOODSplit(3, random_state=0))
    search.fit(X_aug, y_aug)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    # The paper's combination: weights from a logistic regression on per-block scores.
    lr = LogisticRegression().fit(det.score_blocks(X_aug), y_aug >= 0)
    weighted = clone(det).set_params(block_weights=lr.coef_[0]).fit(X, y)
    np.testing.assert_allclose(weighted.score_samples(X),
                               det.score_blocks(X) @ lr.coef_[0], rtol=1e-12)
