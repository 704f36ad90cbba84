"""ODIN: temperature scaling and input perturbation.

Liang, Li & Srikant, "Enhancing The Reliability of Out-of-distribution Image
Detection in Neural Networks", ICLR 2018. https://arxiv.org/abs/1706.02690
Reference code: facebookresearch/odin (``code/calData.py``).
"""

from numbers import Real

import numpy as np
import torch
from sklearn.utils._param_validation import Interval

from .._tags import DetectorTags
from ._base import ModelDetector
from ._model_state import input_gradient, model_run, on_device

__all__ = ["ODIN", "check_input_std", "signed_step"]


def signed_step(grad, magnitude, input_std=None):
    """The perturbation ``magnitude * sign(grad) / std`` of ODIN's reference code.

    The sign is the reference code's ``ge(grad, 0) * 2 - 1``: a zero gradient
    counts as ``+1`` (``torch.sign`` would give 0). With ``input_std`` the
    step of channel ``c`` is divided by ``input_std[c]``, so that
    ``magnitude`` is in units of the un-normalised pixel scale.

    Parameters
    ----------
    grad : torch.Tensor of shape (n_samples, channels, ...)
    magnitude : float
    input_std : torch.Tensor of shape (channels,) or None

    Returns
    -------
    step : torch.Tensor of the shape of ``grad``

    Examples
    --------
    >>> import torch
    >>> g = torch.tensor([[[-2.0], [0.0]]], dtype=torch.float64)  # 2 channels, 1 pixel
    >>> signed_step(g, 0.1, torch.tensor([0.5, 0.25], dtype=torch.float64)).flatten().tolist()
    [-0.2, 0.4]
    """
    step = torch.where(grad >= 0, 1.0, -1.0).to(grad.dtype) * magnitude
    if input_std is not None:
        step = step / input_std.view((1, -1) + (1,) * (grad.ndim - 2))
    return step


def check_input_std(input_std, n_channels, name="input_std"):
    """``input_std`` as a float64 array of one positive std per channel, or None."""
    if input_std is None:
        return None
    std = np.asarray(input_std, dtype=np.float64).reshape(-1)
    if std.size == 1:
        std = np.repeat(std, n_channels)
    if std.size != n_channels or not np.all(np.isfinite(std)) or not np.all(std > 0):
        raise ValueError(
            f"{name} must be None, one positive number or one positive std per input "
            f"channel ({n_channels}), the std of the normalisation applied to the "
            f"images; got {input_std!r}."
        )
    return std


class ODIN(ModelDetector):
    """ODIN: max softmax at temperature ``T`` of a perturbed input (Liang et al., 2018).

    For each image ``x`` with logits ``f(x)``:

    1. ``y = argmax f(x)`` and the loss ``L = -log softmax(f(x) / T)_y``;
    2. the input is moved towards higher confidence,
       ``x~ = x - magnitude * sign(grad_x L) / std`` (a zero gradient counts
       as ``+1``, as in the reference code; ``std`` is ``input_std`` per
       channel, or 1);
    3. score ``S(x) = max_k softmax(f(x~) / T)_k``, computed in float64.

    Higher means more in-distribution, as in the paper. ``magnitude=0``
    skips the gradient and gives the temperature-scaled maximum softmax.
    Cost per image: one forward pass, one backward pass to the input and a
    second forward pass.

    ``X`` may be an array or tensor, a lazily sliced array-like, a
    ``Dataset``, a ``DataLoader`` (not shuffling) or an iterable of batches,
    read in batches of ``batch_size`` (see
    :class:`~sklearn_ood.model_detectors.ModelDetector`); ``fit`` reads it once
    (scoring the training images that set ``offset_``).

    The gradient is taken with respect to the input only
    (``torch.autograd.grad``): no parameter's ``.grad`` is touched. The model
    runs in eval mode with its parameters frozen; its train/eval flags,
    ``requires_grad`` flags and ``.grad`` tensors are restored afterwards,
    also when a pass raises. Images must not interact within a batch (no
    train-mode BatchNorm), so the scores do not depend on ``batch_size``.

    Parameters
    ----------
    model : torch.nn.Module
        The trained classifier, returning logits. Not copied or modified.
    temperature : float > 0, default=1000
        ``T``; 1000 in the paper for every model.
    magnitude : float >= 0, default=0.0014
        ``epsilon``, the perturbation size (0.0014: DenseNet-BC on CIFAR-10
        in the reference code). Tuned per data set in the paper (the tuning
        grid of the class's tags sweeps it).
    input_std : None, float or array-like of shape (channels,), default=None
        The per-channel std of the normalisation the images went through.
        The reference code divides the step of channel ``c`` by it, so that
        ``magnitude`` is in pixel units of ``[0, 1]`` images
        (``(63.0, 62.1, 66.7) / 255`` for its CIFAR models). ``None``: no
        division, the step is ``magnitude`` in the units of ``X`` (what
        pytorch-ood does by default; for normalised images that is a step of
        about ``magnitude * std`` pixels, a different method). Pass the std of
        your ``Normalize`` transform to reproduce the paper.
    batch_size : int, default=128
        Images per forward pass.
    device : str or torch.device, default="cpu"
        Where batches are sent; must be where the model's parameters are.
    contamination : float, default=0.05
        Fraction of training images below the threshold ``offset_``.

    Attributes
    ----------
    input_std_ : ndarray of shape (channels,) or None
        The validated per-channel std (``None``: no division).
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``; the
        ``100 * contamination`` percentile of the training images' scores.
    n_features_in_ : int
        Channels of the images seen in ``fit``.

    See Also
    --------
    sklearn_ood.MaxSoftmax : the maximum softmax of cached logits (``T = 1``,
        no perturbation).

    Notes
    -----
    ``fit`` learns nothing but the threshold: ODIN has no fitted statistics.
    Its two knobs were chosen on OOD validation data in the paper; here they
    are tuned with ``GridSearchCV`` on pseudo-OOD images
    (:class:`~sklearn_ood.tuning.PseudoOODSplit`).

    References
    ----------
    Liang, Li & Srikant, "Enhancing The Reliability of Out-of-distribution
    Image Detection in Neural Networks", ICLR 2018.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from torch import nn
    >>> from sklearn_ood.model_detectors import ODIN
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
    ...                     nn.Flatten(), nn.Linear(4, 5))
    >>> X = np.random.default_rng(0).random((8, 3, 10, 10), dtype=np.float32)
    >>> det = ODIN(net, temperature=1000, magnitude=0.0014,
    ...            input_std=[0.247, 0.243, 0.261]).fit(X)
    >>> scores = det.score_samples(X)
    >>> scores.shape, bool(((0.2 <= scores) & (scores <= 1)).all())
    ((8,), True)
    """

    # Tuning: the OpenOOD / pytorch-ood sweep plus ``magnitude=0`` (no perturbation: the
    # temperature-scaled MSP), which the paper's own sweep starts from.
    _detector_tags = DetectorTags(
        input="images",
        grid={"temperature": [1, 10, 100, 1000], "magnitude": [0.0, 0.0014, 0.0028]},
        paper="Liang, Li & Srikant, ICLR 2018")

    _parameter_constraints = {
        **ModelDetector._parameter_constraints,
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "magnitude": [Interval(Real, 0, None, closed="left")],
        "input_std": [None, Real, "array-like"],
    }
    _scoring_param = "magnitude"  # _score_each: one gradient for every magnitude

    def __init__(self, model, *, temperature=1000, magnitude=0.0014, input_std=None,
                 batch_size=128, device="cpu", contamination=0.05):
        self.model = model
        self.temperature = temperature
        self.magnitude = magnitude
        self.input_std = input_std
        self.batch_size = batch_size
        self.device = device
        self.contamination = contamination

    def _fit_images(self, data):
        self.input_std_ = (None if self.input_std is None else
                           check_input_std(self.input_std, data.n_channels))

    def _score_batches(self, batches):
        return self._score_each(batches, [self.magnitude])[:, 0]

    def _score_each(self, batches, magnitudes):
        """Scores for each magnitude: the gradient, taken once per batch, serves them all."""
        T = float(self.temperature)
        scores = []
        with model_run(self.model):
            std = None
            for x in on_device(self.model, batches, device=self.device):
                if std is None and self.input_std_ is not None:
                    std = torch.as_tensor(self.input_std_, dtype=x.dtype, device=x.device)
                part, grad = np.empty((len(x), len(magnitudes))), None
                for j, magnitude in enumerate(magnitudes):
                    x_j = x
                    if magnitude > 0:
                        if grad is None:
                            grad, _ = input_gradient(
                                lambda v: _confidence_loss(self.model(v), T), x)
                        x_j = x - signed_step(grad, magnitude, std)
                    with torch.no_grad():
                        logits = self.model(x_j).to("cpu", torch.float64)
                    part[:, j] = torch.softmax(logits / T, 1).amax(1).numpy()
                scores.append(part)
        return np.concatenate(scores)


def _confidence_loss(logits, temperature):
    """``-log softmax(logits / T)_y`` per sample, ``y`` the predicted class."""
    pred = logits.detach().argmax(1, keepdim=True)
    return -torch.log_softmax(logits / temperature, 1).gather(1, pred)[:, 0]
