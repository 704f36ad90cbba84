"""Logit-based baselines: maximum softmax probability, maximum logit, energy."""

from numbers import Real

from scipy.special import logsumexp, softmax
from sklearn.utils._param_validation import Interval

from .._base import BaseDetector
from ._head import HeadMixin


def max_softmax(logits):
    """Maximum softmax probability of each row of ``logits`` (Hendrycks & Gimpel)."""
    return softmax(logits, axis=1).max(axis=1)


def max_logit(logits):
    """Largest logit of each row (Hendrycks et al., 2022)."""
    return logits.max(axis=1)


def energy(logits, temperature=1.0):
    """Negative free energy ``T * logsumexp(logits / T)`` of each row (Liu et al., 2020)."""
    return temperature * logsumexp(logits / temperature, axis=1)


class _LogitDetector(HeadMixin, BaseDetector):
    _parameter_constraints = {**BaseDetector._parameter_constraints, "head": "no_validation"}

    def _fit(self, X, y):
        self._fit_head(X)


class MaxSoftmax(_LogitDetector):
    """Maximum softmax probability (MSP) detector.

    Score: ``max_k softmax(z)_k`` with logits ``z``; higher means more ID.

    Parameters
    ----------
    head : torch.nn.Linear or (coef, intercept), default=None
        The final linear layer turning features into logits. With ``None``,
        ``X`` is read as logits.
    contamination : float, default=0.05
        Fraction of training rows below the threshold ``offset_``.

    Attributes
    ----------
    coef_, intercept_ : ndarray or None
        The head as arrays (``None`` when ``X`` holds logits).
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen in ``fit``; defined only when ``X`` has
        string column names (a pandas DataFrame).

    References
    ----------
    Hendrycks & Gimpel, "A Baseline for Detecting Misclassified and
    Out-of-Distribution Examples in Neural Networks", ICLR 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import MaxSoftmax
    >>> logits = np.array([[4.0, 0.0], [0.5, 0.4]])
    >>> MaxSoftmax().fit(logits).score_samples(logits).round(3)
    array([0.982, 0.525])
    """

    def __init__(self, head=None, *, contamination=0.05):
        self.head = head
        self.contamination = contamination

    def _score(self, X):
        return max_softmax(self._logits(X))


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
