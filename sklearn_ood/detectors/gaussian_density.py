"""Gaussian discriminant analysis density (DDU): log-sum-exp of class Gaussians.

Mukhoti, Kirsch, van Amersfoort, Torr & Gal, "Deep Deterministic
Uncertainty: A New Simple Baseline", CVPR 2023,
https://arxiv.org/abs/2102.11582; used on L2-normalised features by Haas,
Yolland & Rabus, "Linking Neural Collapse and L2 Normalization with Improved
Out-of-Distribution Detection in Deep Neural Networks", TMLR 2023,
https://arxiv.org/abs/2209.08378.

The pure functions :func:`gaussian_log_densities` and
:func:`cholesky_with_jitter` (DDU's jitter rule) hold the method;
:class:`GaussianDensity` fits one Gaussian per class.
"""

from numbers import Real

import numpy as np
from scipy.linalg import solve_triangular
from scipy.special import logsumexp
from sklearn.utils._param_validation import Interval

from .._base import AccumulatingDetector, BaseDetector
from .._tags import DetectorTags
from ._features import l2_normalize

_TINY = np.finfo(np.float64).tiny
_FMAX = np.finfo(np.float64).max

#: Jitters tried, in this order, by ``GaussianDensity`` (as in the DDU code).
JITTER_LADDER = (0.0, _TINY) + tuple(10.0**e for e in range(-308, 0))


def gaussian_log_densities(X, means, cholesky_factors):
    """Log-density of each row under each class Gaussian, an ``(n, K)`` array.

    ``log N(x; mu_c, L_c L_c^T) = -(D log(2 pi) + log det + ||L_c^{-1}(x - mu_c)||^2) / 2``
    with ``log det = 2 sum log diag(L_c)``, by triangular solves (one class at
    a time). Overflowing quadratic forms give ``-inf``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    means : ndarray of shape (n_classes, n_features)
    cholesky_factors : ndarray of shape (n_classes, n_features, n_features)
        Lower-triangular factors of the class covariances.

    Returns
    -------
    log_densities : ndarray of shape (n_samples, n_classes)

    Examples
    --------
    >>> import numpy as np
    >>> gaussian_log_densities(np.zeros((1, 1)), np.zeros((1, 1)),
    ...                        np.ones((1, 1, 1))).round(4)  # -log(2 pi) / 2
    array([[-0.9189]])
    """
    n_features = X.shape[1]
    out = np.empty((X.shape[0], means.shape[0]), dtype=np.float64)
    for c, (mu, L) in enumerate(zip(means, cholesky_factors)):
        Z = solve_triangular(L, (X - mu).T, lower=True, check_finite=False)
        with np.errstate(over="ignore"):
            maha = np.einsum("ij,ij->j", Z, Z)
        log_det = 2.0 * np.log(np.diagonal(L)).sum()
        out[:, c] = -0.5 * (n_features * np.log(2.0 * np.pi) + log_det + maha)
    return out


def cholesky_with_jitter(covariances, jitters=JITTER_LADDER):
    """Cholesky factors of ``covariances + eps I`` for the first ``eps`` that works.

    ``eps`` is the first jitter of ``jitters`` for which every matrix is
    Cholesky-factorisable; the same ``eps`` serves all matrices (DDU's rule).
    A jitter that leaves a matrix bit-for-bit unchanged (``diag + eps ==
    diag``) reuses the outcome already known for it instead of factorising
    again, so the long ladder costs only the factorisations that can change
    the answer.

    Parameters
    ----------
    covariances : ndarray of shape (n_classes, n_features, n_features)
    jitters : sequence of float, default=JITTER_LADDER

    Returns
    -------
    jitter : float
    factors : ndarray of shape (n_classes, n_features, n_features)
        Lower Cholesky factors of ``covariances + jitter * I``.

    Examples
    --------
    >>> import numpy as np
    >>> eps, L = cholesky_with_jitter(np.array([[[1.0, 1.0], [1.0, 1.0]]]))
    >>> eps
    1e-15
    """
    n_classes, n_features = covariances.shape[:2]
    diags = np.diagonal(covariances, axis1=1, axis2=2)
    tried = np.full((n_classes, n_features), np.nan)  # diagonal last factorised
    ok = np.zeros(n_classes, dtype=bool)  # outcome for that diagonal
    factors = np.empty_like(covariances)
    idx = np.arange(n_features)
    for eps in jitters:
        new = diags + eps
        unchanged = (new == tried).all(axis=1)
        if (unchanged & ~ok).any():  # a class already known to fail
            continue
        for c in np.flatnonzero(~unchanged):
            mat = covariances[c].copy()
            mat[idx, idx] = new[c]
            tried[c] = new[c]
            try:
                factors[c] = np.linalg.cholesky(mat)
            except np.linalg.LinAlgError:
                ok[c] = False
                break
            ok[c] = True
        else:
            return float(eps), factors
    raise ValueError(
        f"No jitter up to {max(jitters):g} makes every class covariance positive "
        "definite; the features may be non-finite or of extreme scale (rescale them)."
    )


class GaussianDensity(AccumulatingDetector):
    """Gaussian discriminant analysis density (DDU): log-sum-exp of class Gaussians.

    One Gaussian per class with the class mean and its own full covariance
    (unbiased, ``1/(n_c - 1)``), in float64. A jitter ``eps I`` is added to
    every covariance: the first ``eps`` of ``[0, tiny, 1e-308, 1e-307, ...,
    1e-1]`` for which all Cholesky factorisations succeed (same ``eps`` for
    all classes). Score: ``logsumexp_c log N(h; mu_c, Sigma_c + eps I)``,
    with no class prior. Higher means more ID. Scores are floored at
    ``-finfo(float64).max`` (far from a nearly singular class the
    log-density can overflow).

    Needs class labels: ``fit(X, y)``. ``partial_fit(X, y)`` adds chunks of
    rows to the same float64 statistics (class counts, means and scatter
    matrices; see ``partial_fit``): calls on the chunks of ``X`` give the
    statistics of ``fit(X, y)`` up to rounding. A class with a single row
    is an error in ``fit``; in ``partial_fit`` it waits: a class enters the
    model (``classes_``) once it has 2 rows.

    Parameters
    ----------
    normalize : bool, default=False
        L2-normalise the features (zero rows stay zero) before fitting and
        scoring (whether Haas et al. fit the GDA on normalised features is
        not known; both are offered).
    reg_covar : float >= 0, default=0.0
        Smallest jitter: the ladder starts at ``reg_covar`` and continues with
        the ladder values above it. ``0.0`` is DDU's rule. A positive value
        (as scikit-learn's ``GaussianMixture(reg_covar=1e-6)``) regularises
        nearly singular class covariances -- e.g. of L2-normalised features,
        which lie on a sphere -- whose directions of zero training variance
        otherwise give some in-distribution samples scores near ``-inf``.
    contamination : float, default=0.05
        Fraction of training rows below the threshold ``offset_``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    means_ : ndarray of shape (n_classes, n_features)
    covariances_ : ndarray of shape (n_classes, n_features, n_features)
        Unbiased class covariances, without the jitter.
    jitter_ : float
    cholesky_factors_ : ndarray of shape (n_classes, n_features, n_features)
        Lower Cholesky factors of ``covariances_ + jitter_ * I``.
    n_samples_seen_ : int
        Number of in-distribution training rows seen by ``fit`` and the
        ``partial_fit`` calls since.
    classes_seen_, statistics_, statistics_params_, reservoir_
        What ``partial_fit`` continues from (as documented in
        :class:`~sklearn_ood._base.AccumulatingDetector`): the sorted class
        labels seen (or ``None``), the accumulated statistics, the parameters
        they depend on, and the reservoir of training rows that sets ``offset_``.
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen in ``fit``; defined only when ``X`` has
        string column names (a pandas DataFrame).

    See Also
    --------
    sklearn_ood.detectors.mahalanobis.Mahalanobis : one shared covariance,
        minimum distance over classes.

    References
    ----------
    Mukhoti, Kirsch, van Amersfoort, Torr & Gal, "Deep Deterministic
    Uncertainty: A New Simple Baseline", CVPR 2023. Haas, Yolland & Rabus,
    "Linking Neural Collapse and L2 Normalization with Improved
    Out-of-Distribution Detection in Deep Neural Networks", TMLR 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import GaussianDensity
    >>> X = np.array([[-1.0], [1.0], [9.0], [11.0]])
    >>> det = GaussianDensity().fit(X, [0, 0, 1, 1])
    >>> det.covariances_.ravel(), det.jitter_
    (array([2., 2.]), 0.0)
    >>> det.score_samples(np.array([[0.0]])).round(4)  # log N(0; 0, 2)
    array([-1.2655])

    By chunks: class 1 joins the model with its second row.

    >>> det = GaussianDensity().partial_fit(X[:3], [0, 0, 1])
    >>> det.classes_
    array([0])
    >>> det.partial_fit(X[3:], [1]).covariances_.ravel()
    array([2., 2.])
    """

    # Tuning: ``reg_covar`` from DDU's rule (0) up to 1e-2.
    _detector_tags = DetectorTags(
        input="features", labels="required",
        grid={"reg_covar": [0.0, 1e-6, 1e-4, 1e-2]},
        paper="Mukhoti et al., CVPR 2023; Haas et al., TMLR 2023")

    _parameter_constraints = {
        **BaseDetector._parameter_constraints,
        "normalize": ["boolean"],
        "reg_covar": [Interval(Real, 0, None, closed="left")],
    }
    _tied = False
    _statistics_params = ("normalize",)

    def __init__(self, *, normalize=False, reg_covar=0.0, contamination=0.05):
        self.normalize = normalize
        self.reg_covar = reg_covar
        self.contamination = contamination

    def _features(self, X):
        X = X.astype(np.float64)
        return l2_normalize(X) if self.normalize else X

    def _moment_features(self, H):
        # features as read (float32 too): class_moments centres them in float64
        return self._features(H) if self.normalize else H

    def _fit_statistics(self, classes, counts, means, scatters, sample, *, partial):
        ready = counts >= 2
        if not ready.all():
            if not partial or not ready.any():
                c = classes[np.argmin(counts)].item()
                raise ValueError(
                    f"GaussianDensity needs at least 2 samples per class to estimate a "
                    f"covariance; class {c!r} has 1 sample."
                )
            # partial_fit: a class joins the model with its second row.
            classes, counts, means, scatters = (a[ready] for a in
                                                (classes, counts, means, scatters))
        self.classes_, self.means_ = classes, means
        self.covariances_ = scatters / (counts - 1)[:, None, None]
        jitters = (self.reg_covar,) + tuple(j for j in JITTER_LADDER if j > self.reg_covar)
        self.jitter_, self.cholesky_factors_ = cholesky_with_jitter(self.covariances_, jitters)

    def _score(self, X):
        log_dens = gaussian_log_densities(
            self._features(X), self.means_, self.cholesky_factors_
        )
        return np.maximum(logsumexp(log_dens, axis=1), -_FMAX)
