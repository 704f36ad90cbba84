"""Class-conditional Gaussian mixtures: log of the prior-weighted mixture density.

No paper of its own: pytorch-ood's ``GMM`` detector (marked AI-coded there),
a class-conditional Gaussian density as in Lee et al., NeurIPS 2018
(https://arxiv.org/abs/1807.03888) with class priors, generalised here to
scikit-learn's ``sklearn.mixture.GaussianMixture`` per class.

The pure function :func:`mixture_log_density` combines per-class
log-densities; :class:`GaussianMixture` fits one scikit-learn mixture per class.
"""

from numbers import Integral, Real

import numpy as np
from scipy import linalg
from scipy.special import logsumexp
from sklearn import mixture
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from .._base import BaseDetector
from .._tags import DetectorTags
from .._moments import class_moments
from ._features import check_finite_covariance, one_blas_thread

_FMAX = np.finfo(np.float64).max


def mixture_log_density(class_log_densities, priors):
    """``log sum_c pi_c p_c(x)`` from the ``(n, K)`` log-densities ``log p_c(x)``.

    Floored at ``-finfo(float64).max``.

    Examples
    --------
    >>> import numpy as np
    >>> mixture_log_density(np.log([[0.2, 0.6]]), np.array([0.5, 0.5]))  # log 0.4
    array([-0.91629073])
    """
    return np.maximum(logsumexp(class_log_densities + np.log(priors), axis=1), -_FMAX)


class GaussianMixture(BaseDetector):
    """Class-conditional Gaussian mixtures: log of the prior-weighted mixture density.

    One scikit-learn ``sklearn.mixture.GaussianMixture`` (float64) per class
    on the ID training features, with class priors ``pi_c = n_c / N``; score
    ``log sum_c pi_c p_c(h)``. Higher means more ID. With the default
    ``n_components=1`` each class is one full-covariance Gaussian with the
    maximum-likelihood covariance ``1/n_c`` plus ``reg_covar I``: pytorch-ood's
    ``GMM`` detector (``1e-6 I``, priors). Without labels (``fit(X)``) the
    training set is one class: one mixture of ``n_components`` Gaussians.

    With one component EM's solution is closed-form (the class mean and
    covariance), so ``fit`` computes it from class moments accumulated by
    chunks of rows, for every ``covariance_type``, and sets the fitted
    attributes of each scikit-learn mixture (``weights_``, ``means_``,
    ``covariances_``, ``precisions_cholesky_``, ``precisions_``) to what its
    EM would reach, up to rounding; no EM runs (``n_iter_ = 0``,
    ``converged_ = True``, no ``lower_bound_``). With more components each
    class's mixture is fitted by scikit-learn's EM.

    Name clashes: this is not scikit-learn's density estimator of the same
    name (used inside, one per class); not OpenOOD's ``gmm`` postprocessor (a
    multi-layer scikit-learn GMM pipeline, a different method); and it differs
    from :class:`~sklearn_ood.detectors.gaussian_density.GaussianDensity`
    (DDU: unbiased covariances, a jitter ladder, no class prior).

    Parameters
    ----------
    n_components : int, default=1
        Gaussians per class; each class needs at least that many rows.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        Passed to each ``sklearn.mixture.GaussianMixture``.
    reg_covar : float >= 0, default=1e-6
        Added to the covariance diagonals (scikit-learn's and pytorch-ood's
        default).
    random_state : int, RandomState instance or None, default=None
        Seed of the mixtures' k-means initialisation (unused for one component).
    contamination : float, default=0.05
        Fraction of training rows below the threshold ``offset_``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,) or None
        Class labels; ``None`` when fitted without labels.
    mixtures_ : list of sklearn.mixture.GaussianMixture
        The fitted mixture of each class (for one component, built from the
        class moments: see above).
    priors_ : ndarray of shape (n_classes,)
        ``n_c / N``.
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen in ``fit``; defined only when ``X`` has
        string column names (a pandas DataFrame).

    See Also
    --------
    sklearn_ood.detectors.gaussian_density.GaussianDensity : DDU's GDA.

    Notes
    -----
    Memory: with ``n_components=1``, ``fit`` reads the rows
    :data:`~sklearn_ood._moments.CHUNK_ROWS` at a time; beyond one chunk it
    holds the class means and covariances (``n_classes x n_features^2``
    float64, ``n_classes x n_features`` for "diag" and "spherical"), whatever
    the number of rows. With ``n_components > 1`` scikit-learn's EM reads all
    the rows of a class at each iteration, so ``fit`` holds one class's rows
    at a time, in float64 (scikit-learn would fit float32 input in float32),
    plus scikit-learn's own copies of them (the k-means initialisation, the
    centred rows of the M-step): a few times the rows of the largest class,
    which bounds the memory, and a copy of all rows when there is one class
    (``fit(X)`` without labels).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import GaussianMixture
    >>> X = np.array([[-1.0], [1.0], [9.0], [11.0]])
    >>> det = GaussianMixture(reg_covar=0.0).fit(X, [0, 0, 1, 1])
    >>> det.score_samples(np.array([[0.0]])).round(4)  # log(N(0; 0, 1) / 2)
    array([-1.6121])
    """

    # Tuning: 1 or 2 components per class, ``reg_covar`` from scikit-learn's 1e-6 to 1e-2.
    _detector_tags = DetectorTags(
        input="features", labels="optional",
        grid={"n_components": [1, 2], "reg_covar": [1e-6, 1e-4, 1e-2]},
        paper="pytorch-ood GMM (no paper)")

    _parameter_constraints = {
        **BaseDetector._parameter_constraints,
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "covariance_type": [StrOptions({"full", "tied", "diag", "spherical"})],
        "reg_covar": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(self, n_components=1, *, covariance_type="full", reg_covar=1e-6,
                 random_state=None, contamination=0.05):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.reg_covar = reg_covar
        self.random_state = random_state
        self.contamination = contamination

    def _fit(self, X, y):
        if y is None:
            self.classes_, codes = None, np.zeros(X.shape[0], dtype=np.intp)
        else:
            self.classes_, codes = np.unique(y, return_inverse=True)
        counts = np.bincount(codes)
        if counts.min() < self.n_components:
            c = int(np.argmin(counts))
            name = "the training set" if self.classes_ is None else \
                f"class {self.classes_[c].item()!r}"
            raise ValueError(
                f"GaussianMixture with n_components={self.n_components} needs at least "
                f"{self.n_components} rows per class; {name} has {counts[c]} sample(s). "
                "Lower n_components or add training data."
            )
        if self.n_components == 1:
            self.mixtures_ = self._one_gaussian_per_class(X, codes, counts.size)
        else:
            rng = check_random_state(self.random_state)
            self.mixtures_ = []
            for c in range(counts.size):
                X_c = X[codes == c].astype(np.float64, copy=False)
                with np.errstate(over="ignore"):  # EM's own error would not say why
                    check_finite_covariance(np.square(X_c).sum(axis=0), "GaussianMixture")
                self.mixtures_.append(mixture.GaussianMixture(
                    self.n_components, covariance_type=self.covariance_type,
                    reg_covar=self.reg_covar, random_state=rng.randint(np.iinfo(np.int32).max),
                ).fit(X_c))
        self.priors_ = counts / counts.sum()

    def _one_gaussian_per_class(self, X, codes, n_classes):
        """scikit-learn's one-component EM solution, from class moments taken by chunks.

        With one component the responsibilities are all 1, so EM's fixed point
        is the class mean and the maximum-likelihood (``1 / n_c``) covariance
        plus ``reg_covar`` on the diagonal: "tied" is then the class's full
        covariance, "diag" its variances, "spherical" their mean.
        """
        kind = self.covariance_type
        diagonal = kind in ("diag", "spherical")
        with np.errstate(over="ignore", invalid="ignore"):  # checked below
            counts, means, scatters = class_moments(X, codes, n_classes, diagonal=diagonal)
        mixtures = []
        for n, mean, scatter in zip(counts, means, scatters):
            cov = scatter / n
            check_finite_covariance(cov, "GaussianMixture")
            if kind == "spherical":
                cov = np.atleast_1d(cov.mean())
            if diagonal:
                cov += self.reg_covar
                if not np.all(cov > 0):
                    raise self._singular_error()
                prec_chol = 1.0 / np.sqrt(cov)
                precisions = prec_chol ** 2
            else:
                cov[np.diag_indices_from(cov)] += self.reg_covar
                with one_blas_thread():  # D x D factorisations: see one_blas_thread
                    try:
                        chol = linalg.cholesky(cov, lower=True)
                    except linalg.LinAlgError:
                        raise self._singular_error() from None
                    # L^-1 by LAPACK's triangular inverse (a third of a triangular
                    # solve against the identity)
                    prec_chol = linalg.lapack.dtrtri(chol, lower=1)[0].T
                precisions = prec_chol @ prec_chol.T
            if kind in ("full", "diag"):  # scikit-learn's shapes, one component
                cov, prec_chol, precisions = cov[None], prec_chol[None], precisions[None]
            m = mixture.GaussianMixture(1, covariance_type=kind, reg_covar=self.reg_covar)
            m.weights_, m.means_, m.covariances_ = np.ones(1), mean[None], cov
            m.precisions_cholesky_, m.precisions_ = prec_chol, precisions
            m.converged_, m.n_iter_, m.n_features_in_ = True, 0, X.shape[1]
            mixtures.append(m)
        return mixtures

    def _singular_error(self):
        return ValueError(
            "GaussianMixture: a class's covariance is singular (a single row, or a "
            f"constant feature, with reg_covar={self.reg_covar}); increase reg_covar "
            "or remove the constant features."
        )

    def _score(self, X):
        X = X.astype(np.float64)
        log_dens = np.column_stack([m.score_samples(X) for m in self.mixtures_])
        return mixture_log_density(log_dens, self.priors_)
