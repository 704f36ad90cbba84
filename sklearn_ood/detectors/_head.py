"""The final linear layer, as detectors receive it through ``head=``."""

import numpy as np

from .._validation import check_head


def float64_logits(X, coef, intercept):
    """Logits ``X W^T + b`` as float64, the ``N x D x K`` product in ``X``'s precision.

    Float32 features are multiplied by a float32 copy of ``coef`` (float32
    BLAS, no float64 copy of ``X``); only the ``N x K`` product is cast to
    float64, before the intercept is added. Other input is multiplied in
    float64.

    Examples
    --------
    >>> import numpy as np
    >>> z = float64_logits(np.ones((1, 2), dtype=np.float32), np.array([[1.0, 2.0]]),
    ...                    np.array([0.5]))
    >>> z, z.dtype
    (array([[3.5]]), dtype('float64'))
    """
    dtype = np.float32 if X.dtype == np.float32 else np.float64
    product = np.asarray(X, dtype=dtype) @ np.asarray(coef, dtype=dtype).T
    return product.astype(np.float64, copy=False) + intercept


class HeadMixin:
    """Shared handling of the ``head`` parameter.

    ``_fit_head(X)`` stores ``coef_`` and ``intercept_`` (both ``None`` when
    ``head`` is ``None`` and ``head_required`` is false, in which case ``X``
    is read as logits); ``_logits(X)`` applies them (float64 unless ``X``
    holds float32 logits), ``_float64_logits(X)`` too, by
    :func:`float64_logits` (float64 logits, the product in ``X``'s precision).
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

    def _float64_logits(self, X):
        if self.coef_ is None:
            return np.asarray(X, dtype=np.float64)
        return float64_logits(X, self.coef_, self.intercept_)
