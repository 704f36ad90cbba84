"""Mahalanobis distance to the closest class mean, with one shared covariance.

Lee, Lee, Lee & Shin, "A Simple Unified Framework for Detecting
Out-of-Distribution Samples and Adversarial Attacks", NeurIPS 2018,
https://arxiv.org/abs/1807.03888.

The pure function :func:`min_mahalanobis_sqdist` holds the distance;
:class:`Mahalanobis` fits the class means and the shared covariance. The
score is minus the distance (higher means more in-distribution), or the
distance rescaled by the negative-aware norm (Park et al., 2023).
"""

import numpy as np

from .._base import AccumulatingDetector, BaseDetector
from .._tags import DetectorTags
from ._features import check_finite_covariance, l2_normalize, pool_maps, pseudo_inverse
from .negative_aware_norm import negative_aware_rescaled_score


def min_mahalanobis_sqdist(X, means, precision):
    """Smallest squared Mahalanobis distance of each row to the class means.

    ``d_c(x) = (x - mu_c)^T P (x - mu_c)`` expanded as
    ``x^T P x - 2 x^T P mu_c + mu_c^T P mu_c`` (all rows at once, an
    ``(n, K)`` matrix; no ``(n, K, D)`` temporary). Everything is first shifted
    by the mean of the class means, which leaves every ``d_c`` unchanged and
    limits cancellation. Tiny negative round-off is clipped to 0.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    means : ndarray of shape (n_classes, n_features)
    precision : ndarray of shape (n_features, n_features)
        Symmetric (pseudo-)inverse of the shared covariance.

    Returns
    -------
    sqdist : ndarray of shape (n_samples,)

    Examples
    --------
    >>> import numpy as np
    >>> min_mahalanobis_sqdist(np.array([[2.0, 0.0]]), np.array([[0.0, 0.0], [2.0, 2.0]]),
    ...                        np.diag([1.0, 0.25]))
    array([1.])
    """
    center = means.mean(axis=0)
    Xs, Ms = X - center, means - center
    XP = Xs @ precision
    d = np.einsum("ij,ij->i", XP, Xs)[:, None] - 2.0 * (XP @ Ms.T)
    d += np.einsum("ij,ij->i", Ms @ precision, Ms)[None, :]
    # inf - inf for features too large to square: the distance is infinite.
    d[np.isnan(d)] = np.inf
    return np.maximum(d.min(axis=1), 0.0)


class Mahalanobis(AccumulatingDetector):
    """Mahalanobis distance to the closest class mean, with a shared covariance.

    Score: ``-min_c (h - mu_c)^T P (h - mu_c)`` where ``mu_c`` are the class
    means of the training features and ``P`` the pseudo-inverse of ONE
    covariance shared by all classes (class-centred features, maximum
    likelihood ``1/N``), all in float64. Higher means more ID. This is the
    simple variant used as a baseline by later work (no input pre-processing,
    no multi-layer ensemble).

    Without labels (``fit(X)``) the training set is one class: the score is
    the Mahalanobis distance to the global mean (useful for label-free
    backbones, e.g. NAN's self-supervised setting).

    4-D maps ``(N, C, H, W)`` are accepted and average-pooled over ``H, W``
    for the distance (what global average pooling feeds the classifier).

    ``partial_fit(X, y)`` adds chunks of rows to the same float64 statistics
    (class counts, means and the within-class scatter): calls on the chunks of
    ``X`` give the statistics of ``fit(X, y)`` up to rounding; a label first
    seen in a later call adds a class (see ``partial_fit``).

    Parameters
    ----------
    contamination : float, default=0.05
        Fraction of training rows below the threshold ``offset_``.
    negative_aware_rescale : bool, default=False
        Score ``-(d / NAN(a))`` instead (NAN + SSD-style combination of Park et
        al., 2023): ``d`` is the minimum squared Mahalanobis distance and
        ``NAN(a) = ||a||_1 / ||a||_0`` of the unpooled input ``a`` (a 4-D map
        is flattened; 2-D features are used as given). See
        ``negative_aware_rescaled_score`` for rows with ``NAN = 0``.
    normalize : bool, default=False
        L2-normalise every (pooled) feature, ``h / ||h||`` (zero rows stay
        zero), before the class means, the covariance and the distance:
        Mahalanobis++ (Mueller & Hein, ICML 2025,
        code: https://github.com/mueller-mp/maha-norm), as in its README recipe
        (``EmpiricalCovariance(assume_centered=True)`` on the class-centred
        normalised features, float64). The NAN rescaling, if any, still reads
        the unnormalised input.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,) or None
        Class labels; ``None`` when fitted without labels.
    means_ : ndarray of shape (n_classes, n_features)
    covariance_ : ndarray of shape (n_features, n_features)
        Shared (tied) covariance.
    precision_ : ndarray of shape (n_features, n_features)
        Its pseudo-inverse (the cutoff of ``scipy.linalg.pinvh``).
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Number of features (channels for 4-D maps) seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen in ``fit``; defined only when ``X`` has
        string column names (a pandas DataFrame).
    input_ndim_ : int
        2 for features, 4 for maps: the kind of input seen in ``fit``.
    n_samples_seen_ : int
        Number of in-distribution training rows seen by ``fit`` and the
        ``partial_fit`` calls since.
    classes_seen_, statistics_, statistics_params_, reservoir_
        What ``partial_fit`` continues from (as documented in
        :class:`~sklearn_ood._base.AccumulatingDetector`): the sorted class
        labels seen (or ``None``), the accumulated statistics, the parameters
        they depend on, and the reservoir of training rows that sets ``offset_``.

    See Also
    --------
    sklearn_ood.detectors.gaussian_density.GaussianDensity : per-class
        covariances and a log-sum-exp density.
    sklearn_ood.detectors.relative_mahalanobis.RelativeMahalanobis : the
        distance relative to a class-agnostic background Gaussian.

    References
    ----------
    Lee, Lee, Lee & Shin, "A Simple Unified Framework for Detecting
    Out-of-Distribution Samples and Adversarial Attacks", NeurIPS 2018.
    Mueller & Hein, "Mahalanobis++: Improving OOD Detection via Feature
    Normalization", ICML 2025 (``normalize=True``).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import Mahalanobis
    >>> X = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
    >>> det = Mahalanobis().fit(X)
    >>> det.covariance_
    array([[1., 0.],
           [0., 1.]])
    >>> det.score_samples(np.array([[2.0, 1.0], [4.0, 1.0]]))
    array([-1., -9.])

    The same statistics from chunks of rows:

    >>> det = Mahalanobis()
    >>> for chunk in (X[:3], X[3:]):
    ...     det = det.partial_fit(chunk)
    >>> det.covariance_, det.n_samples_seen_
    (array([[1., 0.],
           [0., 1.]]), 4)
    """

    _detector_tags = DetectorTags(
        input="features", ndim=(2, 4), labels="optional",
        paper="Lee et al., NeurIPS 2018; Mueller & Hein, ICML 2025")

    _parameter_constraints = {
        **BaseDetector._parameter_constraints,
        "negative_aware_rescale": ["boolean"],
        "normalize": ["boolean"],
    }
    _statistics_params = ("normalize",)

    def __init__(self, *, contamination=0.05, negative_aware_rescale=False, normalize=False):
        self.contamination = contamination
        self.negative_aware_rescale = negative_aware_rescale
        self.normalize = normalize

    def _features(self, X):
        H = pool_maps(X, np.float64)
        return l2_normalize(H) if self.normalize else H

    def _moment_features(self, H):
        # 2-D features as read (float32 too): class_moments centres them in float64
        return self._features(H) if self.normalize or H.ndim == 4 else H

    def _fit_statistics(self, classes, counts, means, scatter, sample, *, partial):
        self.classes_, self.means_ = classes, means
        with np.errstate(over="ignore", invalid="ignore"):
            self.covariance_ = scatter / counts.sum()
        check_finite_covariance(self.covariance_, "Mahalanobis")
        self.precision_ = pseudo_inverse(self.covariance_)

    def _score(self, X):
        H = self._features(X)
        d = min_mahalanobis_sqdist(H, self.means_, self.precision_)
        return negative_aware_rescaled_score(d, X) if self.negative_aware_rescale else -d
