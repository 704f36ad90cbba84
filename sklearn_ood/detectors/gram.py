"""Gram: deviations of Gram-matrix statistics from their per-class training range.

Sastry & Oore, "Detecting Out-of-Distribution Examples with Gram Matrices",
ICML 2020, https://arxiv.org/abs/1912.12510.

For a block output ``F`` (``C`` channels by ``P`` positions) and power ``p``:
``A = F ** p`` (element-wise), ``r_c = sum_d (A A^T)_{cd}`` (the row sums of
the Gram matrix) and ``g_p = sign(r) |r| ** (1 / p)``, one value per channel.
Fit keeps the element-wise ``min`` and ``max`` of ``g_p`` over the training
rows of each class; a sample's deviation from class ``k`` on block ``l`` is
``delta_l = sum_{p, c} relu(min - g) / |min + 1e-6| + relu(g - max) / |max + 1e-6|``.

Two recipes (``class_bounds``), described in :class:`Gram`: the paper's
(``"predicted"``: the bounds of the class the network predicts, a head or the
logits needed) and one without the network (``"nearest"``: the class the
sample deviates least from). Higher means more in-distribution in both. The
threshold ``offset_`` is set from leave-one-out training scores (a row is
not scored against bounds it set).

Fit reads the rows by chunks: with a head, the predicted classes in a first
pass; the bounds (with the second smallest and largest values, for the
leave-one-out scores) in one pass; the normaliser ``E_l``, a calibrating
statistic, in a pass over the calibration rows (held out of the bounds); no
Gram features of all rows are kept.
"""

from numbers import Integral

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from .._base import BaseDetector, offset_sample
from .._calibration import CALIBRATION_CONSTRAINTS
from .._tags import DetectorTags
from .._moments import row_chunks
from .._validation import check_head
from ._blocks import check_block_sizes, split_blocks
from ._head import HeadMixin


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


class Gram(HeadMixin, BaseDetector):
    """Gram-matrix deviations over one or several blocks; higher means more ID.

    Input: 4-D maps ``(N, C, H, W)`` of one block, or 2-D rows holding the
    flattened maps of several blocks side by side (the output of
    ``BlockFeatureExtractor(model, [b1, b2, ...], reduce="flatten")``) with
    ``block_shapes`` giving each block's ``(C, H, W)`` or ``(C, H * W)``. 2-D
    input without ``block_shapes`` is one block of ``C = n_features`` channels
    at one position.

    Two recipes, chosen by ``class_bounds``:

    - ``"predicted"`` (Sastry & Oore's, the default with a head): the bounds of
      class ``k`` are taken over the training rows the network *predicts* as
      ``k`` (``y`` only marks OOD rows), and a sample is compared with the
      bounds of its predicted class ``yhat``. The normaliser of block ``l`` is
      ``E_l = mean(delta_l / MSP) + 1e-7`` over the calibration rows (1 where
      the mean is 0), and the score
      ``-sum_l delta_l^yhat / (MSP * E_l)``, ``MSP`` the maximum softmax
      probability: a confident prediction makes a deviation weigh less. The
      prediction is ``argmax`` of the head applied to the channel means of the
      last block (the fc input of a ResNet-style network, whose last block is
      followed by global average pooling), or of the logits given as the last
      block (``head="logits"``).
    - ``"nearest"`` (the default without a head): the bounds are grouped by
      the labels ``y`` (one group without them), and a sample is compared with
      the class it deviates least from: ``-min_k sum_l delta_l^k / E_l``, with
      ``E_l`` the mean deviation of the calibration rows from their own class
      (1 where it is 0) and no MSP. This needs no network,
      but departs from the paper: it is the recipe of pytorch-ood (bounds by
      labels, no division by the MSP) scored without a prediction.

    ``E_l`` is a calibrating statistic, fitted on rows the bounds do not
    see: the paper estimates it on 10 % of the in-distribution *test* set,
    images the network never saw: pass such rows as ``X_cal`` (with their
    labels ``y_cal`` for ``"nearest"`` with labels). Without them,
    ``calibration_size`` of the rows of ``X`` are held out of the bounds
    instead (as pytorch-ood and OpenOOD hold out 10 % of the training rows);
    with ``calibration_size=None`` no row is held out and ``E_l = 1`` (a row
    deviates 0 from the bounds it helped set). Other differences: OpenOOD
    groups the bounds by labels and divides ``delta_l / E_l`` by the MSP, with
    ``E_l`` the mean held-out ``delta_l`` (without the MSP). The layers are
    the blocks given, the powers ``1 .. max_power``.

    Parameters
    ----------
    block_shapes : list of tuple or None, default=None
        Shape of each block's map, in column order; the products must add
        up to the number of columns. With ``head="logits"`` the last entry is
        the logits' ``(K,)``.
    head : torch.nn.Linear, (coef, intercept), "logits" or None, default=None
        What predicts the class of a sample (``class_bounds="predicted"``
        only): the network's final linear layer, taking the channel means of
        the last block; or ``"logits"``: the last block of the 2-D input holds
        the network's logits.
    class_bounds : {"auto", "predicted", "nearest"}, default="auto"
        Whose bounds a sample is compared with (see above); ``"auto"`` is
        ``"predicted"`` with a head and ``"nearest"`` without.
    max_power : int >= 1, default=5
        Powers ``p = 1 .. max_power`` (OpenOOD 5; the original 10).
    calibration_size : float in (0, 1), int >= 1 or None, default=0.1
        Without ``X_cal``: the share (rounded up) or number of the ID rows of
        ``X`` held out of the bounds to fit the normaliser ``E_l`` on
        (stratified by class when ``y`` is given, seeded by
        ``random_state``). ``None``: none held out, ``E_l = 1``.
    random_state : int, RandomState instance or None, default=None
        Seeds the ``calibration_size`` split.
    contamination : float, default=0.05
        Fraction of training rows below the threshold ``offset_``.

    Attributes
    ----------
    class_bounds_ : {"predicted", "nearest"}
        The recipe used.
    classes_ : ndarray or None
        Class labels (``"nearest"``; ``None`` when fitted without labels: one
        group), or the head's class indices ``0 .. K-1`` (``"predicted"``).
    coef_, intercept_ : ndarray or None
        The head as arrays (``None`` without a head or with ``head="logits"``).
    mins_, maxs_ : list of ndarray of shape (n_classes, max_power, C_l)
        Per block: bounds of ``g_p`` over the bound rows (the rows of ``X``
        not held out) of each class. A class the network never predicts on
        them gets the bounds of all of them.
    normalizers_ : ndarray of shape (n_blocks,)
        ``E_l``: mean deviation of the calibration rows from their class
        (divided by their MSP for ``"predicted"``).
    block_shapes_ : list of tuple
        ``(C_l, P_l)`` of each block (the logits are not a block).
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
    a time, fewer for wide maps (:func:`~sklearn_ood._moments.row_chunks`; with
    a head the predicted classes first, then the bound rows once, then the
    calibration rows), so beyond one chunk and its Gram features it holds the
    bounds (four ``(n_classes, max_power, C_l)`` arrays per block while
    fitting) and a few integers per row (class codes).

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
    >>> det.class_bounds_
    'nearest'
    >>> bool(det.score_samples(maps * 5).mean() < det.score_samples(maps).mean())
    True

    With a head on the channel means of the maps, the paper's recipe:

    >>> head = (rng.normal(size=(2, 3)), np.zeros(2))
    >>> det = Gram(head=head, max_power=2, random_state=0).fit(maps)
    >>> det.class_bounds_, det.classes_
    ('predicted', array([0, 1]))
    >>> bool(det.score_samples(maps * 5).mean() < det.score_samples(maps).mean())
    True

    The bounds on every row of ``X`` and ``E_l`` on held-out rows (the paper:
    unseen ID images):

    >>> det = Gram(max_power=2).fit(maps[:30], X_cal=maps[30:])
    >>> det.normalizers_.shape
    (1,)
    """

    # Tuning: ``max_power`` from 1 to the original's 10 (OpenOOD fixes 5).
    _detector_tags = DetectorTags(
        input="maps", ndim=(2, 4), head="optional", labels="optional",
        calibrated=("normalizers_",), grid={"max_power": [1, 2, 3, 5, 10]},
        paper="Sastry & Oore, ICML 2020")

    _parameter_constraints = {
        **BaseDetector._parameter_constraints,
        "block_shapes": [list, tuple, None],
        "head": "no_validation",
        "class_bounds": [StrOptions({"auto", "predicted", "nearest"})],
        "max_power": [Interval(Integral, 1, None, closed="left")],
        **CALIBRATION_CONSTRAINTS,
    }

    def __init__(self, block_shapes=None, *, head=None, class_bounds="auto", max_power=5,
                 calibration_size=0.1, random_state=None, contamination=0.05):
        self.block_shapes = block_shapes
        self.head = head
        self.class_bounds = class_bounds
        self.max_power = max_power
        self.calibration_size = calibration_size
        self.random_state = random_state
        self.contamination = contamination

    def _parts(self, X):
        """The blocks ``(N, C_l, P_l)`` of ``X``, and the logits' columns (or ``None``)."""
        if X.ndim == 4:
            return [X.reshape(X.shape[0], X.shape[1], -1)], None
        sizes = [c * p for c, p in self.block_shapes_]
        parts = split_blocks(X, sizes + [X.shape[1] - sum(sizes)])
        blocks = [b.reshape(b.shape[0], c, p) for b, (c, p) in zip(parts, self.block_shapes_)]
        return blocks, parts[-1] if parts[-1].shape[1] else None

    def _gram(self, X):
        return [gram_features(b, self.max_power) for b in self._parts(X)[0]]

    def _predict(self, X):
        """Predicted class and maximum softmax probability of each row."""
        blocks, logits = self._parts(X)
        if logits is None:  # the head on the channel means of the last block
            logits = self._logits(blocks[-1].mean(axis=2, dtype=np.float64))
        z = np.asarray(logits, dtype=np.float64)
        z = z - z.max(axis=1, keepdims=True)
        return np.argmax(z, axis=1), 1.0 / np.exp(z).sum(axis=1)

    def _check_blocks(self, X):
        """``block_shapes_`` and the number of logit columns, checked against ``X``."""
        logits = isinstance(self.head, str) and self.head == "logits"
        if X.ndim == 4:
            if self.block_shapes is not None or logits:
                raise ValueError(
                    "Gram: 4-D maps are one block, with no room for the logits. Pass "
                    "block_shapes=None and a head that is not 'logits', or the flattened "
                    "blocks (and logits) as 2-D rows."
                )
            return [(X.shape[1], X.shape[2] * X.shape[3])], 0
        if self.block_shapes is None:
            if logits:
                raise ValueError(
                    "Gram: head='logits' reads the logits from the last entry of "
                    "block_shapes, e.g. block_shapes=[(16, 32, 32), (10,)]; got "
                    "block_shapes=None."
                )
            return [(X.shape[1], 1)], 0
        shapes = [tuple(int(v) for v in s) for s in self.block_shapes]
        if logits and len(shapes) < 2:
            raise ValueError(
                "Gram: with head='logits', block_shapes lists the blocks, then the "
                f"logits (K,) last: at least two entries; got {self.block_shapes!r}."
            )
        flat = [(s[0], int(np.prod(s[1:]))) for s in shapes]
        check_block_sizes([c * p for c, p in flat], X.shape[1], "Gram",
                          "block_shapes must be (C, H, W) or (C, H*W) of each "
                          "flattened block, with sizes")
        return (flat[:-1], flat[-1][0] * flat[-1][1]) if logits else (flat, 0)

    def _fit(self, X, y, X_cal, y_cal):
        self.block_shapes_, n_logits = self._check_blocks(X)
        predicted = self.class_bounds == "predicted" or (
            self.class_bounds == "auto" and self.head is not None)
        self.class_bounds_ = "predicted" if predicted else "nearest"
        self.coef_ = self.intercept_ = None
        size = int(np.prod(X.shape[1:]))  # values per row: wide maps, fewer rows per chunk
        if predicted:
            if self.head is None:
                raise ValueError(
                    "Gram(class_bounds='predicted') compares a sample with the bounds of "
                    "its predicted class: pass head=model.fc (the final nn.Linear, taking "
                    "the channel means of the last block) or head='logits' (the logits "
                    "as the last block), or class_bounds='nearest'."
                )
            if isinstance(self.head, str) and not n_logits:
                raise ValueError(
                    f"Gram: head must be the final linear layer or 'logits'; got "
                    f"{self.head!r}."
                )
            if not n_logits:
                self.coef_, self.intercept_ = check_head(self.head, self.block_shapes_[-1][0])
            n_classes = n_logits or self.coef_.shape[0]
            self.classes_ = np.arange(n_classes)
            codes = self._predicted_codes(X, size)
        elif y is None:
            self.classes_, codes = None, np.zeros(X.shape[0], dtype=np.intp)
        else:
            self.classes_, codes = np.unique(y, return_inverse=True)
        if not predicted:
            n_classes = codes.max() + 1
        # Pass 1, by chunks of rows: the two smallest and the two largest g of each
        # class's bound rows (the second ones give the leave-one-out bounds).
        lows = highs = None
        for chunk in row_chunks(X.shape[0], row_size=size):
            grams, chunk_codes = self._gram(X[chunk]), codes[chunk]
            if lows is None:
                lows = [np.full((2, n_classes) + g.shape[1:], np.inf) for g in grams]
                highs = [np.full((2, n_classes) + g.shape[1:], np.inf) for g in grams]
            for k in np.unique(chunk_codes):
                for lo, hi, g in zip(lows, highs, grams):
                    part = g[chunk_codes == k]
                    lo[:, k] = _two_smallest(lo[:, k], part)
                    hi[:, k] = _two_smallest(hi[:, k], -part)  # minus the two largest
            del grams  # before the next chunk's features
        n_bound = np.bincount(codes, minlength=n_classes)
        self.mins_ = [lo[0] for lo in lows]
        self.maxs_ = [-hi[0] for hi in highs]
        if not n_bound.all():  # classes the network never predicts on the bound rows
            for mins, maxs in zip(self.mins_, self.maxs_):
                mins[n_bound == 0] = mins[n_bound > 0].min(axis=0)
                maxs[n_bound == 0] = maxs[n_bound > 0].max(axis=0)
        self.normalizers_ = self._normalizers(X_cal is X, X_cal, y_cal, predicted, size)
        # The threshold's training scores, leave-one-out: a row inside the bounds it
        # helped set scores 0, which is optimistic. As KNN scores its bank, a bound
        # row is scored against its own class's bounds without it (the second
        # smallest / largest value where it is the extreme); the rows of a class with
        # one bound row against the bounds as they are (-1).
        loo_codes = np.where(n_bound[codes] < 2, -1, codes)
        second = [(lo[1], -hi[1]) for lo, hi in zip(lows, highs)]
        return lambda: self._leave_one_out_scores(X, loo_codes, second)  # the threshold step

    def _leave_one_out_scores(self, X, loo_codes, second):
        """The offset sample's scores, each bound row without its own extremes."""
        rows = offset_sample(X.shape[0])
        scores = np.empty(rows.size)
        for chunk in row_chunks(rows.size, row_size=int(np.prod(X.shape[1:]))):
            scores[chunk] = self._score(X[rows[chunk]], loo_codes[rows[chunk]], second)
        return scores

    def _predicted_codes(self, X, size):
        codes = np.empty(X.shape[0], dtype=np.intp)
        for chunk in row_chunks(X.shape[0], row_size=size):
            codes[chunk] = self._predict(X[chunk])[0]
        return codes

    def _normalizers(self, same_rows, X_cal, y_cal, predicted, size):
        """``E_l``: the calibration rows' mean deviation from their class (divided by
        their MSP for ``"predicted"``, plus the original's ``1e-7``); 1 where it is 0."""
        n_blocks = len(self.mins_)
        if same_rows:  # the bound rows deviate 0 from the bounds they set
            return np.ones(n_blocks)
        if predicted:
            codes = self._predicted_codes(X_cal, size)
        elif self.classes_ is None:
            codes = np.zeros(X_cal.shape[0], dtype=np.intp)
        elif y_cal is None:
            raise ValueError(
                "Gram(class_bounds='nearest') was fitted with class labels, so E_l is the "
                "calibration rows' mean deviation from the bounds of their own class: "
                "pass their labels as y_cal with X_cal."
            )
        else:
            unknown = np.setdiff1d(y_cal, self.classes_)
            if unknown.size:
                raise ValueError(
                    f"y_cal holds class(es) {unknown[:5].tolist()} that y does not: the "
                    "calibration rows are compared with the bounds of their own class, "
                    f"fitted for {self.classes_[:10].tolist()}."
                )
            codes = np.searchsorted(self.classes_, y_cal)
        # Pass 2, by chunks of the calibration rows.
        sums = np.zeros(n_blocks)
        for chunk in row_chunks(X_cal.shape[0], row_size=size):
            msp = self._predict(X_cal[chunk])[1] if predicted else 1.0
            for l, g in enumerate(self._gram(X_cal[chunk])):
                own = _class_deviation(g, codes[chunk], self.mins_[l], self.maxs_[l])
                sums[l] += (own / msp).sum() if predicted else own.sum()
            del g  # before the next chunk's features
        means = sums / X_cal.shape[0]
        return np.where(means > 0, means + (1e-7 if predicted else 0.0), 1.0)

    def _score(self, X, loo_codes=None, second=None):
        """Scores of ``X``; rows with ``loo_codes >= 0`` against that class's bounds
        without them (``second``: the second smallest / largest values)."""
        predicted = self.class_bounds_ == "predicted"
        if predicted:
            classes, msp = self._predict(X)
            if loo_codes is not None:  # a training row keeps its class of fit
                classes = np.where(loo_codes >= 0, loo_codes, classes)
        total = 0.0
        for l, g in enumerate(self._gram(X)):
            if predicted:
                dev = _class_deviation(g, classes, self.mins_[l], self.maxs_[l])
            else:
                dev = gram_deviation(g, self.mins_[l], self.maxs_[l])
            if loo_codes is not None:
                loo = loo_codes >= 0
                own = _leave_one_out(g, loo_codes, self.mins_[l], self.maxs_[l], *second[l])
                if predicted:
                    dev[loo] = own[loo]
                else:
                    dev[loo, loo_codes[loo]] = own[loo]
            total = total + dev / self.normalizers_[l]
        if predicted:
            return -total / msp
        return -np.min(total, axis=1)


def _class_deviation(g, classes, mins, maxs):
    """``delta`` of each row of ``g`` from the bounds of its class ``classes[i]``: ``(N,)``."""
    dev = np.empty(g.shape[0])
    for k in np.unique(classes):
        is_k = classes == k
        dev[is_k] = gram_deviation(g[is_k], mins[k:k + 1], maxs[k:k + 1])[:, 0]
    return dev


def _leave_one_out(g, codes, mins, maxs, mins2, maxs2):
    """``delta`` of each row ``i`` with ``codes[i] >= 0`` from class ``codes[i]``'s bounds
    without row ``i`` (``mins2`` / ``maxs2``: second smallest / largest); NaN elsewhere."""
    flat = g.reshape(g.shape[0], -1)
    dev = np.full(g.shape[0], np.nan)
    for k in np.unique(codes[codes >= 0]):
        is_k = codes == k
        part = flat[is_k]
        lo1, hi1 = mins[k].ravel(), maxs[k].ravel()
        lo = np.where(part == lo1, mins2[k].ravel(), lo1)
        hi = np.where(part == hi1, maxs2[k].ravel(), hi1)
        below = np.maximum(lo - part, 0.0) / np.abs(lo + 1e-6)
        above = np.maximum(part - hi, 0.0) / np.abs(hi + 1e-6)
        dev[is_k] = (below + above).sum(axis=1)
    return dev


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
