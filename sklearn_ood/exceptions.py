"""Warnings raised by sklearn-ood (a leaf module, like ``sklearn.exceptions``)."""

__all__ = ["LabelsNotPassedWarning"]


class LabelsNotPassedWarning(UserWarning):
    """The data yields labels, but the labels were not passed on with the features.

    Raised by :meth:`~sklearn_ood.BlockFeatureExtractor.fit_transform` (the
    call a ``Pipeline`` makes) when ``X`` yields ``(images, labels)`` and
    ``y`` is None: the features go on without the labels, so a detector that
    uses classes (Mahalanobis, GaussianDensity, ...) would be fitted without
    them. Pass the labels as ``y`` (``pipe.fit(loader, labels_of(loader))``,
    with :func:`sklearn_ood.streaming.labels_of`), or filter this warning when
    the next step uses none.

    Examples
    --------
    >>> from sklearn_ood.exceptions import LabelsNotPassedWarning
    >>> issubclass(LabelsNotPassedWarning, UserWarning)
    True
    """
