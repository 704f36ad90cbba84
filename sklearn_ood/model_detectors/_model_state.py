"""What model detectors share around a model run: batches on the device, input gradients.

The run itself goes through the one engine, :func:`~sklearn_ood._torch.model_run`.
"""

import torch

from .._torch import model_run  # noqa: F401 (the detectors' import path)
from ..extraction import check_model_device

__all__ = ["DROPOUT_TYPES", "on_device", "model_run", "input_gradient"]

#: The module types MC dropout switches to train mode (``nn.Dropout``,
#: ``Dropout1d/2d/3d``, ``AlphaDropout``, ``FeatureAlphaDropout``).
DROPOUT_TYPES = (torch.nn.modules.dropout._DropoutNd,)


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
