"""KL-Matching: the KL divergence of the posterior to its class template.

Hendrycks, Basart, Mazeika, Zou, Kwon, Mostajabi, Steinhardt & Song,
"Scaling Out-of-Distribution Detection for Real-World Settings", ICML 2022,
https://arxiv.org/abs/1911.11132.

Fit: one template ``d_k`` per class, the mean softmax over the calibration
rows (held-out validation rows in the references) whose *prediction* is ``k``
(no labels needed). Score:
``-min_k KL(p(x) || d_k)``; higher means more in-distribution.
"""

import numpy as np
from scipy.special import log_softmax, softmax

from .._base import BaseDetector
from .._calibration import CALIBRATION_CONSTRAINTS
from .._tags import DetectorTags
from ._features import in_precision, row_chunks
from ._head import HeadMixin


def kl_templates(chunks):
    """Class templates: mean softmax of the rows predicted as each class.

    Parameters
    ----------
    chunks : iterable of ndarray of shape (n_rows, n_classes)
        The logits, by chunks of rows (one array for all rows is one chunk);
        read one at a time, so memory stays bounded by one chunk.

    Returns
    -------
    templates : ndarray of shape (n_predicted, n_classes)
        The templates of the ``n_predicted`` classes predicted at least once.
    predicted : ndarray of shape (n_predicted,)
        Those class indices.

    Examples
    --------
    >>> import numpy as np
    >>> z = np.log(np.array([[0.8, 0.2], [0.6, 0.4], [0.3, 0.7]]))
    >>> t, k = kl_templates([z[:2], z[2:]])
    >>> t.round(3), k
    (array([[0.7, 0.3],
           [0.3, 0.7]]), array([0, 1]))
    """
    sums = counts = None
    for logits in chunks:
        p = softmax(np.asarray(logits, dtype=np.float64), axis=1)
        if sums is None:
            sums, counts = np.zeros((p.shape[1], p.shape[1])), np.zeros(p.shape[1], np.int64)
        pred = p.argmax(axis=1)
        # per column, the rows' probabilities summed into their predicted class, in row
        # order (np.add.at's sums, without its per-row loop)
        for j in range(p.shape[1]):
            sums[:, j] += np.bincount(pred, weights=p[:, j], minlength=p.shape[1])
        counts += np.bincount(pred, minlength=p.shape[1])
    predicted = np.flatnonzero(counts)
    return sums[predicted] / counts[predicted, None], predicted


def kl_matching_score(logits, templates):
    """``-min_k KL(softmax(z) || templates[k])``, per row.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.array([[0.5, 0.5]])
    >>> kl_matching_score(np.zeros((1, 2)), t)
    array([-0.])
    >>> # KL((0.75, 0.25) || (0.5, 0.5)) = 0.75 log 1.5 + 0.25 log 0.5
    >>> kl_matching_score(np.array([[np.log(3.0), 0.0]]), t).round(4)
    array([-0.1308])
    """
    log_p = log_softmax(np.asarray(logits, dtype=np.float64), axis=1)
    p = np.exp(log_p)
    neg_entropy = np.sum(p * log_p, axis=1)
    kl = neg_entropy[:, None] - p @ np.log(templates).T
    return -kl.min(axis=1)


class KLMatching(HeadMixin, BaseDetector):
    """KL-Matching: ``-min_k KL(softmax(z) || d_k)`` over the class templates ``d_k``.

    ``d_k`` is the mean softmax of the calibration rows *predicted* as class
    ``k`` (labels, if given, are not used). The templates are calibrating
    statistics: the references fit them on held-out ID *validation* rows
    (OpenOOD, pytorch-ood), whose posteriors are less confident than those of
    the network's training rows; pass those to ``fit`` as ``X_cal``. Classes
    never predicted on the calibration rows get no template and drop out of
    the minimum (as pytorch-ood; OpenOOD inserts a one-hot template instead).

    Parameters
    ----------
    head : torch.nn.Linear or (coef, intercept), default=None
        The final linear layer. With ``None``, ``X`` is read as logits.
    calibration_size : float in (0, 1), int >= 1 or None, default=None
        Without ``X_cal``: the share (rounded up) or number of the ID rows of
        ``X`` held out to fit the templates on (stratified by class when
        ``y`` is given, seeded by ``random_state``). ``None``: the templates
        are fitted on the rows of ``X``.
    random_state : int, RandomState instance or None, default=None
        Seeds the ``calibration_size`` split.
    contamination : float, default=0.05
        Fraction of training rows below the threshold ``offset_``.

    Attributes
    ----------
    templates_ : ndarray of shape (n_predicted, n_classes)
        The class templates (mean softmax per predicted class of the
        calibration rows).
    template_classes_ : ndarray of shape (n_predicted,)
        Index of the class of each template (the classes predicted on the
        calibration rows).
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
    sklearn_ood.detectors.logits.Entropy : the KL to the uniform template.

    References
    ----------
    Hendrycks et al., "Scaling Out-of-Distribution Detection for Real-World
    Settings", ICML 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import KLMatching
    >>> z = np.log(np.array([[0.8, 0.2], [0.6, 0.4], [0.3, 0.7]]))
    >>> det = KLMatching().fit(z)
    >>> det.templates_.round(3)
    array([[0.7, 0.3],
           [0.3, 0.7]])
    >>> det.score_samples(np.log(np.array([[0.7, 0.3]]))).round(4)
    array([-0.])

    The templates from held-out rows (the threshold from the rows of ``X``):

    >>> det = KLMatching().fit(z, X_cal=z[:2])
    >>> det.templates_.round(3), det.template_classes_
    (array([[0.7, 0.3]]), array([0]))
    """

    _detector_tags = DetectorTags(
        input="features", head="or_logits", calibrated=("templates_", "template_classes_"),
        paper="Hendrycks et al., ICML 2022")

    _parameter_constraints = {**BaseDetector._parameter_constraints, "head": "no_validation",
                              **CALIBRATION_CONSTRAINTS}

    def __init__(self, head=None, *, calibration_size=None, random_state=None,
                 contamination=0.05):
        self.head = head
        self.calibration_size = calibration_size
        self.random_state = random_state
        self.contamination = contamination

    def _fit(self, X, y, *, X_cal, y_cal):
        self._fit_head(X)
        self.templates_, self.template_classes_ = kl_templates(  # logits as scoring has them
            self._logits(in_precision(X_cal[rows])) for rows in row_chunks(X_cal.shape[0]))

    def _score(self, X):
        return kl_matching_score(self._logits(X), self.templates_)
