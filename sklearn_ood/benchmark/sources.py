"""The pseudo-OOD sources of the search: corruptions and held-out classes.

Every candidate of the search is judged on each source of
:mod:`sklearn_ood.selection`, by FPR@95 and AUROC, without OOD data:

- a corruption (jigsaw, noise, blur, permute): the fitted candidate scores the
  validation images against one corrupted copy of each;
- held-out classes: for each of at most :data:`N_SPLITS` seeded class splits
  (:func:`~sklearn_ood.held_out_classes.held_out_schedule`, 20 % of the classes
  out, no class out twice while the splits have not covered them all), the
  candidate is fitted again on the fit rows of the kept classes, with its head
  restricted to their rows, and scores the validation images of the kept
  classes (ID) against those of the held-out classes (OOD); the metrics are
  averaged over the splits. For the run time, a held-out fit reads at most
  :data:`HELD_OUT_MAX_FIT` rows of the kept classes (seeded). Detectors that
  run the model read its logits through the model itself: they get a copy of
  the model whose final layer keeps the kept classes' rows.

A detector that runs the model (``features="images"``: a forward pass per
image at least, the gradient detectors a backward and a second forward pass
too) reads ``1 / SEARCH_SHARE`` of its rows in the search (at least
``MIN_SEARCH_ROWS`` validation images): of the validation images (or of its
``max_eval`` cap) and each corrupted copy, and of the fit rows of each
held-out fit. A held-out detector is fitted without its threshold, which is
never read (:func:`~sklearn_ood._base.scores_only`).
"""

import copy
import math
import warnings
from dataclasses import replace

import numpy as np
import torch

from ..held_out_classes import ClassSubsetDetector, held_out_schedule
from .._base import scores_only
from ..selection import CORRUPTIONS, source_rows
from .data import PSEUDO_PREFIX
from .evaluate import build_detector, sample_rows
from .features import layout_of
from ..metrics import auroc, fpr_at_tpr
from .result import finite_for_ranking

__all__ = ["HELD_OUT", "HELD_OUT_MAX_FIT", "MIN_SEARCH_ROWS", "N_SPLITS", "SEARCH_SHARE",
           "SOURCES", "class_splits", "fpr95_auroc", "held_out_metrics", "restricted_model",
           "search_rows", "source_metrics"]

#: Class splits of the held-out source, and the fraction of classes each leaves out.
N_SPLITS, HELD_OUT = 3, 0.2
#: A detector that runs the model reads this share of its rows in the search, and
#: at least this many validation images.
SEARCH_SHARE, MIN_SEARCH_ROWS = 5, 200
#: At most this many fit rows of the kept classes fit a held-out detector.
HELD_OUT_MAX_FIT = 8000
#: The sources, in the order of the report.
SOURCES = ("held_out", *CORRUPTIONS)


def class_splits(y, seed):
    """The classes each held-out split leaves out (seeded): ``ceil(K / m)`` splits of
    ``m`` classes (each class out once), at most :data:`N_SPLITS`.

    Examples
    --------
    >>> from sklearn_ood.benchmark.sources import class_splits
    >>> [h.tolist() for h in class_splits([0, 1, 2, 3, 4, 5, 6, 7], seed=0)]
    [[2, 6], [1, 7], [0, 3]]
    """
    classes = np.unique(y)
    m = min(max(1, round(HELD_OUT * classes.size)), classes.size - 1)
    return held_out_schedule(classes, min(N_SPLITS, math.ceil(classes.size / m)), m,
                             random_state=seed)


def source_metrics(spec, detector, inputs, params, splits, values=None):
    """FPR95 and AUROC of a candidate on every source: ``{source: {"fpr95", "auroc"}}``.

    Parameters
    ----------
    spec : DetectorSpec
    detector : estimator
        The candidate fitted on the spec's fit rows (for the corruptions).
    inputs : Inputs
        With the ``"validation"`` features and labels and the pseudo-OOD sets.
    params : dict
        The candidate's parameters over the spec's defaults (for the held-out fits).
    splits : list of ndarray
        The held-out classes of each split (:func:`class_splits`).
    values : list or None, default=None
        Values of the model detector's ``_scoring_param``, which its fit does
        not depend on: the metrics of each candidate ``params`` with that
        parameter set to one of them, every value scored in the same pass
        (``_score_samples_each``: ODIN's gradient serves every magnitude).

    Returns
    -------
    metrics : dict, or list of dict (one per value) with ``values``
    """
    score = _scorer(values)
    rows = search_rows(spec, inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        val = score(detector, inputs.of(spec, "validation")[rows])
        out = [{} for _ in range(val.shape[1])]
        for name in CORRUPTIONS:
            scores = score(detector, inputs.of(spec, PSEUDO_PREFIX + name)[rows])
            for j, metrics in enumerate(out):
                metrics[name] = fpr95_auroc(val[:, j], scores[:, j])
    held_out = _held_out_metrics(spec, inputs, params, splits, score, len(out))
    out = [{"held_out": h, **metrics} for h, metrics in zip(held_out, out)]
    return out if values is not None else out[0]


def fpr95_auroc(id_scores, ood_scores):
    """``{"fpr95", "auroc"}`` of ID vs OOD scores: those of
    :func:`~sklearn_ood.benchmark.result.ood_metrics`, without its AUPRs.

    Examples
    --------
    >>> from sklearn_ood.benchmark.sources import fpr95_auroc
    >>> m = fpr95_auroc([3.0, 2.0, 1.0], [1.5, 0.0])
    >>> m["fpr95"], round(m["auroc"], 4)
    (0.5, 0.8333)
    """
    score, _ = finite_for_ranking(np.concatenate([id_scores, ood_scores]))
    y = np.concatenate([np.zeros(len(id_scores), int), -np.ones(len(ood_scores), int)])
    return {"fpr95": fpr_at_tpr(y, score, tpr=0.95, positive="id"),
            "auroc": auroc(y, score)}


def _scorer(values):
    """``score(detector, X)``: one column of scores, or one per value of ``values``."""
    if values is None:
        return lambda detector, X: detector.score_samples(X)[:, None]
    return lambda detector, X: detector._score_samples_each(X, values)


def search_rows(spec, inputs):
    """The validation rows (and rows of each corrupted copy) the search reads: those
    the spec is scored on (``max_eval``), a seeded fifth of them (``SEARCH_SHARE``,
    at least ``MIN_SEARCH_ROWS``) for a detector that runs the model."""
    n = len(inputs.labels["validation"])
    cap = spec.max_eval
    if spec.features == "images":
        cap = max(min(cap or n, n) // SEARCH_SHARE, MIN_SEARCH_ROWS)
    return sample_rows(n, cap, inputs.seed)


def held_out_metrics(spec, inputs, params, splits):
    """Mean FPR95 and AUROC over the class splits: kept vs held-out validation classes.

    NaN when a split's detector cannot be fitted on the kept classes' rows (e.g.
    KNN with more neighbours than rows): the candidate then ranks last on this
    source. A split whose validation sample lacks its kept or held-out classes
    is skipped.
    """
    return _held_out_metrics(spec, inputs, params, splits, _scorer(None), 1)[0]


def _held_out_metrics(spec, inputs, params, splits, score, n_values):
    """:func:`held_out_metrics` of ``n_values`` candidates scored by ``score`` (a list)."""
    nan = [{"fpr95": np.nan, "auroc": np.nan}] * n_values
    y_fit = inputs.labels["fit"]
    rows = search_rows(spec, inputs)
    y_val, X_val = inputs.labels["validation"][rows], inputs.of(spec, "validation")[rows]
    max_fit = min(spec.max_fit or HELD_OUT_MAX_FIT, HELD_OUT_MAX_FIT)
    if spec.features == "images":
        max_fit //= SEARCH_SHARE
    metrics = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for held in splits:
            kept = np.setdiff1d(np.unique(y_fit), held)
            is_id, is_ood = source_rows(y_val, "held_out", seen=kept)
            if not (is_id.any() and is_ood.any()):  # a tiny search sample missed a class
                continue
            fit_rows = np.flatnonzero(np.isin(y_fit, kept))
            fit_rows = fit_rows[sample_rows(len(fit_rows), max_fit, inputs.seed)]
            X, y = inputs.of(spec, "fit")[fit_rows], y_fit[fit_rows]
            try:
                with scores_only():  # its threshold is never read
                    detector = _fit_without(spec, inputs, params, kept, X, y)
            except Exception:  # noqa: BLE001 - the source is missing for this candidate
                return nan
            metrics.append([tuple(fpr95_auroc(s[is_id], s[is_ood]).values())
                            for s in score(detector, X_val).T])
    if not metrics:
        return nan
    return [{"fpr95": float(fpr95), "auroc": float(auroc)}
            for fpr95, auroc in np.mean(metrics, axis=0)]


def _fit_without(spec, inputs, params, kept, X, y):
    """The candidate fitted on the kept classes' rows ``X``, its head restricted."""
    if spec.features == "images":
        # A detector that runs the model reads the logits of its final layer.
        nets = dict(inputs.nets, **{spec.model: restricted_model(inputs.nets[spec.model],
                                                                 kept)})
        detector = build_detector(spec, replace(inputs, nets=nets), params)
        return detector.fit(X, np.searchsorted(kept, y) if spec.labels else None)
    return ClassSubsetDetector(build_detector(spec, inputs, params),
                               use_labels=spec.labels).fit(X, y)


def restricted_model(model, kept):
    """A copy of ``model`` whose final layer (its layout's ``head``) keeps the rows ``kept``."""
    model = copy.deepcopy(model)
    parent_name, _, attr = layout_of(model).head.rpartition(".")
    parent = model.get_submodule(parent_name)
    old = getattr(parent, attr)
    new = torch.nn.Linear(old.in_features, len(kept), bias=old.bias is not None)
    index = torch.as_tensor(np.asarray(kept), dtype=torch.long)
    with torch.no_grad():
        new.weight.copy_(old.weight[index])
        if old.bias is not None:
            new.bias.copy_(old.bias[index])
    setattr(parent, attr, new.to(old.weight.device, old.weight.dtype))
    return model.eval()
