"""Choose a detector without OOD data: several pseudo-OOD sources, one rule.

A single corruption is one guess at what OOD will look like. This module
scores each candidate detector on several *sources* of pseudo-OOD and
combines them with one rule:

- ``"held_out"``: ID classes the detector was not fitted on
  (:mod:`sklearn_ood.held_out_classes`), a semantic, near-OOD source;
- ``"jigsaw"``, ``"noise"``, ``"blur"``, ``"permute"``: corrupted copies of
  the ID images (:func:`~sklearn_ood.pseudo_ood.make_pseudo_ood`), which
  keep some of their low-level statistics and break others.

:func:`make_pseudo_ood_sources` stacks the ID images and one set of
corrupted copies per corruption, labelled ``-1, -2, ...`` in the order given
(any negative label is OOD, so every scorer of :mod:`sklearn_ood.metrics`
still works on them). :class:`SourceScorer` scores one source in a fold:
the ID rows of the classes the detector saw in ``fit`` against the rows of
its source. :func:`combine_sources` and :class:`SelectionRule` (a ``refit``
callable for ``GridSearchCV``) turn the per-source scores into one choice.
"""

from numbers import Integral

import numpy as np
from scipy.stats import rankdata

from ._validation import check_labels
from .metrics import auroc, aupr, fpr_at_tpr
from .pseudo_ood import make_pseudo_ood

__all__ = ["CORRUPTIONS", "RULES", "SOURCES", "SelectionRule", "SourceScorer",
           "combine_sources", "make_pseudo_ood_sources", "source_scorers"]

#: The corruption sources, in their label order (``-1, -2, ...``).
CORRUPTIONS = ("jigsaw", "noise", "blur", "permute")
#: Every source; ``"held_out"`` needs class labels.
SOURCES = ("held_out", *CORRUPTIONS)
#: How :func:`combine_sources` combines per-source ranks.
RULES = ("worst_rank", "mean_rank")

_METRICS = {
    "fpr95": (lambda y, s: fpr_at_tpr(y, s, tpr=0.95, positive="id"), -1),
    "auroc": (auroc, 1),
    "aupr_in": (lambda y, s: aupr(y, s, positive="id"), 1),
    "aupr_out": (lambda y, s: aupr(y, s, positive="ood"), 1),
}


def _corruptions(sources):
    """The corruption sources among ``sources``, in order (held-out classes left out)."""
    return [s for s in sources if s != "held_out"]


def _check_sources(sources):
    sources = (sources,) if isinstance(sources, str) else tuple(sources)
    unknown = [s for s in sources if s not in SOURCES]
    if unknown or not sources or len(set(sources)) != len(sources):
        raise ValueError(f"sources must be distinct names among {list(SOURCES)}; got "
                         f"{list(sources)}.")
    return sources


def make_pseudo_ood_sources(X, y=None, *, sources=CORRUPTIONS, ratio=1.0, random_state=None):
    """ID images followed by one set of corrupted copies per corruption source.

    The copies of the ``i``-th corruption of ``sources`` (``"held_out"``, not
    a corruption, is skipped) are labelled ``-(i + 1)``; each set is
    :func:`~sklearn_ood.pseudo_ood.make_pseudo_ood` of ``X`` with that method,
    seeded by its own draw of ``random_state``.

    Parameters
    ----------
    X : array-like of shape (n_samples, channels, height, width)
        ID images, with the model's usual preprocessing.
    y : array-like of shape (n_samples,), default=None
        Their class labels (``None``: ``NaN``, class unknown).
    sources : sequence of str, default=CORRUPTIONS
        Names among :data:`SOURCES`.
    ratio : float, default=1.0
        Copies per ID image and per corruption.
    random_state : int, RandomState instance or None, default=None

    Returns
    -------
    X_aug : ndarray
        ``X`` followed by the corrupted copies, source after source.
    y_aug : ndarray
        ``y`` followed by ``-1`` (first corruption), ``-2``, ...

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood.selection import make_pseudo_ood_sources
    >>> X = np.random.default_rng(0).random((3, 1, 6, 6))
    >>> X_aug, y_aug = make_pseudo_ood_sources(X, [0, 1, 1], sources=["held_out", "jigsaw",
    ...                                                               "blur"], random_state=0)
    >>> X_aug.shape, y_aug
    ((9, 1, 6, 6), array([ 0,  1,  1, -1, -1, -1, -2, -2, -2]))
    """
    corruptions = _corruptions(_check_sources(sources))
    rng = np.random.RandomState(random_state) if not isinstance(
        random_state, np.random.RandomState) else random_state
    parts_X, parts_y = [], []
    for i, method in enumerate(corruptions):
        X_aug, y_aug = make_pseudo_ood(X, y, method=method, ratio=ratio,
                                       random_state=rng.randint(np.iinfo(np.int32).max))
        n = int(np.sum(~(y_aug < 0)))
        if i == 0:
            parts_X.append(X_aug[:n])
            parts_y.append(y_aug[:n])
        parts_X.append(X_aug[n:])
        parts_y.append(np.full(len(y_aug) - n, -(i + 1), dtype=y_aug.dtype))
    if not corruptions:
        raise ValueError("sources names no corruption; held-out classes need no images.")
    return np.concatenate(parts_X), np.concatenate(parts_y)


def source_rows(y, source, seen=None):
    """The ID and OOD rows of one source: ``(is_id, is_ood)`` boolean masks.

    ID: the ID rows (``y >= 0``) of the classes in ``seen`` (every ID row
    when ``seen`` is ``None``). OOD: for ``"held_out"``, the ID rows of the
    other classes; for a negative integer label, the rows with that label.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([0, 1, 2, -1, -2])
    >>> source_rows(y, "held_out", seen=[0, 1])
    (array([ True,  True, False, False, False]), array([False, False,  True, False, False]))
    >>> source_rows(y, -2, seen=[0, 1])[1]
    array([False, False, False, False,  True])
    """
    y, is_id = check_labels(y, len(y))
    known = is_id if seen is None else is_id & np.isin(y, np.asarray(seen))
    if isinstance(source, str):
        if source != "held_out":
            raise ValueError(f"source must be 'held_out' or a negative integer label; got "
                             f"{source!r}.")
        return known, is_id & ~known
    return known, ~is_id & (y == source)


class SourceScorer:
    """Scorer of one pseudo-OOD source, for ``GridSearchCV(scoring=...)``.

    ``scorer(estimator, X, y)`` scores the rows of one source against the ID
    rows of the classes the estimator was fitted on (its ``classes_``, e.g.
    of :class:`~sklearn_ood.held_out_classes.ClassSubsetDetector`; every ID
    row when it has none): ``"held_out"`` reads the ID rows of the other
    classes as OOD, a negative integer the rows with that label (the
    corruptions of :func:`make_pseudo_ood_sources`). Rows of other sources are
    ignored. It ranks by ``score_samples`` (``decision_function`` for an
    estimator without it). Greater is better, as scikit-learn maximises: FPR95
    is negated.

    Parameters
    ----------
    source : "held_out" or negative int
    metric : {"fpr95", "auroc", "aupr_in", "aupr_out"}, default="fpr95"

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import MaxLogit
    >>> det = MaxLogit().fit(np.zeros((1, 2)))
    >>> X = np.array([[3.0, 0.0], [2.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    >>> SourceScorer(-1, "auroc")(det, X, np.array([0, 0, -1, -2]))
    1.0
    """

    def __init__(self, source, metric="fpr95"):
        if metric not in _METRICS:
            raise ValueError(f"metric must be one of {list(_METRICS)}; got {metric!r}.")
        if not (source == "held_out" or (isinstance(source, Integral)
                                         and not isinstance(source, bool) and source < 0)):
            raise ValueError(f"source must be 'held_out' or a negative integer label; got "
                             f"{source!r}.")
        self.source = source
        self.metric = metric

    def __repr__(self):
        return f"SourceScorer({self.source!r}, {self.metric!r})"

    def __call__(self, estimator, X, y):
        is_id, is_ood = source_rows(np.asarray(y), self.source,
                                    getattr(estimator, "classes_", None))
        if not is_id.any() or not is_ood.any():
            hint = (" Wrap the detector in ClassSubsetDetector and split with "
                    "HeldOutClassSplit, so that each fold leaves classes out."
                    if self.source == "held_out" else "")
            raise ValueError(f"SourceScorer({self.source!r}) found {int(is_id.sum())} ID and "
                             f"{int(is_ood.sum())} OOD rows in the test fold; it needs both."
                             + hint)
        rows = np.flatnonzero(is_id | is_ood)
        score = getattr(estimator, "score_samples", None) or estimator.decision_function
        scores = score(X[rows] if hasattr(X, "shape") else [X[i] for i in rows])
        metric, sign = _METRICS[self.metric]
        return sign * metric(is_id[rows], scores)


def source_scorers(sources=SOURCES, metric="fpr95"):
    """One :class:`SourceScorer` per source, named ``"<metric>_<source>"``.

    The corruptions get the labels of :func:`make_pseudo_ood_sources` with the
    same ``sources``.

    Examples
    --------
    >>> source_scorers(["held_out", "jigsaw", "blur"])
    {'fpr95_held_out': SourceScorer('held_out', 'fpr95'), 'fpr95_jigsaw': SourceScorer(-1, \
'fpr95'), 'fpr95_blur': SourceScorer(-2, 'fpr95')}
    """
    sources = _check_sources(sources)
    label = {name: -(i + 1) for i, name in enumerate(_corruptions(sources))}
    return {f"{metric}_{s}": SourceScorer(label.get(s, s), metric) for s in sources}


def combine_sources(scores, rule="worst_rank"):
    """Combine per-source scores into one value per candidate (lower is better).

    Each source ranks the candidates (1 = best, ties share their mean rank);
    ``"worst_rank"`` takes each candidate's worst rank over the sources, ties
    broken by the mean rank, ``"mean_rank"`` the mean rank. A NaN score ranks
    last.

    Parameters
    ----------
    scores : array-like of shape (n_candidates, n_sources)
        Greater is better (scikit-learn's convention: FPR95 negated).
    rule : {"worst_rank", "mean_rank"}, default="worst_rank"

    Returns
    -------
    value : ndarray of shape (n_candidates,)
        The candidate with the smallest value wins.

    Examples
    --------
    >>> import numpy as np
    >>> # candidate 0 wins source 0 and loses source 1; candidate 1 is 2nd on both.
    >>> scores = np.array([[-0.1, -0.9], [-0.2, -0.3], [-0.5, -0.2]])
    >>> combine_sources(scores, "worst_rank").round(3), combine_sources(scores, "mean_rank")
    (array([3.25, 2.25, 3.25]), array([2., 2., 2.]))
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {list(RULES)}; got {rule!r}.")
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] < 1:
        raise ValueError(f"scores must have shape (n_candidates, n_sources); got "
                         f"{scores.shape}.")
    scores = np.where(np.isnan(scores), -np.inf, scores)
    ranks = np.column_stack([rankdata(-column, method="average") for column in scores.T])
    mean = ranks.mean(axis=1)
    if rule == "mean_rank":
        return mean
    # Ranks differ by multiples of 1/2; the mean rank only breaks ties.
    return ranks.max(axis=1) + mean / (2 * (ranks.shape[0] + 1))


class SelectionRule:
    """``refit`` callable for ``GridSearchCV``: the best candidate by :func:`combine_sources`.

    Reads ``cv_results_["mean_test_<name>"]`` of each scorer name and returns
    the index of the winner (the first among equals).

    Parameters
    ----------
    names : sequence of str
        The scorer names to combine (e.g. the keys of :func:`source_scorers`).
    rule : {"worst_rank", "mean_rank"}, default="worst_rank"

    Examples
    --------
    >>> import numpy as np
    >>> cv_results = {"mean_test_a": np.array([-0.1, -0.2, -0.5]),
    ...               "mean_test_b": np.array([-0.9, -0.3, -0.2])}
    >>> SelectionRule(["a", "b"])(cv_results)
    1
    """

    def __init__(self, names, rule="worst_rank"):
        self.names = names
        self.rule = rule

    def __repr__(self):
        return f"SelectionRule({list(self.names)!r}, rule={self.rule!r})"

    def scores(self, cv_results):
        """The rule's value of every candidate (lower is better)."""
        return combine_sources(
            np.column_stack([cv_results[f"mean_test_{n}"] for n in self.names]), self.rule)

    def __call__(self, cv_results):
        return int(np.argmin(self.scores(cv_results)))
