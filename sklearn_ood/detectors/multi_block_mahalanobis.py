"""Mahalanobis scores of several blocks, combined into one score.

Lee, Lee, Lee & Shin, "A Simple Unified Framework for Detecting
Out-of-Distribution Samples and Adversarial Attacks", NeurIPS 2018,
https://arxiv.org/abs/1807.03888.

Per block ``l`` (the spatial means of a block's channels, as the paper):
class means and one shared covariance on the ID rows, block score
``s_l = -min_c (x_l - mu_{l,c})^T P_l (x_l - mu_{l,c})``. The paper combines
the ``s_l`` with a logistic regression fitted on *real OOD validation data*
(and perturbs the inputs first). Ours perturbs nothing and needs no real OOD
data: the combiner is fitted on pseudo-OOD rows that the user passes in
``fit(X, y)`` labelled ``-1`` -- e.g. the features of
``make_pseudo_ood(images, y, method="jigsaw")`` -- versus the ID rows, on
block scores standardised by their ID mean and standard deviation.
``combiner="mean"`` needs no OOD rows: the mean of the standardised scores.
The standardisation and the combiner are calibrating statistics: their ID
side is the calibration rows (``X_cal``, or a ``calibration_size`` share of
the ID rows held out of the Gaussians), as the paper fits its combiner on a
separate validation set; with neither, the rows the Gaussians are fitted on,
whose block scores are optimistic. Beyond 10,000 calibration rows only a
seeded sample of 10,000 of them is scored for this
(:func:`~sklearn_ood._base.offset_sample`): a mean, a standard deviation and
a logistic regression on a few block scores need no more, and ``fit`` stays
linear in N with bounded memory (the Gaussians use every row, by chunks).

Input: the blocks' columns side by side (see :mod:`._blocks`): the output of
``BlockFeatureExtractor(model, [b1, b2, ...], reduce="avg")``, split by
``block_sizes`` (each block's channel count) or by the extractor's column
names (``set_output(transform="pandas")``). Higher means more in-distribution.
"""

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.utils._param_validation import StrOptions

from .._base import BaseDetector, offset_sample
from .._calibration import CALIBRATION_CONSTRAINTS
from .._tags import DetectorTags
from ._blocks import block_sizes_from_names, check_block_sizes, split_blocks
from ._features import check_finite_covariance, class_moments, pseudo_inverse, row_chunks
from .mahalanobis import min_mahalanobis_sqdist


def block_mahalanobis_scores(blocks, means, precisions):
    """``-min_c`` squared Mahalanobis distance per block: ``(N, n_blocks)``.

    Examples
    --------
    >>> import numpy as np
    >>> b = [np.array([[2.0]]), np.array([[0.0, 1.0]])]
    >>> m = [np.array([[0.0]]), np.array([[0.0, 0.0]])]
    >>> P = [np.array([[1.0]]), np.eye(2)]
    >>> block_mahalanobis_scores(b, m, P)
    array([[-4., -1.]])
    """
    return np.column_stack([-min_mahalanobis_sqdist(np.asarray(x, dtype=np.float64), mu, P)
                            for x, mu, P in zip(blocks, means, precisions)])


class MultiBlockMahalanobis(BaseDetector):
    """Per-block Mahalanobis scores combined by a fitted logistic regression (or a mean).

    Parameters
    ----------
    block_sizes : list of int or None, default=None
        Number of columns of each block, in order; ``None``: split a
        DataFrame by its ``"<block>__"`` column names, else one block.
    combiner : {"logistic", "mean"}, default="logistic"
        ``"logistic"``: a logistic regression (ID vs the OOD rows of
        ``fit``, balanced class weights) on the standardised block scores; the
        score is its decision function. Needs rows labelled ``-1`` in ``fit``.
        ``"mean"``: the mean of the standardised block scores.
    calibration_size : float in (0, 1), int >= 1 or None, default=None
        Without ``X_cal``: the share (rounded up) or number of the ID rows of
        ``X`` held out of the Gaussians to standardise the block scores and
        fit the combiner on (stratified by class when ``y`` is given, seeded
        by ``random_state``). ``None``: both on the rows of ``X``.
    random_state : int, RandomState instance or None, default=None
        Seeds the ``calibration_size`` split.
    contamination : float, default=0.05
        Fraction of training rows below the threshold ``offset_``.

    Attributes
    ----------
    block_sizes_ : list of int
        Number of columns of each block.
    classes_ : ndarray or None
        Class labels (``None`` when fitted without labels: one class).
    means_ : list of ndarray of shape (n_classes, n_columns_l)
        Class means of each block.
    precisions_ : list of ndarray of shape (n_columns_l, n_columns_l)
        Pseudo-inverse of each block's shared covariance.
    score_mean_, score_scale_ : ndarray of shape (n_blocks,)
        Mean and standard deviation (1 where 0) of the block scores of the
        calibration rows (at most 10,000 of them, seeded).
    weights_ : ndarray of shape (n_blocks,)
        Combiner weight of each standardised block score.
    intercept_ : float
        Combiner intercept (0 for ``"mean"``).
    n_ood_fit_ : int
        Number of OOD rows the combiner was fitted on.
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Number of columns seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen in ``fit``; defined only when ``X`` has
        string column names (a pandas DataFrame).

    See Also
    --------
    sklearn_ood.detectors.mahalanobis.Mahalanobis : one block.
    sklearn_ood.pseudo_ood.make_pseudo_ood : pseudo-OOD rows for the combiner.

    References
    ----------
    Lee, Lee, Lee & Shin, "A Simple Unified Framework for Detecting
    Out-of-Distribution Samples and Adversarial Attacks", NeurIPS 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import MultiBlockMahalanobis
    >>> rng = np.random.default_rng(0)
    >>> X_id, X_ood = rng.normal(size=(50, 5)), rng.normal(size=(50, 5)) * 3
    >>> X, y = np.vstack([X_id, X_ood]), np.r_[np.zeros(50), -np.ones(50)]
    >>> det = MultiBlockMahalanobis(block_sizes=[2, 3]).fit(X, y)
    >>> det.block_sizes_, det.n_ood_fit_
    ([2, 3], 50)

    The standardisation and the combiner on 10 ID rows held out of the
    Gaussians (or on rows of one's own: ``fit(X, y, X_cal=..., y_cal=...)``):

    >>> det = MultiBlockMahalanobis([2, 3], calibration_size=10, random_state=0).fit(X, y)
    >>> det.means_[0].shape, det.score_mean_.shape
    ((1, 2), (2,))
    """

    _detector_tags = DetectorTags(
        input="blocks", labels="optional", ood_rows=True,
        calibrated=("score_mean_", "score_scale_", "weights_", "intercept_"),
        paper="Lee et al., NeurIPS 2018")

    _parameter_constraints = {
        **BaseDetector._parameter_constraints,
        "block_sizes": [list, tuple, None],
        "combiner": [StrOptions({"logistic", "mean"})],
        **CALIBRATION_CONSTRAINTS,
    }

    def __init__(self, block_sizes=None, *, combiner="logistic", calibration_size=None,
                 random_state=None, contamination=0.05):
        self.block_sizes = block_sizes
        self.combiner = combiner
        self.calibration_size = calibration_size
        self.random_state = random_state
        self.contamination = contamination

    def _raw_block_scores(self, X):
        blocks = split_blocks(np.asarray(X, dtype=np.float64), self.block_sizes_)
        return block_mahalanobis_scores(blocks, self.means_, self.precisions_)

    def _block_scores(self, X):
        return (self._raw_block_scores(X) - self.score_mean_) / self.score_scale_

    def _fit(self, X, y, X_ood, X_cal, y_cal):
        name = type(self).__name__
        if self.block_sizes is not None:
            self.block_sizes_ = check_block_sizes(self.block_sizes, X.shape[1], name)
        elif hasattr(self, "feature_names_in_"):
            self.block_sizes_ = block_sizes_from_names(self.feature_names_in_)
        else:
            self.block_sizes_ = [X.shape[1]]
        if self.combiner == "logistic" and len(X_ood) == 0:
            raise ValueError(
                f"{name}(combiner='logistic') fits its combiner on pseudo-OOD rows, but "
                "fit got none: pass them in fit(X, y) with the label -1, e.g. the "
                "features of make_pseudo_ood(images, y, method='jigsaw'); or use "
                "combiner='mean', which needs none."
            )
        if y is None:
            self.classes_, codes = None, np.zeros(X.shape[0], dtype=np.intp)
        else:
            self.classes_, codes = np.unique(y, return_inverse=True)
        self.means_, self.precisions_ = [], []
        edges = np.cumsum([0] + self.block_sizes_)
        # By chunks, one pass per block: the extra memory is that block's scatter
        # plus one chunk, never a float64 copy of the features.
        for a, b in zip(edges[:-1], edges[1:]):
            with np.errstate(over="ignore", invalid="ignore"):
                _, means, scatter = class_moments(
                    X, codes, int(codes.max()) + 1,
                    transform=lambda H, cols=slice(a, b): H[:, cols], tied=True)
                covariance = scatter / X.shape[0]
            check_finite_covariance(covariance, name)
            self.means_.append(means)
            self.precisions_.append(pseudo_inverse(covariance))
        # The ID side (standardisation and combiner): the calibration rows; when they
        # are the fit rows, their scores also set the threshold.
        raw = self._raw_block_scores(X_cal[offset_sample(X_cal.shape[0])])
        self.score_mean_ = raw.mean(axis=0)
        scale = raw.std(axis=0)
        self.score_scale_ = np.where(scale > 0, scale, 1.0)
        Z_id = (raw - self.score_mean_) / self.score_scale_
        self.n_ood_fit_ = len(X_ood)
        if self.combiner == "mean":
            self.weights_ = np.full(len(self.block_sizes_), 1.0 / len(self.block_sizes_))
            self.intercept_ = 0.0
        else:
            Z_ood = np.vstack([self._block_scores(X_ood[rows])
                               for rows in row_chunks(X_ood.shape[0])])
            target = np.r_[np.ones(len(Z_id)), np.zeros(len(Z_ood))]
            lr = LogisticRegression(class_weight="balanced").fit(np.vstack([Z_id, Z_ood]),
                                                                 target)
            self.weights_, self.intercept_ = lr.coef_[0].copy(), float(lr.intercept_[0])
        return Z_id @ self.weights_ + self.intercept_ if X_cal is X else None

    def _score(self, X):
        return self._block_scores(X) @ self.weights_ + self.intercept_
