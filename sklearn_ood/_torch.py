"""The torch engine: every model run, and every capture of block outputs, goes through here.

:func:`model_run` leaves the model as it was (train/eval flags,
``requires_grad``, ``.grad``, hooks); :class:`BlockCapture` runs the model up
to the last requested block and returns the blocks' outputs. The extractor
(:func:`~sklearn_ood.extraction.iter_block_batches`) and every model detector
use them.
"""

import contextlib

import torch

__all__ = ["BlockCapture", "model_run"]


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
    with respect to the *input* never computes, let alone stores, a parameter
    gradient. The context yields a hook registry: hooks registered through it
    are removed on exit.

    On exit -- also when the block raises, in a forward pass, in a backward
    pass, while reading the data or anywhere else, ``KeyboardInterrupt``
    included -- the hooks are removed and each module's train/eval flag, each
    parameter's ``requires_grad`` and each parameter's ``.grad`` (the very
    tensor object it held, or ``None``) are restored.

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


class _BlockRanTwice(RuntimeError):
    pass


class _StopForward(Exception):
    """Raised from a hook once every requested block is captured."""


class BlockCapture:
    """Outputs of named blocks, each captured by a forward hook, the pass stopped after the last.

    Registers one forward hook per block through ``hooks`` (the registry of a
    :func:`model_run`, which removes them). Each call runs the model on a
    batch until every requested block has run -- the forward pass stops there
    -- and returns ``{block: keep(block, output, n_samples)}``; ``keep`` runs
    inside the hook, so a reduction frees the full output at once. Gradient
    mode is the caller's: under ``torch.inference_mode`` for features, with
    gradients enabled to differentiate through the kept outputs.

    Parameters
    ----------
    model : torch.nn.Module
    blocks : list of str
        Names from ``model.named_modules()`` (checked by
        :func:`~sklearn_ood.extraction.resolve_blocks`).
    hooks : object
        The hook registry yielded by :func:`model_run`.
    keep : callable
        ``keep(block, output, n_samples)``: what to return for the block.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    >>> with model_run(net) as hooks:
    ...     capture = BlockCapture(net, ["0", "1"], hooks, lambda name, out, n: out.shape)
    ...     capture(torch.zeros(4, 2))
    {'0': torch.Size([4, 3]), '1': torch.Size([4, 3])}
    """

    def __init__(self, model, blocks, hooks, keep):
        self.model, self.blocks, self.keep = model, list(blocks), keep
        self._out, self._wanted, self._n = {}, frozenset(), 0
        modules = dict(model.named_modules())
        for name in self.blocks:
            hooks.forward(modules[name], self._hook(name))

    def _hook(self, name):
        def hook(module, inputs, output):
            if name not in self._wanted:
                return
            if name in self._out:
                raise _BlockRanTwice(name)
            self._out[name] = self.keep(name, output, self._n)
            if len(self._out) == len(self._wanted):
                raise _StopForward

        return hook

    def __call__(self, x, blocks=None):
        """Run the model on ``x`` up to the last of ``blocks`` (default: all); their outputs."""
        blocks = self.blocks if blocks is None else blocks
        self._wanted, self._n = frozenset(blocks), len(x)
        try:
            self.model(x)
        except _StopForward:
            pass
        except _BlockRanTwice as exc:
            raise ValueError(
                f"Block {exc.args[0]!r} runs more than once in one forward pass "
                "(a shared module), so its output is ambiguous; choose a block "
                "that runs once."
            ) from None
        finally:
            out, self._out, self._wanted = self._out, {}, frozenset()
        missing = [name for name in blocks if name not in out]
        if missing:
            raise ValueError(
                f"Block(s) {missing} did not run during the forward pass of "
                f"{type(self.model).__name__}; choose modules that forward() calls."
            )
        return out
