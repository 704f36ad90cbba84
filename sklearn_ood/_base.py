"""The estimator contract every OOD detector follows."""

import contextlib
from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin, _fit_context
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from ._validation import check_labels, split_id_rows, validate_features

#: At most this many training rows, drawn with a fixed seed, give the threshold
#: ``offset_``: a percentile needs no more, and fitting stays linear in N.
OFFSET_SAMPLE_SIZE = 10_000
OFFSET_SAMPLE_SEED = 0
#: Rows scored at a time by ``score_samples``.
SCORE_CHUNK_ROWS = 8192


def offset_sample(n_samples):
    """Sorted indices of the training rows that set ``offset_``.

    All rows up to :data:`OFFSET_SAMPLE_SIZE`; beyond that a uniform sample
    of that size without replacement, seeded with :data:`OFFSET_SAMPLE_SEED`
    (so ``fit`` is deterministic).

    Examples
    --------
    >>> offset_sample(3)
    array([0, 1, 2])
    >>> len(offset_sample(10**6)), len(set(offset_sample(10**6)))
    (10000, 10000)
    """
    if n_samples <= OFFSET_SAMPLE_SIZE:
        return np.arange(n_samples)
    rng = np.random.RandomState(OFFSET_SAMPLE_SEED)
    return np.sort(rng.choice(n_samples, OFFSET_SAMPLE_SIZE, replace=False))


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

    A subclass implements two steps and may override two more:

    - ``_fit(X, y)``: learn from the in-distribution rows (``y`` holds their
      class labels, or is ``None``);
    - ``_score(X)``: score rows, higher means more in-distribution;
    - ``_training_scores(X, rows)``: the scores of the training rows
      ``X[rows]`` that set the threshold ``offset_`` (``rows`` from
      :func:`offset_sample`: all rows up to 10,000, else a seeded sample of
      10,000). By default ``_score(X[rows])``; a detector for which a
      training row scored against itself is optimistic overrides it (KNN
      scores its bank leave-one-out, as scikit-learn's ``LocalOutlierFactor``
      computes ``negative_outlier_factor_``);
    - ``_validate_input(X, reset)``: the input check. By default 2-D
      features (4-D maps too when ``_allow_nd``); detectors that take images
      and run a model override it (:class:`~sklearn_ood.model_detectors.ModelDetector`).

    The base class supplies the rest, identical for every detector:

    - ``fit(X, y=None)`` validates the parameters and the input, keeps the
      rows whose label is not negative (a negative label marks an OOD row),
      calls ``_fit`` and sets ``offset_`` to the ``100 * contamination``
      percentile of the training scores of at most 10,000 rows (a seeded
      sample beyond that, so fitting stays linear in N), which must be
      finite. If any step
      fails, the estimator is left as it was.
    - ``score_samples(X)``: higher means more in-distribution.
    - ``decision_function(X) = score_samples(X) - offset_``.
    - ``predict(X)``: +1 for in-distribution, -1 for OOD.

    Attributes
    ----------
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``; the
        ``100 * contamination`` percentile of the training scores (of at most
        :data:`OFFSET_SAMPLE_SIZE` rows).
    n_features_in_ : int
        Number of features (channels for maps and images) seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen in ``fit``; defined only when ``X`` has
        string column names (a pandas DataFrame).
    """

    _parameter_constraints: dict = {
        "contamination": [Interval(Real, 0, 0.5, closed="right")],
    }
    #: Accept 4-D feature maps ``(N, C, H, W)`` besides 2-D features.
    _allow_nd = False
    #: ``_fit`` also receives the OOD rows (negative labels) as ``X_ood``, e.g.
    #: pseudo-OOD rows for a detector that fits a combiner on them.
    _fit_uses_ood_rows = False

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the detector on in-distribution data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training features (4-D maps or images where the detector takes
            them).
        y : array-like of shape (n_samples,), default=None
            Class labels; rows with a negative label are OOD and are ignored.

        Returns
        -------
        self : object
            The fitted detector.
        """
        with restore_on_error(self):
            X = self._validate_input(X, reset=True)
            X_id, y_id = split_id_rows(X, y)
            if self._fit_uses_ood_rows:
                is_ood = np.zeros(X.shape[0], bool) if y is None else \
                    ~check_labels(y, X.shape[0])[1]
                self._fit(X_id, y_id, X_ood=X[is_ood])
            else:
                self._fit(X_id, y_id)
            rows = offset_sample(X_id.shape[0])
            scores = np.asarray(self._training_scores(X_id, rows), dtype=np.float64)
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
        X = self._validate_input(X, reset=False)
        # By chunks of rows (scores are row-wise), so that float64 copies made
        # inside _score never exceed one chunk, whatever the number of rows.
        scores = np.empty(X.shape[0], dtype=np.float64)
        for start in range(0, X.shape[0], SCORE_CHUNK_ROWS):
            rows = slice(start, start + SCORE_CHUNK_ROWS)
            scores[rows] = self._score(X[rows])
        return scores

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

    def _validate_input(self, X, *, reset):
        return validate_features(self, X, reset=reset, allow_nd=self._allow_nd)

    def _training_scores(self, X, rows):
        return self._score(X[rows])

    def _fit(self, X, y):  # pragma: no cover - overridden
        raise NotImplementedError

    def _score(self, X):  # pragma: no cover - overridden
        raise NotImplementedError

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags
