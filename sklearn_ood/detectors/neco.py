"""Neural-collapse based OOD (NECO): the share of a feature's norm in the principal subspace.

Ben Ammar, Belkhir, Popescu, Manzanera & Franchi, "NECO: NEural Collapse
Based Out-of-distribution detection", ICLR 2024,
https://arxiv.org/abs/2310.06823.

The pure function :func:`neco_score` holds the method; :class:`NECO` fits
what the official recipe's scikit-learn ``StandardScaler`` and full ``PCA``
fit, from one pass over the training features by chunks (their mean and
scatter matrix, then ``eigh``), without a float64 copy of them.
"""

from numbers import Integral, Real

import numpy as np
from scipy.linalg import eigh
from sklearn.utils._param_validation import Interval

from .._base import BaseDetector
from .._tags import DetectorTags
from ._features import check_finite_covariance, class_moments
from ._head import HeadMixin


def neco_score(Z, projected):
    """``||P_d z|| / ||z||`` per row; a zero row ``z`` scores 0.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_features)
        Standardised features.
    projected : ndarray of shape (n_samples, d)
        Their coordinates on the first ``d`` principal components.

    Returns
    -------
    scores : ndarray of shape (n_samples,)

    Examples
    --------
    >>> import numpy as np
    >>> neco_score(np.array([[3.0, 4.0], [0.0, 0.0]]), np.array([[3.0], [0.0]]))
    array([0.6, 0. ])
    """
    num = np.linalg.norm(projected, axis=1)
    den = np.linalg.norm(Z, axis=1)
    huge = ~(np.isfinite(num) & np.isfinite(den))
    if huge.any():  # the squares overflow (inf / inf); the ratio is scale-invariant
        s = np.abs(Z[huge]).max(axis=1, keepdims=True)
        num[huge] = np.linalg.norm(projected[huge] / s, axis=1)
        den[huge] = np.linalg.norm(Z[huge] / s, axis=1)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


class NECO(HeadMixin, BaseDetector):
    """Neural-collapse based OOD (NECO): the share of a feature's norm in the principal subspace.

    Fit on the ID training features (no labels), as the official recipe's
    scikit-learn ``StandardScaler`` and full ``PCA``: per-feature mean and
    std (``ddof=0``; near-constant features left unscaled, by
    ``StandardScaler``'s rule), and the principal components of the
    standardised features, i.e. the eigenvectors of their covariance
    ``S / (N std std^T)`` (``S`` the scatter matrix of the features). One
    pass by chunks of rows, in float64: the extra memory is ``D x D`` plus one
    chunk, never a float64 copy of the features. Score (the official
    ``neco()``): ``z = (h - mean) / std``, ``||P_d z|| / ||z||`` with ``P_d z``
    the coordinates of ``z`` on the first ``d`` components (``PCA.transform``
    also subtracts the PCA mean, 0 after standardisation up to rounding; we
    do not). Higher means more ID: OOD features collapse towards the origin
    of the simplex-ETF subspace.

    With ``head`` the score is multiplied by the max logit, as the official
    function does for every architecture but ``'resnet'`` (ViT, DeiT, Swin);
    for DeiT/Swin it also divides by the raw instead of the standardised
    feature norm, a quirk we do not reproduce. Without ``head``: the ResNet
    recipe.

    Parameters
    ----------
    head : torch.nn.Linear or (coef, intercept), default=None
        The final linear layer; given, the score is multiplied by the max logit
        (a negative max logit flips the ratio's meaning).
    n_components : int >= 1 or float in (0, 1), default=0.9
        ``d``, the number of principal components kept. The paper tunes ``d``
        per model and gives no default; a float picks, as in scikit-learn's
        ``PCA``, the fewest components explaining that fraction of the
        training variance (our default: 0.9). An int must be at most
        ``min(n_samples, n_features)``.
    contamination : float, default=0.05
        Fraction of training rows below the threshold ``offset_``.

    Attributes
    ----------
    coef_, intercept_ : ndarray or None
        The head (``None`` without one).
    mean_ : ndarray of shape (n_features,)
        Mean of the training features (``StandardScaler.mean_``).
    scale_ : ndarray of shape (n_features,)
        Their standard deviation, 1 for near-constant features
        (``StandardScaler.scale_``).
    explained_variance_ratio_ : ndarray of shape (min(n_samples, n_features),)
        Share of the standardised training variance along each principal
        component, in decreasing order (``PCA.explained_variance_ratio_``).
    n_components_ : int
        ``d`` used.
    components_ : ndarray of shape (n_components_, n_features)
        The first ``d`` principal components of the standardised training
        features (``PCA.components_[:d]``, up to the sign of each row).
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen in ``fit``; defined only when ``X`` has
        string column names (a pandas DataFrame).

    References
    ----------
    Ben Ammar, Belkhir, Popescu, Manzanera & Franchi, "NECO: NEural Collapse
    Based Out-of-distribution detection", ICLR 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import NECO
    >>> X = np.array([[-2.0, -2.0], [2.0, 2.0], [-1.0, 1.0], [1.0, -1.0]])
    >>> det = NECO(n_components=1).fit(X)  # first principal direction (1, 1)
    >>> det.score_samples(np.array([[2.0, 2.0], [1.0, -1.0]])).round(4)
    array([1., 0.])
    """

    # Tuning: ``n_components`` as fractions of explained variance, which fit any width
    # (the paper tunes ``d`` per model).
    _detector_tags = DetectorTags(
        input="features", head="optional",
        grid={"n_components": [0.5, 0.7, 0.8, 0.9, 0.95, 0.99]},
        paper="Ben Ammar et al., ICLR 2024")

    _parameter_constraints = {
        **BaseDetector._parameter_constraints,
        "head": "no_validation",
        "n_components": [Interval(Integral, 1, None, closed="left"),
                         Interval(Real, 0, 1, closed="neither")],
    }

    def __init__(self, head=None, *, n_components=0.9, contamination=0.05):
        self.head = head
        self.n_components = n_components
        self.contamination = contamination

    def _fit(self, X, y):
        self._fit_head(X)
        n_samples, n_features = X.shape
        available = min(X.shape)
        if isinstance(self.n_components, Integral) and self.n_components > available:
            raise ValueError(
                f"NECO with n_components={self.n_components} needs at least that many "
                f"principal components, but min(n_samples, n_features) = {available}. "
                "Lower n_components (or pass a float: a fraction of explained variance)."
            )
        with np.errstate(over="ignore", invalid="ignore"):
            _, mean, scatter = class_moments(
                X, np.zeros(n_samples, dtype=np.intp), 1, tied=True)
        check_finite_covariance(scatter, "NECO")
        self.mean_ = mean[0]
        var = np.diag(scatter) / n_samples
        # StandardScaler's near-constant rule (a bound on the variance's round-off).
        eps = np.finfo(np.float64).eps
        constant = var <= n_samples * eps * var + (n_samples * self.mean_ * eps) ** 2
        self.scale_ = np.where(constant, 1.0, np.sqrt(var))
        variances, vectors = eigh(scatter / np.outer(self.scale_, self.scale_) / n_samples)
        variances = np.maximum(variances[::-1][:available], 0.0)
        total = variances.sum()
        self.explained_variance_ratio_ = variances / total if total > 0 else variances
        if isinstance(self.n_components, Integral):
            self.n_components_ = int(self.n_components)
        else:
            ratio = np.cumsum(self.explained_variance_ratio_)
            self.n_components_ = int(np.searchsorted(ratio, self.n_components,
                                                     side="right") + 1)
            self.n_components_ = min(self.n_components_, ratio.size)
        self.components_ = vectors[:, ::-1][:, :self.n_components_].T.copy()

    def _score(self, X):
        X = X.astype(np.float64)
        Z = (X - self.mean_) / self.scale_
        scores = neco_score(Z, Z @ self.components_.T)
        if self.coef_ is not None:
            scores = scores * self._logits(X).max(axis=1)
        return scores
