"""The final linear layer, as detectors receive it through ``head=``."""

import numpy as np


def check_head(head, n_features=None, *, dtype=np.float64):
    """Return ``(coef, intercept)`` as NumPy arrays of shapes ``(K, D)`` and ``(K,)``.

    Parameters
    ----------
    head : torch.nn.Linear or tuple of (coef, intercept)
        The classifier's final linear layer. ``coef`` has shape
        ``(n_classes, n_features)``; ``intercept`` has shape ``(n_classes,)``
        or is ``None`` (no bias).
    n_features : int, default=None
        When given, the feature dimension ``D`` the head must accept.
    dtype : numpy dtype, default=np.float64

    Returns
    -------
    coef : ndarray of shape (K, D)
    intercept : ndarray of shape (K,)
    """
    if hasattr(head, "weight") and hasattr(head, "in_features"):
        coef = head.weight.detach().cpu().numpy()
        bias = head.bias
        intercept = None if bias is None else bias.detach().cpu().numpy()
    elif isinstance(head, (tuple, list)) and len(head) == 2:
        coef, intercept = head
        coef = _to_numpy(coef)
        intercept = None if intercept is None else _to_numpy(intercept)
    else:
        raise TypeError(
            "head must be a torch.nn.Linear or a (coef, intercept) pair with shapes "
            f"(n_classes, n_features) and (n_classes,); got {type(head).__name__}."
        )
    coef = np.asarray(coef, dtype=dtype)
    if coef.ndim != 2 or coef.shape[0] < 1 or coef.shape[1] < 1:
        raise ValueError(
            f"head coef must have shape (n_classes, n_features); got {coef.shape}."
        )
    if intercept is None:
        intercept = np.zeros(coef.shape[0], dtype=dtype)
    intercept = np.asarray(intercept, dtype=dtype)
    if intercept.shape != (coef.shape[0],):
        raise ValueError(
            f"head intercept must have shape ({coef.shape[0]},) to match coef "
            f"{coef.shape}; got {intercept.shape}."
        )
    if not (np.isfinite(coef).all() and np.isfinite(intercept).all()):
        raise ValueError("head contains NaN or infinite weights.")
    if n_features is not None and coef.shape[1] != n_features:
        raise ValueError(
            f"head expects {coef.shape[1]} features (coef shape {coef.shape}) but X "
            f"has {n_features} features. Pass the layer that consumes these features "
            "(e.g. the model's final nn.Linear) or extract the matching block."
        )
    return coef, intercept


def _to_numpy(a):
    if hasattr(a, "detach"):
        return a.detach().cpu().numpy()
    return np.asarray(a)


class HeadMixin:
    """Shared handling of the ``head`` parameter.

    ``_fit_head(X)`` stores ``coef_`` and ``intercept_`` (both ``None`` when
    ``head`` is ``None`` and ``head_required`` is false, in which case ``X``
    is read as logits); ``_logits(X)`` applies them.
    """

    head_required = False

    def _fit_head(self, X):
        if self.head is None:
            if self.head_required:
                raise ValueError(
                    f"{type(self).__name__} needs the final linear layer: pass "
                    "head=model.fc (an nn.Linear) or head=(coef, intercept)."
                )
            self.coef_, self.intercept_ = None, None
            return
        self.coef_, self.intercept_ = check_head(self.head, X.shape[1])

    def _logits(self, X):
        if self.coef_ is None:
            return X
        return X @ self.coef_.T + self.intercept_
