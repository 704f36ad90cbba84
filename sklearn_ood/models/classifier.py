"""Reproducible skorch training for logit-producing modules, and a neural-collapse callback."""

import numpy as np
import torch
from skorch import NeuralNetClassifier
from skorch.callbacks import Callback, LRScheduler, ProgressBar
from sklearn.utils import check_random_state
from torch import nn
from torch.optim.lr_scheduler import CosineAnnealingLR

from ..diagnostics import neural_collapse
from .._torch import model_run

__all__ = ["NeuralCollapseTracker", "SeededNeuralNetClassifier", "make_classifier"]

# name -> (optimizer class, default lr, fixed keyword arguments)
_OPTIMIZERS = {
    "sgd": (torch.optim.SGD, 0.05, {"momentum": 0.9, "nesterov": True}),
    "adamw": (torch.optim.AdamW, 1e-3, {}),
}


class SeededNeuralNetClassifier(NeuralNetClassifier):
    """skorch ``NeuralNetClassifier`` whose training is reproducible from ``random_state``.

    Three independent torch seeds are drawn from ``random_state``:

    * module initialisation (``initialize_module``) runs with the CPU RNG
      seeded, so the initial weights depend only on ``random_state``;
    * the training ``DataLoader`` receives a ``torch.Generator`` (as
      ``iterator_train__generator``, unless you set one yourself), so the
      shuffling order is reproducible;
    * every ``fit``/``partial_fit`` runs with the CPU RNG seeded, so random
      layers (dropout) are reproducible too.

    The seeding happens inside ``torch.random.fork_rng``: the global torch
    RNG is left exactly as it was. On CPU two fits with the same integer
    ``random_state`` give bit-identical weights and predictions. On CUDA only
    the CPU RNG is controlled (non-deterministic kernels may still differ).

    Parameters
    ----------
    module : torch.nn.Module class or instance
        As in :class:`skorch.NeuralNetClassifier`.
    *args, **kwargs
        Any other :class:`skorch.NeuralNetClassifier` argument.
    random_state : int, numpy.random.RandomState or None, default=None
        ``None`` keeps skorch's behaviour (global torch RNG, no seeding). An
        int makes every ``fit`` identical. A ``RandomState`` instance is
        consumed, so successive fits differ (scikit-learn semantics).

    See Also
    --------
    make_classifier : Builds a fully configured ``SeededNeuralNetClassifier``.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from sklearn_ood.models import SeededNeuralNetClassifier
    >>> X = np.random.default_rng(0).normal(size=(64, 5)).astype("float32")
    >>> y = (X[:, 0] > 0).astype("int64")
    >>> def fit(seed):
    ...     return SeededNeuralNetClassifier(
    ...         torch.nn.Linear, module__in_features=5, module__out_features=2,
    ...         criterion=torch.nn.CrossEntropyLoss, train_split=None,
    ...         iterator_train__shuffle=True, batch_size=16, max_epochs=2,
    ...         verbose=0, random_state=seed).fit(X, y)
    >>> w1, w2 = fit(0).module_.weight, fit(0).module_.weight
    >>> bool(torch.equal(w1, w2))
    True
    """

    def __init__(self, module, *args, random_state=None, **kwargs):
        super().__init__(module, *args, **kwargs)
        self.random_state = random_state

    def _draw_seeds(self, n):
        if self.random_state is None:
            return None
        rng = check_random_state(self.random_state)
        return [int(s) for s in rng.randint(np.iinfo(np.int32).max, size=n)]

    def initialize_module(self):
        seeds = self._draw_seeds(1)
        if seeds is None:
            return super().initialize_module()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seeds[0])
            return super().initialize_module()

    def initialize(self):
        super().initialize()
        seeds = self._draw_seeds(3)
        # seeds[0] is the module seed drawn in initialize_module
        if seeds is None:
            self.loader_generator_ = self.train_generator_ = None
        else:
            self.loader_generator_ = torch.Generator().manual_seed(seeds[1])
            self.train_generator_ = torch.Generator().manual_seed(seeds[2])
        return self

    def get_params_for(self, prefix):
        params = super().get_params_for(prefix)
        generator = getattr(self, "loader_generator_", None)
        if prefix == "iterator_train" and generator is not None:
            params.setdefault("generator", generator)
        return params

    def partial_fit(self, X, y=None, classes=None, **fit_params):
        if not self.initialized_:
            self.initialize()
        generator = getattr(self, "train_generator_", None)
        if generator is None:
            return super().partial_fit(X, y, classes=classes, **fit_params)
        seed = int(torch.randint(np.iinfo(np.int32).max, (1,), generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return super().partial_fit(X, y, classes=classes, **fit_params)


def make_classifier(
    module, *, max_epochs=10, lr=None, optimizer="sgd", batch_size=128,
    weight_decay=5e-4, random_state=0, device="cpu", progress=False,
    callbacks=None, train_split=None, verbose=0, **module_params,
):
    """Return a reproducible skorch classifier for a module that outputs logits.

    The net uses ``nn.CrossEntropyLoss`` (so ``predict_proba`` applies a
    softmax), shuffles the training data, trains on all of it
    (``train_split=None``) and follows a cosine learning-rate schedule from
    ``lr`` down to 0 over ``max_epochs`` epochs (skorch ``LRScheduler`` named
    ``"lr_scheduler"``). After ``fit``, ``net.module_`` is an ordinary
    ``nn.Module`` (left in training mode by skorch; call ``.eval()`` before
    using it directly).

    Parameters
    ----------
    module : torch.nn.Module class or instance
        E.g. :class:`ResNet` or :class:`SmallCNN`. Pass the class (not an
        instance) for a seeded weight initialisation.
    max_epochs : int, default=10
        Number of epochs; also the period ``T_max`` of the cosine schedule.
        If you change ``max_epochs`` later with ``set_params``, also set
        ``callbacks__lr_scheduler__T_max``.
    lr : float, default=None
        Initial learning rate. ``None`` means 0.05 for SGD and 1e-3 for AdamW.
    optimizer : {"sgd", "adamw"}, default="sgd"
        ``"sgd"``: ``torch.optim.SGD`` with momentum 0.9 and Nesterov;
        ``"adamw"``: ``torch.optim.AdamW``.
    batch_size : int, default=128
        Mini-batch size for training and prediction.
    weight_decay : float, default=5e-4
        Optimizer weight decay (applied to all parameters).
    random_state : int, RandomState or None, default=0
        Seed for weight initialisation, data shuffling and random layers; see
        :class:`SeededNeuralNetClassifier`.
    device : str, default="cpu"
        Torch device for training and prediction.
    progress : bool, default=False
        If True, show a tqdm progress bar per epoch (skorch ``ProgressBar``).
    callbacks : list of skorch callbacks or (name, callback) pairs, default=None
        Added after the learning-rate scheduler, e.g.
        :class:`NeuralCollapseTracker`.
    train_split : callable or None, default=None
        skorch's validation split; ``None`` trains on all the data.
    verbose : int, default=0
        skorch verbosity; 1 prints the per-epoch history table.
    **module_params
        Arguments of ``module``, forwarded as ``module__<name>`` (e.g.
        ``num_classes=10, l2_normalize=True``). Keys that already contain
        ``"__"`` (e.g. ``iterator_train__num_workers``) are passed to skorch
        unchanged.

    Returns
    -------
    net : SeededNeuralNetClassifier
        Unfitted. Call ``net.fit(X.astype("float32"), y.astype("int64"))``.

    Raises
    ------
    ValueError
        If ``optimizer`` is not ``"sgd"`` or ``"adamw"``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood.models import SmallCNN, make_classifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((64, 1, 8, 8), dtype=np.float32)
    >>> y = rng.integers(0, 3, size=64)
    >>> net = make_classifier(SmallCNN, max_epochs=2, width=4, num_classes=3,
    ...                       l2_normalize=True, batch_size=32)
    >>> net = net.fit(X, y)
    >>> net.predict_proba(X).shape
    (64, 3)
    >>> len(net.history)
    2
    """
    if optimizer not in _OPTIMIZERS:
        raise ValueError(
            f"optimizer must be one of {sorted(_OPTIMIZERS)}; got {optimizer!r}."
        )
    optimizer_cls, default_lr, optimizer_kwargs = _OPTIMIZERS[optimizer]
    params = {f"optimizer__{k}": v for k, v in optimizer_kwargs.items()}
    params["optimizer__weight_decay"] = weight_decay
    for key, value in module_params.items():
        params[key if "__" in key else f"module__{key}"] = value
    params.setdefault("iterator_train__shuffle", True)

    all_callbacks = [
        ("lr_scheduler", LRScheduler(policy=CosineAnnealingLR, T_max=max_epochs))
    ]
    if progress:
        all_callbacks.append(("progress_bar", ProgressBar()))
    all_callbacks.extend(callbacks or [])

    return SeededNeuralNetClassifier(
        module,
        criterion=nn.CrossEntropyLoss,
        optimizer=optimizer_cls,
        lr=default_lr if lr is None else lr,
        max_epochs=max_epochs,
        batch_size=batch_size,
        train_split=train_split,
        callbacks=all_callbacks,
        device=device,
        verbose=verbose,
        random_state=random_state,
        **params,
    )


class NeuralCollapseTracker(Callback):
    """skorch callback recording neural-collapse metrics after every epoch.

    At the end of each epoch the inputs of ``net.module_.fc`` (the
    penultimate features) are collected for the fixed data set ``X`` with a
    forward pre-hook, batch by batch, in eval mode under
    ``torch.inference_mode``; the hook is then removed and every sub-module's
    train/eval mode restored. :func:`~sklearn_ood.diagnostics.neural_collapse`
    is computed on them (with ``head=net.module_.fc`` when a head metric is
    requested) and each requested metric is written to the history with
    ``net.history.record(prefix + name, value)``.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_samples, ...)
        Inputs, e.g. (a subset of) the training images. Floating inputs are
        cast to the dtype of ``fc.weight``.
    y : array-like of shape (n_samples,)
        Class labels of ``X``.
    metrics : tuple of str, default=("nc1",)
        Keys of :func:`~sklearn_ood.diagnostics.neural_collapse` to record.
    batch_size : int, default=256
        Batch size for the feature pass.
    prefix : str, default=""
        Prefix of the history keys, e.g. ``"test_"`` to track a second set.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood.models import NeuralCollapseTracker, SmallCNN, make_classifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((64, 1, 8, 8), dtype=np.float32)
    >>> y = rng.integers(0, 3, size=64)
    >>> net = make_classifier(SmallCNN, max_epochs=2, width=4, num_classes=3,
    ...                       callbacks=[NeuralCollapseTracker(X, y)])
    >>> len(net.fit(X, y).history[:, "nc1"])
    2
    """

    _HEAD_METRICS = {
        "etf_weights", "equinorm_weights", "equiangularity_weights",
        "self_duality", "ncc_mismatch",
    }
    _MEAN_METRICS = {"nc1", "etf_means", "equinorm_means", "equiangularity_means"}

    def __init__(self, X, y, *, metrics=("nc1",), batch_size=256, prefix=""):
        self.X = X
        self.y = y
        self.metrics = metrics
        self.batch_size = batch_size
        self.prefix = prefix

    def initialize(self):
        metrics = (self.metrics,) if isinstance(self.metrics, str) else tuple(self.metrics)
        unknown = set(metrics) - self._HEAD_METRICS - self._MEAN_METRICS
        if unknown or not metrics:
            raise ValueError(
                f"metrics must be a non-empty subset of "
                f"{sorted(self._MEAN_METRICS | self._HEAD_METRICS)}; got {self.metrics!r}."
            )
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be a positive int; got {self.batch_size}.")
        self.metrics_ = metrics
        return self

    def on_epoch_end(self, net, **kwargs):
        fc = net.module_.fc
        features = _fc_inputs(net.module_, fc, self.X, int(self.batch_size), net.device)
        head = fc if self._HEAD_METRICS.intersection(self.metrics_) else None
        values = neural_collapse(features, self.y, head=head)
        for name in self.metrics_:
            net.history.record(self.prefix + name, values[name])


def _fc_inputs(module, fc, X, batch_size, device):
    """Inputs of ``fc`` for all rows of ``X`` as a float64 NumPy array."""
    if not (hasattr(X, "shape") and hasattr(X, "__getitem__")):
        X = np.asarray(X)
    captured = []

    def hook(_module, args):
        captured.append(args[0].detach().to("cpu", torch.float64))

    with model_run(module) as hooks, torch.inference_mode():
        hooks.forward_pre(fc, hook)
        for start in range(0, X.shape[0], batch_size):
            xb = torch.as_tensor(X[start:start + batch_size], device=device)
            if xb.is_floating_point():
                xb = xb.to(fc.weight.dtype)
            module(xb)
    return torch.cat(captured).numpy()
