"""ConformalDetector: a threshold from held-out rows, conformal p-values and FDR control.

A detector's ``offset_`` is a percentile of the scores of its own training
rows, which score as more in-distribution than new rows: its promise (accept
``1 - contamination`` of ID inputs) is not kept on new data. The
meta-estimator :class:`ConformalDetector` sets the threshold from rows the
detector did not see, with the finite-sample conformal quantile, and gives
conformal p-values and Benjamini-Hochberg decisions (Bates et al., 2023).

Why not the ``nonconform`` package (conformal anomaly detection for
scikit-learn/PyOD detectors, read at version 2.0.0): it requires Python >= 3.12
(every release since 0.9; this library supports 3.10), pandas as a hard
dependency, and it takes 2-D feature batches only (``np.asarray`` of the
whole input, fancy-indexed folds), so it cannot wrap the detectors that take
4-D maps or images from a Dataset or DataLoader; and it fits the detector
without ``y`` (``detector.fit(x[train_idx])``), so the class-conditional
detectors would lose their labels and OOD rows (negative labels) could not
be kept out of the calibration rows.
"""

import copy
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin, _fit_context, clone
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import KFold, check_cv
from sklearn.utils import check_random_state, get_tags
from sklearn.utils._param_validation import HasMethods, Interval, RealNotInt, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._validation import check_labels
from ._rows import n_rows, take_rows
from .p_values import (
    _check_alpha, _check_scores, _p_values_from_counts, benjamini_hochberg, check_attainable,
    counts_at_most, tie_tolerance,
)

__all__ = ["ConformalDetector"]


class ConformalDetector(OutlierMixin, BaseEstimator):
    """A detector whose threshold is calibrated on held-out ID rows: conformal OOD detection.

    Wraps any detector of the library (feature detectors on arrays, model
    detectors on images, arrays, Datasets or DataLoaders) and replaces its
    threshold. The detector's own ``offset_`` is the ``contamination``
    percentile of the scores of its training rows, which it scores as more
    in-distribution than new rows (its statistics, and often the model that
    made the features, were fitted on them), so it accepts fewer than
    ``1 - contamination`` of new ID rows. Here the threshold comes from
    **calibration rows the detector did not see**: with ``n`` calibration
    scores, ``offset_`` is the ``k``-th smallest, ``k = floor(alpha (n + 1))``,
    and for a new ID row exchangeable with the calibration rows

        ``1 - alpha <= P(predict = +1) < 1 - alpha + 1 / (n + 1)``

    (the lower bound always, the upper one when scores have no ties). The
    same scores give conformal p-values (:meth:`p_values`), and the
    Benjamini-Hochberg procedure on them calls a batch OOD with a controlled
    false discovery rate (:meth:`predict_fdr`), as in Bates, Candes, Lei,
    Romano & Sesia (2023).

    Where the calibration rows come from:

    - ``method="split"``: ``fit`` draws ``calibration_size`` of the ID rows
      at random, fits a clone of ``detector`` on the others and calibrates on
      them (split conformal).
    - ``method="cross"``: ``cv`` folds of the ID rows; a clone of ``detector``
      is fitted without each fold and scores it, so every ID row calibrates
      and every row but its fold fits (cross-conformal; Vovk, 2015). A new
      row is scored by each of the ``K`` detectors and compared with the
      fold that detector did not see: ``p = (1 + sum_k #{i in fold k :
      S_i <= s_k(x)}) / (n + 1)``. Its worst-case guarantee is weaker than
      split's, ``P(accept) >= 1 - 2 alpha - O(K / n)`` (the CV+ bound of
      Barber, Candes, Ramdas & Tibshirani, 2021), and close to ``1 - alpha``
      in practice; the FDR and ``delta`` guarantees need a held-out split.
    - ``detector`` wrapped in :class:`sklearn.frozen.FrozenEstimator` (as
      for :class:`~sklearn.calibration.CalibratedClassifierCV`): the detector
      is fitted already, and **every** ID row given to ``fit`` calibrates it
      (``method``, ``cv`` and ``calibration_size`` are ignored); any input the
      detector scores works, a one-shot iterator included. This is the way
      to calibrate on rows you hold out yourself.

    What the guarantee assumes: calibration rows and new ID rows are
    exchangeable (e.g. drawn independently from the same distribution), and
    neither the detector nor anything upstream (the network that extracts
    the features) was fitted on the calibration rows. Features of the
    network's own training images do not qualify: the network fits them
    better than new images, so ``method="split"`` or ``"cross"`` on them
    still accepts fewer new ID rows than promised. Hold out ID images the
    network never saw and use a ``FrozenEstimator``.

    Rows with a negative label in ``y`` are OOD: they are given to the
    detector's ``fit`` (which ignores them, or uses them where it is made to)
    and never calibrate. Labels that the data yields (a Dataset of
    ``(image, label)`` items) reach the detector but are not read here: pass
    ``y`` to keep OOD rows out of the calibration rows.

    Parameters
    ----------
    detector : estimator
        An OOD detector (``fit``, ``score_samples``; higher = more ID), or a
        fitted one wrapped in :class:`~sklearn.frozen.FrozenEstimator`.
        ``method="split"`` and ``"cross"`` fit clones of it; its own
        ``contamination`` and ``offset_`` play no part.
    method : {"split", "cross"}, default="split"
        Where the calibration rows come from (see above).
    calibration_size : float in (0, 1) or int >= 1, default=0.2
        ``method="split"``: the share (rounded up) or number of ID rows that
        calibrate. ``alpha`` needs at least ``1 / alpha - 1`` of them (19 at
        0.05); the accepted share on new data fluctuates around ``1 - alpha``
        with a standard deviation of about ``sqrt(alpha (1 - alpha) / n)``
        over calibration draws (0.7 points for 1,000 rows at ``alpha=0.05``).
    cv : int, cross-validation generator or iterable, default=5
        ``method="cross"``: an int ``K`` gives ``KFold(K, shuffle=True,
        random_state=random_state)`` over the ID rows; a splitter or an
        iterable of ``(train, test)`` index arrays (positions among the ID
        rows) must give test folds that partition the ID rows.
    alpha : float in (0, 1), default=0.05
        Share of ID rows the threshold may reject (the ``contamination`` of
        the detectors, guaranteed here): ``predict`` accepts an ID row with
        probability ``>= 1 - alpha``.
    delta : float in (0, 1), default=None
        ``None``: the guarantees hold on average over the draw of the
        calibration rows. A float: calibration-conditional p-values (Bates et
        al., 2023, Section 3; :func:`~sklearn_ood.conformal.simes_band`):
        with probability ``>= 1 - delta`` over the calibration rows, the
        p-values are valid given them, so ``predict`` accepts ID rows with
        probability ``>= 1 - alpha`` given the calibration rows (a higher
        threshold, from more rows: ``alpha`` needs at least
        ``2 ln(delta) / ln(1 - alpha)`` of them). Not with ``method="cross"``.
    random_state : int, RandomState instance or None, default=None
        Seeds the calibration draw (``"split"``) or the folds (``"cross"``
        with an int ``cv``).

    Attributes
    ----------
    detectors_ : list of estimator
        The fitted detectors: one (``"split"``, or the frozen detector), or
        one per fold (``"cross"``).
    calibration_rows_ : list of ndarray of int
        For each detector, the rows of ``X`` (positions in the ``fit`` input)
        that calibrate it, in increasing order of their scores.
    calibration_scores_ : list of ndarray of float
        For each detector, the scores of those rows, sorted.
    n_calibration_ : int
        Number of calibration rows, ``n``.
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``,
        ``predict = +1`` iff ``decision_function >= 0`` iff ``p_values > alpha``.
        The ``k``-th smallest calibration score (less a round-off tolerance
        of ``1e-12`` of the scores' magnitude, under which scores count as
        tied: a row scored again in another batch keeps its decision); with
        ``method="cross"``,
        where ``score_samples`` is the p-value, the smallest accepted p-value
        ``(k + 1) / (n + 1)``.
    n_features_in_ : int
        Number of features (channels for images) the detector saw in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of those features; defined only when the detector has them.

    See Also
    --------
    sklearn_ood.conformal.conformal_p_values : The p-values, from scores.
    sklearn_ood.conformal.benjamini_hochberg : The FDR procedure.
    sklearn.calibration.CalibratedClassifierCV : The same idea for a
        classifier's probabilities.

    References
    ----------
    Bates, Candes, Lei, Romano & Sesia, "Testing for outliers with conformal
    p-values", Annals of Statistics 51(1), 2023.
    Vovk, "Cross-conformal predictors", Annals of Mathematics and Artificial
    Intelligence 74, 2015.
    Barber, Candes, Ramdas & Tibshirani, "Predictive inference with the
    jackknife+", Annals of Statistics 49(1), 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import ConformalDetector, Mahalanobis
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(500, 3))
    >>> det = ConformalDetector(Mahalanobis(), calibration_size=100, random_state=0).fit(X)
    >>> det.n_calibration_, len(det.detectors_)
    (100, 1)
    >>> X_new = np.vstack([rng.normal(size=(2, 3)), [[6.0, 6.0, 6.0]]])
    >>> det.predict(X_new)
    array([ 1,  1, -1])
    >>> det.p_values(X_new).round(3)
    array([0.337, 0.485, 0.01 ])

    A detector fitted on other rows, calibrated on held-out ones:

    >>> from sklearn.frozen import FrozenEstimator
    >>> fitted = Mahalanobis().fit(X[:400])
    >>> det = ConformalDetector(FrozenEstimator(fitted)).fit(X[400:])
    >>> det.n_calibration_
    100
    """

    _parameter_constraints = {
        "detector": [HasMethods(["fit", "score_samples"])],
        "method": [StrOptions({"split", "cross"})],
        "calibration_size": [Interval(RealNotInt, 0, 1, closed="neither"),
                             Interval(Integral, 1, None, closed="left")],
        "cv": ["cv_object"],
        "alpha": [Interval(Real, 0, 1, closed="neither")],
        "delta": [None, Interval(Real, 0, 1, closed="neither")],
        "random_state": ["random_state"],
    }

    def __init__(self, detector, *, method="split", calibration_size=0.2, cv=5, alpha=0.05,
                 delta=None, random_state=None):
        self.detector = detector
        self.method = method
        self.calibration_size = calibration_size
        self.cv = cv
        self.alpha = alpha
        self.delta = delta
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None):
        """Fit the detector(s) and calibrate the threshold on rows they did not see.

        Nothing is stored unless every step succeeds: an error leaves the
        estimator as it was.

        Parameters
        ----------
        X : array-like, Dataset or DataLoader
            What the detector takes: features, maps or images; for
            ``"split"`` and ``"cross"`` an input whose rows can be selected
            (arrays and lazily sliced array-likes, pandas DataFrames,
            map-style Datasets, a DataLoader reading one in order). A frozen
            detector takes anything it scores.
        y : array-like of shape (n_samples,), default=None
            Class labels; rows with a negative label are OOD: they go to the
            detector's ``fit`` and never calibrate.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        frozen = isinstance(self.detector, FrozenEstimator)
        if isinstance(getattr(X, "dtype", None), np.dtype) and np.issubdtype(X.dtype,
                                                                             np.complexfloating):
            raise ValueError("Complex data not supported: X must hold real numbers.")
        if self.delta is not None and self.method == "cross" and not frozen:
            raise ValueError(
                "delta (calibration-conditional p-values) needs the calibration scores of one "
                "detector on rows it did not see; with method='cross' each row is scored by "
                "another detector, which the theorem does not cover. Use method='split' or a "
                "FrozenEstimator, or delta=None."
            )
        is_id = None
        if y is not None:
            y, is_id = check_labels(y, n_rows(X))
        if frozen and (is_id is None or is_id.all()):
            folds = [(None, None)]  # every row calibrates: hand X over as it is
        else:
            folds = self._folds(X, y, is_id, frozen)
            check_attainable(sum(len(calib) for _, calib in folds), self.alpha, self.delta)

        detectors, rows, scores = [], [], []
        for fit_rows, calib_rows in folds:
            detector = self.detector if frozen else clone(self.detector)
            if not frozen:
                detector.fit(take_rows(X, fit_rows), None if y is None else y[fit_rows])
            calib = X if calib_rows is None else take_rows(X, calib_rows)
            s = np.asarray(detector.score_samples(calib), dtype=np.float64)
            if calib_rows is None:
                calib_rows = np.arange(s.size)
            _check_finite(s, calib_rows, detector)
            order = np.argsort(s, kind="stable")
            detectors.append(detector)
            rows.append(np.asarray(calib_rows)[order])
            scores.append(s[order])

        n = sum(s.size for s in scores)
        k = check_attainable(n, self.alpha, self.delta)
        if len(detectors) == 1:
            offset = float(scores[0][k - 1] - tie_tolerance(scores[0]))
        else:
            offset = (k + 1.0) / (n + 1.0)
        self.detectors_, self.calibration_rows_, self.calibration_scores_ = \
            detectors, rows, scores
        self.n_calibration_, self.offset_ = n, offset
        for name in ("n_features_in_", "feature_names_in_"):
            if hasattr(detectors[0], name):
                setattr(self, name, getattr(detectors[0], name))
        return self

    def _folds(self, X, y, is_id, frozen):
        """``(fit_rows, calibration_rows)`` pairs of row indices of ``X``."""
        n = n_rows(X)
        id_rows = np.arange(n) if is_id is None else np.flatnonzero(is_id)
        n_id = id_rows.size
        if frozen:
            return [(None, id_rows)]
        if n_id < 2:
            raise ValueError(
                f"ConformalDetector(method={self.method!r}) needs at least 2 in-distribution "
                f"rows (one to fit the detector, one to calibrate); X has {n_id} sample(s)"
                + ("" if is_id is None else " with a non-negative label") + "."
            )
        rng = check_random_state(self.random_state)
        if self.method == "split":
            size = self.calibration_size
            n_calib = int(np.ceil(size * n_id)) if isinstance(size, Real) and not \
                isinstance(size, Integral) else int(size)
            if n_calib >= n_id:
                raise ValueError(
                    f"calibration_size={size!r} leaves no row to fit the detector on: X has "
                    f"{n_id} in-distribution rows. Pass a smaller calibration_size."
                )
            calib = np.sort(rng.permutation(id_rows)[:n_calib])
            return [(np.setdiff1d(np.arange(n), calib, assume_unique=True), calib)]
        cv = self.cv
        if isinstance(cv, Integral) or cv is None:
            cv = KFold(5 if cv is None else cv, shuffle=True,
                       random_state=rng.randint(np.iinfo(np.int32).max))
        cv = check_cv(cv)
        y_id = None if y is None else y[id_rows]
        tests = [np.asarray(test) for _, test in cv.split(np.zeros((n_id, 1)), y_id)]
        seen = np.concatenate(tests) if tests else np.empty(0, int)
        if seen.size != n_id or not np.array_equal(np.sort(seen), np.arange(n_id)):
            raise ValueError(
                f"cv={self.cv!r} does not give test folds that partition the {n_id} "
                "in-distribution rows (each row in exactly one test fold), which "
                "cross-conformal calibration needs; use KFold or StratifiedKFold."
            )
        everything = np.arange(n)
        return [(np.setdiff1d(everything, id_rows[test]), np.sort(id_rows[test]))
                for test in tests]

    def _counts(self, X):
        """``#{calibration scores <= s}`` of each row, summed over the detectors."""
        check_is_fitted(self)
        if len(self.detectors_) > 1 and hasattr(X, "__next__"):
            raise TypeError(
                f"X is a one-shot iterator, but the {len(self.detectors_)} detectors of "
                "method='cross' each read it; pass an array, a Dataset or a DataLoader."
            )
        counts = 0
        for detector, calib in zip(self.detectors_, self.calibration_scores_):
            counts = counts + counts_at_most(calib, _check_scores(detector.score_samples(X)))
        return counts

    def p_values(self, X):
        """Conformal p-values: small values are evidence that a row is OOD.

        ``p = (1 + #{calibration scores <= score}) / (n + 1)`` (summed over
        the folds' detectors for ``"cross"``), or the calibration-conditional
        correction of it when ``delta`` is set. For an ID row exchangeable with
        the calibration rows, ``P(p <= t) <= t`` for every ``t``.

        Parameters
        ----------
        X : array-like, Dataset or DataLoader
            What the detector scores.

        Returns
        -------
        p_values : ndarray of shape (n_samples,)
        """
        return _p_values_from_counts(self._counts(X), self.n_calibration_, self.delta)

    def score_samples(self, X):
        """The detector's score (higher = more ID); for ``method="cross"`` the p-value.

        With one detector, its own ``score_samples``: the ranking (hence
        AUROC and the other threshold-free metrics) is the detector's. With
        ``method="cross"`` the folds' detectors give scores on different
        scales, and their common scale is the cross-conformal p-value.

        Parameters
        ----------
        X : array-like, Dataset or DataLoader
            What the detector scores.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        if len(self.detectors_) == 1:
            return np.asarray(self.detectors_[0].score_samples(X), dtype=np.float64)
        return self.p_values(X)

    def decision_function(self, X):
        """``score_samples(X) - offset_``: negative for the rows called OOD.

        Parameters
        ----------
        X : array-like, Dataset or DataLoader

        Returns
        -------
        decision : ndarray of shape (n_samples,)
        """
        return self.score_samples(X) - self.offset_

    def predict(self, X):
        """+1 (ID) where the p-value is above ``alpha``, -1 (OOD) elsewhere.

        Parameters
        ----------
        X : array-like, Dataset or DataLoader

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        return np.where(self.decision_function(X) >= 0, 1, -1)

    def predict_fdr(self, X, *, fdr=0.1):
        """+1 / -1 for a batch, with the false discovery rate of the -1 rows controlled.

        The Benjamini-Hochberg procedure on the rows' conformal p-values
        (:func:`~sklearn_ood.conformal.benjamini_hochberg`): the expected
        share of ID rows among the rows called OOD is at most ``fdr`` (times
        the share of ID rows in the batch), for ID rows exchangeable with the
        calibration rows (Bates et al., 2023). A row's label depends on the
        rest of the batch. Unlike ``predict``, which rejects about ``alpha``
        of the ID rows whatever the batch, a batch of ID rows only gets no
        -1 with probability ``>= 1 - fdr``. For ``method="cross"`` the
        guarantee is not proven.

        Parameters
        ----------
        X : array-like, Dataset or DataLoader
            The batch.
        fdr : float in (0, 1), default=0.1
            Target false discovery rate.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            -1 for the rows called OOD, +1 elsewhere.
        """
        _check_alpha(fdr, "fdr")
        return np.where(benjamini_hochberg(self.p_values(X), fdr), -1, 1)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = get_tags(self.detector)
        tags.input_tags = copy.copy(inner.input_tags)
        tags.input_tags.allow_nan = False
        tags.target_tags.required = inner.target_tags.required
        return tags


def _check_finite(scores, rows, detector):
    bad = np.flatnonzero(~np.isfinite(scores))
    if bad.size:
        raise ValueError(
            f"{type(detector).__name__} gave {bad.size} non-finite score(s) (NaN or infinite) "
            f"on the calibration rows, e.g. on row {rows[bad[0]]} of X; conformal calibration "
            "ranks finite scores. Check the input on those rows (or the detector's parameters)."
        )
