"""The final linear layer, as detectors receive it through ``head=``."""

import numpy as np

from .._tags import get_detector_tags
from .._validation import check_head


def linear_logits(X, coef, intercept):
    """Logits ``X W^T + b`` in the precision of ``X``: float32 for float32 features.

    Float32 features are multiplied by float32 copies of ``coef`` and
    ``intercept`` (float32 BLAS, no float64 copy of ``X``); any other input
    is computed in float64.

    Examples
    --------
    >>> import numpy as np
    >>> z = linear_logits(np.ones((1, 2), dtype=np.float32), np.array([[1.0, 2.0]]),
    ...                   np.array([0.5]))
    >>> z, z.dtype
    (array([[3.5]], dtype=float32), dtype('float32'))
    """
    dtype = np.float32 if X.dtype == np.float32 else np.float64
    return (np.asarray(X, dtype=dtype) @ np.asarray(coef, dtype=dtype).T
            + np.asarray(intercept, dtype=dtype))


class HeadMixin:
    """Shared handling of the ``head`` parameter.

    ``_fit_head(X)`` stores ``coef_`` and ``intercept_`` (both ``None`` when
    ``head`` is ``None`` and the class's ``_detector_tags`` do not declare
    the head required, in which case ``X`` is read as logits); ``_logits(X)``
    applies them in the precision of ``X`` (:func:`linear_logits`: float32
    BLAS for float32 features, float64 otherwise).
    """

    def _fit_head(self, X):
        if self.head is None:
            if get_detector_tags(self).head == "required":
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
        return linear_logits(X, self.coef_, self.intercept_)
