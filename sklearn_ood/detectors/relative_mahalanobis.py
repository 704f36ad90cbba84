"""Relative Mahalanobis distance (RMD): class distance minus a background distance.

Ren, Fort, Liu, Roy, Padhy & Lakshminarayanan, "A Simple Fix to Mahalanobis
Distance for Improving Near-OOD Detection", ICML 2021 UDL workshop,
https://arxiv.org/abs/2106.09022.

The pure function :func:`relative_mahalanobis_score` combines two calls of
:func:`~sklearn_ood.detectors.mahalanobis.min_mahalanobis_sqdist`;
:class:`RelativeMahalanobis` fits the class Gaussians (shared covariance) and
the background Gaussian of all training features.
"""

import numpy as np

from .._base import BaseDetector
from .._tags import DetectorTags
from ._features import (
    check_finite_covariance, class_moments, l2_normalize, pool_maps, pseudo_inverse,
)
from .mahalanobis import min_mahalanobis_sqdist


def relative_mahalanobis_score(X, means, precision, background_mean, background_precision):
    """RMD score ``-min_k (MD_k(x) - MD_0(x))``, higher means more ID.

    ``MD_k`` is the squared Mahalanobis distance to class mean ``mu_k`` with
    the shared precision, ``MD_0`` the one to the background mean with the
    background precision. ``MD_0`` does not depend on ``k``, so the score is
    ``MD_0(x) - min_k MD_k(x)``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    means : ndarray of shape (n_classes, n_features)
    precision : ndarray of shape (n_features, n_features)
    background_mean : ndarray of shape (n_features,)
    background_precision : ndarray of shape (n_features, n_features)

    Returns
    -------
    scores : ndarray of shape (n_samples,)

    Examples
    --------
    >>> import numpy as np
    >>> eye = np.eye(2)
    >>> relative_mahalanobis_score(np.array([[2.0, 0.0]]), np.array([[1.0, 0.0]]), eye,
    ...                            np.zeros(2), 0.25 * eye)  # 4/4 - 1
    array([0.])
    """
    d_class = min_mahalanobis_sqdist(X, means, precision)
    d_background = min_mahalanobis_sqdist(X, background_mean[None, :], background_precision)
    scores = d_background - d_class
    huge = np.isnan(scores)
    if huge.any():
        # Both distances overflowed (inf - inf). Squared distances are homogeneous of
        # degree 2 in (x, means) jointly: those rows in units of their largest entry.
        s = np.abs(X[huge]).max()
        scores[huge] = relative_mahalanobis_score(
            X[huge] / s, means / s, precision, background_mean / s, background_precision,
        ) * s * s
    return scores


class RelativeMahalanobis(BaseDetector):
    """Relative Mahalanobis distance (RMD): class distance minus a background distance.

    Fitted on the ID training features with their class labels, in float64
    and by chunks of rows (one pass; the extra memory is two ``D x D``
    matrices plus one chunk, never a float64 copy of the features):
    class means ``mu_k`` and ONE covariance shared by all classes
    (class-centred features, maximum likelihood ``1/N``), as
    :class:`~sklearn_ood.detectors.mahalanobis.Mahalanobis`; and a background
    Gaussian of all training features (labels ignored): mean ``mu_0``,
    covariance ``(1/N) sum (h - mu_0)(h - mu_0)^T``. Both are pseudo-inverted
    (the cutoff of ``scipy.linalg.pinvh``). Score: ``-min_k (MD_k(h) - MD_0(h))`` (OpenOOD's
    ``rmds`` postprocessor; higher means more ID). pytorch-ood's ``RMD``
    leaves its covariances undivided by ``N`` (plus ``1e-6 I``): its scores are
    ``1/N`` of ours, the same ranking.

    Needs class labels: ``fit(X, y)``. 4-D maps ``(N, C, H, W)`` are
    average-pooled over ``H, W``.

    Parameters
    ----------
    normalize : bool, default=False
        L2-normalise every (pooled) feature first (the ``rmdsn`` variant of the
        Mahalanobis++ code, Mueller & Hein, ICML 2025).
    contamination : float, default=0.05
        Fraction of training rows below the threshold ``offset_``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    means_ : ndarray of shape (n_classes, n_features)
        Class means ``mu_k``.
    precision_ : ndarray of shape (n_features, n_features)
        Pseudo-inverse of the shared class-centred covariance.
    background_mean_ : ndarray of shape (n_features,)
        Mean ``mu_0`` of all training features.
    background_precision_ : ndarray of shape (n_features, n_features)
        Pseudo-inverse of the covariance of all training features.
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen in ``fit``; defined only when ``X`` has
        string column names (a pandas DataFrame).
    input_ndim_ : int
        2 for features, 4 for maps: the kind of input seen in ``fit``.

    See Also
    --------
    sklearn_ood.detectors.mahalanobis.Mahalanobis : the plain distance.

    References
    ----------
    Ren, Fort, Liu, Roy, Padhy & Lakshminarayanan, "A Simple Fix to
    Mahalanobis Distance for Improving Near-OOD Detection", 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import RelativeMahalanobis
    >>> X = np.array([[-1.0], [1.0], [3.0], [5.0]])
    >>> det = RelativeMahalanobis().fit(X, [0, 0, 1, 1])
    >>> # shared variance 1, background mean 2 and variance 5
    >>> det.score_samples(np.array([[0.0], [2.0]]))
    array([ 0.8, -4. ])
    """

    _detector_tags = DetectorTags(
        input="features", ndim=(2, 4), labels="required",
        paper="Ren et al., arXiv 2106.09022")

    _parameter_constraints = {
        **BaseDetector._parameter_constraints,
        "normalize": ["boolean"],
    }

    def __init__(self, *, normalize=False, contamination=0.05):
        self.normalize = normalize
        self.contamination = contamination

    def _features(self, X):
        H = pool_maps(X, np.float64)
        return l2_normalize(H) if self.normalize else H

    def _fit(self, X, y):
        if y is None:
            raise ValueError(
                "RelativeMahalanobis requires y to be passed, but the target y is None: "
                "it fits one Gaussian per class, so pass the class labels (fit(X, y))."
            )
        self.classes_, codes = np.unique(y, return_inverse=True)
        n = X.shape[0]
        # One pass by chunks: the extra memory is the D x D scatters plus one chunk.
        # The background scatter is the within-class scatter plus the between-class
        # one, sum_k n_k (mu_k - mu_0)(mu_k - mu_0)^T (law of total covariance).
        with np.errstate(over="ignore", invalid="ignore"):
            counts, self.means_, within = class_moments(  # 2-D features as read
                X, codes, self.classes_.size, tied=True,
                transform=self._features if self.normalize or X.ndim == 4 else None)
            self.background_mean_ = counts @ self.means_ / n
            offsets = self.means_ - self.background_mean_
            covariance = within / n
            background = (within + (offsets.T * counts) @ offsets) / n
        for cov in (covariance, background):
            check_finite_covariance(cov, "RelativeMahalanobis")
        self.precision_ = pseudo_inverse(covariance)
        self.background_precision_ = pseudo_inverse(background)

    def _score(self, X):
        return relative_mahalanobis_score(
            self._features(X), self.means_, self.precision_, self.background_mean_,
            self.background_precision_,
        )

