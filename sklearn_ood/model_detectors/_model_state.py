"""Run a model and leave it exactly as it was: one context manager for every detector."""

import contextlib

import torch

from ..extraction import check_model_device

__all__ = ["DROPOUT_TYPES", "on_device", "model_run", "input_gradient"]

#: The module types MC dropout switches to train mode (``nn.Dropout``,
#: ``Dropout1d/2d/3d``, ``AlphaDropout``, ``FeatureAlphaDropout``).
DROPOUT_TYPES = (torch.nn.modules.dropout._DropoutNd,)


class _Hooks:
    """Hooks registered through :func:`model_run`, removed when it exits."""

    def __init__(self):
        self._handles = []

    def forward(self, module, fn):
        """Register ``fn(module, inputs, output)`` as a forward hook of ``module``."""
        self._handles.append(module.register_forward_hook(fn))

    def forward_pre(self, module, fn):
        """Register ``fn(module, inputs)`` as a forward pre-hook of ``module``."""
        self._handles.append(module.register_forward_pre_hook(fn))

    def remove(self):
        while self._handles:
            self._handles.pop().remove()


@contextlib.contextmanager
def model_run(model, *, train=None):
    """Run ``model`` in eval mode with frozen parameters; restore everything after.

    On entry every module goes to eval mode (BatchNorm uses its running
    statistics, which therefore never change), except the modules for which
    ``train(module)`` is true, which go to train mode (MC dropout's dropout
    layers), and every parameter gets ``requires_grad=False``, so a gradient
    with respect to the *input* (:func:`input_gradient`) never computes, let
    alone stores, a parameter gradient. The context yields a hook registry:
    hooks registered through it are removed on exit.

    On exit -- also when the block raises, in a forward pass, in a backward
    pass or anywhere else -- the hooks are removed and each module's
    train/eval flag, each parameter's ``requires_grad`` and each parameter's
    ``.grad`` (the very tensor object it held, or ``None``) are restored.

    Parameters
    ----------
    model : torch.nn.Module
    train : callable or None, default=None
        ``train(module) -> bool``: modules put in train mode for the run.

    Yields
    ------
    hooks : object
        ``hooks.forward(module, fn)`` and ``hooks.forward_pre(module, fn)``
        register a hook for the duration of the block.

    Examples
    --------
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(2, 2), nn.Dropout()).train()
    >>> with model_run(net, train=lambda m: isinstance(m, nn.Dropout)) as hooks:
    ...     hooks.forward(net[0], lambda module, inputs, output: None)
    ...     [m.training for m in net.modules()], net[0].weight.requires_grad
    ([False, False, True], False)
    >>> [m.training for m in net.modules()], net[0].weight.requires_grad
    ([True, True, True], True)
    >>> len(net[0]._forward_hooks)
    0
    """
    flags = [(module, module.training) for module in model.modules()]
    params = list(model.parameters())
    saved = [(p, p.requires_grad, p.grad) for p in params]
    hooks = _Hooks()
    try:
        for module, _ in flags:
            module.training = bool(train is not None and train(module))
        for p in params:
            p.requires_grad_(False)
        yield hooks
    finally:
        hooks.remove()
        for p, requires_grad, grad in saved:
            p.requires_grad_(requires_grad)
            if p.grad is not grad:
                p.grad = grad
        for module, flag in flags:
            module.training = flag


def on_device(model, batches, *, device):
    """Yield each batch of ``batches`` on ``device`` in the model's dtype.

    ``batches`` holds image tensors (from
    :meth:`~sklearn_ood.model_detectors._input.ModelInput.batches`). A batch
    is a new tensor or a view of the input, detached from any graph the input
    belongs to; callers never write into it.
    """
    dtype = check_model_device(model, device)
    for batch in batches:
        yield batch.detach().to(device=device, dtype=dtype)


def input_gradient(objective, x):
    """Gradient of ``objective(x).sum()`` with respect to the input batch ``x`` only.

    ``torch.autograd.grad`` (not ``.backward()``) so no parameter's ``.grad``
    is touched; grad mode is switched on for the call (it works inside
    ``torch.no_grad()``). ``objective`` maps the batch to one value per
    sample, and samples must not interact (eval-mode BatchNorm), so the
    result holds each sample's own gradient.

    Returns
    -------
    grad : torch.Tensor
        Of the shape of ``x``.
    value : torch.Tensor
        ``objective(x)``, detached.

    Examples
    --------
    >>> import torch
    >>> grad, value = input_gradient(lambda x: (x ** 2).sum(1), torch.tensor([[1.0, 2.0]]))
    >>> grad, value
    (tensor([[2., 4.]]), tensor([5.]))
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        value = objective(x)
        (grad,) = torch.autograd.grad(value.sum(), x)
    return grad, value.detach()
