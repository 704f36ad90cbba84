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

from .._base import BaseDetector
from ._features import check_finite_covariance, row_chunks
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


class ViM(HeadMixin, BaseDetector):
    """Virtual-logit matching (ViM): energy minus a scaled residual norm.

    With the head ``(W, b)``: origin ``u = -pinv(W) b``; eigenvectors of the
    uncentred covariance ``(h - u)^T (h - u) / N`` of the training features
    (float64, ``eigh``, sorted by decreasing eigenvalue); the principal space
    is spanned by the top ``D*`` of them and ``NS`` by the rest. Virtual logit
    ``v = ||(h - u) NS||``, ``alpha = mean_train(max_k z_k) / mean_train(v)``,
    score ``-alpha v + logsumexp(z)`` with ``z = h W^T + b``. Higher means
    more ID. (Like the reference, ``alpha`` is negative if the mean training
    max-logit is; the residual then raises the score.)

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
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen in ``fit``; defined only when ``X`` has
        string column names (a pandas DataFrame).

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
    """

    head_required = True
    _parameter_constraints = {
        **BaseDetector._parameter_constraints,
        "head": "no_validation",
        "n_components": [Interval(Integral, 0, None, closed="left"), None],
    }

    def __init__(self, head=None, *, n_components=None, contamination=0.05):
        self.head = head
        self.n_components = n_components
        self.contamination = contamination

    def _fit(self, X, y):
        self._fit_head(X)
        n_samples, n_features = X.shape
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
        # Two passes by chunks of float64 rows: never a float64 copy of X.
        chunks = row_chunks(n_samples)
        covariance = np.zeros((n_features, n_features))
        with np.errstate(over="ignore", invalid="ignore"):
            for rows in chunks:
                centred = X[rows].astype(np.float64) - self.origin_
                covariance += centred.T @ centred
            covariance /= n_samples
        check_finite_covariance(covariance, "ViM")
        eig_vals, eig_vecs = np.linalg.eigh(covariance)
        order = np.argsort(eig_vals)[::-1]
        self.null_space_ = np.ascontiguousarray(eig_vecs[:, order[k:]])
        v, norms, max_logits = (np.empty(n_samples) for _ in range(3))
        for rows in chunks:
            H = X[rows].astype(np.float64)
            v[rows] = virtual_logit(H, self.origin_, self.null_space_)
            norms[rows] = np.linalg.norm(H - self.origin_, axis=1)
            max_logits[rows] = self._logits(H).max(axis=1)
        mean_v = v.mean()
        if not mean_v > 1e-12 * norms.mean():
            raise ValueError(
                f"ViM's training features have no residual outside the top {k} "
                f"principal directions (n_samples={n_samples}, n_features="
                f"{n_features}): use more training samples than n_components or "
                "a smaller n_components."
            )
        self.alpha_ = float(max_logits.mean() / mean_v)

    def _score(self, X):
        X = X.astype(np.float64)
        v = virtual_logit(X, self.origin_, self.null_space_)
        return -self.alpha_ * v + logsumexp(self._logits(X), axis=1)
