"""The final linear layer, as detectors receive it through ``head=``."""

from .._validation import check_head


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
