"""Logit-based scores: maximum softmax probability (optionally temperature-scaled),
maximum logit, energy, entropy and generalized entropy (GEN).

- MSP: Hendrycks & Gimpel, "A Baseline for Detecting Misclassified and
  Out-of-Distribution Examples in Neural Networks", ICLR 2017,
  https://arxiv.org/abs/1610.02136; temperature scaling: Guo, Pleiss, Sun &
  Weinberger, "On Calibration of Modern Neural Networks", ICML 2017,
  https://arxiv.org/abs/1706.04599.
- MaxLogit: Hendrycks et al., "Scaling Out-of-Distribution Detection for
  Real-World Settings", ICML 2022, https://arxiv.org/abs/1911.11132.
- Energy: Liu, Wang, Owens & Li, "Energy-based Out-of-distribution
  Detection", NeurIPS 2020, https://arxiv.org/abs/2010.03759.
- GEN: Liu, Lochman & Zach, "GEN: Pushing the Limits of Softmax-Based
  Out-of-Distribution Detection", CVPR 2023,
  https://openaccess.thecvf.com/content/CVPR2023/html/Liu_GEN_Pushing_the_Limits_of_Softmax-Based_Out-of-Distribution_Detection_CVPR_2023_paper.html.
"""

import warnings
from numbers import Integral, Real

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, logsumexp, softmax
from sklearn.utils._param_validation import Interval, StrOptions

from .._base import BaseDetector
from .._calibration import CALIBRATION_CONSTRAINTS
from .._tags import DetectorTags
from ._head import HeadMixin


def max_softmax(logits, temperature=1.0):
    """Maximum softmax probability ``max_k softmax(z / T)_k`` of each row (Hendrycks & Gimpel).

    Examples
    --------
    >>> import numpy as np
    >>> max_softmax(np.array([[np.log(3.0), 0.0]]))
    array([0.75])
    >>> max_softmax(np.array([[2 * np.log(3.0), 0.0]]), temperature=2.0)
    array([0.75])
    """
    z = np.asarray(logits, dtype=np.float64) / temperature
    # The largest softmax entry is exp(0) / sum_k exp(z_k - max z): no K-wide division.
    return 1.0 / np.exp(z - z.max(axis=1, keepdims=True)).sum(axis=1)


def max_logit(logits):
    """Largest logit of each row (Hendrycks et al., 2022)."""
    return logits.max(axis=1)


def energy(logits, temperature=1.0):
    """Negative free energy ``T * logsumexp(logits / T)`` of each row (Liu et al., 2020).

    In the precision of ``logits``; ``max_k z_k + log sum_k exp(z_k - max_k z_k)``
    (one exponential pass, a third of ``scipy.special.logsumexp``'s time on
    10 logits), ``+-inf`` for rows whose largest logit is infinite.

    Examples
    --------
    >>> import numpy as np
    >>> energy(np.array([[0.0, 0.0], [1.0, -np.inf], [np.inf, 0.0]]))
    array([0.69314718, 1.        ,        inf])
    """
    z = logits / temperature if temperature != 1 else np.asarray(logits)
    top = z.max(axis=1)
    shift = np.where(np.isfinite(top), top, 0.0).astype(z.dtype, copy=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        return temperature * (np.log(np.exp(z - shift[:, None]).sum(axis=1)) + shift)


def negative_entropy(logits):
    """``sum_k p_k log p_k`` (minus the Shannon entropy) of ``p = softmax(z)``, per row.

    Computed from the log-softmax, exactly (no clipping of ``p``).

    Examples
    --------
    >>> import numpy as np
    >>> negative_entropy(np.array([[0.0, 0.0], [0.0, np.log(3.0)]])).round(4)
    array([-0.6931, -0.5623])
    """
    log_p = log_softmax(np.asarray(logits, dtype=np.float64), axis=1)
    return np.sum(np.exp(log_p) * log_p, axis=1)


def generalized_entropy(logits, gamma=0.1, n_top=100):
    """GEN score ``-sum_{j <= M} p_j^gamma (1 - p_j)^gamma`` over the ``M`` largest ``p_j``.

    ``p = softmax(z)``; all classes are used when ``n_top >= K``. A sum (as
    the official code), not pytorch-ood's mean, and no clamping of ``p``.

    Examples
    --------
    >>> import numpy as np
    >>> # p = (0.75, 0.25): -(2 * (0.75 * 0.25) ** 0.5)
    >>> generalized_entropy(np.array([[np.log(3.0), 0.0]]), gamma=0.5).round(4)
    array([-0.866])
    >>> # only the top class: -(0.75 * 0.25) ** 0.5
    >>> generalized_entropy(np.array([[np.log(3.0), 0.0]]), gamma=0.5, n_top=1).round(4)
    array([-0.433])
    """
    p = softmax(np.asarray(logits, dtype=np.float64), axis=1)
    m = min(int(n_top), p.shape[1])
    if m < p.shape[1]:
        p = -np.partition(-p, m - 1, axis=1)[:, :m]
    return -np.sum(p ** gamma * (1.0 - p) ** gamma, axis=1)


def fit_temperature(logits, y):
    """Temperature ``T`` minimising the mean NLL ``-log softmax(z_i / T)_{y_i}``.

    The NLL is convex in ``1 / T``; it is minimised exactly over ``log T`` in
    ``[log 1e-3, log 1e3]`` by bounded Brent search (``xatol = 1e-10``), not by
    the LBFGS(lr=0.01, max_iter=50) idiom of OpenOOD and pytorch-ood, which
    stops short of the optimum.

    Examples
    --------
    >>> import numpy as np
    >>> z = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> # 3 of 4 right with margin 1/T: p_right = 0.75 at the optimum, T = 1 / log 3
    >>> round(fit_temperature(z, np.array([0, 0, 0, 0])), 6)  # 1 / log(3)
    0.910239
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y).astype(np.intp)
    rows = np.arange(z.shape[0])

    def nll(log_t):
        return -np.mean(log_softmax(z * np.exp(-log_t), axis=1)[rows, y])

    res = minimize_scalar(nll, bounds=(np.log(1e-3), np.log(1e3)), method="bounded",
                          options={"xatol": 1e-10, "maxiter": 500})
    return float(np.exp(res.x))


class _LogitDetector(HeadMixin, BaseDetector):
    _parameter_constraints = {**BaseDetector._parameter_constraints, "head": "no_validation"}

    def _fit(self, X, y):
        self._fit_head(X)


class MaxSoftmax(_LogitDetector):
    """Maximum softmax probability (MSP) detector, optionally temperature-scaled.

    Score: ``max_k softmax(z / T)_k`` with logits ``z``; higher means more ID.

    With ``temperature="fit"``, ``T`` is Guo et al.'s temperature scaling:
    the ``T`` minimising the NLL of labelled ID rows, found exactly by
    :func:`fit_temperature`. ``T`` is a calibrating statistic, and Guo et al.
    fit it on *validation* rows, which the network was not trained on: its
    own training rows are classified too confidently, and ``T`` fitted on
    them comes out far too small. Pass held-out rows to ``fit`` as ``X_cal``
    (with ``y_cal``); or ``calibration_size`` holds out a share of the rows
    of ``X`` (that only helps when the network did not see ``X`` either).

    Parameters
    ----------
    head : torch.nn.Linear or (coef, intercept), default=None
        The final linear layer turning features into logits. With ``None``,
        ``X`` is read as logits.
    temperature : float > 0 or "fit", default=1.0
        Temperature ``T``. ``"fit"``: the ``T`` minimising the NLL of the
        calibration rows (class labels ``0 .. K-1`` indexing the logits). If
        the network classifies every calibration row correctly the NLL keeps
        falling as ``T -> 0`` (no finite optimum): ``T`` ends near the
        search's floor, the softmax saturates at 1 and many scores tie.
    calibration_size : float in (0, 1), int >= 1 or None, default=None
        With ``temperature="fit"`` and no ``X_cal``: the share (rounded up)
        or number of the ID rows of ``X`` held out to fit ``T`` on (a split
        stratified by class, seeded by ``random_state``). ``None``: ``T`` is
        fitted on the rows of ``X``.
    random_state : int, RandomState instance or None, default=None
        Seeds the ``calibration_size`` split.
    contamination : float, default=0.05
        Fraction of training rows below the threshold ``offset_``.

    Attributes
    ----------
    temperature_ : float
        The temperature used (``temperature``, or the one fitted on the
        calibration rows).
    coef_, intercept_ : ndarray or None
        The head as arrays (``None`` when ``X`` holds logits).
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen in ``fit``; defined only when ``X`` has
        string column names (a pandas DataFrame).

    See Also
    --------
    sklearn_ood.ConformalDetector : a threshold calibrated on held-out rows.

    References
    ----------
    Hendrycks & Gimpel, "A Baseline for Detecting Misclassified and
    Out-of-Distribution Examples in Neural Networks", ICLR 2017.
    Guo, Pleiss, Sun & Weinberger, "On Calibration of Modern Neural
    Networks", ICML 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import MaxSoftmax
    >>> logits = np.array([[4.0, 0.0], [0.5, 0.4]])
    >>> MaxSoftmax().fit(logits).score_samples(logits).round(3)
    array([0.982, 0.525])

    Temperature scaling on held-out rows: 3 of 4 right with margin ``1 / T``
    at the optimum ``p_right = 0.75``, so ``T = 1 / log 3``:

    >>> z_val = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> det = MaxSoftmax(temperature="fit").fit(logits, X_cal=z_val, y_cal=[0, 0, 0, 0])
    >>> round(det.temperature_, 4)
    0.9102
    """

    _detector_tags = DetectorTags(
        input="features", head="or_logits", labels="optional", calibrated=("temperature_",),
        paper="Hendrycks & Gimpel, ICLR 2017; Guo et al., ICML 2017")

    _parameter_constraints = {
        **_LogitDetector._parameter_constraints,
        "temperature": [Interval(Real, 0, None, closed="neither"), StrOptions({"fit"})],
        **CALIBRATION_CONSTRAINTS,
    }

    def __init__(self, head=None, *, temperature=1.0, calibration_size=None, random_state=None,
                 contamination=0.05):
        self.head = head
        self.temperature = temperature
        self.calibration_size = calibration_size
        self.random_state = random_state
        self.contamination = contamination

    def _fit(self, X, y, *, X_cal, y_cal):
        self._fit_head(X)
        if self.temperature != "fit":
            self.temperature_ = float(self.temperature)
            return
        logits = self._logits(np.asarray(X_cal, dtype=np.float64))
        if y_cal is None:
            raise ValueError(
                "MaxSoftmax(temperature='fit') fits T on labelled in-distribution "
                "logits, but the calibration rows have no labels (None or all NaN): "
                "pass the class labels, fit(X, y) or fit(X, y, X_cal=X_val, "
                "y_cal=y_val), with y[i] the index of row i's class among the "
                f"{logits.shape[1]} logits."
            )
        y_num = np.asarray(y_cal)
        if not np.issubdtype(y_num.dtype, np.number) or np.any(y_num != np.round(y_num)) \
                or y_num.min() < 0 or y_num.max() >= logits.shape[1]:
            raise ValueError(
                "MaxSoftmax(temperature='fit') needs integer class labels indexing "
                f"the {logits.shape[1]} logits (0 .. {logits.shape[1] - 1}); got "
                f"{np.unique(y_num)[:10]}."
            )
        self.temperature_ = fit_temperature(logits, y_num)
        if np.all(logits.argmax(axis=1) == y_num):
            warnings.warn(
                f"MaxSoftmax(temperature='fit'): the head classifies all {len(y_num)} "
                "calibration rows correctly, so their NLL keeps falling as T -> 0 and has "
                f"no finite minimum; T = {self.temperature_:.3g} is where it stops, and "
                "the softmax saturates at 1 for most rows, which then tie. Calibrate on "
                "more held-out rows (some misclassified), or pass a fixed temperature.",
                UserWarning, stacklevel=4)

    def _score(self, X):
        return max_softmax(self._logits(X), self.temperature_)


class MaxLogit(_LogitDetector):
    """Maximum-logit detector: ``max_k z_k``; higher means more ID.

    Parameters
    ----------
    head : torch.nn.Linear or (coef, intercept), default=None
        The final linear layer. With ``None``, ``X`` is read as logits.
    contamination : float, default=0.05
        Fraction of training rows below the threshold ``offset_``.

    Attributes
    ----------
    coef_, intercept_ : ndarray or None
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen in ``fit``; defined only when ``X`` has
        string column names (a pandas DataFrame).

    References
    ----------
    Hendrycks et al., "Scaling Out-of-Distribution Detection for Real-World
    Settings", ICML 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import MaxLogit
    >>> logits = np.array([[4.0, 0.0], [0.5, 0.4]])
    >>> MaxLogit().fit(logits).score_samples(logits)
    array([4. , 0.5])
    """

    _detector_tags = DetectorTags(
        input="features", head="or_logits",
        paper="Hendrycks et al., ICML 2022")

    def __init__(self, head=None, *, contamination=0.05):
        self.head = head
        self.contamination = contamination

    def _score(self, X):
        return max_logit(self._logits(X))


class Energy(_LogitDetector):
    """Energy-based detector: ``T * logsumexp(z / T)`` (the negative free energy).

    Parameters
    ----------
    head : torch.nn.Linear or (coef, intercept), default=None
        The final linear layer. With ``None``, ``X`` is read as logits.
    temperature : float, default=1.0
        Temperature ``T`` (1 in every reference implementation).
    contamination : float, default=0.05
        Fraction of training rows below the threshold ``offset_``.

    Attributes
    ----------
    coef_, intercept_ : ndarray or None
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen in ``fit``; defined only when ``X`` has
        string column names (a pandas DataFrame).

    References
    ----------
    Liu, Wang, Owens & Li, "Energy-based Out-of-distribution Detection",
    NeurIPS 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import Energy
    >>> logits = np.array([[0.0, 0.0], [1.0, 1.0]])
    >>> Energy().fit(logits).score_samples(logits).round(4)
    array([0.6931, 1.6931])
    """

    _detector_tags = DetectorTags(
        input="features", head="or_logits",
        paper="Liu et al., NeurIPS 2020")

    _parameter_constraints = {
        **_LogitDetector._parameter_constraints,
        "temperature": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, head=None, *, temperature=1.0, contamination=0.05):
        self.head = head
        self.temperature = temperature
        self.contamination = contamination

    def _score(self, X):
        return energy(self._logits(X), self.temperature)


class Entropy(_LogitDetector):
    """Negative-entropy detector: ``sum_k p_k log p_k`` with ``p = softmax(z)``.

    Higher (a more peaked posterior) means more ID. Computed exactly from the
    log-softmax; pytorch-ood clips ``p`` to ``[1e-7, 1]`` (same ranking in
    practice). No fitted statistics, no hyper-parameters.

    Parameters
    ----------
    head : torch.nn.Linear or (coef, intercept), default=None
        The final linear layer. With ``None``, ``X`` is read as logits.
    contamination : float, default=0.05
        Fraction of training rows below the threshold ``offset_``.

    Attributes
    ----------
    coef_, intercept_ : ndarray or None
        The head as arrays (``None`` when ``X`` holds logits).
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Number of features (logits, or head inputs) seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen in ``fit``; defined only when ``X`` has
        string column names (a pandas DataFrame).

    See Also
    --------
    GEN : the generalized entropy.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import Entropy
    >>> logits = np.array([[0.0, 0.0], [0.0, np.log(3.0)]])
    >>> Entropy().fit(logits).score_samples(logits).round(4)
    array([-0.6931, -0.5623])
    """

    _detector_tags = DetectorTags(
        input="features", head="or_logits",
        paper="entropy baseline (pytorch-ood Entropy)")

    def __init__(self, head=None, *, contamination=0.05):
        self.head = head
        self.contamination = contamination

    def _score(self, X):
        return negative_entropy(self._logits(X))


class GEN(_LogitDetector):
    """Generalized entropy (GEN): ``-sum_{j <= M} p_j^gamma (1 - p_j)^gamma``.

    ``p_j`` are the ``M`` largest softmax probabilities; higher means more ID
    (the official code returns ``G``, an OOD score: negated here). As the
    official code: a sum (pytorch-ood: a mean, rank-neutral) without clamping
    ``p`` (pytorch-ood clamps to ``[1e-7, 1 - 1e-7]``, which changes the
    ranking of confident rows for ``gamma = 0.1``).

    Parameters
    ----------
    head : torch.nn.Linear or (coef, intercept), default=None
        The final linear layer. With ``None``, ``X`` is read as logits.
    gamma : float > 0, default=0.1
        Exponent (GEN code default).
    n_top : int >= 1, default=100
        ``M``: number of largest probabilities kept (all when ``K <= M``).
    contamination : float, default=0.05
        Fraction of training rows below the threshold ``offset_``.

    Attributes
    ----------
    coef_, intercept_ : ndarray or None
        The head as arrays (``None`` when ``X`` holds logits).
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Number of features (logits, or head inputs) seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen in ``fit``; defined only when ``X`` has
        string column names (a pandas DataFrame).

    References
    ----------
    Liu, Lochman & Zach, "GEN: Pushing the Limits of Softmax-Based
    Out-of-Distribution Detection", CVPR 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import GEN
    >>> logits = np.array([[np.log(3.0), 0.0]])
    >>> GEN(gamma=0.5).fit(logits).score_samples(logits).round(4)
    array([-0.866])
    """

    # Tuning: OpenOOD's sweep of ``gamma`` and ``n_top``.
    _detector_tags = DetectorTags(
        input="features", head="or_logits",
        grid={"gamma": [0.01, 0.1, 0.5, 1, 2, 5, 10], "n_top": [10, 50, 100, 200, 500, 1000]},
        paper="Liu, Lochman & Zach, CVPR 2023")

    _parameter_constraints = {
        **_LogitDetector._parameter_constraints,
        "gamma": [Interval(Real, 0, None, closed="neither")],
        "n_top": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, head=None, *, gamma=0.1, n_top=100, contamination=0.05):
        self.head = head
        self.gamma = gamma
        self.n_top = n_top
        self.contamination = contamination

    def _score(self, X):
        return generalized_entropy(self._logits(X), self.gamma, self.n_top)
