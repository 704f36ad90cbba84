"""AdaSCALE: SCALE with a per-sample percentile set by the feature shift under perturbation.

Regmi, "AdaSCALE: Adaptive Scaling for OOD Detection", 2025.
https://arxiv.org/abs/2503.08023 -- as implemented in OpenOOD
(``openood/postprocessors/adascale_postprocessor.py``,
``openood/networks/adascale_net.py``).
"""

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from .._tags import DetectorTags
from ._base import ModelDetector
from ._model_state import input_gradient, model_run, on_device

__all__ = ["AdaSCALE", "adaptive_percentiles", "scale_ratio", "shift_statistic"]


def _top_k_sum(order_by, values, k):
    """Per row, the sum of ``values`` at the ``k`` largest entries of ``order_by``."""
    idx = np.argpartition(-order_by, k - 1, axis=1)[:, :k]
    return np.take_along_axis(values, idx, axis=1).sum(1)


def shift_statistic(h, h_perturbed, correction_k, shift_k, shift_weight):
    """AdaSCALE's ``Q'``: how far the strongest features move under the perturbation.

    ``Q' = sum_{i in top_kc(h)} relu(h'_i) + shift_weight * sum_{i in top_ks(h)} |h_i - h'_i|``,
    both index sets taken on the clean features ``h``.

    Parameters
    ----------
    h, h_perturbed : ndarray of shape (n_samples, n_features)
        Penultimate features of the images and of their perturbed copies.
    correction_k : int >= 1
        ``kc``, size of the correction term's index set.
    shift_k : int >= 1
        ``ks``, size of the shift term's index set.
    shift_weight : float
        ``lambda``.

    Returns
    -------
    q : ndarray of shape (n_samples,)

    Examples
    --------
    >>> import numpy as np
    >>> h = np.array([[3.0, 1.0, 2.0]])
    >>> hp = np.array([[2.0, -1.0, 2.5]])
    >>> shift_statistic(h, hp, correction_k=2, shift_k=1, shift_weight=10.0)
    array([14.5])
    """
    h, h_perturbed = np.asarray(h, np.float64), np.asarray(h_perturbed, np.float64)
    correction = _top_k_sum(h, np.maximum(h_perturbed, 0.0), correction_k)
    shift = _top_k_sum(h, np.abs(h - h_perturbed), shift_k)
    return correction + shift_weight * shift


def adaptive_percentiles(q, fit_q, min_percentile, max_percentile):
    """``p = p_min + (1 - ECDF(q)) * (p_max - p_min)``, ECDF of the sorted ``fit_q``.

    ``ECDF(t)`` is the fraction of ``fit_q`` that is ``<= t``: a larger shift
    than the ID images' gives a lower percentile (weaker scaling).

    Examples
    --------
    >>> import numpy as np
    >>> adaptive_percentiles(np.array([0.0, 2.5, 9.0]), np.array([1.0, 2.0, 3.0, 4.0]), 60, 80)
    array([80., 70., 60.])
    """
    ecdf = np.searchsorted(fit_q, q, side="right") / len(fit_q)
    return min_percentile + (1.0 - ecdf) * (max_percentile - min_percentile)


def scale_ratio(h, percentiles):
    """SCALE's ratio ``r = sum(a) / sum(top-k of a)``, ``a = relu(h)``, per sample.

    ``k = D - round(D * p / 100)`` with the sample's percentile ``p``, at
    least 1. A sample without a positive feature gets ``r = 1``.

    Examples
    --------
    >>> import numpy as np
    >>> scale_ratio(np.array([[4.0, 3.0, 2.0, 1.0, -5.0]]), np.array([60.0]))
    array([1.42857143])
    """
    a = np.maximum(np.asarray(h, np.float64), 0.0)
    n = a.shape[1]
    k = np.maximum(n - np.round(n * np.asarray(percentiles) / 100.0).astype(int), 1)
    top = np.cumsum(-np.sort(-a, axis=1), axis=1)[np.arange(len(a)), k - 1]
    total = a.sum(1)
    return np.where(top > 0, total / np.where(top > 0, top, 1.0), 1.0)


class AdaSCALE(ModelDetector):
    """AdaSCALE: energy of SCALE-scaled features with an adaptive percentile (Regmi, 2025).

    With ``h`` the input of the classifier layer ``head`` (the pooled
    penultimate feature) and ``D`` its size, for each image ``x``:

    1. **Perturbation**: ``g = grad_x z_y(x)``, the gradient of the predicted
       class's logit. The ``int(perturb_fraction * C*H*W)`` input entries
       with the *smallest* ``|g|`` move by ``magnitude * sign(g)``
       (``torch.sign``: 0 for a zero gradient), the others stay:
       ``x'``; ``h' = h(x')``.
    2. **Shift statistic** (:func:`shift_statistic`):
       ``Q' = sum_{top-kc(h)} relu(h') + shift_weight * sum_{top-ks(h)} |h - h'|``,
       ``kc = int(D * correction_percent / 100)`` (correction term),
       ``ks = int(D * shift_percent / 100)`` (shift term), each at least 1.
    3. **Percentile** (:func:`adaptive_percentiles`):
       ``p = p_min + (1 - ECDF(Q')) * (p_max - p_min)``, the ECDF of ``Q'``
       over (a random subset of ``max_samples`` of) the ID fit images.
    4. **Scaling** (:func:`scale_ratio`): ``r = sum relu(h) / sum top-k relu(h)``,
       ``k = D - round(D * p / 100)``; ``variant="A"``: logits
       ``head(h * exp(r))``; ``variant="L"``: ``head(h) * r**2``.
       Score ``logsumexp(logits)`` (the energy), in float64.

    Higher means more in-distribution. Cost per image: a forward pass, a
    backward pass to the input, a second forward pass and ``O(D log D)``.

    ``X`` may be an array or tensor, a lazily sliced array-like, a
    ``Dataset``, a ``DataLoader`` (not shuffling) or an iterable of batches,
    read in batches of ``batch_size`` (see
    :class:`~sklearn_ood.model_detectors.ModelDetector`); ``fit`` reads it once
    (the ECDF and the training scores come from the same features).

    The model is not modified: gradients are taken with respect to the
    input only, and flags, ``requires_grad``, ``.grad`` and hooks are
    restored after every call, also on error.

    Parameters
    ----------
    model : torch.nn.Module
        The trained classifier. Not copied or modified.
    head : str or None, default=None
        Name (from ``model.named_modules()``) of the classifier layer whose
        input is ``h`` and whose output is the logits; ``None``: the last
        ``nn.Linear`` of the model.
    variant : {"A", "L"}, default="A"
        AdaSCALE-A scales the activations, AdaSCALE-L the logits.
    percentiles : tuple (p_min, p_max), default=(75, 85)
        ``0 < p_min <= p_max < 100`` (OpenOOD's configuration; the authors
        fix ``p_min = 60`` and tune ``p_max``: the tuning grid of the class's tags).
    shift_weight : float >= 0, default=10.0
        ``lambda``, the weight of the shift term.
    correction_percent : float in (0, 100], default=5.0
        Size of the correction term's index set, in percent of ``D``.
    shift_percent : float in (0, 100], default=1.0
        Size of the shift term's index set, in percent of ``D``.
    perturb_fraction : float in [0, 1], default=0.05
        ``o``, fraction of the input entries perturbed.
    magnitude : float >= 0, default=0.5
        ``epsilon``, the perturbation of each chosen entry, in the units of ``X``.
    max_samples : int or None, default=5000
        The ECDF uses a random subset of this many fit images (all if fewer,
        or ``None``).
    batch_size : int, default=128
        Images per forward pass.
    device : str or torch.device, default="cpu"
        Where batches are sent; must be where the model's parameters are.
    random_state : int, RandomState instance or None, default=None
        Seeds the ECDF subset.
    contamination : float, default=0.05
        Fraction of training images below the threshold ``offset_``.

    Attributes
    ----------
    head_ : str
        Name of the classifier layer used.
    n_penultimate_ : int
        ``D``, the size of ``h``.
    correction_k_ : int
        ``kc``.
    shift_k_ : int
        ``ks``.
    fit_shifts_ : ndarray of shape (n_ecdf,)
        Sorted ``Q'`` of the fit images the ECDF is built from.
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Channels of the images seen in ``fit``.

    See Also
    --------
    sklearn_ood.ASH : pruning and scaling of cached features.

    Notes
    -----
    **k1/k2.** The paper names the two index-set sizes ``k1`` (1 %) and
    ``k2`` (5 %); the code names them the other way round, and the authors'
    latest commit swapped them in the ECDF but not at test time. Here they
    are named by role -- ``correction_percent`` (5 %, the ``relu(h')``
    term) and ``shift_percent`` (1 %, the ``|h - h'|`` term) -- and used
    identically at fit and test time, as in OpenOOD.

    **Deviations.** ``kc``, ``ks`` and the scaling's ``k`` are at least 1
    (with ``D < 100`` OpenOOD's ``int(D / 100)`` is 0 and its shift term
    vanishes); a sample without a positive feature gets ``r = 1`` (0/0 in
    the reference). Fit on ID *validation* images (OpenOOD uses its ID
    validation split), unlabelled.

    References
    ----------
    Regmi, "AdaSCALE: Adaptive Scaling for OOD Detection", arXiv 2503.08023, 2025.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from torch import nn
    >>> from sklearn_ood.model_detectors import AdaSCALE
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Conv2d(3, 32, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
    ...                     nn.Flatten(), nn.Linear(32, 5))
    >>> X = np.random.default_rng(0).random((20, 3, 8, 8), dtype=np.float32)
    >>> det = AdaSCALE(net, percentiles=(60, 90), random_state=0).fit(X)
    >>> det.head_, det.n_penultimate_, det.correction_k_, det.shift_k_
    ('4', 32, 1, 1)
    >>> det.score_samples(X[:3]).shape
    (3,)
    """

    # Tuning: the authors' recipe, ``p_min = 60`` and ``p_max`` swept, other knobs fixed.
    _detector_tags = DetectorTags(
        input="images", head="optional",
        grid={"percentiles": [(60, p) for p in (65, 70, 75, 80, 85, 90, 95, 99)]},
        paper="Regmi, 2025")

    _parameter_constraints = {
        **ModelDetector._parameter_constraints,
        "head": [None, str],
        "variant": [StrOptions({"A", "L"})],
        "percentiles": [tuple, list],
        "shift_weight": [Interval(Real, 0, None, closed="left")],
        "correction_percent": [Interval(Real, 0, 100, closed="right")],
        "shift_percent": [Interval(Real, 0, 100, closed="right")],
        "perturb_fraction": [Interval(Real, 0, 1, closed="both")],
        "magnitude": [Interval(Real, 0, None, closed="left")],
        "max_samples": [None, Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(self, model, *, head=None, variant="A", percentiles=(75, 85),
                 shift_weight=10.0, correction_percent=5.0, shift_percent=1.0,
                 perturb_fraction=0.05, magnitude=0.5, max_samples=5000, batch_size=128,
                 device="cpu", random_state=None, contamination=0.05):
        self.model = model
        self.head = head
        self.variant = variant
        self.percentiles = percentiles
        self.shift_weight = shift_weight
        self.correction_percent = correction_percent
        self.shift_percent = shift_percent
        self.perturb_fraction = perturb_fraction
        self.magnitude = magnitude
        self.max_samples = max_samples
        self.batch_size = batch_size
        self.device = device
        self.random_state = random_state
        self.contamination = contamination

    _scoring_param = "percentiles"  # _score_each: the features once for every pair

    def _check_scoring_value(self):
        self._validate_params()
        self._check_percentiles()

    def _check_percentiles(self):
        p = tuple(self.percentiles)
        if len(p) != 2 or not all(isinstance(v, Real) for v in p) or not 0 < p[0] <= p[1] < 100:
            raise ValueError(
                f"percentiles must be a pair (p_min, p_max) with 0 < p_min <= p_max < 100; "
                f"got {self.percentiles!r}."
            )

    def _fit_images(self, data):
        self._check_percentiles()
        self.head_ = _resolve_head(self.model, self.head)
        h, h_perturbed = self._features(data.batches())
        D = h.shape[1]
        self.n_penultimate_ = D
        self.correction_k_ = max(1, int(D * self.correction_percent / 100))
        self.shift_k_ = max(1, int(D * self.shift_percent / 100))
        q = self._shift(h, h_perturbed)
        subset = np.arange(len(q))
        if self.max_samples is not None and self.max_samples < len(q):
            rng = check_random_state(self.random_state)
            subset = np.sort(rng.choice(len(q), self.max_samples, replace=False))
        self.fit_shifts_ = np.sort(q[subset])
        rows = data.offset_rows()  # the training scores reuse the pass's features
        return self._scores_from(h[rows], q[rows])

    def _score_batches(self, batches):
        return self._score_each(batches, [self.percentiles])[:, 0]

    def _score_each(self, batches, percentiles):
        h, h_perturbed = self._features(batches)
        q = self._shift(h, h_perturbed)
        return np.stack([self._scores_from(h, q, p) for p in percentiles], axis=1)

    def _shift(self, h, h_perturbed):
        return shift_statistic(h, h_perturbed, self.correction_k_, self.shift_k_,
                               self.shift_weight)

    def _scores_from(self, h, q, percentiles=None):
        p_min, p_max = self.percentiles if percentiles is None else percentiles
        r = scale_ratio(h, adaptive_percentiles(q, self.fit_shifts_, p_min, p_max))
        head = dict(self.model.named_modules())[self.head_]
        dtype = next(iter(head.parameters()), torch.empty(0)).dtype
        scores = np.empty(len(h), dtype=np.float64)
        with model_run(self.model), torch.no_grad():
            for start in range(0, len(h), self.batch_size):
                stop = start + self.batch_size
                hb = torch.from_numpy(h[start:stop])
                rb = torch.from_numpy(r[start:stop])[:, None]
                if self.variant == "A":
                    logits = head((hb * torch.exp(rb)).to(self.device, dtype))
                    logits = logits.to("cpu", torch.float64)
                else:
                    logits = head(hb.to(self.device, dtype)).to("cpu", torch.float64) * rb**2
                scores[start:stop] = torch.logsumexp(logits, 1).numpy()
        return scores

    def _features(self, batches):
        """``h`` and ``h'`` (float64, CPU) of every image, batch by batch."""
        head = dict(self.model.named_modules())[self.head_]
        captured = []
        h_all, hp_all = [], []
        with model_run(self.model) as hooks:
            hooks.forward_pre(head, lambda module, inputs: captured.append(inputs[0]))
            for x in on_device(self.model, batches, device=self.device):
                captured.clear()
                grad, _ = input_gradient(_predicted_logit(self.model), x)
                if len(captured) != 1:
                    raise ValueError(
                        f"head {self.head_!r} ran {len(captured)} times in one forward pass "
                        f"of {type(self.model).__name__}; choose the classifier layer, "
                        "which runs once."
                    )
                h = captured[0].detach()
                x_perturbed = x + self.magnitude * _smallest_gradient_mask(
                    grad, self.perturb_fraction) * torch.sign(grad)
                captured.clear()
                with torch.no_grad():
                    self.model(x_perturbed)
                if h.ndim != 2 or captured[0].shape != h.shape:
                    raise ValueError(
                        f"head {self.head_!r} must take the 2-D penultimate feature "
                        f"(n_samples, n_features); its input has shape {tuple(h.shape)}."
                    )
                h_all.append(h.to("cpu", torch.float64).numpy())
                hp_all.append(captured[0].detach().to("cpu", torch.float64).numpy())
        return np.concatenate(h_all), np.concatenate(hp_all)


def _predicted_logit(model):
    def objective(x):
        logits = model(x)
        return logits.gather(1, logits.detach().argmax(1, keepdim=True))[:, 0]

    return objective


def _smallest_gradient_mask(grad, fraction):
    """1 at the ``int(fraction * entries)`` entries of smallest ``|grad|`` per sample."""
    flat = grad.abs().flatten(1)
    n = int(flat.shape[1] * fraction)
    mask = torch.zeros_like(flat)
    if n > 0:
        mask.scatter_(1, torch.topk(flat, n, dim=1, largest=False).indices, 1.0)
    return mask.view_as(grad)


def _resolve_head(model, head):
    modules = dict(model.named_modules())
    if head is None:
        linear = [name for name, m in modules.items() if isinstance(m, torch.nn.Linear)]
        if not linear:
            raise ValueError(
                f"{type(model).__name__} has no nn.Linear layer; pass head=<name of the "
                f"classifier layer>. Available modules: {[n for n in modules if n]}."
            )
        return linear[-1]
    if head not in modules:
        raise ValueError(
            f"Unknown head {head!r} for {type(model).__name__}. Available modules: "
            f"{[n for n in modules if n]}."
        )
    return head
