"""Plots of OOD scores as scikit-learn displays (a leaf module).

- :class:`ScoreDistributionDisplay`: histograms of the scores of the ID rows and
  of each OOD set, with the detector's threshold, following scikit-learn's
  Display API (``from_estimator``, ``from_predictions``, ``plot``).
- :func:`plot_roc` and :func:`plot_precision_recall`: scikit-learn's own
  :class:`~sklearn.metrics.RocCurveDisplay` and
  :class:`~sklearn.metrics.PrecisionRecallDisplay`, fed with the package's
  label convention (a negative label marks an OOD row) and the positive class
  named as in :mod:`sklearn_ood.metrics` (``positive="id"`` or ``"ood"``).

matplotlib is imported inside the plotting code only: importing
``sklearn_ood`` never needs it (``pip install "sklearn-ood[plot]"``).
"""

import numbers

import numpy as np
from sklearn.metrics import PrecisionRecallDisplay, RocCurveDisplay
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import column_or_1d

from ._validation import check_labels
from .metrics import _check_positive, _is_id_and_score

__all__ = ["ScoreDistributionDisplay", "plot_precision_recall", "plot_roc"]

_SCORE_LABEL = "Score (higher = more in-distribution)"


def _pyplot(what):
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - matplotlib is a test dependency
        raise ImportError(
            f"{what} requires matplotlib; install it with pip install "
            '"sklearn-ood[plot]" (or pip install matplotlib).'
        ) from exc
    return plt


def _style(defaults, user, artist):
    """``defaults`` overridden by ``user``, matplotlib aliases (``lw``, ``ls``) resolved."""
    from matplotlib.cbook import normalize_kwargs

    return {**normalize_kwargs(defaults, artist), **normalize_kwargs(user or {}, artist)}


def _final_step(estimator):
    while isinstance(estimator, Pipeline):
        estimator = estimator[-1]
    return estimator


class ScoreDistributionDisplay:
    """Score histograms of the in-distribution rows and of each OOD set.

    One histogram per group on shared bin edges, and a vertical line at the
    detector's threshold (``offset_``: ``predict`` calls a row ID when its
    score is at least the threshold).

    It is recommended to create the display with :meth:`from_estimator` or
    :meth:`from_predictions`; all parameters are stored as attributes.

    Parameters
    ----------
    scores : list of array-like of shape (n_samples_group,)
        The scores of each group (higher means more in-distribution).
    group_names : list of str
        The legend name of each group, in the order of ``scores``.
    threshold : float, default=None
        Where to draw the threshold line (in score units); ``None`` draws none.
    name : str, default=None
        The detector's name, shown as the legend title.

    Attributes
    ----------
    hist_ : list of matplotlib.patches.StepPatch
        The histogram of each group, in the order of ``scores``.
    threshold_line_ : matplotlib.lines.Line2D or None
        The threshold line, or ``None`` when ``threshold`` is ``None``.
    bin_edges_ : ndarray of shape (n_bins + 1,)
        The bin edges shared by all the histograms.
    ax_ : matplotlib.axes.Axes
        The axes holding the plot.
    figure_ : matplotlib.figure.Figure
        The figure holding the axes.

    See Also
    --------
    ScoreDistributionDisplay.from_estimator : Plot the scores of a fitted detector.
    ScoreDistributionDisplay.from_predictions : Plot given labels and scores.
    plot_roc : ROC curve of ID-vs-OOD separation.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> from sklearn_ood.display import ScoreDistributionDisplay
    >>> display = ScoreDistributionDisplay(
    ...     scores=[[2.0, 2.5, 3.0], [0.5, 1.0]], group_names=["ID", "OOD"], threshold=1.5)
    >>> display.plot(bins=5)
    <...ScoreDistributionDisplay object at ...>
    >>> [patch.get_label() for patch in display.hist_]
    ['ID', 'OOD']
    >>> plt.close("all")
    """

    def __init__(self, *, scores, group_names, threshold=None, name=None):
        self.scores = scores
        self.group_names = group_names
        self.threshold = threshold
        self.name = name

    def _validated(self):
        if any(np.ndim(s) == 0 for s in self.scores):
            raise TypeError(
                "scores must be a list with one array of scores per group; got a single "
                "array of numbers. Wrap it in a list, or use from_predictions(y_true, score)."
            )
        scores = [column_or_1d(s).astype(np.float64) for s in self.scores]
        names = [str(n) for n in self.group_names]
        if len(scores) == 0 or len(scores) != len(names):
            raise ValueError(
                f"scores and group_names must be lists of the same, non-zero length (one "
                f"entry per group); got {len(scores)} and {len(names)}."
            )
        for s, group in zip(scores, names):
            if s.size == 0:
                raise ValueError(f"The group {group!r} has no scores.")
            if not np.all(np.isfinite(s)):
                raise ValueError(
                    f"The scores of the group {group!r} contain NaN or infinity; drop or "
                    "clip those rows before plotting."
                )
        threshold = self.threshold
        if threshold is not None:
            if not isinstance(threshold, numbers.Real) or not np.isfinite(threshold):
                raise ValueError(f"threshold must be a finite number or None; got {threshold!r}.")
            threshold = float(threshold)
        return scores, names, threshold

    def plot(self, ax=None, *, name=None, bins=50, density=True, hist_kwargs=None,
             threshold_kwargs=None):
        """Plot the histograms and the threshold.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, default=None
            The axes to plot on; ``None`` creates a new figure and axes.
        name : str, default=None
            The legend title; ``None`` uses ``self.name`` (if that is ``None``
            too, the legend has no title).
        bins : int, sequence of scalars or str, default=50
            The bins, as for :func:`numpy.histogram_bin_edges`, computed once
            on the scores of all groups together so that the histograms share
            their edges. Scores outside explicit edges are not drawn (with
            ``density=True`` a group is normalised over its scores inside the
            edges, as :func:`numpy.histogram` does, and drawn flat at zero
            when none is inside).
        density : bool, default=True
            ``True`` normalises each histogram to unit area (groups of very
            different sizes stay comparable); ``False`` draws counts.
        hist_kwargs : dict or list of dict, default=None
            Keyword arguments of :meth:`matplotlib.axes.Axes.stairs`, one dict
            for every group or a list of one dict per group. By default the
            first group (the ID rows, from the ``from_*`` methods) is filled
            and the others are outlines, coloured by the property cycle.
        threshold_kwargs : dict, default=None
            Keyword arguments of :meth:`matplotlib.axes.Axes.axvline` for the
            threshold line.

        Returns
        -------
        display : ScoreDistributionDisplay
            The display, with the artists stored as attributes.
        """
        scores, names, threshold = self._validated()
        if isinstance(hist_kwargs, list):
            if len(hist_kwargs) != len(scores):
                raise ValueError(
                    f"hist_kwargs must be a dict or a list of {len(scores)} dicts (one per "
                    f"group); got a list of {len(hist_kwargs)}."
                )
        else:
            hist_kwargs = [hist_kwargs] * len(scores)
        plt = _pyplot("ScoreDistributionDisplay.plot")
        from matplotlib.lines import Line2D
        from matplotlib.patches import StepPatch

        if ax is None:
            _, ax = plt.subplots()
        self.ax_, self.figure_ = ax, ax.figure
        name = self.name if name is None else name

        self.bin_edges_ = np.histogram_bin_edges(np.concatenate(scores), bins=bins)
        self.hist_ = []
        for i, (s, group, kwargs) in enumerate(zip(scores, names, hist_kwargs)):
            heights, _ = np.histogram(s, bins=self.bin_edges_)
            if density:  # as np.histogram(density=True), but a group outside the bins is 0
                total = heights.sum()
                heights = heights / (total * np.diff(self.bin_edges_)) if total else \
                    np.zeros(len(heights))
            defaults = dict(fill=True, alpha=0.4) if i == 0 else dict(fill=False, linewidth=1.5)
            style = _style({"label": group, **defaults}, kwargs, StepPatch)
            self.hist_.append(ax.stairs(heights, self.bin_edges_, **style))

        self.threshold_line_ = None
        if threshold is not None:
            style = _style(dict(color="black", linestyle="--", linewidth=1.2,
                                label=f"threshold = {threshold:.4g}"),
                           threshold_kwargs, Line2D)
            self.threshold_line_ = ax.axvline(threshold, **style)

        ax.set(xlabel=_SCORE_LABEL, ylabel="Density" if density else "Count")
        ax.legend(title=name)
        return self

    @classmethod
    def from_predictions(cls, y_true, score, *, id_name="ID", ood_names=None,
                         threshold=None, name=None, ax=None, bins=50, density=True,
                         hist_kwargs=None, threshold_kwargs=None):
        """Plot the score histograms given the labels and the scores.

        The in-distribution rows form the first group; each distinct negative
        label forms its own OOD group (``-1``, ``-2``, ... in that order), so
        that "ID vs each OOD set" is one call. Give all OOD rows the same
        label (e.g. ``np.where(y < 0, -1, y)``) to pool them.

        Parameters
        ----------
        y_true : array-like of shape (n_samples,)
            Labels under the package's convention: a label ``>= 0`` or ``NaN``
            marks an ID row, a negative label an OOD row (a boolean array is an
            "is ID" mask, its OOD rows getting label ``-1``).
        score : array-like of shape (n_samples,)
            Higher means more in-distribution (``score_samples`` of a detector).
        id_name : str, default="ID"
            The legend name of the in-distribution rows.
        ood_names : str or dict, default=None
            The legend names of the OOD sets: a dict from negative label to
            name (e.g. ``{-1: "textures", -2: "SVHN"}``; labels absent from
            ``y_true`` are ignored, so one table can serve several plots), or a
            str when ``y_true`` holds one OOD label. An OOD set without a name
            is called ``"OOD"`` when it is the only one, ``"OOD (-2)"`` (its
            label) otherwise.
        threshold : float, default=None
            Where to draw the threshold line, e.g. a detector's ``offset_``.
        name : str, default=None
            The detector's name, shown as the legend title.
        ax : matplotlib.axes.Axes, default=None
            The axes to plot on; ``None`` creates a new figure and axes.
        bins : int, sequence of scalars or str, default=50
            See :meth:`plot`.
        density : bool, default=True
            See :meth:`plot`.
        hist_kwargs : dict or list of dict, default=None
            See :meth:`plot`.
        threshold_kwargs : dict, default=None
            See :meth:`plot`.

        Returns
        -------
        display : ScoreDistributionDisplay

        Examples
        --------
        >>> import matplotlib; matplotlib.use("Agg")
        >>> import matplotlib.pyplot as plt
        >>> from sklearn_ood.display import ScoreDistributionDisplay
        >>> y = [0, 1, 2, -1, -1, -2]
        >>> score = [3.0, 2.5, 2.0, 1.0, 0.5, 2.2]
        >>> display = ScoreDistributionDisplay.from_predictions(
        ...     y, score, ood_names={-1: "textures", -2: "SVHN"}, threshold=1.8)
        >>> display.group_names
        ['ID', 'textures', 'SVHN']
        >>> display.scores[1]
        array([1. , 0.5])
        >>> plt.close("all")
        """
        scores, names = _groups(y_true, score, id_name=id_name, ood_names=ood_names)
        display = cls(scores=scores, group_names=names, threshold=threshold, name=name)
        return display.plot(ax=ax, bins=bins, density=density, hist_kwargs=hist_kwargs,
                            threshold_kwargs=threshold_kwargs)

    @classmethod
    def from_estimator(cls, estimator, X, y, *, id_name="ID", ood_names=None,
                       plot_threshold=True, name=None, ax=None, bins=50, density=True,
                       hist_kwargs=None, threshold_kwargs=None):
        """Plot the score histograms of a fitted detector on labelled data.

        Calls ``estimator.score_samples(X)`` and, with ``plot_threshold=True``,
        marks the detector's threshold ``offset_`` (``decision_function(X) =
        score_samples(X) - offset_``). A :class:`~sklearn.pipeline.Pipeline`
        is scored as a whole; its threshold and name are its last step's.

        Parameters
        ----------
        estimator : estimator instance
            A fitted detector (or a pipeline ending in one) with ``score_samples``.
        X : array-like
            The input of ``estimator.score_samples``.
        y : array-like of shape (n_samples,)
            Labels of the rows of ``X``; see :meth:`from_predictions`.
        id_name : str, default="ID"
            See :meth:`from_predictions`.
        ood_names : str or dict, default=None
            See :meth:`from_predictions`.
        plot_threshold : bool, default=True
            Draw the line at ``offset_`` when the detector has one.
        name : str, default=None
            The legend title; ``None`` uses the detector's class name.
        ax : matplotlib.axes.Axes, default=None
            The axes to plot on; ``None`` creates a new figure and axes.
        bins : int, sequence of scalars or str, default=50
            See :meth:`plot`.
        density : bool, default=True
            See :meth:`plot`.
        hist_kwargs : dict or list of dict, default=None
            See :meth:`plot`.
        threshold_kwargs : dict, default=None
            See :meth:`plot`.

        Returns
        -------
        display : ScoreDistributionDisplay

        Examples
        --------
        >>> import matplotlib; matplotlib.use("Agg")
        >>> import matplotlib.pyplot as plt
        >>> import numpy as np
        >>> from sklearn_ood import KNN
        >>> from sklearn_ood.display import ScoreDistributionDisplay
        >>> rng = np.random.default_rng(0)
        >>> X_id, X_ood = rng.normal(size=(60, 4)), rng.normal(3, 1, size=(30, 4))
        >>> knn = KNN(n_neighbors=5).fit(X_id[:40])
        >>> X, y = np.vstack([X_id[40:], X_ood]), np.r_[np.zeros(20), -np.ones(30)]
        >>> display = ScoreDistributionDisplay.from_estimator(knn, X, y, ood_names="shifted")
        >>> display.threshold == knn.offset_, display.name
        (True, 'KNN')
        >>> plt.close("all")
        """
        if not hasattr(estimator, "score_samples"):
            raise TypeError(
                f"{type(estimator).__name__} has no score_samples; from_estimator needs a "
                "fitted OOD detector. Use from_predictions(y, score) for other scores."
            )
        n_rows = getattr(X, "shape", (None,))[0]
        if n_rows is not None and len(column_or_1d(y)) != n_rows:  # before a costly scoring
            raise ValueError(f"X has {n_rows} rows but y has {len(column_or_1d(y))} labels.")
        score = estimator.score_samples(X)
        detector = _final_step(estimator)
        threshold = getattr(detector, "offset_", None) if plot_threshold else None
        name = type(detector).__name__ if name is None else name
        return cls.from_predictions(
            y, score, id_name=id_name, ood_names=ood_names, threshold=threshold, name=name,
            ax=ax, bins=bins, density=density, hist_kwargs=hist_kwargs,
            threshold_kwargs=threshold_kwargs,
        )


def _groups(y_true, score, *, id_name, ood_names):
    """Split ``score`` into the ID rows and one group per negative label."""
    score = column_or_1d(score).astype(np.float64)
    y = column_or_1d(y_true)
    if len(y) != len(score):
        raise ValueError(
            f"y_true and score must have one entry per row; got {len(y)} labels and "
            f"{len(score)} scores."
        )
    y, is_id = check_labels(y, len(score), name="y_true")
    n_bad = int(np.sum(~np.isfinite(score)))
    if n_bad:
        raise ValueError(
            f"score contains {n_bad} NaN or infinite values; drop or clip those rows "
            "before plotting."
        )
    if not is_id.any():
        raise ValueError(
            "y_true marks no row as in-distribution; the plot needs ID rows (label >= 0, "
            "or NaN for an unknown class) as the reference."
        )
    ood_labels = np.where(is_id, 0.0, -1.0) if y.dtype == bool else y
    labels = np.unique(ood_labels[~is_id])[::-1]  # -1, -2, ...
    if isinstance(ood_names, str):
        if len(labels) != 1:
            raise ValueError(
                f"ood_names is one name ({ood_names!r}) but y_true has {len(labels)} OOD "
                f"labels ({', '.join(f'{v:g}' for v in labels)}); pass a dict from label "
                "to name."
            )
        ood_names = {labels[0]: ood_names}
    elif ood_names is None:
        ood_names = {}
    elif isinstance(ood_names, dict):
        wrong = [k for k in ood_names if not (isinstance(k, numbers.Real) and k < 0)]
        if wrong:
            raise ValueError(
                f"ood_names maps negative labels (the OOD sets) to names; got the keys "
                f"{wrong}. Name the ID rows with id_name."
            )
    else:
        raise TypeError(
            f"ood_names must be None, a str or a dict from negative label to name; got "
            f"{type(ood_names).__name__}."
        )
    default = "OOD" if len(labels) == 1 else "OOD ({:g})"
    scores = [score[is_id]] + [score[~is_id & (ood_labels == v)] for v in labels]
    names = [str(id_name)] + [str(ood_names.get(v, default.format(v))) for v in labels]
    return scores, names


def _binary(y_true, score, positive):
    """The ID/OOD target, the ranking score and ``pos_label`` for scikit-learn."""
    _check_positive(positive)
    is_id, score = _is_id_and_score(y_true, score)
    target = np.where(is_id, "ID", "OOD")
    if positive == "id":
        return target, score, "ID"
    return target, -score, "OOD"  # higher score = more ID, so -score ranks OOD first


def _forwarded(kwargs, function):
    if "pos_label" in kwargs:
        raise TypeError(
            f"{function} sets pos_label from positive='id' or 'ood'; do not pass pos_label."
        )


def plot_roc(y_true, score, *, positive="id", name=None, ax=None, **kwargs):
    """ROC curve of ID-vs-OOD separation, as scikit-learn's ``RocCurveDisplay``.

    The labels become the binary target ``"ID"`` / ``"OOD"`` and the
    positive class is passed as ``pos_label`` (shown in the axis labels).
    With ``positive="ood"`` the curve ranks by ``-score`` (higher score means
    more ID): its TPR is the fraction of OOD rows detected, its FPR the
    fraction of ID rows rejected. The curve is exact, over all thresholds
    (``drop_intermediate=False`` unless given). Its ``roc_auc`` equals
    :func:`sklearn_ood.metrics.auroc` for either positive class.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Labels; negative marks OOD (or a boolean "is ID" mask). Several OOD
        labels are pooled; call once per OOD set, on the same ``ax``, to
        compare them.
    score : array-like of shape (n_samples,)
        Higher means more in-distribution.
    positive : {"id", "ood"}, default="id"
        The positive class.
    name : str, default=None
        The curve's legend name; ``None`` gives ``"Detector"``.
    ax : matplotlib.axes.Axes, default=None
        The axes to plot on; ``None`` creates a new figure and axes.
    **kwargs : dict
        Other keyword arguments of
        :meth:`~sklearn.metrics.RocCurveDisplay.from_predictions`, e.g.
        ``plot_chance_level=True`` or ``curve_kwargs`` (not ``pos_label``).

    Returns
    -------
    display : sklearn.metrics.RocCurveDisplay

    See Also
    --------
    sklearn_ood.metrics.auroc : The area under this curve.
    sklearn_ood.metrics.fpr_at_tpr : The FPR read on this curve.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> from sklearn_ood.display import plot_roc
    >>> display = plot_roc([0, 1, -1, -1], [0.9, 0.8, 0.85, 0.1], name="Energy")
    >>> display.roc_auc
    0.75
    >>> display.ax_.get_xlabel()
    'False Positive Rate (Positive label: ID)'
    >>> plt.close("all")
    """
    _forwarded(kwargs, "plot_roc")
    target, ranking, pos_label = _binary(y_true, score, positive)
    kwargs.setdefault("drop_intermediate", False)
    return RocCurveDisplay.from_predictions(
        target, ranking, pos_label=pos_label, name="Detector" if name is None else name,
        ax=ax, **kwargs,
    )


def plot_precision_recall(y_true, score, *, positive="id", name=None, ax=None, **kwargs):
    """Precision-recall curve, as scikit-learn's ``PrecisionRecallDisplay``.

    ``positive="id"`` gives the AUPR-In curve (ID positive, ranked by
    ``score``), ``positive="ood"`` the AUPR-Out curve (OOD positive, ranked
    by ``-score``). The labels become the binary target ``"ID"`` / ``"OOD"``
    and the positive class is passed as ``pos_label``. Its
    ``average_precision`` equals :func:`sklearn_ood.metrics.aupr` with the
    same ``positive``.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Labels; negative marks OOD (or a boolean "is ID" mask). Several OOD
        labels are pooled.
    score : array-like of shape (n_samples,)
        Higher means more in-distribution.
    positive : {"id", "ood"}, default="id"
        The positive class.
    name : str, default=None
        The curve's legend name; ``None`` gives ``"Detector"``.
    ax : matplotlib.axes.Axes, default=None
        The axes to plot on; ``None`` creates a new figure and axes.
    **kwargs : dict
        Other keyword arguments of
        :meth:`~sklearn.metrics.PrecisionRecallDisplay.from_predictions`, e.g.
        ``plot_chance_level=True`` (the positive class's prevalence) or
        ``curve_kwargs`` (not ``pos_label``).

    Returns
    -------
    display : sklearn.metrics.PrecisionRecallDisplay

    See Also
    --------
    sklearn_ood.metrics.aupr : The average precision of this curve.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> from sklearn_ood.display import plot_precision_recall
    >>> display = plot_precision_recall([0, 0, -1], [0.9, 0.1, 0.5], positive="ood")
    >>> float(display.average_precision)
    0.5
    >>> display.ax_.get_xlabel()
    'Recall (Positive label: OOD)'
    >>> plt.close("all")
    """
    _forwarded(kwargs, "plot_precision_recall")
    target, ranking, pos_label = _binary(y_true, score, positive)
    return PrecisionRecallDisplay.from_predictions(
        target, ranking, pos_label=pos_label, name="Detector" if name is None else name,
        ax=ax, **kwargs,
    )
