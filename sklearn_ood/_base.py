"""The estimator contract every OOD detector follows."""

import contextlib
from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from ._validation import split_id_rows, validate_features


@contextlib.contextmanager
def restore_on_error(estimator):
    """Leave ``estimator`` exactly as it was if the block raises (atomic ``fit``)."""
    state = estimator.__dict__.copy()
    try:
        yield
    except BaseException:
        estimator.__dict__.clear()
        estimator.__dict__.update(state)
        raise


class BaseDetector(OutlierMixin, BaseEstimator):
    """Base class of the OOD detectors: scikit-learn's outlier-detector API.

    A subclass implements ``_fit(X, y)`` (learn from in-distribution rows) and
    ``_score(X)`` (higher means more in-distribution). The base class supplies
    validation, the label convention and the threshold:

    - ``fit(X, y=None)`` keeps the rows whose label is not negative (a negative
      label marks an OOD row) and passes them, with their class labels, to
      ``_fit``. If any step fails, the estimator is left as it was.
    - ``score_samples(X)``: higher means more in-distribution.
    - ``decision_function(X) = score_samples(X) - offset_``, where ``offset_`` is
      the ``100 * contamination`` percentile of the training scores (the default
      0.05 puts the threshold at the 95 % true-positive-rate operating point).
    - ``predict(X)``: +1 for in-distribution, -1 for OOD.

    Class attributes a subclass may set: ``_allow_nd`` (accept 4-D feature maps
    ``(N, C, H, W)`` besides 2-D features).
    """

    _parameter_constraints: dict = {
        "contamination": [Interval(Real, 0, 0.5, closed="right")],
    }
    _allow_nd = False

    def fit(self, X, y=None):
        """Fit the detector on in-distribution data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training features (4-D maps where the detector accepts them).
        y : array-like of shape (n_samples,), default=None
            Class labels; rows with a negative label are OOD and are ignored.

        Returns
        -------
        self : object
            The fitted detector.
        """
        with restore_on_error(self):
            self._validate_params()
            X = validate_features(self, X, reset=True, allow_nd=self._allow_nd)
            X_id, y_id = split_id_rows(X, y)
            self._fit(X_id, y_id)
            scores = self._score(X_id)
            if not np.all(np.isfinite(scores)):
                raise ValueError(
                    f"{type(self).__name__} produced non-finite scores on its "
                    "training data (features too large or degenerate); rescale "
                    "the features."
                )
            self.offset_ = float(np.percentile(scores, 100.0 * self.contamination))
        return self

    def score_samples(self, X):
        """Score samples: the higher, the more in-distribution.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features of the samples to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        X = validate_features(self, X, reset=False, allow_nd=self._allow_nd)
        return np.asarray(self._score(X), dtype=np.float64)

    def decision_function(self, X):
        """Shifted score: negative for predicted OOD, non-negative for ID.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        decision : ndarray of shape (n_samples,)
            ``score_samples(X) - offset_``.
        """
        return self.score_samples(X) - self.offset_

    def predict(self, X):
        """Predict +1 (in-distribution) or -1 (OOD).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        return np.where(self.decision_function(X) >= 0, 1, -1)

    def _fit(self, X, y):  # pragma: no cover - overridden
        raise NotImplementedError

    def _score(self, X):  # pragma: no cover - overridden
        raise NotImplementedError

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags
