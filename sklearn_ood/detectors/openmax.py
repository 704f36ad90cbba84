"""OpenMax: logits revised by per-class Weibull models of the distance to the class mean.

Bendale & Boult, "Towards Open Set Deep Networks", CVPR 2016,
https://arxiv.org/abs/1511.06233.

The pure functions :func:`openmax_distances`, :func:`fit_weibull_tails` and
:func:`openmax_unknown_probability` hold the method (pytorch-ood's variant);
:class:`OpenMax` fits the mean activation vectors and the Weibull tails.
"""

from numbers import Integral, Real

import numpy as np
from scipy import optimize, stats
from scipy.special import softmax
from sklearn.utils._param_validation import Interval

from .._base import BaseDetector
from .._tags import DetectorTags
from ._features import row_chunks
from ._head import HeadMixin
from .she import check_class_indices

#: libMR-style translation: the smallest tail distance is moved to this value.
_TRANSLATION = 10000.0


def openmax_distances(Z, mavs, euclid_weight):
    """``euclid_weight ||z - MAV_c|| + (1 - euclid_weight)(1 - cos(z, MAV_c))``, ``(n, K)``.

    A zero vector has cosine 0 with everything.

    Examples
    --------
    >>> import numpy as np
    >>> openmax_distances(np.array([[3.0, 4.0]]), np.array([[0.0, 0.0], [3.0, 0.0]]), 1.0)
    array([[5., 4.]])
    >>> openmax_distances(np.array([[3.0, 4.0]]), np.array([[3.0, 0.0]]), 0.0)
    array([[0.4]])
    """
    # ||z - m||^2 = ||z||^2 + ||m||^2 - 2 z.m: no (n, K, K) temporary
    dots = Z @ mavs.T
    z_sq, m_sq = np.einsum("ij,ij->i", Z, Z), np.einsum("ij,ij->i", mavs, mavs)
    euclid = np.sqrt(np.maximum(z_sq[:, None] + m_sq[None, :] - 2.0 * dots, 0.0))
    norms = np.sqrt(z_sq)[:, None] * np.sqrt(m_sq)[None, :]
    cos = np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)
    return euclid_weight * euclid + (1.0 - euclid_weight) * (1.0 - cos)


def weibull_mle(x):
    """Maximum-likelihood shape and scale of a two-parameter Weibull (location 0).

    The shape ``k`` solves the likelihood equation
    ``sum t^k log t / sum t^k - 1/k - mean(log t) = 0`` with ``t = x / max(x)``
    (no overflow for the huge shapes of translated tails), by Brent's method;
    the scale is ``max(x) mean(t^k)^(1/k)``. scipy's ``weibull_min.fit(x,
    floc=0)`` stops up to 1e-3 short of this optimum on such tails;
    ``exponweib.fit(x, fa=1, floc=0)`` (pytorch-ood) gets closer but is 6x
    slower.

    Examples
    --------
    >>> import numpy as np
    >>> k, scale = weibull_mle(np.array([1.0, 2.0, 3.0]))
    >>> round(float(k), 4), round(float(scale), 4)
    (2.7386, 2.2586)
    """
    t = np.asarray(x, dtype=np.float64) / np.max(x)
    log_t = np.log(t)
    if np.ptp(log_t) == 0.0:
        raise ValueError("A Weibull tail needs at least two distinct distances.")

    def equation(k):
        w = t**k
        return (w * log_t).sum() / w.sum() - 1.0 / k - log_t.mean()

    k = optimize.brentq(equation, 1e-6, 1e12, xtol=1e-12, rtol=4 * np.finfo(float).eps)
    return k, float(np.max(x) * np.mean(t**k) ** (1.0 / k))


def fit_weibull_tails(distances, codes, n_classes, tailsize):
    """Weibull model of the largest ``tailsize`` distances of each class (pytorch-ood's rule).

    For class ``c``, the tail is the ``min(tailsize, n_c)`` largest distances
    of its training rows to ``MAV_c``, translated so that its smallest value
    becomes 10000 (mimicking libMR); a two-parameter Weibull (location 0,
    pytorch-ood's ``exponweib`` with ``a=1``) is fitted to it by maximum
    likelihood (:func:`weibull_mle`).

    Returns
    -------
    params : ndarray of shape (n_classes, 3)
        Per class: the translation ``10000 - min(tail)``, shape, scale.
    """
    params = np.empty((n_classes, 3))
    for c in range(n_classes):
        d = np.sort(distances[codes == c])[-tailsize:]
        shift = _TRANSLATION - d[0]
        shape, scale = weibull_mle(d + shift)
        params[c] = shift, shape, scale
    return params


def openmax_unknown_probability(logits, distances, weibull_params, alpha):
    """OpenMax probability of the unknown class.

    ``w_c = WeibullCDF_c(d_c + shift_c)``; the ``alpha`` top-ranked classes get
    ``omega = (alpha + 1 - rank) / alpha`` (rank 1 = largest logit), the rest
    0; ``v_c = z_c (1 - omega_c w_c)``, ``v_0 = sum_c z_c omega_c w_c``; the
    probability is ``softmax([v_0, v_1..v_K])_0`` (a stable softmax, where
    pytorch-ood clips at 709).

    Examples
    --------
    >>> import numpy as np
    >>> # one class, certain outlier (w = 1): v = (z, 0)
    >>> params = np.array([[0.0, 1.0, 1e-300]])
    >>> openmax_unknown_probability(np.array([[np.log(3)]]), np.array([[1.0]]), params, 1)
    array([0.75])
    """
    shift, shape, scale = weibull_params.T
    w = stats.weibull_min.cdf(distances + shift, shape, 0.0, scale)
    K = logits.shape[1]
    ranks = np.empty_like(logits, dtype=np.intp)
    order = np.argsort(-logits, axis=1, kind="stable")
    np.put_along_axis(ranks, order, np.arange(1, K + 1)[None, :].repeat(len(logits), 0), 1)
    omega = np.where(ranks <= alpha, (alpha + 1 - ranks) / alpha, 0.0)
    revised = logits * (1.0 - omega * w)
    unknown = (logits * omega * w).sum(axis=1, keepdims=True)
    return softmax(np.hstack([unknown, revised]), axis=1)[:, 0]


class OpenMax(HeadMixin, BaseDetector):
    """OpenMax: logits revised by per-class Weibull models of the distance to the class mean.

    We follow pytorch-ood's variant (``openmax/numpy.py`` + ``libnotmr.py``),
    described on the documentation's methods page; the original OSDN code (MAVs of
    correctly classified rows, "eucos" distance, tail 20, libMR ``FitHigh``)
    and OpenOOD's (correct rows, tail 20, alpha 3) differ. Fit on ID training
    logits with labels, in float64:

    - ``MAV_c`` = mean logit vector of ALL training rows of label ``c`` (no
      correctness filter);
    - distance ``euclid_weight ||z - MAV_c|| + (1 - euclid_weight)(1 - cos)``;
    - per class, a Weibull on the ``tailsize`` largest training distances
      (:func:`fit_weibull_tails`).

    Score: ``-P(unknown)`` of the OpenMax revision
    (:func:`openmax_unknown_probability`); higher means more ID. Many ID rows
    share the score 0 (``P(unknown)`` underflows).

    ``X`` holds logits, or features when ``head`` is given. Needs class
    labels: ``fit(X, y)`` with ``y`` the indices of the logits' columns, each
    class with at least 2 training rows.

    Parameters
    ----------
    head : torch.nn.Linear or (coef, intercept), default=None
        The final linear layer; ``None`` reads ``X`` as logits.
    tailsize : int, default=25
        Number of largest distances per class the Weibull is fitted to.
    alpha : int, default=10
        Number of top-ranked classes revised; the weights ``(alpha + 1 -
        rank) / alpha`` keep this ``alpha`` when there are fewer classes.
    euclid_weight : float in [0, 1], default=1.0
        Weight of the Euclidean distance against the cosine distance.
    contamination : float, default=0.05
        Fraction of training rows below the threshold ``offset_``.

    Attributes
    ----------
    coef_, intercept_ : ndarray or None
        The head (``None`` without one).
    mavs_ : ndarray of shape (n_classes, n_classes)
        Mean activation (logit) vector of each class.
    weibull_params_ : ndarray of shape (n_classes, 3)
        Per class: translation, Weibull shape, Weibull scale.
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Number of features (or logits) seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen in ``fit``; defined only when ``X`` has
        string column names (a pandas DataFrame).

    References
    ----------
    Bendale & Boult, "Towards Open Set Deep Networks", CVPR 2016.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import OpenMax
    >>> rng = np.random.default_rng(0)
    >>> Z = np.vstack([rng.normal([5, 0], 0.5, (20, 2)), rng.normal([0, 5], 0.5, (20, 2))])
    >>> det = OpenMax(tailsize=5, alpha=2).fit(Z, np.repeat([0, 1], 20))
    >>> det.score_samples(np.array([[5.0, 0.0], [20.0, 20.0]])).round(2)
    array([-0.01, -1.  ])
    """

    # Tuning: a subset of pytorch-ood's grid.
    _detector_tags = DetectorTags(
        input="features", head="or_logits", labels="required",
        grid={"tailsize": [10, 25, 50], "alpha": [1, 3, 10], "euclid_weight": [0.5, 1.0]},
        paper="Bendale & Boult, CVPR 2016")

    _parameter_constraints = {
        **BaseDetector._parameter_constraints,
        "head": "no_validation",
        "tailsize": [Interval(Integral, 1, None, closed="left")],
        "alpha": [Interval(Integral, 1, None, closed="left")],
        "euclid_weight": [Interval(Real, 0, 1, closed="both")],
    }

    def __init__(self, head=None, *, tailsize=25, alpha=10, euclid_weight=1.0,
                 contamination=0.05):
        self.head = head
        self.tailsize = tailsize
        self.alpha = alpha
        self.euclid_weight = euclid_weight
        self.contamination = contamination

    def _fit(self, X, y):
        self._fit_head(X)
        if y is None:
            raise ValueError(
                "OpenMax requires y to be passed, but the target y is None: it fits one "
                "mean activation vector and Weibull tail per class, so pass the class "
                "labels (fit(X, y), indices of the logits' columns)."
            )
        n_classes = X.shape[1] if self.coef_ is None else self.coef_.shape[0]
        codes = check_class_indices(y, n_classes, "OpenMax")
        counts = np.bincount(codes, minlength=n_classes)
        if counts.min() < 2:
            c = int(np.argmin(counts))
            raise ValueError(
                f"OpenMax needs at least 2 training rows per class to fit a Weibull tail; "
                f"class {c} of the {n_classes} classes has {counts[c]} sample(s). Fit on "
                "more in-distribution rows of that class."
            )
        # Two passes over the rows, the logits by chunks (never N x K at once): the
        # class means, then each row's distance to its own class mean.
        chunks = row_chunks(X.shape[0])
        sums = np.zeros((n_classes, n_classes))
        for rows in chunks:
            np.add.at(sums, codes[rows], self._logits(X[rows].astype(np.float64)))
        self.mavs_ = sums / counts[:, None]
        own = np.empty(X.shape[0])
        for rows in chunks:
            d = openmax_distances(self._logits(X[rows].astype(np.float64)), self.mavs_,
                                  self.euclid_weight)
            own[rows] = d[np.arange(d.shape[0]), codes[rows]]
        if not np.all(np.isfinite(own)):
            raise ValueError(
                "OpenMax: the distances to the class means overflow float64 (logits of "
                "magnitude up to ~1e154 or more); rescale the features, e.g. divide them "
                "by a constant."
            )
        self.weibull_params_ = fit_weibull_tails(own, codes, n_classes, self.tailsize)

    def _score(self, X):
        Z = self._logits(X.astype(np.float64))
        d = openmax_distances(Z, self.mavs_, self.euclid_weight)
        return -openmax_unknown_probability(Z, d, self.weibull_params_, self.alpha)
