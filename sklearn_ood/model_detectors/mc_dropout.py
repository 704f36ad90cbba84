"""Monte-Carlo dropout: the predictive distribution of stochastic forward passes.

Gal & Ghahramani, "Dropout as a Bayesian Approximation: Representing Model
Uncertainty in Deep Learning", ICML 2016. https://arxiv.org/abs/1506.02142
As an OOD detector: pytorch-ood's ``MCD`` (``pytorch_ood/detector/mcd.py``).
"""

import contextlib
from numbers import Integral

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from .._tags import DetectorTags
from ._base import ModelDetector
from ._model_state import DROPOUT_TYPES, model_run, on_device

__all__ = ["MCDropout", "mc_dropout_score"]


def mc_dropout_score(probs, mode="mean"):
    """Score from the softmax outputs of ``T`` stochastic passes; higher means ID.

    Parameters
    ----------
    probs : ndarray of shape (n_passes, n_samples, n_classes)
        Softmax probabilities of each pass.
    mode : {"mean", "var"}, default="mean"
        ``"mean"``: the maximum of the mean softmax, ``max_k mean_t p_tk``
        (the maximum softmax of the predictive distribution).
        ``"var"``: minus the mean over classes of the unbiased variance over
        passes, ``-mean_k var_t p_tk`` (needs ``n_passes >= 2``).

    Returns
    -------
    scores : ndarray of shape (n_samples,)

    Examples
    --------
    >>> import numpy as np
    >>> probs = np.array([[[0.9, 0.1]], [[0.5, 0.5]]])  # 2 passes, 1 sample
    >>> mc_dropout_score(probs, "mean"), mc_dropout_score(probs, "var")
    (array([0.7]), array([-0.08]))
    """
    probs = np.asarray(probs, dtype=np.float64)
    if mode == "mean":
        return probs.mean(0).max(1)
    if mode == "var":
        return -probs.var(0, ddof=1).mean(1)
    raise ValueError(f"mode must be 'mean' or 'var'; got {mode!r}.")


def _is_dropout(module):
    return isinstance(module, DROPOUT_TYPES)


class _DropoutRNG:
    """torch's generator for ``device``, seeded once and switched in only around the passes.

    Between two batches the caller's random state is back in place, so that
    reading the data (a ``DataLoader`` draws its base seed, a ``Dataset`` may
    use random transforms) neither draws from the masks' stream nor sees it:
    the masks depend on the seed and the batches only.
    """

    def __init__(self, seed, device):
        self.seed, self.device, self.state = seed, torch.device(device), None
        self.module = None if self.device.type == "cpu" else getattr(torch, self.device.type)

    @contextlib.contextmanager
    def active(self):
        if self.module is None:
            with torch.random.fork_rng(devices=[]):
                if self.state is None:
                    torch.default_generator.manual_seed(self.seed)
                else:
                    torch.set_rng_state(self.state)
                yield
                self.state = torch.get_rng_state()
        else:
            with torch.random.fork_rng(device_type=self.device.type):
                if self.state is None:
                    torch.manual_seed(self.seed)
                else:
                    self.module.set_rng_state(self.state)
                yield
                self.state = self.module.get_rng_state()


class MCDropout(ModelDetector):
    """Monte-Carlo dropout: ``n_passes`` forward passes with dropout on (Gal & Ghahramani).

    Every dropout module of the model (``nn.Dropout``, ``Dropout1d/2d/3d``,
    ``AlphaDropout``, ``FeatureAlphaDropout``) is put in train mode, and the
    rest of the model in eval mode (BatchNorm uses its running statistics, so
    images do not interact and nothing is updated). Each image goes through
    ``T = n_passes`` stochastic passes giving softmax vectors
    ``p_1, ..., p_T`` (in float64), and the score is

    - ``mode="mean"``: ``max_k mean_t p_tk``, the maximum softmax of the MC
      predictive distribution;
    - ``mode="var"``: ``-mean_k var_t p_tk`` (unbiased variance over passes).

    Higher means more in-distribution for both. Cost: ``n_passes`` forward
    passes per image. Dropout inside ``forward`` through
    ``torch.nn.functional.dropout(x, training=self.training)`` of a module
    that is not a dropout module is not switched on.

    The masks come from torch's generator, seeded from ``random_state`` at
    each call and switched in only while a batch runs: the caller's random
    state is restored, and reading the data (a ``DataLoader``'s seed, random
    transforms) neither draws from the masks' stream nor sees it. With an int
    ``random_state`` the scores are reproducible for a given ``batch_size``
    (dropout masks are drawn per batch, so another ``batch_size`` gives other
    masks; how the input itself is batched does not matter).

    ``X`` may be an array or tensor, a lazily sliced array-like, a
    ``Dataset``, a ``DataLoader`` (not shuffling) or an iterable of batches,
    read in batches of ``batch_size`` (see
    :class:`~sklearn_ood.model_detectors.ModelDetector`); ``fit`` reads it once
    (scoring the training images that set ``offset_``).

    Parameters
    ----------
    model : torch.nn.Module
        The trained classifier, with at least one dropout module. Not copied
        or modified; train/eval flags are restored after each call.
    n_passes : int >= 1, default=30
        ``T``, stochastic passes per image (pytorch-ood's default).
    mode : {"mean", "var"}, default="mean"
        The statistic of the passes (see above).
    batch_size : int, default=128
        Images per forward pass.
    device : str or torch.device, default="cpu"
        Where batches are sent; must be where the model's parameters are.
    random_state : int, RandomState instance or None, default=None
        Seeds the dropout masks of each ``fit``/``score_samples`` call.
    contamination : float, default=0.05
        Fraction of training images below the threshold ``offset_``.

    Attributes
    ----------
    dropout_modules_ : list of str
        Names (from ``model.named_modules()``) of the modules run in train mode.
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Channels of the images seen in ``fit``.

    See Also
    --------
    sklearn_ood.MaxSoftmax : one deterministic pass.
    mc_dropout_score : the score from the passes' softmax outputs.

    Notes
    -----
    ``mode="mean"`` is the default here because the detector is the maximum
    softmax of the MC-averaged prediction; pytorch-ood's ``MCD`` defaults to
    ``mode="var"`` and returns OOD-oriented values (``mean_k var_t p_tk`` and
    ``-max_k mean_t p_tk``), i.e. the negatives of ours. OpenOOD's
    ``dropout`` postprocessor takes the maximum softmax of the mean *logits*
    of 5 passes instead, and OpenOOD's ``mcd`` is another method (Maximum
    Classifier Discrepancy, two heads) despite the name.

    References
    ----------
    Gal & Ghahramani, "Dropout as a Bayesian Approximation: Representing
    Model Uncertainty in Deep Learning", ICML 2016.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from torch import nn
    >>> from sklearn_ood.model_detectors import MCDropout
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(),
    ...                     nn.Dropout(0.5), nn.Linear(16, 3))
    >>> X = np.random.default_rng(0).random((6, 3, 2, 2), dtype=np.float32)
    >>> det = MCDropout(net, n_passes=10, random_state=0).fit(X)
    >>> det.dropout_modules_
    ['3']
    >>> bool((det.score_samples(X) == det.score_samples(X)).all())  # seeded
    True
    """

    # Tuning: the score mode (more passes only reduce the Monte-Carlo noise).
    _detector_tags = DetectorTags(
        input="images", grid={"mode": ["mean", "var"]},
        paper="Gal & Ghahramani, ICML 2016")

    _parameter_constraints = {
        **ModelDetector._parameter_constraints,
        "n_passes": [Interval(Integral, 1, None, closed="left")],
        "mode": [StrOptions({"mean", "var"})],
        "random_state": ["random_state"],
    }

    def __init__(self, model, *, n_passes=30, mode="mean", batch_size=128, device="cpu",
                 random_state=None, contamination=0.05):
        self.model = model
        self.n_passes = n_passes
        self.mode = mode
        self.batch_size = batch_size
        self.device = device
        self.random_state = random_state
        self.contamination = contamination

    def _check_model(self):
        if not any(_is_dropout(module) for module in self.model.modules()):
            raise ValueError(
                f"{type(self.model).__name__} has no dropout module (nn.Dropout, "
                "Dropout1d/2d/3d, AlphaDropout, FeatureAlphaDropout), so every MC dropout "
                "pass would be the same; use a model trained with dropout."
            )

    def _fit_images(self, data):
        if self.mode == "var" and self.n_passes < 2:
            raise ValueError(
                f"mode='var' needs n_passes >= 2 for an unbiased variance; got "
                f"n_passes={self.n_passes}."
            )
        self.dropout_modules_ = [name for name, module in self.model.named_modules()
                                 if _is_dropout(module)]

    def _score_batches(self, batches):
        modules = dict(self.model.named_modules())
        dropout = {id(modules[name]) for name in self.dropout_modules_}
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        rng = _DropoutRNG(seed, self.device)
        scores = []
        with model_run(self.model, train=lambda m: id(m) in dropout), torch.no_grad():
            for x in on_device(self.model, batches, device=self.device):
                with rng.active():
                    probs = torch.stack([
                        torch.softmax(self.model(x).to(torch.float64), 1)
                        for _ in range(self.n_passes)
                    ])
                scores.append(mc_dropout_score(probs.cpu().numpy(), self.mode))
        return np.concatenate(scores)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = not isinstance(self.random_state, Integral)
        return tags
