"""Tune OOD detectors without OOD data: grid search against pseudo-OOD images.

The default knobs of OOD detectors (ReAct's percentile, LINe's ``p_w``,
``p_a`` and clip, DICE's sparsity, ...) were tuned on CIFAR and ImageNet
models; on another model they are often far from the best, and real OOD data
to tune on is rarely available. This module tunes them on **pseudo-OOD**
images made from the in-distribution (ID) images themselves.

Recipe
------
1. Take held-out ID images ``X`` (a validation split, with the model's usual
   preprocessing) and, when you have them, their class labels ``y``.
2. :func:`make_pseudo_ood` appends corrupted copies labelled ``-1``: jigsaw
   puzzles (3x3 shuffled tiles, the default), noise, blur, pixel permutation
   or your own corruption.
3. Run the model ONCE over the ID and pseudo-OOD images and cache the block
   features (:class:`~sklearn_ood.extraction.BlockFeatureExtractor`).
4. ``GridSearchCV`` over the detector's parameters (or over several
   detectors) on the cached features, with :class:`PseudoOODSplit` folds:
   detectors are fitted on ID rows only and every test fold holds ID and
   pseudo-OOD rows; the default criterion is FPR at 95 % ID TPR.
5. Refit the best detector on all the ID features and put it behind the
   already-fitted extractor in a ``Pipeline`` (no further forward pass).

:func:`tune_on_pseudo_ood` does steps 2 to 5.

When to trust it
----------------
Pseudo-OOD is a proxy. In a measurement on MNIST, choosing each detector's
knobs by separating ID validation images from their jigsaw puzzles picked
nearly the same knobs as tuning on real OOD data, for 5 of 6 detector
families. It measures how well a detector separates ID images from
*corrupted ID images*, which keep the ID colours, textures and local strokes
but lose the global layout; detectors (or knobs) that rely on semantic rather
than texture cues -- or real OOD sets that differ from ID mainly in texture
-- can be misjudged. Check the choice on any real OOD sample you have, prefer
the result when the grid's scores are clearly separated (look at
``cv_results_["std_test_score"]``), and try a second corruption
(``method="noise"``/``"blur"``) to see whether the choice is stable.
"""

import contextlib
from numbers import Integral

import numpy as np
from sklearn.model_selection import BaseCrossValidator, GridSearchCV, KFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.utils import Bunch, check_random_state, indexable
from sklearn.utils.validation import _num_samples, check_array

from ._base import scores_only
from ._validation import check_id_labels, check_labels, check_splitter
from .held_out_classes import ClassSubsetDetector, HeldOutClassSplit
from .metrics import OOD_SCORERS
from .pseudo_ood import make_pseudo_ood
from .selection import SelectionRule, SourceScorer, make_pseudo_ood_sources, source_scorers
from .streaming import check_images

__all__ = ["PseudoOODSplit", "tune_on_pseudo_ood"]

_INT32_MAX = np.iinfo(np.int32).max


# ------------------------------------------------------------------ CV splitter
class PseudoOODSplit(BaseCrossValidator):
    """K-fold splitter that keeps OOD rows (negative label) out of training folds.

    ID rows (``y >= 0``) are split into ``n_splits`` folds by
    ``StratifiedKFold`` on their class labels -- or ``KFold`` when a class has
    fewer than ``n_splits`` rows. OOD rows are split into ``n_splits`` parts
    (``KFold``) and part ``k`` goes to test fold ``k`` only. So every training
    fold is ID-only, every test fold holds ID and OOD rows, and each row is in
    exactly one test fold.

    Parameters
    ----------
    n_splits : int >= 2, default=5
        Number of folds. Needs at least ``n_splits`` ID and ``n_splits`` OOD rows.
    shuffle : bool, default=True
        Shuffle the ID rows (within classes) and the OOD rows before splitting.
    random_state : int, RandomState instance or None, default=None
        Seeds the shuffling; must be ``None`` when ``shuffle=False``.

    See Also
    --------
    make_pseudo_ood : ID images plus pseudo-OOD images labelled ``-1``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood.tuning import PseudoOODSplit
    >>> y = np.array([0, 0, 1, 1, -1, -1])
    >>> for train, test in PseudoOODSplit(2, shuffle=False).split(np.zeros((6, 1)), y):
    ...     print(train, test)
    [1 3] [0 2 4]
    [0 2] [1 3 5]
    """

    def __init__(self, n_splits=5, *, shuffle=True, random_state=None):
        check_splitter(n_splits, shuffle, random_state)
        self.n_splits = n_splits
        self.shuffle = shuffle
        self.random_state = random_state

    def get_n_splits(self, X=None, y=None, groups=None):
        """Number of folds.

        Parameters
        ----------
        X, y, groups : ignored

        Returns
        -------
        n_splits : int
        """
        return self.n_splits

    def split(self, X, y, groups=None):
        """Generate ``(train, test)`` index arrays; train holds ID rows only.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
        y : array-like of shape (n_samples,)
            Labels; a negative label marks an OOD row.
        groups : ignored

        Yields
        ------
        train : ndarray of int
            ID rows outside fold ``k``.
        test : ndarray of int
            ID and OOD rows of fold ``k``, sorted.
        """
        if y is None:
            raise ValueError(
                "PseudoOODSplit needs y: class labels for ID rows and a negative label "
                "(e.g. -1) for OOD rows, as returned by make_pseudo_ood."
            )
        X, y = indexable(X, y)
        y, is_id = check_labels(y, _num_samples(X))
        id_rows, ood_rows = np.flatnonzero(is_id), np.flatnonzero(~is_id)
        k = self.n_splits
        if len(id_rows) < k or len(ood_rows) < k:
            raise ValueError(
                f"PseudoOODSplit with n_splits={k} needs at least {k} ID rows (y >= 0) and "
                f"{k} OOD rows (y < 0); got {len(id_rows)} and {len(ood_rows)}."
            )
        y_id = y[id_rows]
        # Stratify on the classes when every class fills each fold (unknown: no).
        stratify = not (y_id.dtype.kind == "f" and np.isnan(y_id).any()) and (
            np.unique(y_id, return_counts=True)[1].min() >= k)
        id_cv = (StratifiedKFold if stratify else KFold)(
            k, shuffle=self.shuffle, random_state=self.random_state
        )
        ood_cv = KFold(k, shuffle=self.shuffle, random_state=self.random_state)
        id_folds = id_cv.split(np.zeros((len(id_rows), 1)), y_id)
        ood_folds = ood_cv.split(np.zeros((len(ood_rows), 1)))
        for (id_train, id_test), (_, ood_test) in zip(id_folds, ood_folds):
            test = np.sort(np.concatenate([id_rows[id_test], ood_rows[ood_test]]))
            yield id_rows[id_train], test


# ------------------------------------------------------------------ the search
def _scorers(scoring):
    """Scorer names of :data:`~sklearn_ood.metrics.OOD_SCORERS` to scorers."""

    def one(score):
        if isinstance(score, str):
            if score not in OOD_SCORERS:
                raise ValueError(
                    f"scoring must be one of {sorted(OOD_SCORERS)}, a scorer callable, or "
                    f"a list/dict of these; got {score!r}. For another metric pass a "
                    "scorer, e.g. sklearn.metrics.make_scorer(...)."
                )
            return OOD_SCORERS[score]
        return score

    if isinstance(scoring, dict):
        return {name: one(score) for name, score in scoring.items()}
    if isinstance(scoring, (list, tuple, set)):
        return {name: one(name) for name in scoring}
    return one(scoring)


def _reads_scores_only(scorers):
    """Whether every scorer reads only ``score_samples`` (ours do; another may predict)."""
    ours = list(OOD_SCORERS.values())
    scorers = scorers.values() if isinstance(scorers, dict) else [scorers]
    return all(isinstance(s, SourceScorer) or any(s is o for o in ours) for s in scorers)


def _stack_pseudo(X, y, X_pseudo, *, images):
    if images:
        X = check_images(X, owner="tune_on_pseudo_ood")
        X_pseudo = check_images(X_pseudo, owner="tune_on_pseudo_ood", name="X_pseudo")
    else:
        X = check_array(X, allow_nd=True, input_name="X")
        X_pseudo = check_array(X_pseudo, allow_nd=True, input_name="X_pseudo")
    if X.shape[1:] != X_pseudo.shape[1:]:
        raise ValueError(
            f"X_pseudo must have samples of the shape of X's {X.shape[1:]}; got "
            f"{X_pseudo.shape[1:]}."
        )
    y = check_id_labels(y, len(X))
    y_ood = np.full(len(X_pseudo), -1, dtype=np.result_type(y.dtype, np.int8))
    return np.concatenate([X, X_pseudo]), np.concatenate([y, y_ood])


def tune_on_pseudo_ood(extractor, detector, param_grid, X, y=None, *, X_pseudo=None,
                       method="jigsaw", ratio=1.0, scoring="fpr95", cv=3, n_jobs=None,
                       random_state=None, refit=True, rule="auto"):
    """Grid-search an OOD detector's parameters against pseudo-OOD images.

    (a) :func:`make_pseudo_ood` builds pseudo-OOD images from ``X`` (in image
    space); (b) the extractor is fitted on ``X`` and transforms the ID and
    pseudo-OOD images ONCE -- ``ceil(n_images / batch_size)`` forward passes
    plus the extractor's 1-image shape probe, whatever the size of the grid;
    (c) ``GridSearchCV`` runs on these cached features with
    :class:`PseudoOODSplit` folds (detectors fitted on ID rows, scored on ID
    vs pseudo-OOD rows); (d) the best detector is refitted on the ID features
    and placed behind the fitted extractor. See the module docstring for the
    recipe and when to trust it.

    The scorers named by ``scoring`` (and the per-source scorers) read
    ``score_samples`` only, so the candidates are fitted without their
    thresholds ``offset_`` (scoring the training rows, leave-one-out for KNN,
    is often most of a fit); the best detector is then fitted once more for
    its threshold. Fits in joblib workers (``n_jobs``) compute it anyway. The
    scores, and so ``cv_results_``, are those of plain fits. With a scorer of
    your own, every fit sets its threshold. A candidate whose only failure
    would be its threshold (non-finite training scores) is then scored; if it
    wins, the final fit raises that error.

    Parameters
    ----------
    extractor : transformer or None
        Usually a :class:`~sklearn_ood.extraction.BlockFeatureExtractor`; it is
        fitted in place on ``X`` (as a ``Pipeline`` would) and is not cloned,
        so the model is not copied. ``None``: ``X`` and ``X_pseudo`` are
        already features, and ``X_pseudo`` is required (corruptions need
        images).
    detector : estimator or None
        The detector to tune, e.g. ``ReAct(head=net.fc)``. May be ``None``
        when ``param_grid`` lists the detectors under ``"detector"``.
    param_grid : dict or list of dicts
        As for ``GridSearchCV``. Keys are the detector's parameters
        (``{"percentile": [80, 90, 95]}``), or, to choose AMONG detectors, a
        ``"detector"`` key listing estimators with their parameters as
        ``"detector__<name>"``, e.g. ``[{"detector": [ReAct(head)],
        "detector__percentile": [80, 90]}, {"detector": [LINe(head)],
        "detector__p_a": [10, 90]}]``; the search then runs over
        ``Pipeline([("detector", detector)])``.
    X : array-like of shape (n_samples, channels, height, width)
        Held-out ID images (features when ``extractor`` is None).
    y : array-like of shape (n_samples,), default=None
        Their class labels (``>= 0``), passed to the detector's ``fit``
        (LINe, Mahalanobis and GaussianDensity use them) and used to
        stratify the folds. With ``None`` detectors are fitted without labels.
    X_pseudo : array-like, default=None
        Your own pseudo-OOD (or held-out real OOD) images -- features when
        ``extractor`` is None; replaces ``method`` and ``ratio``.
    method : str, callable or list of str, default="jigsaw"
        Corruption, see :func:`make_pseudo_ood`; or several pseudo-OOD
        *sources* (names of :data:`sklearn_ood.selection.SOURCES`, e.g.
        ``["held_out", "jigsaw", "noise", "blur", "permute"]``), each scored
        apart and combined by ``rule`` (see :mod:`sklearn_ood.selection`):
        ``"held_out"`` (needs ``y``) fits each fold's detector on some
        classes, its head restricted to them
        (:class:`~sklearn_ood.held_out_classes.ClassSubsetDetector`), and
        scores the rows of the other classes as OOD
        (:class:`~sklearn_ood.held_out_classes.HeldOutClassSplit` folds).
    ratio : float, default=1.0
        Pseudo-OOD images per ID image (per corruption), see
        :func:`make_pseudo_ood`.
    scoring : {"fpr95", "auroc", "aupr_in", "aupr_out"}, callable, list or dict, \
            default="fpr95"
        A name from :data:`sklearn_ood.metrics.OOD_SCORERS`, any scorer, or
        several of these (a list of names or a dict name -> scorer) for a
        multi-metric search; ``refit`` then names the metric that decides.
        ``fpr95`` is negated (scikit-learn maximises), so ``best_score_`` is
        ``-FPR@95``. With several sources: a name, the metric of every
        source, whose scores are ``cv_results_["mean_test_<metric>_<source>"]``.
    cv : int or cross-validation splitter, default=3
        An int gives ``PseudoOODSplit(cv, shuffle=True)`` (with
        ``"held_out"`` among the sources: ``HeldOutClassSplit(cv,
        shuffle=True)``, 20 % of the classes left out per fold); a splitter
        object is used as it is.
    n_jobs : int, default=None
        Parallel candidate fits in ``GridSearchCV`` (features only: the model
        does not run in the workers).
    random_state : int, RandomState instance or None, default=None
        An int seeds both the pseudo-OOD images and the folds with that value
        (so ``make_pseudo_ood(X, y, method=..., ratio=..., random_state=seed)``
        and ``PseudoOODSplit(cv, random_state=seed)`` reproduce them);
        otherwise two seeds are drawn from it.
    refit : bool, str or callable, default=True
        As ``GridSearchCV``'s ``refit``: refit the best detector on all ID
        features and build ``best_estimator_``; with several metrics, the
        name of the deciding metric or a callable choosing the best index
        from ``cv_results_`` (``False``: no best candidate is chosen). With
        several sources ``True`` means :class:`~sklearn_ood.selection.SelectionRule`
        over the sources' scores.
    rule : {"auto", "worst_rank", "mean_rank"}, default="auto"
        With several sources: how the per-source ranks of the candidates are
        combined (:func:`~sklearn_ood.selection.combine_sources`). ``"auto"``:
        ``"worst_rank"`` when ``param_grid`` lists detectors (choosing a
        method: methods fail by kinds of OOD, and the worst rank keeps out a
        method one source finds blind), ``"mean_rank"`` when it tunes one
        detector's knobs (they trade one kind for another smoothly, and the
        mean evens out each source's sampling noise).

    Returns
    -------
    result : sklearn.utils.Bunch
        - ``search_``: the fitted ``GridSearchCV``, which chose the winner
          and refitted it on the ID rows;
        - ``cv_results_``: ``search_.cv_results_``;
        - ``best_index_``, ``best_params_``, ``best_score_``: the winner
          (``None`` when ``refit=False``; with several sources
          ``best_score_`` is NaN, the rule's value being in ``selection_``);
        - ``best_estimator_``: ``Pipeline([("extractor", extractor),
          ("detector", best detector)])``, both fitted (the detector alone
          when ``extractor`` is None; ``None`` when ``refit=False``);
        - ``features_``, ``labels_``: the cached features of the ID and
          pseudo-OOD images and their labels (pseudo-OOD ``-1``; with
          several sources ``-1, -2, ...``, one per corruption), to try
          other detectors without another forward pass;
        - ``selection_``: with several sources, the rule's value of every
          candidate (lower is better), else ``None``.

    See Also
    --------
    make_pseudo_ood, PseudoOODSplit

    Examples
    --------
    >>> import numpy as np, torch
    >>> from sklearn_ood import BlockFeatureExtractor, Energy
    >>> from sklearn_ood.tuning import tune_on_pseudo_ood
    >>> _ = torch.manual_seed(0)
    >>> net = torch.nn.Sequential(
    ...     torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
    ...     torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> X = np.random.default_rng(0).random((30, 1, 9, 9), dtype=np.float32)
    >>> result = tune_on_pseudo_ood(
    ...     BlockFeatureExtractor(net, "3"), Energy(head=net[4]),
    ...     {"temperature": [0.5, 1.0, 2.0]}, X, random_state=0)
    >>> sorted(result.best_params_)
    ['temperature']
    >>> len(result.cv_results_["params"]), result.features_.shape
    (3, (60, 4))
    >>> [name for name, _ in result.best_estimator_.steps]
    ['extractor', 'detector']
    >>> result.best_estimator_.predict(X[:4]).shape
    (4,)
    """
    on_pipeline = any(
        "detector" in grid
        for grid in ([param_grid] if hasattr(param_grid, "items") else param_grid)
    )
    sources = None if isinstance(method, str) or callable(method) else tuple(method)
    if detector is None and not on_pipeline:
        raise ValueError(
            "detector is None: pass the detector to tune, or list detectors under "
            "param_grid['detector']."
        )
    if isinstance(random_state, Integral) and not isinstance(random_state, bool):
        data_seed = cv_seed = int(random_state)
    else:
        data_seed, cv_seed = check_random_state(random_state).randint(_INT32_MAX, size=2)

    # (a) ID + pseudo-OOD inputs, labelled -1 (ID rows without a class: NaN).
    if sources is not None:
        X_aug, y_aug = _sources_data(extractor, X, y, X_pseudo, sources, ratio, data_seed)
    elif X_pseudo is not None:
        X_aug, y_aug = _stack_pseudo(X, y, X_pseudo, images=extractor is not None)
    elif extractor is None:
        raise ValueError(
            "extractor=None reads X as features, where no pseudo-OOD image can be made; "
            "pass X_pseudo (features of pseudo-OOD or held-out OOD samples) or an extractor."
        )
    else:
        X_aug, y_aug = make_pseudo_ood(X, y, method=method, ratio=ratio,
                                       random_state=data_seed)

    # (b) One forward pass per image.
    if extractor is not None:
        extractor.fit(X_aug[: int(np.sum(~(y_aug < 0)))])
        features = extractor.transform(X_aug)
    else:
        features = X_aug

    # (c) Search on the cached features; GridSearchCV selects and refits on the
    # ID rows (every detector's fit drops the rows labelled -1).
    estimator = Pipeline([("detector", detector)]) if on_pipeline else detector
    splitter = PseudoOODSplit(cv, random_state=cv_seed) if isinstance(cv, Integral) else cv
    scorers, selection = _scorers(scoring) if sources is None else None, None
    if sources is not None:
        estimator, param_grid, splitter, scorers, selection = _sources_search(
            estimator, param_grid, splitter, cv, cv_seed, sources, scoring, rule, on_pipeline)
        refit = selection if refit is True else refit
    search = GridSearchCV(estimator, param_grid, scoring=scorers, cv=splitter,
                          n_jobs=n_jobs, refit=refit)
    # Our scorers read score_samples only: the candidates are fitted without their
    # thresholds (in this process; joblib workers fit them with), and the refitted
    # best candidate is fitted once more, outside, for its threshold.
    scores_only_search = _reads_scores_only(scorers)
    with scores_only() if scores_only_search else contextlib.nullcontext():
        search.fit(features, y_aug)

    result = Bunch(search_=search, cv_results_=search.cv_results_, best_index_=None,
                   best_params_=None, best_score_=None, best_estimator_=None,
                   features_=features, labels_=y_aug,
                   selection_=None if selection is None else selection.scores(
                       search.cv_results_))
    if refit is False:
        return result
    result.best_index_ = int(search.best_index_)
    result.best_params_ = search.best_params_
    if sources is not None and "held_out" in sources and not on_pipeline:
        # the search ran over ClassSubsetDetector(detector): the detector's own names
        result.best_params_ = {k.removeprefix("detector__"): v
                               for k, v in search.best_params_.items()}
    # A callable refit leaves no best_score_ (the rule's value is in selection_).
    result.best_score_ = float(getattr(search, "best_score_", np.nan))
    best = search.best_estimator_
    if scores_only_search:
        best.fit(features, y_aug)
    if isinstance(best, ClassSubsetDetector):
        best_detector = best.detector_
    else:
        best_detector = best.steps[-1][1] if on_pipeline else best
    result.best_estimator_ = (
        best_detector if extractor is None
        else Pipeline([("extractor", extractor), ("detector", best_detector)])
    )
    return result


# --------------------------------------------------------- several pseudo-OOD sources
def _sources_data(extractor, X, y, X_pseudo, sources, ratio, seed):
    """ID images and one corrupted copy per corruption source, labelled -1, -2, ..."""
    if X_pseudo is not None:
        raise ValueError("X_pseudo replaces the corruptions of one method; with several "
                         "sources (method as a list) leave X_pseudo=None.")
    if extractor is None:
        raise ValueError("extractor=None reads X as features, where no corruption can be "
                         "made; several sources need images and an extractor.")
    if "held_out" in sources and y is None:
        raise ValueError("The 'held_out' source leaves classes out: pass y, the class "
                         "labels of X.")
    return make_pseudo_ood_sources(X, y, sources=sources, ratio=ratio, random_state=seed)


def _sources_search(estimator, param_grid, splitter, cv, cv_seed, sources, scoring, rule,
                    on_pipeline):
    """The search of several sources: estimator, grid, folds, per-source scorers, rule."""
    if not isinstance(scoring, str) or scoring not in OOD_SCORERS:
        raise ValueError(f"With several sources scoring must name one metric of "
                         f"{sorted(OOD_SCORERS)} (each source is scored by it); got "
                         f"{scoring!r}.")
    scorers = source_scorers(sources, scoring)
    if rule == "auto":
        rule = "worst_rank" if on_pipeline else "mean_rank"
    if "held_out" in sources:
        grids = [param_grid] if hasattr(param_grid, "items") else param_grid
        if on_pipeline:
            estimator = ClassSubsetDetector(None)
        else:
            estimator = ClassSubsetDetector(estimator)
            grids = [{f"detector__{k}": v for k, v in grid.items()} for grid in grids]
        param_grid = grids
        if isinstance(cv, Integral):
            splitter = HeldOutClassSplit(cv, random_state=cv_seed)
    return estimator, param_grid, splitter, scorers, SelectionRule(list(scorers), rule)
