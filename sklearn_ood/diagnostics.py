"""Neural-collapse diagnostics (Papyan, Han & Donoho, 2020) for penultimate features.

A leaf module: NumPy and SciPy only. Torch tensors and ``nn.Linear`` heads are
accepted by duck typing (``.detach().cpu().numpy()``), without importing torch.
"""

import numpy as np
from scipy import linalg

from ._validation import as_numpy, check_head

__all__ = ["neural_collapse"]


def neural_collapse(features, y, head=None):
    """Neural-collapse metrics NC1-NC4 of features ``h`` and a linear head.

    With ``N`` samples, ``K`` classes, class means ``mu_c``, global mean
    ``mu_G`` (the mean of all features) and ``M`` the ``K x D`` matrix of
    centred class means ``mu_c - mu_G``:

    * ``Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T``,
      ``Sigma_B = (1/K) sum_c (mu_c - mu_G)(mu_c - mu_G)^T``,
      **NC1** ``= Tr(Sigma_W Sigma_B^+) / K`` with the Moore-Penrose
      pseudo-inverse. ``Sigma_B`` has rank at most ``K - 1``; the
      pseudo-inverse is taken on that subspace (see Notes), which is exact
      and avoids the blow-up of a naive ``pinv`` on spurious tiny eigenvalues.
    * **NC2** (simplex ETF) for a ``K x K`` Gram matrix ``G``:
      ``|| G / ||G||_F - (I_K - 11^T/K) / sqrt(K-1) ||_F``, with
      ``G = M M^T`` for the means and ``G = W W^T`` for the head weights.
      Equinorm = std / mean of the row norms; equiangularity = std of the
      cosines between distinct rows. Standard deviations are population
      standard deviations (``ddof=0``).
    * **NC3** (self-duality), as in the reference code of Zhu et al. (2021):
      ``|| W M^T / ||W M^T||_F - (I_K - 11^T/K) / sqrt(K-1) ||_F``.
    * **NC4**: fraction of samples whose head prediction
      ``argmax_k (h W^T + b)_k`` differs from the nearest class centre
      ``argmin_c ||h - mu_c||_2``.

    All metrics are 0 at perfect neural collapse. Everything is computed in
    float64.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
        Penultimate features ``h`` (the input of the final linear layer),
        typically of the training set. Must be finite.
    y : array-like of shape (n_samples,)
        Class labels, at least two distinct classes. Classes are ordered as
        ``np.unique(y)``; row ``k`` of the head belongs to the ``k``-th class
        in that order (as with scikit-learn's ``classes_``). Negative labels
        (the package's marker for OOD rows) are rejected.
    head : torch.nn.Linear or tuple of (coef, intercept), default=None
        The final linear layer: ``coef`` of shape ``(n_classes, n_features)``
        and ``intercept`` of shape ``(n_classes,)`` or ``None``. When given,
        the weight-based metrics are added to the result.

    Returns
    -------
    metrics : dict of str to float
        Always:

        - ``"nc1"``: ``Tr(Sigma_W Sigma_B^+) / K``, within-class variability
          collapse.
        - ``"etf_means"``: NC2 distance of the centred class means to a
          simplex ETF.
        - ``"equinorm_means"``: std / mean of ``||mu_c - mu_G||``.
        - ``"equiangularity_means"``: std of the pairwise cosines between
          centred class means.

        Only when ``head`` is given:

        - ``"etf_weights"``, ``"equinorm_weights"``,
          ``"equiangularity_weights"``: the same for the rows of ``W``.
        - ``"self_duality"``: NC3 distance of ``W M^T`` to a simplex ETF.
        - ``"ncc_mismatch"``: NC4 disagreement rate in ``[0, 1]``.

        A metric is NaN when it is undefined (e.g. all class means coincide,
        so ``Sigma_B = 0``, or a class mean equals the global mean for the
        cosines).

    Raises
    ------
    ValueError
        If ``features`` is not a finite 2-D array, ``y`` is not 1-D with one
        label per row, fewer than two classes are present, labels are
        negative, or the head's shape does not match ``(n_classes, n_features)``.

    Notes
    -----
    Because ``sum_c n_c (mu_c - mu_G) = 0``, the between-class covariance has
    a structural null direction. It is removed exactly before the SVD of the
    centred means; singular values below ``max(K, D) * eps`` times the largest
    one are then treated as zero. In exact arithmetic this equals
    ``scipy.linalg.pinv(Sigma_B)`` as used by the reference code, and costs
    ``O(N D K)`` instead of ``O(D^3)``.

    References
    ----------
    .. [1] V. Papyan, X. Y. Han, D. L. Donoho, "Prevalence of neural collapse
       during the terminal phase of deep learning training", PNAS 2020.
    .. [2] Z. Zhu et al., "A Geometric Analysis of Neural Collapse with
       Unconstrained Features", NeurIPS 2021 (reference code validate_NC.py).

    Examples
    --------
    Three classes at the vertices of a regular simplex, with no within-class
    spread, are perfectly collapsed:

    >>> import numpy as np
    >>> from sklearn_ood.diagnostics import neural_collapse
    >>> angles = 2 * np.pi * np.arange(3) / 3
    >>> means = np.c_[np.cos(angles), np.sin(angles)]
    >>> y = np.repeat([0, 1, 2], 4)
    >>> m = neural_collapse(means[y], y, head=(means, np.zeros(3)))
    >>> round(m["nc1"], 6), round(m["etf_means"], 6), round(m["self_duality"], 6)
    (0.0, 0.0, 0.0)
    >>> m["ncc_mismatch"]
    0.0

    Noise around the means makes NC1 positive:

    >>> rng = np.random.default_rng(0)
    >>> neural_collapse(means[y] + 0.1 * rng.normal(size=(12, 2)), y)["nc1"] > 0
    True
    """
    H, y_idx, n_classes = _check_features_labels(features, y)
    n_samples, n_features = H.shape
    K = n_classes

    counts = np.bincount(y_idx, minlength=K)
    means = np.zeros((K, n_features))
    np.add.at(means, y_idx, H)
    means /= counts[:, None]
    M = means - H.mean(axis=0)
    within = H - means[y_idx]

    gram_means = M @ M.T
    result = {
        "nc1": _nc1(within, M, counts),
        "etf_means": _etf_distance(gram_means),
        "equinorm_means": _equinorm(gram_means),
        "equiangularity_means": _equiangularity(gram_means),
    }
    if head is None:
        return result

    W, b = check_head(head, n_features, n_classes=K)
    gram_weights = W @ W.T
    logits = H @ W.T + b
    # argmin_c ||h - mu_c||^2 == argmin_c (||mu_c||^2 - 2 h . mu_c)
    ncc = np.argmin((means**2).sum(axis=1) - 2.0 * H @ means.T, axis=1)
    result.update(
        etf_weights=_etf_distance(gram_weights),
        equinorm_weights=_equinorm(gram_weights),
        equiangularity_weights=_equiangularity(gram_weights),
        self_duality=_etf_distance(W @ M.T),
        ncc_mismatch=float(np.mean(np.argmax(logits, axis=1) != ncc)),
    )
    return result


def _nc1(within, M, counts):
    """``Tr(Sigma_W Sigma_B^+) / K`` without forming any D x D matrix.

    The count-weighted centred means sum to zero (``counts @ M == 0``), so
    ``Sigma_B = M^T M / K`` has rank at most ``K - 1``. Writing
    ``M^T M = M'^T M'`` with ``M' = B^T M`` (``B`` an orthonormal basis of
    the complement of ``counts``) drops that structurally zero direction
    exactly; a naive ``pinv(Sigma_B)`` keeps it whenever rounding pushes its
    eigenvalue above the cut-off, and NC1 then explodes. With the SVD
    ``M' = U S V^T``, ``Sigma_B^+ = V diag(K / s^2) V^T`` and
    ``Tr(Sigma_W Sigma_B^+) / K = sum_j ||within v_j||^2 / (N s_j^2)``.
    """
    K, n_features = M.shape
    basis = linalg.null_space(counts[None, :].astype(np.float64))  # K x (K - 1)
    _, s, Vt = linalg.svd(basis.T @ M, full_matrices=False)
    if s.size == 0 or s[0] == 0:
        return float("nan")
    keep = s > max(K, n_features) * np.finfo(np.float64).eps * s[0]
    projected = within @ Vt[keep].T
    return float(np.sum((projected**2).sum(axis=0) / s[keep] ** 2) / within.shape[0])


def _etf_distance(G):
    K = G.shape[0]
    norm = np.linalg.norm(G)
    if norm == 0:
        return float("nan")
    target = (np.eye(K) - np.full((K, K), 1.0 / K)) / np.sqrt(K - 1)
    return float(np.linalg.norm(G / norm - target))


def _equinorm(G):
    norms = np.sqrt(np.clip(np.diag(G), 0, None))
    mean = norms.mean()
    return float(norms.std() / mean) if mean > 0 else float("nan")


def _equiangularity(G):
    norms = np.sqrt(np.clip(np.diag(G), 0, None))
    if np.any(norms == 0):
        return float("nan")
    cos = G / np.outer(norms, norms)
    return float(cos[np.triu_indices_from(cos, k=1)].std())


def _check_features_labels(features, y):
    H = as_numpy(features)
    if H.ndim != 2:
        raise ValueError(
            "features must be a 2-D array of shape (n_samples, n_features); got an "
            f"array with shape {H.shape}. Pool or flatten feature maps first."
        )
    try:
        H = H.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"features must be numeric; got dtype {H.dtype}.") from exc
    if not np.isfinite(H).all():
        raise ValueError("features contain NaN or infinite values.")
    y = as_numpy(y)
    if y.ndim != 1 or y.shape[0] != H.shape[0]:
        raise ValueError(
            f"y must be 1-D with one label per row of features ({H.shape[0]}); got "
            f"shape {y.shape}."
        )
    if y.dtype.kind in "iuf" and np.any(y < 0):
        raise ValueError(
            "y contains negative labels, which mark OOD rows in sklearn_ood; pass the "
            "in-distribution rows only."
        )
    classes, y_idx = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(
            f"neural_collapse needs at least 2 classes; y has {len(classes)}."
        )
    return H, y_idx.ravel(), len(classes)
