"""The estimator contract every OOD detector follows."""

import contextlib
import contextvars
from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin, _fit_context
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from ._calibration import split_calibration_rows
from ._moments import class_moments, row_chunks
from ._tags import DetectorTags, get_detector_tags
from ._validation import check_labels, split_id_rows, validate_features

#: At most this many training rows, drawn with a fixed seed, give the threshold
#: ``offset_``: a percentile needs no more, and fitting stays linear in N.
OFFSET_SAMPLE_SIZE = 10_000
OFFSET_SAMPLE_SEED = 0
#: Rows scored at a time by ``score_samples``.
SCORE_CHUNK_ROWS = 8192

_SCORES_ONLY = contextvars.ContextVar("sklearn_ood_scores_only", default=False)


@contextlib.contextmanager
def scores_only():
    """Inside, a detector's ``fit`` computes no training scores for ``offset_``.

    Internal, for searches that read only the candidates' ``score_samples``
    (the benchmark's pseudo-OOD search, :func:`~sklearn_ood.tuning.tune_on_pseudo_ood`):
    the threshold step of the fit contract (:class:`BaseDetector`, step 3:
    scoring the offset sample, leave-one-out for KNN; a forward pass per image
    for a model detector) is often most of a fit. A detector fitted inside
    has every fitted attribute but ``offset_`` -- unless its fitting hook
    returned the training scores it computed anyway (AdaSCALE's pass), which
    still set it -- so ``decision_function`` and ``predict`` raise
    ``AttributeError``, also after an earlier fit outside (its threshold would
    be stale); fit it again outside for its threshold. Its scores are those of
    a plain fit.

    The setting is a context variable of the current thread: fits that run in
    other threads or processes (joblib workers) compute their threshold.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import KNN
    >>> from sklearn_ood._base import scores_only
    >>> X = np.random.default_rng(0).normal(size=(20, 3))
    >>> with scores_only():
    ...     det = KNN(n_neighbors=3).fit(X)
    >>> hasattr(det, "offset_"), det.score_samples(X[:2]).shape
    (False, (2,))
    >>> hasattr(KNN(n_neighbors=3).fit(X), "offset_")  # outside: as ever
    True
    """
    token = _SCORES_ONLY.set(True)
    try:
        yield
    finally:
        _SCORES_ONLY.reset(token)


def _stream_keys(start, n_rows):
    """Seeded uniform keys in [0, 1) of the training rows ``start, ..., start + n_rows - 1``.

    Row ``i`` of the training stream always gets draw ``i`` of one generator
    seeded with :data:`OFFSET_SAMPLE_SEED`, however the rows are split into calls.
    """
    bit_generator = np.random.PCG64(OFFSET_SAMPLE_SEED)
    bit_generator.advance(start)  # Generator.random takes one 64-bit draw per key
    return np.random.Generator(bit_generator).random(n_rows)


def offset_sample(n_samples):
    """Sorted indices of the training rows that set ``offset_``.

    All rows up to :data:`OFFSET_SAMPLE_SIZE`; beyond that the rows with the
    :data:`OFFSET_SAMPLE_SIZE` smallest seeded keys (a uniform sample without
    replacement, the same for every call: ``fit`` is deterministic). It is
    also the sample :func:`merge_offset_sample` keeps over ``partial_fit``
    calls: the rows of one call are the rows of ``fit``.

    Examples
    --------
    >>> offset_sample(3)
    array([0, 1, 2])
    >>> len(offset_sample(10**6)), len(set(offset_sample(10**6)))
    (10000, 10000)
    """
    if n_samples <= OFFSET_SAMPLE_SIZE:
        return np.arange(n_samples)
    keys = _stream_keys(0, n_samples)
    return np.sort(np.argpartition(keys, OFFSET_SAMPLE_SIZE - 1)[:OFFSET_SAMPLE_SIZE])


def merge_offset_sample(sample, X, start):
    """Reservoir sample of the training rows seen so far, after the rows ``X``.

    Every row of the stream has a seeded key (:func:`_stream_keys`); the sample
    keeps the :data:`OFFSET_SAMPLE_SIZE` rows with the smallest keys, a uniform
    sample without replacement of all rows seen, whatever the split into
    calls. Its rows are in stream order; for one call from ``start=0`` they are
    ``X[offset_sample(len(X))]``.

    Parameters
    ----------
    sample : tuple (positions, keys, rows) or None
        The sample before this call (``None`` for the first call); not modified.
    X : ndarray of shape (n_samples, ...)
        The new rows, positions ``start, ..., start + n_samples - 1``.
    start : int
        Number of rows seen before ``X``.

    Returns
    -------
    sample : tuple (positions, keys, rows)
        At most :data:`OFFSET_SAMPLE_SIZE` stream positions, their keys and
        the rows (copies in the dtype of ``X``).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.arange(12_000.0)[:, None]
    >>> positions, keys, rows = merge_offset_sample(merge_offset_sample(None, X[:7], 0), X[7:], 7)
    >>> np.array_equal(positions, offset_sample(12_000)), rows.shape
    (True, (10000, 1))
    """
    keys = _stream_keys(start, X.shape[0])
    positions = np.arange(start, start + X.shape[0])
    if sample is not None:
        if sample[2].shape[1:] != X.shape[1:]:
            raise ValueError(
                f"partial_fit received rows of shape {X.shape[1:]} after rows of shape "
                f"{sample[2].shape[1:]}; the offset sample keeps training rows, so every "
                "call needs the same row shape (e.g. the same map size)."
            )
        keys = np.concatenate([sample[1], keys])
        positions = np.concatenate([sample[0], positions])
    keep = np.arange(keys.size)
    if keys.size > OFFSET_SAMPLE_SIZE:
        keep = np.sort(np.argpartition(keys, OFFSET_SAMPLE_SIZE - 1)[:OFFSET_SAMPLE_SIZE])
    n_old = 0 if sample is None else sample[0].size
    old, new = keep[keep < n_old], keep[keep >= n_old] - n_old
    rows = np.asarray(X[new])
    if sample is not None:
        rows = np.concatenate([sample[2][old], rows])
    return positions[keep], keys[keep], rows


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

    The fit contract, shared by every detector (the array detectors here,
    :class:`AccumulatingDetector` and
    :class:`~sklearn_ood.model_detectors.ModelDetector` name their fitting
    hook for what it takes, and follow the same flow):

    1. ``fit(X, y=None)`` validates the parameters and the input (atomically:
       if any step raises, the estimator is left as it was) and keeps the
       in-distribution rows (a negative label marks an OOD row). A detector
       with calibrating statistics (its tags' ``calibrated``) also gets the
       rows to fit those on, held out from the modelling statistics:
       ``fit(X, y, X_cal=..., y_cal=...)`` or a ``calibration_size`` share of
       the ID rows (:mod:`sklearn_ood._calibration`); the rows that model are
       then the training rows of the steps below.
    2. The fitting hook learns from them and sets the fitted attributes. It
       returns the training scores that set the threshold when it computed
       them anyway (a model detector's one pass over the images), a function
       of no arguments that computes them when only it can (Gram's
       leave-one-out bounds, known inside the fit only), else ``None``.
       Training scores are always those of the *offset sample*: the rows
       :func:`offset_sample` draws among the ``n`` in-distribution rows (all
       up to :data:`OFFSET_SAMPLE_SIZE`, else a seeded sample of that many,
       so fitting stays linear in ``n``).
    3. The threshold step: the function the hook returned, or, when it
       returned ``None``, ``_training_scores(X, rows)``: the scores of the
       rows ``rows`` of ``X`` (``None``: all of them), by default the scores
       ``score_samples`` would give (by chunks of rows). A detector for
       which a training row scored against itself is optimistic overrides it
       (KNN scores its bank leave-one-out, as scikit-learn's
       ``LocalOutlierFactor`` computes ``negative_outlier_factor_``). It
       scores at most :data:`OFFSET_SAMPLE_SIZE` rows, and it is skipped
       inside :func:`scores_only` (no ``offset_``, an earlier one removed).
    4. ``offset_`` is the ``100 * contamination`` percentile of those scores,
       which must be finite.

    No data goes from one step to the next through the estimator: a hook
    returns what the next step needs, and a fitted detector holds its
    parameters and its documented fitted attributes (names ending in ``_``),
    nothing else.

    An array detector implements

    - ``_fit(X, y)``: learn from the in-distribution rows ``X`` (``y`` holds
      their class labels, or is ``None``; when its tags declare ``ood_rows`` it also
      receives the OOD rows as ``X_ood``; when they declare ``calibrated``
      attributes, the rows to fit those on, and only those, as ``X_cal`` and
      ``y_cal``, and ``X`` and ``X_cal`` may then be lazy views of rows, read
      by slicing or ``np.asarray``); return the scores of
      ``X[offset_sample(len(X))]``, a function computing them, or ``None``
      (step 2);
    - ``_score(X)``: score rows, higher means more in-distribution;

    and may override ``_training_scores(X, rows)`` (step 3) and
    ``_validate_input(X, reset)``, the input check (by default the array
    ranks its :class:`~sklearn_ood._tags.DetectorTags` declare: 2-D features,
    4-D maps or both).

    What a detector takes and needs (input, head, labels, tuning grid) is
    declared once, in its class attribute ``_detector_tags``.

    The base class supplies the public API, identical for every detector:

    - ``fit(X, y=None)``: the steps above.
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
    _detector_tags = DetectorTags(input="features")
    #: What the error for non-finite training scores advises.
    _non_finite_advice = "features too large or degenerate; rescale the features"

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, *, X_cal=None, y_cal=None):
        """Fit the detector on in-distribution data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training features (4-D maps or images where the detector takes
            them).
        y : array-like of shape (n_samples,), default=None
            Class labels; rows with a negative label are OOD and are ignored.
        X_cal : array-like of shape (n_calibration, n_features), default=None
            Held-out in-distribution rows for the detector's calibrating
            statistics (a temperature, a standardisation: those its class
            documents), which are then fitted on them only, and the others on
            ``X`` only; ``calibration_size`` is ignored. Only for the
            detectors that have calibrating statistics.
        y_cal : array-like of shape (n_calibration,), default=None
            Class labels of ``X_cal`` (negative: OOD rows, not calibrating).

        Returns
        -------
        self : object
            The fitted detector.
        """
        with restore_on_error(self):
            X = self._validate_input(X, reset=True)
            X_id, y_id = split_id_rows(X, y)
            tags, kwargs = get_detector_tags(self), {}
            if tags.ood_rows:
                is_ood = np.zeros(X.shape[0], bool) if y is None else \
                    ~check_labels(y, X.shape[0])[1]
                kwargs["X_ood"] = X[is_ood]
            if tags.calibrated:
                X_id, y_id, kwargs["X_cal"], kwargs["y_cal"], X_cal_ood = \
                    split_calibration_rows(self, X_id, y_id, X_cal, y_cal)
                if tags.ood_rows and X_cal_ood is not None:
                    kwargs["X_ood"] = np.concatenate([kwargs["X_ood"], X_cal_ood])
            elif X_cal is not None or y_cal is not None:
                raise TypeError(
                    f"{type(self).__name__} has no calibrating statistics to fit on X_cal "
                    "and y_cal: fit it on X (and y) alone."
                )
            scores = self._fit(X_id, y_id, **kwargs)
            self._set_offset(
                scores, lambda: self._training_scores(X_id, offset_sample(X_id.shape[0])))
        return self

    def _set_offset(self, scores, training_scores):
        """``offset_`` (step 4) from ``scores``, what the fitting hook returned (step 2):
        the training scores, a function computing them or ``None``, then
        ``training_scores()`` computes them (step 3). Inside :func:`scores_only`
        nothing is computed: an earlier ``offset_`` is removed instead."""
        if scores is None:
            scores = training_scores
        if callable(scores):
            if _SCORES_ONLY.get():
                self.__dict__.pop("offset_", None)
                return
            scores = scores()
        scores = np.asarray(scores, dtype=np.float64)
        if not np.all(np.isfinite(scores)):
            raise ValueError(
                f"{type(self).__name__} produced non-finite scores on its "
                f"training data ({self._non_finite_advice})."
            )
        self.offset_ = float(np.percentile(scores, 100.0 * self.contamination))

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
        return self._scores_by_chunks(X)

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

    def fit_predict(self, X, y=None, **fit_params):
        """Fit on ``X`` (with the class labels ``y``) and predict +1 / -1 for ``X``.

        scikit-learn's ``OutlierMixin.fit_predict`` drops ``y``; here it reaches
        ``fit``, so a detector that uses class labels gets them.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,), default=None
            Class labels; rows with a negative label are OOD and are ignored by ``fit``.
        **fit_params : dict
            Passed to ``fit`` (``X_cal``, ``y_cal``).

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        return self.fit(X, y, **fit_params).predict(X)

    def _validate_input(self, X, *, reset):
        return validate_features(self, X, reset=reset, allow_nd=4 in get_detector_tags(self).ndim)

    def _training_scores(self, X, rows):
        """The scores of the training rows ``rows`` of ``X`` (``None``: all), for ``offset_``."""
        return self._scores_by_chunks(X, rows)

    def _scores_by_chunks(self, X, rows=None):
        """``_score`` of the rows of ``X`` (all, or ``rows``), by chunks of rows.

        Scores are row-wise, so float64 copies made inside ``_score`` never
        exceed one chunk (:data:`SCORE_CHUNK_ROWS` rows, fewer for wide rows:
        :func:`~sklearn_ood._moments.row_chunks`), whatever the number of rows.
        """
        n = X.shape[0] if rows is None else len(rows)
        scores = np.empty(n, dtype=np.float64)
        for chunk in row_chunks(n, SCORE_CHUNK_ROWS, row_size=int(np.prod(X.shape[1:]))):
            scores[chunk] = self._score(X[chunk] if rows is None else X[rows[chunk]])
        return scores

    def _fit(self, X, y):  # pragma: no cover - overridden
        """Learn from the ID rows; return the offset sample's scores (or a function
        computing them), or ``None``."""
        raise NotImplementedError

    def _score(self, X):  # pragma: no cover - overridden
        raise NotImplementedError

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.target_tags.required = get_detector_tags(self).labels == "required"
        return tags


class AccumulatingDetector(BaseDetector):
    """Base class of the detectors fitted from statistics that add up: ``partial_fit``.

    The statistics are, per class, the count, the float64 mean and (unless
    ``_scatter`` is false) the centred scatter matrix of the training features
    (:func:`~sklearn_ood._moments.class_moments`, merged over chunks and calls
    by the same update), plus a reservoir :func:`merge_offset_sample` of at
    most :data:`OFFSET_SAMPLE_SIZE` training rows. ``fit(X, y)`` is one
    ``partial_fit(X, y)`` on a fresh estimator; ``partial_fit`` merges the
    rows of each call into the statistics and the reservoir, then follows the
    fit contract of :class:`BaseDetector` from its step 2: the subclass's
    fitted attributes from the statistics, and ``offset_`` from the scores of
    the reservoir rows (the offset sample of every row seen).

    A subclass sets ``_tied`` (one scatter summed over the classes),
    ``_scatter`` (``False``: counts and means only, no ``D x D`` scatter) and
    ``_statistics_params`` (the parameters the statistics depend on: fixed by
    the first call), declares in its ``_detector_tags`` whether it uses class
    labels, and implements

    - ``_moment_features(H)``: the features the statistics are taken of, from
      a chunk of the input, in its own dtype;
    - ``_fit_statistics(classes, *statistics, sample, *, partial)``: the
      fitting hook (step 2): sets the fitted attributes from ``classes`` (the
      sorted class labels seen, or ``None``), ``statistics`` (``counts,
      means, scatter``, the scatter ``None`` without ``_scatter``) and
      ``sample`` (the reservoir rows; ``partial`` is true in
      ``partial_fit``); returns their scores, a function computing them, or
      ``None``;
    - ``_score(X)``.

    It may override ``_merge(X, codes, n_classes, statistics)`` (other
    statistics that add up, e.g. KNN's bank of rows), ``_class_codes`` (how
    labels become class indices) and ``_training_scores(X, rows)`` (step 3;
    ``X`` holds the reservoir rows, ``rows`` is ``None``: all of them, and
    their positions among the in-distribution rows seen are
    ``reservoir_[0]``).

    Attributes
    ----------
    n_samples_seen_ : int
        Number of in-distribution training rows seen by ``fit`` and the
        ``partial_fit`` calls since.
    classes_seen_ : ndarray or None
        Sorted class labels seen, one per row of ``statistics_`` (``None``
        when fitted without labels or when the detector ignores them).
    statistics_ : tuple of ndarray
        The statistics accumulated so far, which ``partial_fit`` continues:
        per class the count, the float64 mean and the centred scatter
        (``None`` for detectors that keep means only); KNN's bank instead.
    statistics_params_ : dict
        The parameters the statistics depend on, with the values of the first
        call (a later call must not change them).
    reservoir_ : tuple of ndarray
        The training rows that set ``offset_``: their positions among the
        in-distribution rows seen, their seeded keys and the rows themselves
        (at most :data:`OFFSET_SAMPLE_SIZE`; :func:`merge_offset_sample`).
    """

    _tied = True
    _scatter = True
    _statistics_params = ()

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the detector on in-distribution data (same as one ``partial_fit`` afresh).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training features.
        y : array-like of shape (n_samples,), default=None
            Class labels; rows with a negative label are OOD and are ignored.

        Returns
        -------
        self : object
            The fitted detector.
        """
        with restore_on_error(self):
            self._accumulate(X, y, reset=True, partial=False)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Add a chunk of in-distribution rows to the statistics, then refit.

        The statistics (per-class counts, float64 means and scatter matrices)
        add up: ``partial_fit`` on the chunks of ``X``, in any order, gives the
        statistics of ``fit(X, y)`` up to rounding, and ``fit(X, y)`` is one
        ``partial_fit(X, y)`` on a fresh estimator. The detector is fitted
        after every call (each call must leave enough rows to fit on).

        ``offset_`` is recomputed after every call from the scores of a
        reservoir of training rows that the detector keeps: all rows seen up
        to 10,000, beyond that a seeded uniform sample of 10,000 of them. A row
        is kept or not whatever the split into calls, so ``fit`` and the
        chunks of ``X`` in their order use the same rows. The reservoir costs
        ``10,000 x n_features`` values in the dtype of ``X`` (whole maps for
        4-D input), also after ``fit`` and in a pickle.

        The first call on a fresh estimator validates ``X`` and sets
        ``n_features_in_``; later calls (also after ``fit``) continue from the
        statistics so far, must have the same features and must pass ``y`` if
        and only if the first did. A label first seen in a later call adds a
        class (no ``classes=`` argument as in scikit-learn's naive Bayes: the
        scores have no per-class output to keep in order). Every call
        validates the parameters; those the statistics depend on (e.g.
        ``normalize``; the class docstring names them) must not change between
        calls. If a call raises (even ``KeyboardInterrupt``), the detector is
        left as it was.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A chunk of training features.
        y : array-like of shape (n_samples,), default=None
            Class labels of the chunk; rows with a negative label are OOD and
            are ignored.

        Returns
        -------
        self : object
            The fitted detector.
        """
        reset = not hasattr(self, "n_samples_seen_")
        if not reset:  # @_fit_context validates partial_fit's first call only
            self._validate_params()
        with restore_on_error(self):
            self._accumulate(X, y, reset=reset, partial=True)
        return self

    def _accumulate(self, X, y, *, reset, partial):
        name = type(self).__name__
        if not reset:
            for param, value in self.statistics_params_.items():
                if getattr(self, param) != value:
                    raise ValueError(
                        f"{name}'s statistics were accumulated with {param}={value!r}, "
                        f"but {param} is now {getattr(self, param)!r}; call fit, or "
                        "partial_fit on a fresh estimator, to change it."
                    )
        X = self._validate_input(X, reset=reset)
        X, y = split_id_rows(X, y)
        classes, codes, moments = self._class_codes(X, y, reset)
        n_seen = 0 if reset else self.n_samples_seen_
        moments = self._merge(X, codes, 1 if classes is None else classes.size, moments)
        self.reservoir_ = merge_offset_sample(None if reset else self.reservoir_, X, n_seen)
        self.classes_seen_, self.statistics_ = classes, moments
        self.statistics_params_ = {param: getattr(self, param)
                                   for param in self._statistics_params}
        self.n_samples_seen_ = n_seen + X.shape[0]
        sample = self.reservoir_[2]
        self._set_offset(self._fit_statistics(classes, *moments, sample, partial=partial),
                         lambda: self._training_scores(sample, None))

    def _merge(self, X, codes, n_classes, statistics):
        """The statistics of earlier calls (``None`` at first) with the rows ``X`` added."""
        own = type(self)._moment_features is not AccumulatingDetector._moment_features
        with np.errstate(over="ignore", invalid="ignore"):
            return class_moments(X, codes, n_classes,
                                 transform=self._moment_features if own else None,
                                 tied=self._tied, scatter=self._scatter, moments=statistics)

    def _class_codes(self, X, y, reset):
        """Sorted labels, class index of each row and the statistics to merge into."""
        n_samples = X.shape[0]
        name = type(self).__name__
        if y is None and self.__sklearn_tags__().target_tags.required:
            raise ValueError(
                f"{name} requires y to be passed, but the target y is None: it fits "
                "statistics per class, so pass the class labels (fit(X, y))."
            )
        if get_detector_tags(self).labels is None:
            y = None
        if not reset and (y is None) != (self.classes_seen_ is None):
            given, before = ("without", "with") if y is None else ("with", "without")
            raise ValueError(
                f"{name} received y {given} class labels after a fit {before} them; pass "
                "labels in every call or in none."
            )
        if y is None:
            return None, np.zeros(n_samples, dtype=np.intp), None if reset else self.statistics_
        if reset:
            labels, codes = np.unique(y, return_inverse=True)
            return labels, codes, None
        labels, (counts, means, scatter) = np.union1d(self.classes_seen_, y), self.statistics_
        where = np.searchsorted(labels, self.classes_seen_)

        def grow(stat):  # new classes start from zero statistics
            grown = np.zeros((labels.size,) + stat.shape[1:], dtype=stat.dtype)
            grown[where] = stat
            return grown

        if labels.size > self.classes_seen_.size:
            counts, means = grow(counts), grow(means)
            scatter = scatter if self._tied or scatter is None else grow(scatter)
        return labels, np.searchsorted(labels, y), (counts, means, scatter)

    def _moment_features(self, H):
        return H

    def _fit_statistics(self, classes, counts, means, scatter, sample, *,
                        partial):  # pragma: no cover - overridden
        """Set the fitted attributes; return the scores of ``sample`` (or a function
        computing them) or ``None``."""
        raise NotImplementedError
