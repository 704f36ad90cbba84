"""The estimator contract (BaseDetector, ModelDetector), on toy detectors.

The toy detectors are computed by hand here, so every expectation is
independent of the detectors of the library.
"""

import numpy as np
import pytest
import torch
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_ood import KNN
from sklearn_ood._base import BaseDetector
from sklearn_ood.model_detectors import ModelDetector


class MinusSquaredNorm(BaseDetector):
    """Score ``-||x - mean||^2``; ``fail`` makes ``_fit`` raise after setting state."""

    def __init__(self, *, contamination=0.05, fail=False, nonfinite=False):
        self.contamination = contamination
        self.fail = fail
        self.nonfinite = nonfinite

    def _fit(self, X, y):
        self.mean_ = X.mean(axis=0)
        self.labels_seen_ = y
        if self.fail:
            raise RuntimeError("boom in _fit")

    def _score(self, X):
        scores = -((X - self.mean_) ** 2).sum(axis=1)
        return np.full(len(X), np.nan) if self.nonfinite else scores


class LeaveOutTraining(MinusSquaredNorm):
    """Training scores from a separate rule, as KNN's leave-one-out."""

    def _training_scores(self, X):
        return np.arange(len(X), dtype=float)


X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [-1.0, 1.0]])


def test_threshold_decision_and_predict_follow_one_invariant():
    det = MinusSquaredNorm(contamination=0.4).fit(X)
    mean = X.mean(axis=0)
    train = -((X - mean) ** 2).sum(axis=1)
    assert det.offset_ == np.percentile(train, 40)
    new = np.array([[0.2, 1.2], [5.0, 5.0]])
    want = -((new - mean) ** 2).sum(axis=1)
    np.testing.assert_array_equal(det.score_samples(new), want)
    np.testing.assert_array_equal(det.decision_function(new), want - det.offset_)
    np.testing.assert_array_equal(det.predict(new), np.where(want >= det.offset_, 1, -1))


def test_negative_labels_mark_ood_rows_that_fit_ignores():
    y = np.array([0, 1, -1, 1, -1])
    det = MinusSquaredNorm().fit(X, y)
    np.testing.assert_array_equal(det.mean_, X[[0, 1, 3]].mean(axis=0))
    assert det.labels_seen_.tolist() == [0, 1, 1]


def test_training_scores_step_sets_the_offset():
    det = LeaveOutTraining(contamination=0.25).fit(X)
    assert det.offset_ == np.percentile(np.arange(5.0), 25)


def test_knn_threshold_uses_leave_one_out_scores():
    bank = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]])
    det = KNN(n_neighbors=1, contamination=0.5).fit(bank)
    unit = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    sq = ((unit[:, None] - unit[None]) ** 2).sum(-1)
    np.fill_diagonal(sq, np.inf)  # leave each row's own match out
    assert det.offset_ == np.percentile(-sq.min(axis=1), 50)
    # score_samples itself leaves nothing out: a training row is at distance 0.
    assert det.score_samples(bank[:1])[0] == 0.0


def test_failed_fit_leaves_the_estimator_as_it_was():
    det = MinusSquaredNorm().fit(X)
    before = {k: np.copy(v) if isinstance(v, np.ndarray) else v
              for k, v in det.__dict__.items()}
    det.set_params(fail=True)
    with pytest.raises(RuntimeError, match="boom in _fit"):
        det.fit(X[:3] + 10.0)
    np.testing.assert_array_equal(det.mean_, before["mean_"])
    assert det.offset_ == before["offset_"]
    fresh = MinusSquaredNorm(fail=True)
    with pytest.raises(RuntimeError):
        fresh.fit(X)
    assert not hasattr(fresh, "mean_") and not hasattr(fresh, "offset_")


def test_nonfinite_training_scores_are_an_error():
    det = MinusSquaredNorm(nonfinite=True)
    with pytest.raises(ValueError, match="non-finite scores on its training data"):
        det.fit(X)
    assert not hasattr(det, "offset_")


def test_parameters_are_validated_in_fit_before_any_state_changes():
    det = MinusSquaredNorm(contamination=0.7)  # __init__ stores it untouched
    assert det.contamination == 0.7
    with pytest.raises(InvalidParameterError, match="contamination"):
        det.fit(X)
    assert not hasattr(det, "n_features_in_")


class MeanPixel(ModelDetector):
    """Score: the mean of the model's output per image."""

    def __init__(self, model, *, batch_size=2, device="cpu", contamination=0.05):
        self.model = model
        self.batch_size = batch_size
        self.device = device
        self.contamination = contamination

    def _fit(self, X, y):
        self.n_fit_ = len(X)

    def _score(self, X):
        with torch.no_grad():
            return self.model(X).flatten(1).mean(1).double().numpy()


def test_model_detector_takes_images_and_shares_the_contract():
    images = np.arange(5 * 2 * 3 * 3, dtype=np.float32).reshape(5, 2, 3, 3) / 10
    det = MeanPixel(torch.nn.Identity(), contamination=0.2)
    det.fit(images, y=[0, 0, -1, 0, 0])
    assert det.n_fit_ == 4 and det.n_features_in_ == 2
    kept = images[[0, 1, 3, 4]].reshape(4, -1).mean(1)
    assert det.offset_ == pytest.approx(np.percentile(kept, 20))
    np.testing.assert_allclose(det.score_samples(torch.from_numpy(images)),
                               images.reshape(5, -1).mean(1), rtol=1e-6)


@pytest.mark.parametrize("bad, error, match", [
    (np.zeros((3, 4), np.float32), ValueError, "images of shape"),
    (np.zeros((3, 1, 3, 3), np.float32), ValueError, "2 channels"),
    (np.full((3, 2, 3, 3), np.nan, np.float32), ValueError, "NaN"),
])
def test_model_detector_rejects_bad_images_after_fit(bad, error, match):
    det = MeanPixel(torch.nn.Identity()).fit(np.ones((4, 2, 3, 3), np.float32))
    offset = det.offset_
    with pytest.raises(error, match=match):
        det.score_samples(bad)
    assert det.offset_ == offset


def test_model_detector_parameters_are_validated():
    with pytest.raises(InvalidParameterError, match="model"):
        MeanPixel("not a module").fit(np.ones((4, 2, 3, 3), np.float32))
    with pytest.raises(InvalidParameterError, match="batch_size"):
        MeanPixel(torch.nn.Identity(), batch_size=0).fit(np.ones((4, 2, 3, 3), np.float32))
