"""The search's shortcuts give the scores and the choice of the plain computation."""

import contextlib

import numpy as np
import pytest
import torch
from sklearn.model_selection import ParameterGrid

from sklearn_ood.benchmark import sources, tune
from sklearn_ood.benchmark.data import PSEUDO_PREFIX
from sklearn_ood.benchmark.evaluate import Inputs, sample_rows
from sklearn_ood.benchmark.sources import SOURCES, class_splits
from sklearn_ood.benchmark.specs import DetectorSpec
from sklearn_ood.model_detectors import ODIN, AdaSCALE, InputPreprocessedMahalanobis
from sklearn_ood._base import scores_only
from sklearn_ood.models import SmallCNN


def _net():
    torch.manual_seed(0)
    return SmallCNN(3, in_channels=1, width=4).eval()


def _images(n, seed=0):
    return np.random.default_rng(seed).random((n, 1, 8, 8), dtype=np.float32)


class _Counter:
    """Counts the images the model's forward passes see."""

    def __init__(self, net):
        self.n = 0
        self.handle = net.register_forward_pre_hook(self)

    def __call__(self, module, inputs):
        self.n += len(inputs[0])


@pytest.mark.parametrize("make, has_threshold", [
    (lambda net: ODIN(net, temperature=10, magnitude=0.01), False),
    (lambda net: InputPreprocessedMahalanobis(net, ["block2", "block3"], magnitude=0.01), False),
    (lambda net: AdaSCALE(net, random_state=0, max_samples=10), True),  # its pass scores
])
def test_scores_only_fit_scores_as_a_plain_fit_without_the_threshold_pass(make, has_threshold):
    net, X, y = _net(), _images(24), np.arange(24) % 3
    plain = make(net).fit(X, y)
    counter = _Counter(net)
    with scores_only():
        fast = make(net).fit(X, y)
    n_fast, counter.n = counter.n, 0
    make(net).fit(X, y)
    n_plain = counter.n
    counter.handle.remove()
    np.testing.assert_array_equal(fast.score_samples(X[:7]), plain.score_samples(X[:7]))
    assert hasattr(fast, "offset_") == has_threshold
    if has_threshold:
        assert fast.offset_ == plain.offset_ and n_fast == n_plain
    else:  # the 24 training images were not scored
        assert n_fast < n_plain
        with pytest.raises(AttributeError, match="offset_"):
            fast.predict(X[:2])
    # a threshold of an earlier fit does not survive a refit inside the context
    with scores_only():
        plain.fit(X[:12], y[:12])
    assert hasattr(plain, "offset_") == has_threshold
    assert plain.fit(X, y).offset_ == make(net).fit(X, y).offset_  # outside: as ever


def _image_inputs(net, seed=0):
    """Images of one SmallCNN: three ID classes, the four pseudo-OOD copies, far OOD."""
    rng = np.random.default_rng(seed)
    sets = {"fit": _images(36, 1), "validation": _images(18, 2), "ID test": _images(9, 3),
            "far": 3 * _images(9, 4)}
    for i, name in enumerate(SOURCES[1:]):
        sets[PSEUDO_PREFIX + name] = (sets["validation"]
                                      + rng.normal(scale=0.3 * (i + 1), size=(18, 1, 8, 8))
                                      ).astype(np.float32)
    labels = {"fit": np.arange(36) % 3, "validation": np.arange(18) % 3,
              "ID test": np.arange(9) % 3}
    features = {"plain": {name: {"images": X} for name, X in sets.items()}}
    return Inputs({"plain": net}, features, labels, ("ID test", "far"), seed)


@pytest.mark.parametrize("make, param, values", [
    (lambda net: ODIN(net, temperature=10, input_std=0.5), "magnitude", [0.02, 0.0, 0.2]),
    (lambda net: InputPreprocessedMahalanobis(net, ["block2", "block3"], block_weights=[1, 2]),
     "magnitude", [0.0, 0.01, 0.05]),
    (lambda net: AdaSCALE(net, random_state=0, max_samples=10), "percentiles",
     [(60, 65), (60, 90), (70, 99)]),
])
def test_score_samples_each_equals_a_detector_fitted_per_value(make, param, values):
    net, X, y = _net(), _images(24), np.arange(24) % 3
    fitted = make(net).fit(X, y)
    counter = _Counter(net)
    each = fitted._score_samples_each(X[:10], values)
    n_each, counter.n = counter.n, 0
    for j, value in enumerate(values):
        alone = make(net).set_params(**{param: value}).fit(X, y)
        counter.n = 0
        np.testing.assert_array_equal(each[:, j], alone.score_samples(X[:10]))
        n_each -= counter.n
    assert n_each < 0  # what the values share was computed once
    with pytest.raises(ValueError, match=param):
        fitted._score_samples_each(X[:2], [values[0], -1.0 if param == "magnitude" else (90, 60)])


def test_search_chooses_and_thresholds_as_the_plain_search(monkeypatch):
    net = _net()
    inputs = _image_inputs(net)
    monkeypatch.setattr(sources, "MIN_SEARCH_ROWS", 2)
    spec = DetectorSpec("odin", "ODIN", lambda net: ODIN(net, temperature=10, magnitude=0.0),
                        features="images", max_fit=30, grid=lambda n: None)
    grid = ParameterGrid({"temperature": [1, 1000], "magnitude": [0.0, 0.02, 0.2]})
    assert tune._scoring_param(spec, inputs, grid) == "magnitude"
    assert [[i for i, _ in g] for g in tune._groups(grid, "magnitude")] == [[0, 2, 4], [1, 3, 5]]  # temperature varies fastest
    splits = class_splits(inputs.labels["fit"], inputs.seed)
    counter = _Counter(net)
    fast = tune.search(spec, grid, inputs, lambda message: None, splits)
    n_fast, counter.n = counter.n, 0
    # the plain computation: every candidate fitted alone, with its threshold
    for module in (tune, sources):
        monkeypatch.setattr(module, "scores_only", contextlib.nullcontext)
    monkeypatch.setattr(tune, "_scoring_param", lambda spec, inputs, grid: None)
    plain = tune.search(spec, grid, inputs, lambda message: None, splits)
    n_plain = counter.n
    counter.handle.remove()
    assert fast.params == plain.params and fast.pseudo == plain.pseudo
    assert fast.n_fit == plain.n_fit == 30
    assert fast.detector.offset_ == plain.detector.offset_
    X_fit = inputs.features["plain"]["fit"]["images"][sample_rows(36, 30, inputs.seed)]
    assert fast.detector.offset_ == ODIN(net, **fast.params).fit(X_fit).offset_
    assert n_fast < n_plain


def test_a_winner_that_fails_its_threshold_fit_passes_the_win_to_the_next_best():
    from sklearn_ood import KNN

    X = np.random.default_rng(0).normal(size=(20, 3))
    inputs = Inputs({"plain": None}, {"plain": {"fit": {"h": X}}}, {"fit": np.zeros(20, int)},
                    (), 0)
    spec = DetectorSpec("knn", "KNN", lambda net: KNN(), grid=lambda n: None)
    good, worse = ({s: {"fpr95": f, "auroc": 1 - f} for s in SOURCES} for f in (0.1, 0.5))
    candidates = [tune.Candidate({"n_neighbors": 50}, None, 20, good),  # 50 > 20 rows
                  tune.Candidate({"n_neighbors": 2}, None, 20, worse)]
    messages = []
    best = tune._winner(spec, inputs, candidates, messages.append)
    assert best.params == {"n_neighbors": 2} and best.detector.n_neighbors == 2
    assert best.detector.offset_ == KNN(n_neighbors=2).fit(X).offset_
    assert len(messages) == 1 and "n_neighbors=50 failed" in messages[0]
