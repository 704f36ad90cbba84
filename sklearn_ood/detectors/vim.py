"""Virtual-logit matching (ViM): energy minus a scaled residual norm.

Wang, Li, Feng & Zhang, "ViM: Out-Of-Distribution with Virtual-logit
Matching", CVPR 2022, https://arxiv.org/abs/2203.10807.

The pure functions :func:`virtual_logit` and :func:`vim_principal_dim` hold
the method; :class:`ViM` fits the origin, the residual space and the
matching constant ``alpha`` from the training features and the head.
"""

from numbers import Integral

import numpy as np
from scipy.special import logsumexp
from sklearn.utils._param_validation import Interval

from .._base import AccumulatingDetector, BaseDetector
from .._tags import DetectorTags
from ._features import check_finite_covariance, one_blas_thread
from ._head import HeadMixin


def virtual_logit(X, origin, null_space):
    """ViM residual norm ``||(x - u) NS||_2`` of each row (Wang et al., 2022).

    Examples
    --------
    >>> import numpy as np
    >>> virtual_logit(np.array([[3.0, 4.0]]), np.zeros(2), np.array([[0.0], [1.0]]))
    array([4.])
    """
    return np.linalg.norm((X - origin) @ null_space, axis=1)


def vim_principal_dim(n_features):
    """ViM's default principal dimension ``D*`` for ``n_features = D`` features.

    1000 if ``D >= 2048``, 512 if ``D >= 768``, else ``D // 2`` (Wang et al., 2022).

    Examples
    --------
    >>> vim_principal_dim(2048), vim_principal_dim(768), vim_principal_dim(512)
    (1000, 512, 256)
    """
    if n_features >= 2048:
        return 1000
    return 512 if n_features >= 768 else n_features // 2


class ViM(HeadMixin, AccumulatingDetector):
    """Virtual-logit matching (ViM): energy minus a scaled residual norm.

    With the head ``(W, b)``: origin ``u = -pinv(W) b``; eigenvectors of the
    uncentred covariance ``(h - u)^T (h - u) / N`` of the training features
    (float64, ``eigh``, sorted by decreasing eigenvalue); the principal space
    is spanned by the top ``D*`` of them and ``NS`` by the rest. Virtual logit
    ``v = ||(h - u) NS||``, ``alpha = mean_train(max_k z_k) / mean_train(v)``,
    score ``-alpha v + logsumexp(z)`` with ``z = h W^T + b``. Higher means
    more ID. (Like the reference, ``alpha`` is negative if the mean training
    max-logit is; the residual then raises the score.)

    The covariance is accumulated by chunks (float64 count, mean and scatter,
    so ``partial_fit`` on the chunks of ``X`` gives it up to rounding); the two
    means of ``alpha`` need the final ``NS`` and are taken over the offset
    sample: all training rows up to 10,000, beyond that a seeded uniform
    sample of 10,000 (the same rows for ``fit`` and for ``partial_fit`` calls
    on the chunks of ``X``). ``y`` is ignored.

    Parameters
    ----------
    head : torch.nn.Linear or (coef, intercept)
        The final linear layer (required).
    n_components : int, default=None
        Principal dimension ``D*`` (``0 <= D* < D``). ``None``: 1000 if
        ``D >= 2048``, 512 if ``D >= 768``, else ``D // 2`` (the paper's rule).
    contamination : float, default=0.05
        Fraction of training rows below the threshold ``offset_``.

    Attributes
    ----------
    coef_, intercept_ : ndarray
        The head.
    origin_ : ndarray of shape (n_features,)
        ``u``.
    n_components_ : int
        ``D*`` used.
    null_space_ : ndarray of shape (n_features, n_features - n_components_)
        ``NS``.
    alpha_ : float
        ``mean(max_k z_k) / mean(v)`` over the offset sample.
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen in ``fit``; defined only when ``X`` has
        string column names (a pandas DataFrame).
    n_samples_seen_ : int
        Number of training rows seen by ``fit`` and the ``partial_fit``
        calls since.
    classes_seen_, statistics_, statistics_params_, reservoir_
        What ``partial_fit`` continues from (as documented in
        :class:`~sklearn_ood._base.AccumulatingDetector`): the sorted class
        labels seen (or ``None``), the accumulated statistics, the parameters
        they depend on, and the reservoir of training rows that sets ``offset_``.

    References
    ----------
    Wang, Li, Feng & Zhang, "ViM: Out-Of-Distribution with Virtual-logit
    Matching", CVPR 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import ViM
    >>> X = np.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    >>> det = ViM(head=(np.eye(2), np.zeros(2)), n_components=1).fit(X)
    >>> det.alpha_  # mean max-logit 0.75 / mean residual |x_2| 0.5
    1.5
    >>> det.score_samples(np.array([[0.0, 0.0], [0.0, 2.0]])).round(4)
    array([ 0.6931, -0.8731])

    By chunks (each call must leave a residual to fit on):

    >>> det = ViM(head=(np.eye(2), np.zeros(2)), n_components=1)
    >>> for rows in ([0, 2], [1, 3]):
    ...     det = det.partial_fit(X[rows])
    >>> det.alpha_
    1.5
    """

    _detector_tags = DetectorTags(
        input="features", head="required", paper="Wang et al., CVPR 2022")

    _parameter_constraints = {
        **BaseDetector._parameter_constraints,
        "head": "no_validation",
        "n_components": [Interval(Integral, 0, None, closed="left"), None],
    }

    def __init__(self, head=None, *, n_components=None, contamination=0.05):
        self.head = head
        self.n_components = n_components
        self.contamination = contamination

    def _fit_statistics(self, classes, counts, means, scatter, sample, *, partial):
        self._fit_head(sample)
        n_samples, n_features = counts[0], means.shape[1]
        if self.n_components is None:
            k = vim_principal_dim(n_features)
        elif self.n_components >= n_features:
            raise ValueError(
                "ViM needs n_components < n_features to leave a residual space; got "
                f"n_components={self.n_components} and n_features={n_features}."
            )
        else:
            k = self.n_components
        self.n_components_ = k
        self.origin_ = -np.linalg.pinv(self.coef_) @ self.intercept_
        # Uncentred around u: the scatter around the mean plus n (mean - u)(mean - u)^T.
        delta = means[0] - self.origin_
        with np.errstate(over="ignore", invalid="ignore"):
            covariance = (scatter + n_samples * np.outer(delta, delta)) / n_samples
        check_finite_covariance(covariance, "ViM")
        with one_blas_thread():  # a D x D factorisation: see one_blas_thread
            eig_vals, eig_vecs = np.linalg.eigh(covariance)
        order = np.argsort(eig_vals)[::-1]
        self.null_space_ = np.ascontiguousarray(eig_vecs[:, order[k:]])
        # alpha's two means need the final null space, hence the rows themselves:
        # those of the offset sample (all rows up to 10,000, else a uniform sample).
        H = sample.astype(np.float64)
        v = virtual_logit(H, self.origin_, self.null_space_)
        mean_v = v.mean()
        if not mean_v > 1e-12 * np.linalg.norm(H - self.origin_, axis=1).mean():
            raise ValueError(
                f"ViM's training features have no residual outside the top {k} "
                f"principal directions (n_samples={n_samples}, n_features="
                f"{n_features}): use more training samples than n_components or "
                "a smaller n_components."
            )
        self.alpha_ = float(self._logits(H).max(axis=1).mean() / mean_v)

    def _score(self, X):
        # Float32 features are scored in float32 (the fitted statistics stay
        # float64: eigenvectors of a covariance); the two terms are combined in float64.
        dtype = np.float32 if X.dtype == np.float32 else np.float64
        v = virtual_logit(X, self.origin_.astype(dtype), self.null_space_.astype(dtype))
        energy = logsumexp(self._logits(X), axis=1)
        return -self.alpha_ * v.astype(np.float64) + energy.astype(np.float64)
