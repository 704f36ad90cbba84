"""Gram: deviations of Gram-matrix statistics from their per-class training range.

Sastry & Oore, "Detecting Out-of-Distribution Examples with Gram Matrices",
ICML 2020, https://arxiv.org/abs/1912.12510.

For a block output ``F`` (``C`` channels by ``P`` positions) and power ``p``:
``A = F ** p`` (element-wise), ``r_c = sum_d (A A^T)_{cd}`` (the row sums of
the Gram matrix) and ``g_p = sign(r) |r| ** (1 / p)``, one value per channel.
Fit keeps the element-wise ``min`` and ``max`` of ``g_p`` over the training
rows of each class; a sample's deviation from class ``k`` on block ``l`` is
``delta_l = sum_{p, c} relu(min - g) / |min + 1e-6| + relu(g - max) / |max + 1e-6|``.

Which recipe (METHODS.md part 2, section 16): pytorch-ood's. Bounds grouped by
the class *labels* (the original groups by predictions); 10 % of each class's
rows held out (not in the bounds) to estimate the per-block normaliser
``E_l`` (mean held-out deviation); no division by the MSP (the original and
OpenOOD divide by it). One deviation from every reference: the input holds the
block maps, not the logits, so the class of a test sample is not the
network's prediction but the class it deviates least from:
``score = -min_k sum_l delta_l^k / E_l``. Higher means more in-distribution. The threshold ``offset_`` is set from
leave-one-out training scores (a row is not scored against bounds it set).

Fit reads the rows by chunks: the bounds (with the second smallest and largest
values, for the leave-one-out scores) in one pass, ``E_l`` in a pass over the
held-out rows; no Gram features of all rows are kept.
"""

from numbers import Integral, Real

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval

from .._base import BaseDetector
from .._tags import DetectorTags
from .._moments import row_chunks
from ._blocks import check_block_sizes, split_blocks


def gram_features(maps, max_power=5):
    """``g_p`` for ``p`` from 1 to ``max_power`` of each ``(C, P)`` map: ``(N, max_power, C)``.

    Examples
    --------
    >>> import numpy as np
    >>> F = np.array([[[1.0, 2.0], [3.0, 0.0]]])  # C = 2, P = 2
    >>> # p = 1: column sums (4, 2); r = (1*4 + 2*2, 3*4 + 0*2) = (8, 12)
    >>> gram_features(F, 1)
    array([[[ 8., 12.]]])
    """
    F = np.asarray(maps, dtype=np.float64)
    out = np.empty((F.shape[0], max_power, F.shape[1]))
    A = F
    for i, p in enumerate(range(1, max_power + 1)):
        # F ** p by successive products (np.power costs several times more), in place
        # from p = 3 on (A is F itself at p = 1)
        if p == 2:
            A = A * F
        elif p > 2:
            A *= F
        r = np.einsum("ncp,np->nc", A, A.sum(axis=1))
        out[:, i] = np.sign(r) * np.abs(r) ** (1.0 / p)
    huge = ~np.isfinite(out).all(axis=(1, 2))
    if huge.any():
        # The powers overflowed (inf, and 0 * inf = NaN). g_p is homogeneous of degree
        # 2 in F: those maps in units of their largest entry, scaled back.
        s = np.abs(F[huge]).max(axis=(1, 2))[:, None, None]
        out[huge] = gram_features(F[huge] / s, max_power) * s * s
    return out


def gram_deviation(g, mins, maxs):
    """``delta`` of each row of ``g`` ``(N, ...)`` from bounds ``(K, ...)``: ``(N, K)``.

    Examples
    --------
    >>> import numpy as np
    >>> # below min 2 by 1 -> 1 / 2; above max 4 by 2 -> 2 / 4
    >>> gram_deviation(np.array([[1.0, 6.0]]), np.array([[2.0, 0.0]]),
    ...                np.array([[3.0, 4.0]])).round(6)
    array([[1.]])
    """
    g = g.reshape(g.shape[0], -1)
    dev = np.empty((g.shape[0], mins.shape[0]))
    # One class at a time (an (N, K, D) temporary would take gigabytes), in two
    # (N, D) buffers.
    below, above = np.empty_like(g), np.empty_like(g)
    for k, (lo, hi) in enumerate(zip(mins.reshape(mins.shape[0], -1),
                                     maxs.reshape(maxs.shape[0], -1))):
        np.subtract(lo, g, out=below)
        np.maximum(below, 0.0, out=below)
        below /= np.abs(lo + 1e-6)
        np.subtract(g, hi, out=above)
        np.maximum(above, 0.0, out=above)
        above /= np.abs(hi + 1e-6)
        below += above
        dev[:, k] = below.sum(axis=1)
    return dev


class Gram(BaseDetector):
    """Gram-matrix deviations over one or several blocks; higher means more ID.

    Input: 4-D maps ``(N, C, H, W)`` of one block, or 2-D rows holding the
    flattened maps of several blocks side by side (the output of
    ``BlockFeatureExtractor(model, [b1, b2, ...], reduce="flatten")``) with
    ``block_shapes`` giving each block's ``(C, H, W)`` or ``(C, H * W)``. 2-D
    input without ``block_shapes`` is one block of ``C = n_features`` channels
    at one position.

    Parameters
    ----------
    block_shapes : list of tuple or None, default=None
        Shape of each block's map, in column order; the products must add
        up to the number of columns.
    max_power : int >= 1, default=5
        Powers ``p = 1 .. max_power`` (OpenOOD 5; the original 10).
    holdout : float in [0, 1), default=0.1
        Fraction of each class's rows held out of the bounds to estimate the
        normaliser ``E_l`` (``E_l = 1`` when none is held out or the mean is 0).
    random_state : int, RandomState instance or None, default=None
        Draws the held-out rows.
    contamination : float, default=0.05
        Fraction of training rows below the threshold ``offset_``.

    Attributes
    ----------
    classes_ : ndarray or None
        Class labels (``None`` when fitted without labels: one group).
    mins_, maxs_ : list of ndarray of shape (n_classes, max_power, C_l)
        Per block: bounds of ``g_p`` over the bound rows of each class.
    normalizers_ : ndarray of shape (n_blocks,)
        ``E_l``: mean deviation of the held-out rows from their class.
    block_shapes_ : list of tuple
        ``(C_l, P_l)`` of each block.
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Columns (2-D input) or channels (4-D maps) seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen in ``fit``; defined only when ``X`` has
        string column names (a pandas DataFrame).
    input_ndim_ : int
        Dimensions of the input seen in ``fit`` (2 or 4).

    Notes
    -----
    Memory: ``fit`` reads the rows :data:`~sklearn_ood._moments.CHUNK_ROWS` at
    a time, fewer for wide maps (:func:`~sklearn_ood._moments.row_chunks`; the
    bound rows once, then the held-out rows), so beyond one chunk
    and its Gram features it holds the bounds (four ``(n_classes, max_power,
    C_l)`` arrays per block while fitting) and a few integers per row (class
    codes, the hold-out mask).

    References
    ----------
    Sastry & Oore, "Detecting Out-of-Distribution Examples with Gram
    Matrices", ICML 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import Gram
    >>> rng = np.random.default_rng(0)
    >>> maps = np.abs(rng.normal(size=(40, 3, 2, 2)))
    >>> det = Gram(max_power=2, random_state=0).fit(maps)
    >>> bool(det.score_samples(maps * 5).mean() < det.score_samples(maps).mean())
    True
    """

    # Tuning: ``max_power`` from 1 to the original's 10 (OpenOOD fixes 5).
    _detector_tags = DetectorTags(
        input="maps", ndim=(2, 4), labels="optional",
        grid={"max_power": [1, 2, 3, 5, 10]}, paper="Sastry & Oore, ICML 2020")

    _parameter_constraints = {
        **BaseDetector._parameter_constraints,
        "block_shapes": [list, tuple, None],
        "max_power": [Interval(Integral, 1, None, closed="left")],
        "holdout": [Interval(Real, 0, 1, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(self, block_shapes=None, *, max_power=5, holdout=0.1, random_state=None,
                 contamination=0.05):
        self.block_shapes = block_shapes
        self.max_power = max_power
        self.holdout = holdout
        self.random_state = random_state
        self.contamination = contamination

    def _blocks(self, X):
        if X.ndim == 4:
            return [X.reshape(X.shape[0], X.shape[1], -1)]
        return [b.reshape(b.shape[0], c, p)
                for b, (c, p) in zip(split_blocks(X, [c * p for c, p in self.block_shapes_]),
                                      self.block_shapes_)]

    def _gram(self, X):
        return [gram_features(b, self.max_power) for b in self._blocks(X)]

    def _fit(self, X, y):
        if X.ndim == 4:
            if self.block_shapes is not None:
                raise ValueError(
                    "Gram: block_shapes describes the blocks of 2-D input; 4-D maps are "
                    "one block. Pass block_shapes=None, or the flattened blocks as 2-D rows."
                )
            self.block_shapes_ = [(X.shape[1], X.shape[2] * X.shape[3])]
        elif self.block_shapes is None:
            self.block_shapes_ = [(X.shape[1], 1)]
        else:
            shapes = [tuple(int(v) for v in s) for s in self.block_shapes]
            self.block_shapes_ = [(s[0], int(np.prod(s[1:]))) for s in shapes]
            check_block_sizes([c * p for c, p in self.block_shapes_], X.shape[1], "Gram",
                              "block_shapes must be (C, H, W) or (C, H*W) of each "
                              "flattened block, with sizes")
        if y is None:
            self.classes_, codes = None, np.zeros(X.shape[0], dtype=np.intp)
        else:
            self.classes_, codes = np.unique(y, return_inverse=True)
        rng = check_random_state(self.random_state)
        held = np.zeros(X.shape[0], dtype=bool)
        for k in range(codes.max() + 1):
            rows = np.flatnonzero(codes == k)
            n_held = int(np.floor(self.holdout * rows.size))
            if n_held and n_held < rows.size:
                held[rng.permutation(rows)[:n_held]] = True
        n_classes = codes.max() + 1
        # Pass 1, by chunks of rows: the two smallest and the two largest g of each
        # class's bound rows (the second ones give the leave-one-out bounds).
        lows = highs = None
        size = int(np.prod(X.shape[1:]))  # values per row: wide maps, fewer rows per chunk
        for chunk in row_chunks(X.shape[0], row_size=size):
            keep = ~held[chunk]
            grams, chunk_codes = self._gram(X[chunk][keep]), codes[chunk][keep]
            if lows is None:
                lows = [np.full((2, n_classes) + g.shape[1:], np.inf) for g in grams]
                highs = [np.full((2, n_classes) + g.shape[1:], np.inf) for g in grams]
            for k in np.unique(chunk_codes):
                for lo, hi, g in zip(lows, highs, grams):
                    part = g[chunk_codes == k]
                    lo[:, k] = _two_smallest(lo[:, k], part)
                    hi[:, k] = _two_smallest(hi[:, k], -part)  # minus the two largest
            del grams  # before the next chunk's features
        self.mins_ = [lo[0] for lo in lows]
        self.maxs_ = [-hi[0] for hi in highs]
        # Pass 2, by chunks of the held-out rows: E_l, their mean deviation from their class.
        held_rows = np.flatnonzero(held)
        sums = np.zeros(len(lows))
        for chunk in row_chunks(held_rows.size, row_size=size):
            rows = held_rows[chunk]
            for l, g in enumerate(self._gram(X[rows])):
                own = np.empty(rows.size)
                for k in np.unique(codes[rows]):
                    is_k = codes[rows] == k
                    own[is_k] = gram_deviation(g[is_k], self.mins_[l][k:k + 1],
                                               self.maxs_[l][k:k + 1])[:, 0]
                sums[l] += own.sum()
            del g  # before the next chunk's features
        means = sums / max(held_rows.size, 1)
        self.normalizers_ = np.where(means > 0, means, 1.0)
        # For _training_scores only: the class whose bounds each row helped set (-1 for
        # held-out rows and classes of one bound row: scored against the bounds as they
        # are) and the second smallest / largest values.
        n_bound = np.bincount(codes[~held], minlength=n_classes)
        self._loo_codes = np.where(held | (n_bound[codes] < 2), -1, codes)
        self._second = [(lo[1], -hi[1]) for lo, hi in zip(lows, highs)]

    def _score(self, X, loo_codes=None, second=None):
        total = 0.0
        for l, g in enumerate(self._gram(X)):
            dev = gram_deviation(g, self.mins_[l], self.maxs_[l])
            if loo_codes is not None:
                _leave_one_out(dev, g, loo_codes, self.mins_[l], self.maxs_[l], *second[l])
            total = total + dev / self.normalizers_[l]
        return -np.min(total, axis=1)

    def _training_scores(self, X, rows):
        # A row inside the bounds it helped set scores 0: optimistic. As KNN scores
        # its bank leave-one-out, a bound row is scored against its own class's
        # bounds without it (the second smallest / largest value where it is the
        # extreme); held-out rows were never in the bounds.
        loo_codes, second = self._loo_codes[rows], self._second
        del self._loo_codes, self._second
        scores = np.empty(rows.size)
        for chunk in row_chunks(rows.size, row_size=int(np.prod(X.shape[1:]))):
            scores[chunk] = self._score(X[rows[chunk]], loo_codes[chunk], second)
        return scores


def _leave_one_out(dev, g, codes, mins, maxs, mins2, maxs2):
    """Replace ``dev[i, codes[i]]`` by the deviation from class ``codes[i]``'s bounds
    without row ``i`` (``mins2`` / ``maxs2``: second smallest / largest), for ``codes[i] >= 0``."""
    flat = g.reshape(g.shape[0], -1)
    for k in np.unique(codes[codes >= 0]):
        is_k = codes == k
        part = flat[is_k]
        lo1, hi1 = mins[k].ravel(), maxs[k].ravel()
        lo = np.where(part == lo1, mins2[k].ravel(), lo1)
        hi = np.where(part == hi1, maxs2[k].ravel(), hi1)
        below = np.maximum(lo - part, 0.0) / np.abs(lo + 1e-6)
        above = np.maximum(part - hi, 0.0) / np.abs(hi + 1e-6)
        dev[is_k, k] = (below + above).sum(axis=1)


def _two_smallest(two, values):
    """Element-wise two smallest of ``two`` (2, ...) and the rows of ``values`` (n, ...).

    Examples
    --------
    >>> import numpy as np
    >>> _two_smallest(np.array([[1.0, 5.0], [3.0, 6.0]]), np.array([[2.0, 7.0], [0.0, 7.0]]))
    array([[0., 5.],
           [1., 6.]])
    """
    return np.partition(np.concatenate([two, values]), 1, axis=0)[:2]
