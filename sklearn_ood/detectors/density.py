"""Feature-space density and distance detectors: Mahalanobis, KNN, ViM, GDA.

Each estimator is a thin shell around pure functions of arrays
(``min_mahalanobis_sqdist``, ``kth_neighbor_sqdist``, ``virtual_logit``,
``gaussian_log_densities`` with ``cholesky_with_jitter``, and
``nan_rescaled_score`` for the NAN combination); scores follow the package
convention, higher means more in-distribution, so distances enter with a
minus sign.
"""

from numbers import Integral, Real

import numpy as np
from scipy.linalg import pinvh, solve_triangular
from scipy.sparse import csr_matrix
from scipy.special import logsumexp
from sklearn.neighbors import NearestNeighbors
from sklearn.utils._param_validation import Interval

from .._base import BaseDetector
from ._head import HeadMixin
from .negative_aware_norm import negative_aware_norm

_TINY = np.finfo(np.float64).tiny
_FMAX = np.finfo(np.float64).max

#: Jitters tried, in this order, by ``GaussianDensity`` (as in the DDU code).
JITTER_LADDER = (0.0, _TINY) + tuple(10.0**e for e in range(-308, 0))


# ----------------------------------------------------------------------------
# Pure functions
# ----------------------------------------------------------------------------
def l2_normalize(X):
    """Divide each row by its L2 norm; all-zero rows stay zero.

    Examples
    --------
    >>> import numpy as np
    >>> l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    array([[0.6, 0.8],
           [0. , 0. ]])
    """
    # Dividing by the largest |x_j| first keeps the squares from overflowing.
    scale = np.maximum(X.max(axis=1, keepdims=True), -X.min(axis=1, keepdims=True))
    out = np.divide(X, scale, out=np.zeros_like(X), where=scale > 0)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return np.divide(out, norms, out=out, where=norms > 0)  # zero rows are already 0


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


def kth_neighbor_sqdist(X, bank, k, *, exclude_self=False):
    """Squared Euclidean distance of each row of ``X`` to its k-th nearest bank row.

    Exact brute-force search with scikit-learn's ``NearestNeighbors(
    algorithm="brute")``: chunked matrix products and a k-smallest selection
    per row, in parallel, without an ``(n_samples, n_bank)`` matrix. Ties
    count with multiplicity, as in faiss. Rows of ``X`` are cast to the bank's
    dtype. (Measured in ``benchmarks/bench_detectors.py --knn``: 1.5x faster
    than matrix products with ``np.partition``, and faster than faiss-cpu's
    exact index on 2 cores.)

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    bank : ndarray of shape (n_bank, n_features)
    k : int
        1-based neighbour rank, ``1 <= k <= n_bank`` (``n_bank - 1`` with
        ``exclude_self``).
    exclude_self : bool, default=False
        ``X`` is the bank itself (same rows, same order): row ``i`` is not
        matched with bank row ``i`` (leave-one-out). Duplicates of row ``i``
        still count.

    Returns
    -------
    sqdist : ndarray of shape (n_samples,), float64

    Examples
    --------
    >>> import numpy as np
    >>> bank = np.array([[0.0], [1.0], [3.0]])
    >>> kth_neighbor_sqdist(np.array([[0.0], [2.5]]), bank, 2)
    array([1.  , 2.25])
    >>> kth_neighbor_sqdist(bank, bank, 1, exclude_self=True)
    array([1., 1., 4.])
    """
    n_bank = bank.shape[0]
    available = n_bank - 1 if exclude_self else n_bank
    if not 1 <= k <= available:
        raise ValueError(
            f"k={k} neighbours requested but the bank holds {n_bank} rows"
            + (" (the row itself excluded)" if exclude_self else "")
            + f"; choose 1 <= k <= {available}."
        )
    if exclude_self and X.shape[0] != n_bank:
        raise ValueError("exclude_self=True needs X to be the bank itself.")
    index = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(bank)
    # kneighbors(None) queries the bank itself and drops each row's own match.
    query = None if exclude_self else np.asarray(X, dtype=bank.dtype)
    distances, _ = index.kneighbors(query)
    return np.square(distances[:, -1], dtype=np.float64)


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


def nan_rescaled_score(distance, activations):
    """NAN-recalibrated distance score ``-(d / NAN(a))`` (Park et al., 2023, Sec. 6.2).

    ``NAN(a) = ||a||_1 / ||a||_0`` (``negative_aware_norm``). A row with no
    active unit (``NAN = 0``) is divided by the smallest positive float64
    instead, and the result is clipped to ``-finfo(float64).max``: such rows
    get hugely negative but finite scores (0 if their distance is 0).

    Examples
    --------
    >>> import numpy as np
    >>> nan_rescaled_score(np.array([1.0, 1.0]), np.array([[2.0, 0.0], [1.0, 3.0]]))
    array([-0.5, -0.5])
    """
    norm = negative_aware_norm(activations)
    with np.errstate(over="ignore"):
        score = -(np.asarray(distance, dtype=np.float64) / np.maximum(norm, _TINY))
    return np.maximum(score, -_FMAX)


# ----------------------------------------------------------------------------
# Estimators
# ----------------------------------------------------------------------------
def _class_means(H, codes):
    """Mean of the rows of ``H`` per integer class code (a sparse one-hot product)."""
    n_classes = int(codes.max()) + 1
    one_hot = csr_matrix(
        (np.ones(codes.size), (codes, np.arange(codes.size))), shape=(n_classes, codes.size)
    )
    return np.asarray(one_hot @ H) / np.bincount(codes, minlength=n_classes)[:, None]


def _pool(X, dtype=None):
    """Average-pool 4-D maps ``(N, C, H, W)`` to ``(N, C)``; 2-D input unchanged."""
    if X.ndim == 4:
        return X.mean(axis=(2, 3), dtype=dtype)
    return X if dtype is None else X.astype(dtype, copy=False)


class Mahalanobis(BaseDetector):
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

    Parameters
    ----------
    contamination : float, default=0.05
        Fraction of training rows below the threshold ``offset_``.
    nan_rescale : bool, default=False
        Score ``-(d / NAN(a))`` instead (NAN + SSD-style combination of Park et
        al., 2023): ``d`` is the minimum squared Mahalanobis distance and
        ``NAN(a) = ||a||_1 / ||a||_0`` of the unpooled input ``a`` (a 4-D map
        is flattened; 2-D features are used as given). See
        ``nan_rescaled_score`` for rows with ``NAN = 0``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,) or None
        Class labels; ``None`` when fitted without labels.
    means_ : ndarray of shape (n_classes, n_features)
    covariance_ : ndarray of shape (n_features, n_features)
        Shared (tied) covariance.
    precision_ : ndarray of shape (n_features, n_features)
        Its pseudo-inverse (``scipy.linalg.pinvh``).
    offset_ : float
    n_features_in_ : int

    See Also
    --------
    GaussianDensity : per-class covariances and a log-sum-exp density.

    References
    ----------
    Lee, Lee, Lee & Shin, "A Simple Unified Framework for Detecting
    Out-of-Distribution Samples and Adversarial Attacks", NeurIPS 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood.detectors.density import Mahalanobis
    >>> X = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
    >>> det = Mahalanobis().fit(X)
    >>> det.covariance_
    array([[1., 0.],
           [0., 1.]])
    >>> det.score_samples(np.array([[2.0, 1.0], [4.0, 1.0]]))
    array([-1., -9.])
    """

    _parameter_constraints = {
        **BaseDetector._parameter_constraints,
        "nan_rescale": ["boolean"],
    }
    _allow_nd = True

    def __init__(self, *, contamination=0.05, nan_rescale=False):
        self.contamination = contamination
        self.nan_rescale = nan_rescale

    def _fit(self, X, y):
        H = _pool(X, np.float64)
        if y is None:
            self.classes_ = None
            codes = np.zeros(H.shape[0], dtype=np.intp)
        else:
            self.classes_, codes = np.unique(y, return_inverse=True)
        self.means_ = _class_means(H, codes)
        centred = H - self.means_[codes]
        self.covariance_ = centred.T @ centred / H.shape[0]
        self.precision_ = pinvh(self.covariance_, check_finite=False)

    def _score(self, X):
        H = _pool(X, np.float64)
        d = min_mahalanobis_sqdist(H, self.means_, self.precision_)
        return nan_rescaled_score(d, X) if self.nan_rescale else -d


class KNN(BaseDetector):
    """Deep nearest-neighbour detector: distance to the k-th nearest training feature.

    Features are L2-normalised (zero rows stay zero); the bank is the
    normalised ID training set. Score: ``-(squared Euclidean distance to the
    k-th nearest bank row)``, as faiss ``IndexFlatL2`` returns it
    (monotone-equivalent to ``-distance``). Higher means more ID.

    Neighbours are found by exact brute-force search
    (:func:`kth_neighbor_sqdist`) in the dtype of the training features
    (float32 input keeps a float32 bank, like faiss).

    Threshold: a training row is its own nearest neighbour at distance 0, so
    scoring the bank against itself would be optimistic. ``offset_`` is
    therefore computed from leave-one-out training scores (each row's own
    match excluded, duplicates kept), i.e. the scores the training rows would
    get as new samples. ``score_samples`` itself never excludes anything, as
    in the reference code, so ``predict`` on the training set flags fewer
    than ``contamination`` of it.

    4-D maps ``(N, C, H, W)`` are accepted and average-pooled over ``H, W``
    before normalisation.

    Parameters
    ----------
    n_neighbors : int, default=50
        Neighbour rank ``k`` (50 on CIFAR-10, 1000 on ImageNet in the paper);
        needs at least ``k + 1`` ID training rows.
    contamination : float, default=0.05
        Fraction of (leave-one-out) training scores below ``offset_``.
    nan_rescale : bool, default=False
        Score ``-(d / NAN(a))`` instead (NAN + KNN of Park et al., 2023): ``d``
        is the k-th neighbour Euclidean distance (not squared) and
        ``NAN(a) = ||a||_1 / ||a||_0`` of the unnormalised, unpooled input
        (a 4-D map is flattened). See ``nan_rescaled_score`` for ``NAN = 0``.

    Attributes
    ----------
    bank_ : ndarray of shape (n_train, n_features)
        Normalised ID training features.
    offset_ : float
    n_features_in_ : int

    References
    ----------
    Sun, Ming, Zhu & Li, "Out-of-Distribution Detection with Deep Nearest
    Neighbors", ICML 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood.detectors.density import KNN
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> det = KNN(n_neighbors=2).fit(X)
    >>> # squared distances of (1, 0) to the normalised rows: 0, 2, 2 - sqrt(2)
    >>> det.score_samples(np.array([[2.0, 0.0], [-1.0, 0.0]])).round(4)
    array([-0.5858, -3.4142])
    """

    _parameter_constraints = {
        **BaseDetector._parameter_constraints,
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "nan_rescale": ["boolean"],
    }
    _allow_nd = True

    def __init__(self, *, n_neighbors=50, contamination=0.05, nan_rescale=False):
        self.n_neighbors = n_neighbors
        self.contamination = contamination
        self.nan_rescale = nan_rescale

    def _fit(self, X, y):
        if X.shape[0] <= self.n_neighbors:
            raise ValueError(
                f"KNN with n_neighbors={self.n_neighbors} needs at least "
                f"{self.n_neighbors + 1} in-distribution training rows (a training "
                "row's own match is excluded when setting offset_); got "
                f"n_samples={X.shape[0]}. Lower n_neighbors or add training data."
            )
        self.bank_ = l2_normalize(_pool(X))

    def _score(self, X, *, leave_one_out=False):
        H = self.bank_ if leave_one_out else l2_normalize(_pool(X))
        d = kth_neighbor_sqdist(H, self.bank_, self.n_neighbors, exclude_self=leave_one_out)
        if self.nan_rescale:
            return nan_rescaled_score(np.sqrt(d), X)
        return -d

    def _training_scores(self, X):
        # X is the bank: each row's own match is left out (see the class docstring).
        return self._score(X, leave_one_out=True)


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
    n_features_in_ : int

    References
    ----------
    Wang, Li, Feng & Zhang, "ViM: Out-Of-Distribution with Virtual-logit
    Matching", CVPR 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood.detectors.density import ViM
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
        X = X.astype(np.float64)
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
        centred = X - self.origin_
        eig_vals, eig_vecs = np.linalg.eigh(centred.T @ centred / n_samples)
        order = np.argsort(eig_vals)[::-1]
        self.null_space_ = np.ascontiguousarray(eig_vecs[:, order[k:]])
        v = virtual_logit(X, self.origin_, self.null_space_)
        mean_v = v.mean()
        if not mean_v > 1e-12 * np.linalg.norm(centred, axis=1).mean():
            raise ValueError(
                f"ViM's training features have no residual outside the top {k} "
                f"principal directions (n_samples={n_samples}, n_features="
                f"{n_features}): use more training samples than n_components or "
                "a smaller n_components."
            )
        self.alpha_ = float(self._logits(X).max(axis=1).mean() / mean_v)

    def _score(self, X):
        X = X.astype(np.float64)
        v = virtual_logit(X, self.origin_, self.null_space_)
        return -self.alpha_ * v + logsumexp(self._logits(X), axis=1)


class GaussianDensity(BaseDetector):
    """Gaussian discriminant analysis density (DDU): log-sum-exp of class Gaussians.

    One Gaussian per class with the class mean and its own full covariance
    (unbiased, ``1/(n_c - 1)``), in float64. A jitter ``eps I`` is added to
    every covariance: the first ``eps`` of ``[0, tiny, 1e-308, 1e-307, ...,
    1e-1]`` for which all Cholesky factorisations succeed (same ``eps`` for
    all classes). Score: ``logsumexp_c log N(h; mu_c, Sigma_c + eps I)``,
    with no class prior. Higher means more ID. Scores are floored at
    ``-finfo(float64).max`` (far from a nearly singular class the
    log-density can overflow).

    Needs class labels: ``fit(X, y)``.

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
    offset_ : float
    n_features_in_ : int

    See Also
    --------
    Mahalanobis : one shared covariance, minimum distance over classes.

    References
    ----------
    Mukhoti, Kirsch, van Amersfoort, Torr & Gal, "Deep Deterministic
    Uncertainty: A New Simple Baseline", CVPR 2023. Haas, Yolland & Rabus,
    "Linking Neural Collapse and L2 Normalization with Improved
    Out-of-Distribution Detection in Deep Neural Networks", TMLR 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood.detectors.density import GaussianDensity
    >>> X = np.array([[-1.0], [1.0], [9.0], [11.0]])
    >>> det = GaussianDensity().fit(X, [0, 0, 1, 1])
    >>> det.covariances_.ravel(), det.jitter_
    (array([2., 2.]), 0.0)
    >>> det.score_samples(np.array([[0.0]])).round(4)  # log N(0; 0, 2)
    array([-1.2655])
    """

    _parameter_constraints = {
        **BaseDetector._parameter_constraints,
        "normalize": ["boolean"],
        "reg_covar": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(self, *, normalize=False, reg_covar=0.0, contamination=0.05):
        self.normalize = normalize
        self.reg_covar = reg_covar
        self.contamination = contamination

    def _features(self, X):
        X = X.astype(np.float64)
        return l2_normalize(X) if self.normalize else X

    def _fit(self, X, y):
        if y is None:
            raise ValueError(
                "GaussianDensity requires y to be passed, but the target y is None: "
                "it fits one Gaussian per class, so pass the class labels (fit(X, y))."
            )
        H = self._features(X)
        self.classes_, codes = np.unique(y, return_inverse=True)
        counts = np.bincount(codes, minlength=self.classes_.size)
        if counts.min() < 2:
            c = self.classes_[np.argmin(counts)].item()
            raise ValueError(
                f"GaussianDensity needs at least 2 samples per class to estimate a "
                f"covariance; class {c!r} has 1 sample."
            )
        K, D = self.classes_.size, H.shape[1]
        self.means_ = np.empty((K, D))
        self.covariances_ = np.empty((K, D, D))
        for c in range(K):
            Hc = H[codes == c]
            self.means_[c] = Hc.mean(axis=0)
            centred = Hc - self.means_[c]
            self.covariances_[c] = centred.T @ centred / (Hc.shape[0] - 1)
        jitters = (self.reg_covar,) + tuple(j for j in JITTER_LADDER if j > self.reg_covar)
        self.jitter_, self.cholesky_factors_ = cholesky_with_jitter(self.covariances_, jitters)

    def _score(self, X):
        log_dens = gaussian_log_densities(
            self._features(X), self.means_, self.cholesky_factors_
        )
        return np.maximum(logsumexp(log_dens, axis=1), -_FMAX)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags
