"""A model of the user's: ``--model package.module:factory --weights FILE --blocks ... --head``.

The factory is imported with :mod:`importlib` (from the current folder or
the Python path) and called without arguments;
the state dict is loaded with ``torch.load(weights_only=True)``. The named
blocks are read as follows (one rule, documented in ``--blocks``):

* the LAST block is the feature block: its output, flattened, is the input
  ``h`` of the head (checked on a probe batch: ``head(h)`` must give the
  model's logits);
* the blocks before it must output maps ``(N, C, H, W)``: the last of them
  gives the maps of the map-based detectors (and their per-channel
  ``max``/``avg``), all of them the per-block averages of
  MultiBlockMahalanobis. With one block only, the map-based detectors are
  skipped.
"""

import importlib
import os
import sys

import numpy as np
import torch

from .._torch import model_run
from ..extraction import resolve_blocks
from .exceptions import BenchmarkError
from .features import Layout

__all__ = ["import_factory", "load_own_model"]


def import_factory(spec):
    """The callable named by ``"package.module:factory"`` (a dotted attribute path).

    The module is looked up in the current folder first, then on the Python
    path, as ``python -m`` does: the current folder is put in front of
    ``sys.path`` for this import only.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise BenchmarkError(
            f"--model {spec!r} is neither a built-in architecture nor package.module:factory "
            "(a module in the current folder or on the Python path, and a callable in it "
            "returning an nn.Module).")
    path = list(sys.path)
    sys.path.insert(0, os.getcwd())
    try:
        obj = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is a user error
        raise BenchmarkError(
            f"--model {spec!r}: module {module_name!r} cannot be imported "
            f"({type(exc).__name__}: {exc}); it is looked up in the current folder "
            f"({os.getcwd()}) and on the Python path (PYTHONPATH): run from the folder "
            "holding it, or add that folder to PYTHONPATH, and check that it imports "
            "alone.") from exc
    finally:
        sys.path[:] = path
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise BenchmarkError(
                f"--model {spec!r}: module {module_name!r} has no attribute {attr!r} (the "
                "factory).")
        obj = getattr(obj, part)
    if not callable(obj):
        raise BenchmarkError(f"--model {spec!r}: {attr!r} is a {type(obj).__name__}, not a "
                             "callable factory.")
    return obj


def load_own_model(spec, *, weights, blocks, head, probe, n_classes):
    """Build, load and check the user's model; return it in eval mode with its layout.

    Parameters
    ----------
    spec : str
        ``"package.module:factory"``.
    weights : str or None
        A state dict file (``None``: the factory's own parameters).
    blocks : sequence of str
        Module names; the last one is the feature block (module docstring).
    head : str
        Module name of the final ``nn.Linear``.
    probe : ndarray of shape (n, C, H, W)
        A few ID images, run once to check the model.
    n_classes : int
        Number of ID classes (at most the head's outputs).

    Returns
    -------
    model : torch.nn.Module
        In eval mode, with a ``benchmark_layout`` attribute
        (:class:`~sklearn_ood.benchmark.features.Layout`).

    Raises
    ------
    BenchmarkError
        For every problem, naming the option and what to fix.
    """
    factory = import_factory(spec)
    try:
        model = factory()
    except Exception as exc:  # noqa: BLE001
        raise BenchmarkError(f"--model {spec!r}: calling the factory raised "
                             f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(model, torch.nn.Module):
        raise BenchmarkError(f"--model {spec!r}: the factory returned a "
                             f"{type(model).__name__}, not a torch.nn.Module.")
    if weights is not None:
        _load_weights(model, weights, spec)
    try:
        names = resolve_blocks(model, list(blocks))
    except ValueError as exc:
        raise BenchmarkError(f"--blocks: {exc}") from exc
    modules = dict(model.named_modules())
    if head not in modules:
        raise BenchmarkError(f"--head {head!r} is not a module of {type(model).__name__}. "
                             f"Available blocks: {[n for n in modules if n]}.")
    if not isinstance(modules[head], torch.nn.Linear):
        linear = [n for n, m in modules.items() if isinstance(m, torch.nn.Linear)]
        raise BenchmarkError(f"--head {head!r} is a {type(modules[head]).__name__}, not an "
                             f"nn.Linear; the nn.Linear modules are {linear}.")
    model.eval()
    outputs, logits = _probe(model, names, probe)
    _check_outputs(modules[head], names, head, outputs, logits, n_classes)
    model.benchmark_layout = Layout(tuple(names[:-1]), names[-1], head,
                                    tuple(outputs[n].shape[1] for n in names[:-1]))
    return model


def _load_weights(model, path, spec):
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a user error
        raise BenchmarkError(f"--weights {path!r} cannot be read by "
                             f"torch.load(weights_only=True): {exc}") from exc
    if not isinstance(state, dict):
        raise BenchmarkError(f"--weights {path!r} holds a {type(state).__name__}, not a state "
                             "dict; save it with torch.save(model.state_dict(), path).")
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise BenchmarkError(f"--weights {path!r} does not fit the model of --model "
                             f"{spec!r}: {exc}") from exc
    if result.missing_keys or result.unexpected_keys:
        raise BenchmarkError(
            f"--weights {path!r} does not fit the model of --model {spec!r}: missing keys "
            f"{list(result.missing_keys)}, unexpected keys {list(result.unexpected_keys)}.")


def _probe(model, names, probe):
    """Run ``probe`` once; return each block's output and the logits."""
    modules = dict(model.named_modules())
    outputs = {}

    def hook(name):
        def record(module, inputs, output):
            outputs.setdefault(name, output)
        return record

    try:
        with model_run(model) as hooks, torch.no_grad():
            for n in names:
                hooks.forward(modules[n], hook(n))
            logits = model(torch.as_tensor(np.ascontiguousarray(probe)))
    except Exception as exc:  # noqa: BLE001 - the model cannot run on these images
        raise BenchmarkError(
            f"the model of --model cannot run on the ID images: they have input shape "
            f"{tuple(probe.shape[1:])} (channels, height, width), and the forward pass raised "
            f"{type(exc).__name__}: {exc}. Give images of the size and channels the model "
            "expects.") from exc
    return outputs, logits


def _check_outputs(head_module, names, head, outputs, logits, n_classes):
    for name in names:
        if not isinstance(outputs.get(name), torch.Tensor):
            raise BenchmarkError(f"--blocks {name!r} did not output a tensor in a forward "
                                 "pass; name a block that runs once and returns a tensor.")
    for name in names[:-1]:
        if outputs[name].ndim != 4:
            raise BenchmarkError(
                f"--blocks {name!r} outputs shape {tuple(outputs[name].shape)}; every block "
                "before the last (the feature block) must output maps (N, C, H, W).")
    h = outputs[names[-1]].flatten(1)
    if h.shape[1] != head_module.in_features:
        raise BenchmarkError(
            f"--blocks {names[-1]!r} (the feature block, the last one) outputs "
            f"{h.shape[1]} values per image, but --head {head!r} takes "
            f"{head_module.in_features}; name the block whose output feeds the head last.")
    if not isinstance(logits, torch.Tensor) or logits.shape != (len(h), head_module.out_features):
        raise BenchmarkError(f"the model's output must be the logits of --head {head!r}, "
                             f"shape (N, {head_module.out_features}).")
    with torch.no_grad():
        if not torch.allclose(head_module(h.to(head_module.weight.dtype)), logits.to(
                head_module.weight.dtype), rtol=1e-4, atol=1e-4):
            raise BenchmarkError(
                f"--head {head!r} applied to the output of --blocks {names[-1]!r} does not "
                "give the model's logits; name the block whose output feeds the head last.")
    if n_classes > head_module.out_features:
        raise BenchmarkError(f"the ID set has {n_classes} classes but --head {head!r} has "
                             f"{head_module.out_features} outputs.")
