"""Conformal calibration: thresholds that keep their promise, p-values, FDR control.

:class:`ConformalDetector` wraps any detector and sets its threshold from ID
rows it did not see (split or cross-conformal, or rows held out by the user),
so that ``predict`` accepts new ID rows with probability ``>= 1 - alpha``;
it gives conformal p-values and Benjamini-Hochberg decisions on a batch
(Bates, Candes, Lei, Romano & Sesia, "Testing for outliers with conformal
p-values", Annals of Statistics 51(1), 2023). The pure functions compute the
same quantities from scores, and :func:`acceptance_shares` measures what a
deployed threshold accepts.
"""

from .acceptance import acceptance_shares, calibration_split
from .detector import ConformalDetector
from .p_values import benjamini_hochberg, conformal_p_values, conformal_threshold, simes_band

__all__ = [
    "ConformalDetector",
    "acceptance_shares",
    "benjamini_hochberg",
    "calibration_split",
    "conformal_p_values",
    "conformal_threshold",
    "simes_band",
]
