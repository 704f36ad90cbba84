"""Conformal p-values, the conformal threshold and Benjamini-Hochberg: pure functions.

Scores follow the library's orientation (higher means more in-distribution),
as in Bates et al., whose one-class scores are small for outliers. With ``n``
calibration scores ``S_1, ..., S_n`` of in-distribution (ID) rows that the
detector never saw, the conformal p-value of a new row with score ``s`` is

    p(s) = (1 + #{i : S_i <= s}) / (n + 1),

which is valid, ``P(p <= t) <= t`` for every ``t``, when the calibration rows
and the new row are exchangeable (Bates, Candes, Lei, Romano & Sesia,
"Testing for outliers with conformal p-values", Annals of Statistics 51(1),
2023, https://arxiv.org/abs/2104.08279). Rejecting
(declaring OOD) the rows with ``p <= alpha`` is the threshold
:func:`conformal_threshold`: ``P(an ID row is accepted) >= 1 - alpha``.

The p-values depend on a new row only through the count ``c = #{S_i <= s}``,
so every function here works on counts: p-values are ``(1 + c) / (n + 1)``
(marginal) or ``b_{c+1}`` (calibration-conditional, :func:`simes_band`).
"""

import numpy as np
from scipy.special import gammaln

__all__ = ["benjamini_hochberg", "conformal_p_values", "conformal_threshold", "simes_band"]

#: A score within this share of the calibration scores' magnitude of a calibration score
#: counts as tied with it: the same row scored in another batch can differ by round-off, and
#: must get the same p-value and decision.
TIE_RTOL = 1e-12


def tie_tolerance(sorted_calibration):
    """Absolute tolerance under which two scores count as tied (see :data:`TIE_RTOL`)."""
    return TIE_RTOL * max(abs(sorted_calibration[0]), abs(sorted_calibration[-1]), 1e-300)


def counts_at_most(sorted_calibration, scores):
    """``#{i : S_i <= s}`` of each score ``s``, ties within :func:`tie_tolerance` included."""
    return np.searchsorted(sorted_calibration, scores + tie_tolerance(sorted_calibration),
                           side="right")


def simes_band(n_calibration, delta):
    """Upper band ``b`` on uniform order statistics: the calibration-conditional correction.

    Bates et al. (2023, Section 3) make conformal p-values valid
    *conditionally on the calibration set*, with probability ``1 - delta``
    over it: given ``0 <= b_1 <= ... <= b_n <= 1`` with
    ``P(U_(1) <= b_1, ..., U_(n) <= b_n) >= 1 - delta`` for the order
    statistics of ``n`` independent uniforms, the p-value
    ``h(p) = b_{(n+1) p}`` for ``p < 1`` (and ``h(1) = 1``) of the marginal
    p-value ``p`` satisfies ``P(h(p) <= t | calibration) <= t`` for all ``t``
    on an event of probability ``>= 1 - delta``. This function gives the band
    of their generalised Simes inequality with ``k = n // 2`` (the default of
    the authors' reference code):

        b_{n+1-i} = 1 - delta^(1/k) * (i (i-1) ... (i-k+1) / (n (n-1) ... (n-k+1)))^(1/k)

    for ``i >= k``, and ``b_{n+1-i} = 1`` for ``i < k``.

    Parameters
    ----------
    n_calibration : int
        Number ``n >= 1`` of calibration scores.
    delta : float in (0, 1)
        Probability that the calibration set is one on which the conditional
        guarantee fails.

    Returns
    -------
    b : ndarray of shape (n_calibration,)
        ``b[j - 1] = b_j``, non-decreasing.

    References
    ----------
    Bates, Candes, Lei, Romano & Sesia, "Testing for outliers with conformal
    p-values", Annals of Statistics 51(1), 2023, Section 3 (calibration-
    conditional p-values, Simes band). Reference code:
    https://github.com/msesia/conditional-conformal-pvalues.

    Examples
    --------
    With ``n = 4`` (``k = 2``) and ``delta = 0.1``:
    ``b_1 = 1 - sqrt(0.1 * 4*3 / (4*3))``, ``b_2 = 1 - sqrt(0.1 * 3*2 / (4*3))``,
    ``b_3 = 1 - sqrt(0.1 * 2*1 / (4*3))`` and ``b_4 = 1``.

    >>> simes_band(4, 0.1).round(4)
    array([0.6838, 0.7764, 0.8709, 1.    ])
    """
    n = int(n_calibration)
    k = max(n // 2, 1)
    i = np.arange(1, n + 1, dtype=np.float64)
    a = np.zeros(n)
    top = i >= k
    # log of i (i-1) ... (i-k+1) / (n (n-1) ... (n-k+1)), by log-gamma
    log_ratio = gammaln(i[top] + 1) - gammaln(i[top] - k + 1) - gammaln(n + 1) + gammaln(n - k + 1)
    a[top] = np.exp((np.log(delta) + log_ratio) / k)
    return 1.0 - a[::-1]


def _p_values_from_counts(counts, n, delta=None):
    """p-values of new rows from ``counts = #{S_i <= s}`` among ``n`` calibration scores."""
    counts = np.asarray(counts)
    if delta is None:
        return (1.0 + counts) / (n + 1.0)
    b = np.append(simes_band(n, delta), 1.0)  # h(1) = 1: a row above every score
    return b[counts]


def rejected_counts(n, alpha, delta=None):
    """Number ``k`` of counts ``c = 0, 1, ...`` whose p-value is ``<= alpha`` (p grows with c).

    A row is rejected (called OOD) iff its count is below ``k``, i.e. iff its
    score is below the ``k``-th smallest calibration score. ``k = 0``: no row
    can be rejected at this ``alpha``.
    """
    return int(np.count_nonzero(_p_values_from_counts(np.arange(n + 1), n, delta) <= alpha))


def _check_calibration_scores(calibration_scores):
    scores = np.asarray(calibration_scores, dtype=np.float64)
    if scores.ndim != 1 or scores.size == 0:
        raise ValueError(
            f"calibration_scores must be a non-empty 1-D array; got shape {scores.shape}."
        )
    if not np.all(np.isfinite(scores)):
        bad = np.flatnonzero(~np.isfinite(scores))
        raise ValueError(
            f"{bad.size} calibration score(s) are not finite (NaN or infinite), e.g. at "
            f"row {bad[0]}; conformal p-values rank finite scores. Check the detector's "
            "input on those rows."
        )
    return scores


def _check_scores(scores):
    scores = np.asarray(scores, dtype=np.float64)
    if np.isnan(scores).any():
        bad = np.flatnonzero(np.isnan(scores))
        raise ValueError(
            f"{bad.size} score(s) are NaN, e.g. at row {bad[0]}: a NaN has no rank among the "
            "calibration scores, so it has no p-value. Check the detector's input on those rows."
        )
    return scores


def _check_alpha(alpha, name="alpha"):
    if not (isinstance(alpha, (int, float, np.floating)) and 0 < alpha < 1):
        raise ValueError(f"{name} must be a number in (0, 1); got {alpha!r}.")


def conformal_p_values(calibration_scores, scores, *, delta=None):
    """Conformal p-values of ``scores`` against held-out ID ``calibration_scores``.

    ``p(s) = (1 + #{i : S_i <= s}) / (n + 1)`` (marginal), or its
    calibration-conditional correction ``b_{#{i : S_i <= s} + 1}``
    (:func:`simes_band`) when ``delta`` is given. Small p-values are evidence
    that a row is OOD. Ties count against the new row (``<=``), which keeps
    the p-values valid for scores with ties; scores within round-off
    (``1e-12`` of the calibration scores' magnitude) of a calibration score
    count as tied with it.

    Parameters
    ----------
    calibration_scores : array-like of shape (n_calibration,)
        Finite scores of ID rows the detector did not see (higher = more ID).
    scores : array-like of shape (n_samples,)
        Scores of the rows to test; ``-inf`` and ``inf`` are allowed, NaN is not.
    delta : float in (0, 1), default=None
        ``None``: marginal p-values, ``P(p <= t) <= t`` on average over the
        calibration draw. A float: calibration-conditional p-values (Bates et
        al., 2023, Section 3), valid given the calibration set with
        probability ``>= 1 - delta``.

    Returns
    -------
    p_values : ndarray of shape (n_samples,)
        In ``[1 / (n + 1), 1]`` (marginal).

    Examples
    --------
    Counts of calibration scores ``<= s``: 0, 3, 3 and 4 of 4.

    >>> conformal_p_values([1.0, 2.0, 2.0, 5.0], [0.0, 2.0, 3.0, 6.0])
    array([0.2, 0.8, 0.8, 1. ])
    """
    calibration = np.sort(_check_calibration_scores(calibration_scores))
    scores = _check_scores(scores)
    if delta is not None:
        _check_alpha(delta, "delta")
    return _p_values_from_counts(counts_at_most(calibration, scores), calibration.size, delta)


def conformal_threshold(calibration_scores, alpha, *, delta=None):
    """The conformal threshold: accept a row (call it ID) iff its score is ``>=`` it.

    The ``k``-th smallest calibration score, ``k`` the number of p-values
    ``(1 + c) / (n + 1) <= alpha`` (``k = floor(alpha (n + 1))`` up to
    rounding), less the round-off tolerance of :func:`conformal_p_values`
    (``1e-12`` of the scores' magnitude), so that ``score >= threshold`` iff
    ``p_value > alpha``. For a
    new ID row exchangeable with the ``n`` calibration rows,
    ``P(accepted) >= 1 - alpha`` (and ``< 1 - alpha + 1 / (n + 1)`` when
    scores have no ties). With ``delta``, the threshold of the
    calibration-conditional p-values: with probability ``>= 1 - delta`` over
    the calibration rows, ``P(accepted | calibration rows) >= 1 - alpha``.

    Parameters
    ----------
    calibration_scores : array-like of shape (n_calibration,)
        Finite scores of ID rows the detector did not see.
    alpha : float in (0, 1)
        Target share of ID rows rejected (the ``contamination`` of the
        detectors).
    delta : float in (0, 1), default=None
        ``None``: marginal guarantee. A float: calibration-conditional.

    Returns
    -------
    threshold : float

    Raises
    ------
    ValueError
        If ``alpha`` is not attainable with ``n`` calibration rows (``alpha <
        1 / (n + 1)``, or ``alpha < b_1`` with ``delta``); the message gives
        the number of rows needed.

    Examples
    --------
    With 19 scores, ``alpha = 0.05`` rejects only rows below the smallest:

    >>> round(conformal_threshold(range(1, 20), 0.05), 9)
    1.0
    >>> round(conformal_threshold(range(1, 40), 0.05), 9)
    2.0
    """
    _check_alpha(alpha)
    calibration = np.sort(_check_calibration_scores(calibration_scores))
    k = check_attainable(calibration.size, alpha, delta)
    return float(calibration[k - 1] - tie_tolerance(calibration))


def check_attainable(n, alpha, delta=None):
    """``k`` of :func:`rejected_counts`, or a ValueError naming the rows ``alpha`` needs."""
    if delta is not None:
        _check_alpha(delta, "delta")
    k = rejected_counts(n, alpha, delta)
    if k == 0:
        if delta is None:  # 1 / (n + 1) <= alpha
            smallest, what = 1.0 / (n + 1), "1 / (n + 1)"
            needed = int(np.ceil(1.0 / alpha - 1.0 - 1e-9))
        else:  # b_1 = 1 - delta^(1/k) <= alpha, k = n // 2
            smallest, what = simes_band(n, delta)[0], f"b_1 of the Simes band at delta={delta}"
            needed = 2 * int(np.ceil(np.log(delta) / np.log1p(-alpha) - 1e-9))
        raise ValueError(
            f"alpha={alpha} is not attainable with {n} calibration rows: the smallest "
            f"p-value is {what} = {smallest:.4g}, so no ID row could ever be rejected. "
            f"Use at least {needed} calibration rows, or a larger alpha"
            + ("." if delta is None else " or delta.")
        )
    return k


def benjamini_hochberg(p_values, fdr):
    """Rows rejected by the Benjamini-Hochberg procedure at false discovery rate ``fdr``.

    With the ``m`` p-values sorted, ``p_(1) <= ... <= p_(m)``, reject the rows
    with ``p <= p_(r)``, ``r`` the largest index with ``p_(r) <= r fdr / m``
    (a step-up procedure: a p-value above its own line is still rejected if a
    larger one is below its line). On conformal p-values of ID rows that are
    exchangeable with the calibration rows, the expected share of ID rows
    among the rejected rows is ``<= fdr * m_ID / m``: Bates et al. (2023)
    prove the conformal p-values of a test batch positively dependent
    (PRDS), under which BH controls the FDR. The calibration-conditional
    p-values are independent given the calibration set, so BH controls the
    FDR given the calibration set, with probability ``>= 1 - delta``.

    Parameters
    ----------
    p_values : array-like of shape (n_samples,)
    fdr : float in (0, 1)
        Target false discovery rate: the expected share of ID rows among the
        rows called OOD.

    Returns
    -------
    rejected : ndarray of bool of shape (n_samples,)
        ``True`` for the rows called OOD.

    References
    ----------
    Benjamini & Hochberg, "Controlling the false discovery rate: a practical
    and powerful approach to multiple testing", JRSS B 57(1), 1995.

    Examples
    --------
    The third smallest p-value, 0.07, is below its line ``3 * 0.1 / 4``,
    so the second (0.06, above ``2 * 0.1 / 4``) is rejected too:

    >>> benjamini_hochberg([0.02, 0.5, 0.06, 0.07], fdr=0.1)
    array([ True, False,  True,  True])
    """
    _check_alpha(fdr, "fdr")
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1 or np.isnan(p).any():
        raise ValueError("p_values must be a 1-D array without NaN.")
    m = p.size
    ordered = np.sort(p)
    below = np.flatnonzero(ordered <= fdr * np.arange(1, m + 1) / m)
    if below.size == 0:
        return np.zeros(m, dtype=bool)
    return p <= ordered[below[-1]]
