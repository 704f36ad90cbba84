"""Mahalanobis detector with input pre-processing, per block (Lee et al., 2018).

Lee, Lee, Lee & Shin, "A Simple Unified Framework for Detecting
Out-of-Distribution Samples and Adversarial Attacks", NeurIPS 2018.
https://arxiv.org/abs/1807.03888 -- reference code: pokaxpoka/deep_Mahalanobis_detector
(``lib_generation.py``: ``sample_estimator``, ``get_Mahalanobis_score``);
OpenOOD's ``mds_ensemble_postprocessor.py`` follows it.
"""

from numbers import Real

import numpy as np
import torch
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from .._tags import DetectorTags
from .._torch import BlockCapture
from ..detectors._features import pseudo_inverse
from ..extraction import resolve_blocks
from ._base import ModelDetector
from ._model_state import model_run, on_device
from .odin import check_input_std, signed_step

__all__ = ["InputPreprocessedMahalanobis", "class_mahalanobis"]


def class_mahalanobis(features, means, precision):
    """Squared Mahalanobis distances ``(h - mu_c)^T P (h - mu_c)`` to every class mean.

    Computed as ``h^T P h - 2 h^T P mu_c + mu_c^T P mu_c`` (no
    ``n_samples x n_classes x n_features`` temporary); differentiable.

    Parameters
    ----------
    features : torch.Tensor of shape (n_samples, n_features)
    means : torch.Tensor of shape (n_classes, n_features)
    precision : torch.Tensor of shape (n_features, n_features)
        Symmetric.

    Returns
    -------
    distances : torch.Tensor of shape (n_samples, n_classes)

    Examples
    --------
    >>> import torch
    >>> h = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    >>> means = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    >>> class_mahalanobis(h, means, torch.diag(torch.tensor([1.0, 4.0], dtype=torch.float64)))
    tensor([[1., 4.]], dtype=torch.float64)
    """
    hp = features @ precision
    return ((hp * features).sum(1, keepdim=True) - 2.0 * hp @ means.T
            + ((means @ precision) * means).sum(1))


def _pooled(name, output, n_samples):
    """A block output averaged over its spatial positions (in the hook, differentiable)."""
    if not isinstance(output, torch.Tensor) or output.ndim < 2:
        raise ValueError(
            f"Block {name!r} must output one tensor (n_samples, channels, ...); "
            f"got {getattr(output, 'shape', type(output).__name__)}."
        )
    return output.flatten(2).mean(2) if output.ndim > 2 else output


class InputPreprocessedMahalanobis(ModelDetector):
    """Mahalanobis score of named blocks after input pre-processing (Lee et al., 2018).

    **Fit** (on labelled ID training images): for each block ``l`` of
    ``blocks``, its output averaged over the spatial positions, ``h_l(x)``
    (a 2-D output is used as it is); the class means ``mu_lc`` and ONE
    covariance shared by the classes (class-centred features, maximum
    likelihood ``1/N``, float64), pseudo-inverted into ``P_l`` (the cutoff of
    ``scipy.linalg.pinvh``).

    **Score**, per block ``l``, with ``M_lc(x) = (h_l(x) - mu_lc)^T P_l (h_l(x) - mu_lc)``:

    1. ``c = argmin_c M_lc(x)``, the closest class;
    2. the input moves to decrease that distance:
       ``x~ = x - magnitude * sign(grad_x M_lc(x)) / std`` (a zero gradient
       counts as ``+1``; ``std`` is ``input_std`` per channel, or 1);
    3. ``s_l(x) = -min_c M_lc(x~)``.

    The score is ``sum_l w_l s_l(x)`` with ``w = block_weights`` (all 1 by
    default); :meth:`score_blocks` returns the per-block ``s_l``. Higher
    means more in-distribution. Each block gets its own perturbation, as in
    the paper. ``magnitude=0`` skips the gradient: with one block it is the
    feature-space :class:`sklearn_ood.Mahalanobis` on the pooled block output.

    Cost per image: one forward pass to the last block, one backward pass
    per block, and one forward pass to each block for its perturbed input.

    ``X`` may be an array or tensor, a lazily sliced array-like, a
    ``Dataset``, a ``DataLoader`` (not shuffling) or an iterable of batches,
    read in batches of ``batch_size`` (see
    :class:`~sklearn_ood.model_detectors.ModelDetector`); ``fit`` reads it twice
    (the class statistics, then the training scores, which depend on them),
    so it rejects a one-shot iterator such as a generator. The labels come
    from ``y`` or from the data (``(image, label)`` items).
    The model is not modified: gradients are taken with respect to the
    input only, and flags, ``requires_grad``, ``.grad`` and hooks are
    restored after every call, also on error.

    Parameters
    ----------
    model : torch.nn.Module
        The trained classifier. Not copied or modified.
    blocks : str or list of str
        Names from ``model.named_modules()`` whose outputs are modelled, e.g.
        the stem and stage outputs (``["relu", "layer1", ..., "layer4"]`` for
        :class:`sklearn_ood.models.ResNet`, the paper's choice) or only the
        penultimate feature (``"flatten"``, OpenOOD's ``mds_ensemble`` default).
    magnitude : float >= 0, default=0.0014
        ``epsilon``, the perturbation size (OpenOOD's default; the paper
        tunes it in {0, 0.0005, 0.001, 0.0014, 0.002, 0.005, 0.01}, the
        class's tuning grid).
    input_std : None, float or array-like of shape (channels,), default=None
        The per-channel std of the images' normalisation; the step of channel
        ``c`` is divided by it (the reference code divides by the CIFAR std,
        so that ``magnitude`` is in pixel units). ``None``: no division.
    block_weights : None or array-like of shape (n_blocks,), default=None
        ``w``; ``None``: 1 for every block. The paper (and OpenOOD when no
        weights are given) fits them by logistic regression on ID and OOD
        validation data; fit one on :meth:`score_blocks` of held-out ID and
        (pseudo-)OOD images and pass its ``coef_`` (see Examples).
    batch_size : int, default=128
        Images per forward pass.
    device : str or torch.device, default="cpu"
        Where batches are sent; must be where the model's parameters are.
    contamination : float, default=0.05
        Fraction of training images below the threshold ``offset_``.

    Attributes
    ----------
    blocks_ : list of str
        The blocks, in the order of :meth:`score_blocks`' columns.
    classes_ : ndarray of shape (n_classes,) or None
        Class labels; ``None`` when fitted without labels (the training set
        is then one class: the distance to the global mean).
    means_ : list of ndarray of shape (n_classes, n_features_l)
        Class means of each block's pooled output.
    precisions_ : list of ndarray of shape (n_features_l, n_features_l)
        Pseudo-inverse of each block's shared covariance.
    block_weights_ : ndarray of shape (n_blocks,)
        The weights ``w``.
    input_std_ : ndarray of shape (channels,) or None
        The validated per-channel std.
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Channels of the images seen in ``fit``.

    See Also
    --------
    sklearn_ood.Mahalanobis : the feature-space baseline on cached features
        (no pre-processing, one feature).
    ODIN : the same kind of input pre-processing on the softmax.

    Notes
    -----
    **Name.** ``sklearn_ood.Mahalanobis`` is the feature-space baseline most
    later work compares with; this class adds what the paper adds, "input
    pre-processing" (its own term) and the per-block scores. Its name says
    what it is -- a Mahalanobis detector on pre-processed inputs -- rather
    than ``MahalanobisPreprocessing``, which would read as a scikit-learn
    preprocessing transformer.

    **Scale.** The paper's per-layer score is ``max_c -0.5 M_lc``; ours is
    ``-min_c M_lc``, twice that (the convention of ``sklearn_ood.Mahalanobis``),
    so logistic-regression weights fitted on our scores are half the
    paper's and the combined ranking is the same. The paper's gradient is
    that of the batch mean of ``0.5 M_lc``: the same sign.

    **Fit data.** Class means and covariance from the ID *training* images
    with their labels (all of them, correctly classified or not), as in the
    reference code's ``sample_estimator``.

    References
    ----------
    Lee, Lee, Lee & Shin, "A Simple Unified Framework for Detecting
    Out-of-Distribution Samples and Adversarial Attacks", NeurIPS 2018.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from torch import nn
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn_ood.model_detectors import InputPreprocessedMahalanobis
    >>> from sklearn_ood.pseudo_ood import make_pseudo_ood
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 6, 3), nn.ReLU(),
    ...                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 2))
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.random((40, 1, 9, 9), dtype=np.float32), np.arange(40) % 2
    >>> det = InputPreprocessedMahalanobis(net, ["1", "3"], magnitude=0.01).fit(X, y)
    >>> det.score_blocks(X[:3]).shape
    (3, 2)

    Block weights as in the paper, from a logistic regression on held-out
    ID images and pseudo-OOD ones (jigsaw puzzles here):

    >>> X_val, y_val = make_pseudo_ood(rng.random((20, 1, 9, 9)), random_state=0)
    >>> is_id = ~(y_val < 0)  # NaN: ID of unknown class; -1: pseudo-OOD
    >>> lr = LogisticRegression().fit(det.score_blocks(X_val), is_id)
    >>> _ = det.set_params(block_weights=lr.coef_[0]).fit(X, y)
    >>> det.score_samples(X[:3]).shape
    (3,)
    """

    # Tuning: the paper's magnitudes.
    _detector_tags = DetectorTags(
        input="images", labels="optional",
        grid={"magnitude": [0.0, 0.0005, 0.001, 0.0014, 0.002, 0.005, 0.01]},
        paper="Lee et al., NeurIPS 2018")

    _parameter_constraints = {
        **ModelDetector._parameter_constraints,
        "blocks": [str, list, tuple],
        "magnitude": [Interval(Real, 0, None, closed="left")],
        "input_std": [None, Real, "array-like"],
        "block_weights": [None, "array-like"],
    }
    _fit_passes = 2  # the class statistics, then the training scores that depend on them
    _scoring_param = "magnitude"  # _score_each: one gradient per block for every magnitude

    def __init__(self, model, blocks, *, magnitude=0.0014, input_std=None, block_weights=None,
                 batch_size=128, device="cpu", contamination=0.05):
        self.model = model
        self.blocks = blocks
        self.magnitude = magnitude
        self.input_std = input_std
        self.block_weights = block_weights
        self.batch_size = batch_size
        self.device = device
        self.contamination = contamination

    def _fit_images(self, data):
        blocks = resolve_blocks(self.model, self.blocks)
        if self.block_weights is None:
            weights = np.ones(len(blocks))
        else:
            weights = np.asarray(self.block_weights, dtype=np.float64).reshape(-1)
            if weights.shape != (len(blocks),) or not np.isfinite(weights).all():
                raise ValueError(
                    f"block_weights must hold one finite weight per block ({len(blocks)}: "
                    f"{blocks}); got {self.block_weights!r}."
                )
        features = {name: [] for name in blocks}
        with model_run(self.model) as hooks, torch.no_grad():
            capture = BlockCapture(self.model, blocks, hooks, _pooled)
            for x in on_device(self.model, data.batches(), device=self.device):
                for name, h in capture(x).items():
                    features[name].append(h.to("cpu", torch.float64).numpy())
        self.input_std_ = check_input_std(self.input_std, data.n_channels)
        y = data.y
        if y is None:
            n = sum(len(h) for h in features[blocks[0]])
            self.classes_, codes = None, np.zeros(n, dtype=np.intp)
        else:
            self.classes_, codes = np.unique(y, return_inverse=True)
        n_classes = int(codes.max()) + 1
        counts = np.bincount(codes, minlength=n_classes)[:, None]
        self.means_, self.precisions_ = [], []
        for name in blocks:
            H = np.concatenate(features.pop(name))
            means = np.zeros((n_classes, H.shape[1]))
            np.add.at(means, codes, H)
            means /= counts
            H -= means[codes]  # class-centred, in place
            self.means_.append(means)
            self.precisions_.append(pseudo_inverse(H.T @ H / len(H)))
        self.blocks_ = blocks
        self.block_weights_ = weights

    def score_blocks(self, X):
        """Per-block scores ``s_l(x) = -min_c M_lc(x~)``: the higher, the more ID.

        Parameters
        ----------
        X : array-like, torch.Tensor, Dataset, DataLoader or iterable of batches
            Images ``(n_samples, channels, height, width)``, as for
            :meth:`score_samples`.

        Returns
        -------
        scores : ndarray of shape (n_samples, n_blocks)
            One column per block of ``blocks_``.
        """
        check_is_fitted(self)
        data = self._input(self._validate_input(X, reset=False))
        with data:
            return self._score_blocks(data.batches(), [self.magnitude])[0]

    def _score_batches(self, batches):
        return self._score_each(batches, [self.magnitude])[:, 0]

    def _score_each(self, batches, magnitudes):
        blocks = self._score_blocks(batches, magnitudes)
        return np.stack([b @ self.block_weights_ for b in blocks], axis=1)

    def _score_blocks(self, batches, magnitudes):
        """Per-block scores for each magnitude, ``(n_magnitudes, n_samples, n_blocks)``:
        each block's gradient, taken once per batch, serves every magnitude."""
        blocks = self.blocks_
        out = []
        with model_run(self.model) as hooks:
            capture = BlockCapture(self.model, blocks, hooks, _pooled)
            stats = None
            for x in on_device(self.model, batches, device=self.device):
                if stats is None:
                    stats = [(torch.as_tensor(m, device=x.device),
                              torch.as_tensor(p, device=x.device))
                             for m, p in zip(self.means_, self.precisions_)]
                    std = (None if self.input_std_ is None else
                           torch.as_tensor(self.input_std_, dtype=x.dtype, device=x.device))
                part = np.empty((len(magnitudes), len(x), len(blocks)), dtype=np.float64)
                out.append(part)
                if 0 in magnitudes:
                    with torch.no_grad():
                        clean = capture(x)
                    for j, name in enumerate(blocks):
                        score = _min_distance(clean[name], *stats[j]).neg().cpu().numpy()
                        for i, magnitude in enumerate(magnitudes):
                            if magnitude == 0:
                                part[i, :, j] = score
                if all(magnitude == 0 for magnitude in magnitudes):
                    continue
                with torch.enable_grad():
                    x_grad = x.detach().requires_grad_(True)
                    clean = capture(x_grad)
                    for j, name in enumerate(blocks):
                        means, precision = stats[j]
                        h = clean[name].to(torch.float64)
                        closest = class_mahalanobis(h.detach(), means, precision).argmin(1)
                        d = h - means[closest]
                        loss = ((d @ precision) * d).sum()
                        (grad,) = torch.autograd.grad(loss, x_grad,
                                                      retain_graph=j < len(blocks) - 1)
                        for i, magnitude in enumerate(magnitudes):
                            if magnitude == 0:
                                continue
                            x_tilde = x - signed_step(grad, magnitude, std)
                            with torch.no_grad():
                                h_tilde = capture(x_tilde, [name])[name]
                            part[i, :, j] = _min_distance(h_tilde, means,
                                                          precision).neg().cpu().numpy()
        return np.concatenate(out, axis=1)


def _min_distance(features, means, precision):
    """``min_c M_c``, the distance to the closest class recomputed from its own difference."""
    features = features.detach().to(torch.float64)
    closest = class_mahalanobis(features, means, precision).argmin(1)
    d = features - means[closest]
    return ((d @ precision) * d).sum(1)
